package profiles

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// ResNet18 stage1.unit1.conv1: 64→64, 3×3, 56×56.
var conv = Layer{Name: "conv", Params: 36864, MACs: 115605504, InElems: 64 * 56 * 56, OutElems: 64 * 56 * 56, OutChannels: 64}

func mustBuiltin(t testing.TB, name string) *Profile {
	t.Helper()
	p, err := Builtin(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	const tol = 1e-12 // relative; the formulas are a few flops
	if rel(got, want) > tol {
		t.Errorf("%s = %.12g, want %.12g", what, got, want)
	}
}

// TestCostHand checks every formula against values worked out by hand.
func TestCostHand(t *testing.T) {
	t4 := mustBuiltin(t, "t4")

	// w4a4, batch 8, per-tensor scales.
	c, err := t4.Cost(conv, W4A4, &Options{Batch: 8})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "size", c.Size, 18432)                       // 36864·4/8
	near(t, "BOPS", c.BOPS, 1849688064)                  // 115605504·4·4
	near(t, "compute", c.Compute, 1.4228369723076924e-5) // 8·115605504 / (130e12·0.5)
	if rel(c.Compute, 924844032/65e12) > 1e-12 {
		t.Errorf("compute %g", c.Compute)
	}
	near(t, "traffic", c.Traffic, 1624064) // 18432 + 2·8·200704·4/8
	near(t, "memory", c.Memory, 5.0752e-6) // 1624064 / 320e9
	near(t, "latency", c.Latency, 924844032/65e12+5e-6)
	near(t, "energy", c.Energy, 4.026370048e-4) // 924844032·0.15e-12 + 1624064·162.5e-12
	near(t, "activation", c.Activation, 802816) // 8·200704·4/8
	if c.Bound != ComputeBound || c.FellBack || c.Used != W4A4 || !c.EnergyKnown {
		t.Errorf("cost %+v", c)
	}

	// Per-channel scales add out_channels × 4 bytes to size and traffic.
	c2, _ := t4.Cost(conv, W4A4, &Options{Batch: 8, PerChannel: true})
	near(t, "size per-channel", c2.Size, 18432+64*4)
	near(t, "traffic per-channel", c2.Traffic, 1624064+256)
	c3, _ := t4.Cost(conv, W4A4, &Options{Batch: 8, PerChannel: true, ScaleBytes: 2})
	near(t, "size fp16 scales", c3.Size, 18432+64*2)

	// w4a8 falls back to w8a8 on a T4: INT8 peak, weights still 4-bit.
	c, err = t4.Cost(conv, W4A8, &Options{Batch: 8})
	if err != nil {
		t.Fatal(err)
	}
	if !c.FellBack || c.Used != W8A8 || c.Requested != W4A8 {
		t.Errorf("fallback: %+v", c)
	}
	near(t, "size w4a8", c.Size, 18432)
	near(t, "BOPS w4a8", c.BOPS, 115605504*32)
	near(t, "compute w4a8", c.Compute, 924844032/32.5e12)
	near(t, "traffic w4a8", c.Traffic, 3229696) // 18432 + 2·8·200704
	near(t, "latency w4a8", c.Latency, 924844032/32.5e12+5e-6)
	near(t, "energy w4a8", c.Energy, 924844032*0.3e-12+3229696*162.5e-12)
	if !strings.Contains(strings.Join(c.Notes, ";"), "w4a8 runs as w8a8 on t4") {
		t.Errorf("notes %q lack the fallback", c.Notes)
	}

	// A fully-connected layer at batch 1 is memory bound: 4096×4096 weights.
	fc := Layer{Name: "fc", Params: 4096 * 4096, MACs: 4096 * 4096, InElems: 4096, OutElems: 4096, OutChannels: 4096}
	c, _ = t4.Cost(fc, W8A8, nil)
	near(t, "fc memory", c.Memory, (16777216+8192)/320e9)
	near(t, "fc compute", c.Compute, 16777216/32.5e12)
	near(t, "fc latency", c.Latency, (16777216+8192)/320e9+5e-6)
	if c.Bound != MemoryBound {
		t.Errorf("fc bound %s, want memory", c.Bound)
	}

	// Xeon, ResNet18 stage4 conv at w8a8: 40·2.3e9·2·64 MAC/s at η = 0.5.
	x := mustBuiltin(t, "xeon8380")
	s4 := Layer{Name: "s4", Params: 2359296, MACs: 115605504, InElems: 512 * 49, OutElems: 512 * 49, OutChannels: 512}
	c, _ = x.Cost(s4, W8A8, nil)
	near(t, "xeon compute", c.Compute, 115605504/(40*2.3e9*2*64*0.5))
	near(t, "xeon memory", c.Memory, 2409472/204.8e9)
	near(t, "xeon latency", c.Latency, 115605504/(40*2.3e9*2*64*0.5)+2e-6)
	// w16a16 falls back to fp32 on Ice Lake.
	c, _ = x.Cost(s4, W16A16, nil)
	if c.Used != W32A32 {
		t.Errorf("xeon w16a16 used %s, want w32a32", c.Used)
	}
	near(t, "xeon fp16 compute", c.Compute, 115605504/(40*2.3e9*2*16*0.5))
}

