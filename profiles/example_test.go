package profiles_test

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/bitplan/bitplan/profiles"
)

func ExampleLoad() {
	p, err := profiles.Load("t4") // a built-in name, or a path to a .json file
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range p.Precisions {
		fmt.Printf("%s %g TOPS = %g TMAC/s\n", s.Precision, s.PeakOps/1e12, s.PeakMACs()/1e12)
	}
	fmt.Println(p.Sources["precisions.w8a8.peak_tops"])
	// Output:
	// w4a4 260 TOPS = 130 TMAC/s
	// w8a8 130 TOPS = 65 TMAC/s
	// w16a16 65 TOPS = 32.5 TMAC/s
	// w32a32 8.1 TOPS = 4.05 TMAC/s
	// NVIDIA T4 datasheet (2019): INT8 130 TOPS (dense)
}

func ExampleNames() {
	fmt.Println(strings.Join(profiles.Names(), " "))
	// Output: a100 h100 orin sd888-cpu t4 xeon8380
}

func ExampleProfile_Cost() {
	t4, _ := profiles.Builtin("t4")
	// ResNet18 stage1.unit1.conv1 (64→64, 3×3, 56×56), per sample.
	conv := profiles.Layer{Name: "stage1.unit1.conv1", Params: 36864, MACs: 115605504,
		InElems: 64 * 56 * 56, OutElems: 64 * 56 * 56, OutChannels: 64}
	for _, q := range []profiles.Precision{profiles.W4A4, profiles.W4A8, profiles.W8A8} {
		c, err := t4.Cost(conv, q, &profiles.Options{Batch: 8})
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s (as %s): size %.0f B, %.3g GBOPS, latency %.2f µs (%s bound), energy %.0f µJ\n",
			q, c.Used, c.Size, c.BOPS/1e9, c.Latency*1e6, c.Bound, c.Energy*1e6)
	}
	// Output:
	// w4a4 (as w4a4): size 18432 B, 1.85 GBOPS, latency 19.23 µs (compute bound), energy 403 µJ
	// w4a8 (as w8a8): size 18432 B, 3.7 GBOPS, latency 33.46 µs (compute bound), energy 802 µJ
	// w8a8 (as w8a8): size 36864 B, 7.4 GBOPS, latency 33.46 µs (compute bound), energy 805 µJ
}

func ExampleProfile_Resolve() {
	h100, _ := profiles.Builtin("h100")
	s, fellBack, _ := h100.Resolve(profiles.W4A4)
	fmt.Println(s.Precision, fellBack)
	_, _, err := h100.Resolve(profiles.Precision{W: 64, A: 64})
	fmt.Println(errors.Is(err, profiles.ErrUnsupported))
	// Output:
	// w8a8 true
	// true
}

func ExampleParseTableCSV() {
	table, err := profiles.ParseTableCSV(strings.NewReader(
		"layer,precision,ms\nconv1,w4a4,0.2109\nconv1,w8a8,0.3619\n"), "t4.csv")
	if err != nil {
		fmt.Println(err)
		return
	}
	t4, _ := profiles.Builtin("t4")
	conv1 := profiles.Layer{Name: "conv1", Params: 36864, MACs: 115605504}
	c, _ := t4.Cost(conv1, profiles.W8A8, &profiles.Options{Table: table})
	fmt.Printf("%.4f ms (%s)\n", c.Latency*1e3, c.Bound)

	// A table naming a layer the model does not have is an error.
	_, err = t4.CostAll([]profiles.Layer{{Name: "conv2", Params: 1, MACs: 1}}, []profiles.Precision{profiles.W8A8},
		&profiles.Options{Table: table})
	fmt.Println(err)
	// Output:
	// 0.3619 ms (measured)
	// table t4.csv line 2: layer "conv1" is not a layer of the model (layers: [conv2])
}

func ExampleParse() {
	p, err := profiles.Parse([]byte(`{
  "name": "toy-npu", "description": "an example accelerator", "kind": "npu",
  "memory_bandwidth_gb_per_s": 25.6, "layer_overhead_us": 2, "efficiency": 0.8,
  "precisions": {"w8a8": {"peak_tops": 4}, "w4a4": {"peak_tops": 8, "energy_pj_per_mac": 0.1}},
  "sources": {"memory_bandwidth_gb_per_s": "vendor brief", "layer_overhead_us": "estimate",
              "efficiency": "estimate", "precisions.w8a8.peak_tops": "vendor brief",
              "precisions.w4a4.peak_tops": "vendor brief"}
}`), "toy-npu.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	p.WriteText(os.Stdout)
	// Output:
	// toy-npu: an example accelerator
	//   kind              npu
	//   origin            toy-npu.json
	//   memory bandwidth  25.6 GB/s
	//   layer overhead    2 µs
	//   efficiency        0.8
	//   DRAM energy       unknown
	//
	//   precision  format  peak (dense)  efficiency  model MAC/s  ridge MAC/B  energy/MAC
	//   w4a4       int     8 TOPS        0.8         3.2 TMAC/s   125          0.1 pJ
	//   w8a8       int     4 TOPS        0.8         1.6 TMAC/s   62.5         unknown
	//
	//   fallbacks: w4a8 → w8a8, w16a16 unsupported, w32a32 unsupported
	//
	//   sources:
	//     efficiency: estimate
	//     layer_overhead_us: estimate
	//     memory_bandwidth_gb_per_s: vendor brief
	//     precisions.w4a4.peak_tops: vendor brief
	//     precisions.w8a8.peak_tops: vendor brief
	//
	//   warnings:
	//     - precisions.w4a4.energy_pj_per_mac has no entry in "sources"
}

// ExampleProfile_Fit calibrates the T4 profile to a small measured table:
// four layers at w4a4 and w8a8, measured at batch 8.
func ExampleProfile_Fit() {
	p, err := profiles.Builtin("t4")
	if err != nil {
		fmt.Println(err)
		return
	}
	layers := []profiles.Layer{
		{Name: "conv1", Params: 36864, MACs: 115605504, InElems: 200704, OutElems: 200704},
		{Name: "conv2", Params: 147456, MACs: 115605504, InElems: 100352, OutElems: 100352},
		{Name: "down", Params: 8192, MACs: 6422528, InElems: 200704, OutElems: 100352},
		{Name: "conv3", Params: 2359296, MACs: 115605504, InElems: 25088, OutElems: 25088},
	}
	table, err := profiles.ParseTableCSV(strings.NewReader(`layer,precision,ms
conv1,w4a4,0.2109
conv1,w8a8,0.3619
conv2,w4a4,0.1917
conv2,w8a8,0.3895
down,w4a4,0.0400
down,w8a8,0.0531
conv3,w4a4,0.2229
conv3,w8a8,0.3738
`), "t4.csv")
	if err != nil {
		fmt.Println(err)
		return
	}
	cal, err := p.Fit(layers, table, &profiles.Options{Batch: 8})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range cal.Terms {
		fmt.Printf("%s: efficiency %.3f, overhead %.1f µs\n", t.Precision, t.Efficiency, t.Overhead*1e6)
	}
	fmt.Printf("median |error| %.0f%% before, %.0f%% after\n", 100*cal.MedianAbsBefore, 100*cal.MedianAbsAfter)
	// Output:
	// w4a4: efficiency 0.040, overhead 28.4 µs
	// w8a8: efficiency 0.041, overhead 29.8 µs
	// median |error| 91% before, 3% after
}