func TestCostWeightOnly(t *testing.T) {
	t4 := mustBuiltin(t, "t4")
	l := Layer{Name: "w", Params: 1000, MACs: 5000}
	c, err := t4.Cost(l, W8A8, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "traffic", c.Traffic, 1000)
	near(t, "activation", c.Activation, 0)
	if !strings.Contains(strings.Join(c.Notes, ";"), "weight-only") {
		t.Errorf("notes %q lack weight-only", c.Notes)
	}
	cs, err := t4.CostAll([]Layer{l, conv}, []Precision{W8A8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(cs.Warnings, ";"), "1 layer(s) without in_elems/out_elems") {
		t.Errorf("warnings %q", cs.Warnings)
	}
}

func TestCostErrors(t *testing.T) {
	t4 := mustBuiltin(t, "t4")
	_, err := t4.Cost(Layer{Name: "neg", Params: -1}, W8A8, nil)
	if err == nil || !strings.Contains(err.Error(), `"neg"`) || !strings.Contains(err.Error(), "params") {
		t.Errorf("negative params: %v", err)
	}
	_, err = t4.Cost(conv, Precision{64, 64}, nil)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "w64a64") {
		t.Errorf("w64a64: %v", err)
	}
	_, err = t4.Cost(conv, Precision{0, 8}, nil)
	if err == nil {
		t.Error("w0a8: no error")
	}
}

func TestCostAllRemoves(t *testing.T) {
	x := mustBuiltin(t, "xeon8380")
	cands := []Precision{W4A4, W8A8, {64, 64}, W16A16}
	cs, err := x.CostAll([]Layer{conv}, cands, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Candidates) != 3 || len(cs.Removed) != 1 || cs.Removed[0] != (Precision{64, 64}) {
		t.Fatalf("candidates %v removed %v", cs.Candidates, cs.Removed)
	}
	if len(cs.Costs) != 1 || len(cs.Costs[0]) != 3 || cs.Costs[0][2].Used != W32A32 {
		t.Fatalf("costs %+v", cs.Costs)
	}
	w := strings.Join(cs.Warnings, ";")
	for _, s := range []string{"w64a64 removed", "w4a4 runs as w8a8", "w16a16 runs as w32a32"} {
		if !strings.Contains(w, s) {
			t.Errorf("warnings %q lack %q", cs.Warnings, s)
		}
	}
	if _, err := x.CostAll([]Layer{conv}, []Precision{{64, 64}}, nil); !errors.Is(err, ErrUnsupported) {
		t.Errorf("all removed: %v", err)
	}
}

// TestResolveBruteForce checks Resolve on random profiles against a direct
// search: the pair used holds the request, and no listed pair that holds it
// is narrower.
func TestResolveBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	widths := []int{2, 4, 8, 16, 32}
	for trial := 0; trial < 2000; trial++ {
		p := &Profile{Name: "r", Kind: GPU, Bandwidth: 1, Efficiency: 1}
		seen := map[Precision]bool{}
		for k := rng.IntN(6); k >= 0; k-- {
			q := Precision{widths[rng.IntN(5)], widths[rng.IntN(5)]}
			if !seen[q] {
				seen[q] = true
				p.Precisions = append(p.Precisions, PrecisionSpec{Precision: q, Format: "int", PeakOps: 1})
			}
		}
		q := Precision{widths[rng.IntN(5)], widths[rng.IntN(5)]}
		s, fell, err := p.Resolve(q)
		var holders []Precision
		for _, ps := range p.Precisions {
			if ps.Precision.W >= q.W && ps.Precision.A >= q.A {
				holders = append(holders, ps.Precision)
			}
		}
		if len(holders) == 0 {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("%v on %v: err %v, want ErrUnsupported", q, p.Precisions, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", q, err)
		}
		if fell != (s.Precision != q) || !s.Precision.Holds(q) {
			t.Fatalf("%v → %v (fell %v)", q, s.Precision, fell)
		}
		for _, h := range holders {
			if h.W+h.A < s.Precision.W+s.Precision.A || (h.W+h.A == s.Precision.W+s.Precision.A && h.W < s.Precision.W) {
				t.Fatalf("%v → %v, but %v is narrower", q, s.Precision, h)
			}
		}
	}
}

// TestRooflineProperties checks, on random layers and every built-in
// profile, that latency is the larger of the two roofline terms plus the
// overhead, that size grows with weight bits and traffic with activation
// bits, and that batch scales MACs but not weights.
func TestRooflineProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	ps, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for trial := 0; trial < 500; trial++ {
		l := Layer{Name: "r", Params: rng.Int64N(1 << 24), MACs: rng.Int64N(1 << 30),
			InElems: rng.Int64N(1 << 22), OutElems: rng.Int64N(1 << 22), OutChannels: rng.Int64N(2048)}
		p := ps[rng.IntN(len(ps))]
		batch := 1 + rng.IntN(16)
		o := &Options{Batch: batch, PerChannel: rng.IntN(2) == 0}
		var prev Cost
		for i, q := range []Precision{W4A4, W4A8, W8A8, W16A16, W32A32} {
			c, err := p.Cost(l, q, o)
			if err != nil {
				t.Fatal(err)
			}
			lo := math.Max(c.Compute, c.Memory) + p.Overhead
			if c.Latency != lo || c.Latency < c.Compute || c.Latency < c.Memory {
				t.Fatalf("%s %v: latency %g, compute %g memory %g", p.Name, q, c.Latency, c.Compute, c.Memory)
			}
			if i > 0 {
				if q.W >= prev.Requested.W && c.Size < prev.Size {
					t.Fatalf("size fell from %v to %v", prev.Requested, q)
				}
				if q.A >= prev.Requested.A && q.W >= prev.Requested.W && c.Traffic < prev.Traffic {
					t.Fatalf("traffic fell from %v to %v", prev.Requested, q)
				}
			}
			prev = c
			c1, _ := p.Cost(l, q, &Options{Batch: 1, PerChannel: o.PerChannel})
			if rel(c.Compute, float64(batch)*c1.Compute) > 1e-12 || c.Size != c1.Size || c.BOPS != c1.BOPS {
				t.Fatalf("batch %d: compute %g vs %g·%d", batch, c.Compute, c1.Compute, batch)
			}
		}
	}
}

func BenchmarkCostAll(b *testing.B) {
	p := mustBuiltin(b, "t4")
	layers := make([]Layer, 1000)
	for i := range layers {
		layers[i] = conv
	}
	cands := CommonPrecisions()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.CostAll(layers, cands, &Options{Batch: 8}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCostJSON(t *testing.T) {
	c, err := mustBuiltin(t, "h100").Cost(conv, W4A4, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"requested":"w4a4"`, `"used":"w8a8"`, `"fell_back":true`, `"latency_s":`, `"bound":"compute"`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("%s lacks %s", b, w)
		}
	}
}
