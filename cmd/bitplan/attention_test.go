package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlanAttention plans tiny_bert three ways under a size budget (which
// attention does not use, so the weight layers' choices are the same):
// --attention-bits none leaves Q·Kᵀ and P·V out; the default counts them
// at float, pinned: four layers of 4·16·16·8 = 8,192 MACs each (the hand
// count), whose 32,768 MACs at 16×16 bits add exactly 8,388,608 BOPS to
// the plan's usage; 4,8,16 makes them candidates with measured Ω, and the
// plan's JSON runs through quantize.
func TestPlanAttention(t *testing.T) {
	dir := filepath.Join(zoo, "tiny_bert")
	in := filepath.Join(dir, "input_ids.npy") + "," + filepath.Join(dir, "attention_mask.npy")
	labels := writeInts(t, "y.npy", []int{2}, []int64{0, 2})
	model := filepath.Join(dir, "op13.onnx")
	type layer struct {
		Name   string
		Bits   int
		Kind   string
		MACs   float64
		Pinned bool
		Costs  map[string]float64
	}
	type planJSON struct {
		Layers []layer
		Usage  map[string]struct{ Used float64 }
	}
	tmp := t.TempDir()
	run := func(att string) (planJSON, string) {
		t.Helper()
		out := filepath.Join(tmp, "plan-"+strings.ReplaceAll(att, ",", "_")+".json")
		_, errs, code := runCmd(t, "plan", model, "--inputs", in, "--labels", labels, "--max-size", "50%", "--verify", "0",
			"--method", "hutchinson", "--min-probes", "2", "--max-probes", "3", "--attention-bits", att, "--format", "json", "-o", out)
		if code != 0 {
			t.Fatalf("--attention-bits %s: exit %d: %s", att, code, errs)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var p planJSON
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		return p, out
	}
	none, _ := run("none")
	counted, _ := run("16")
	var att []layer
	for _, l := range counted.Layers {
		if l.Kind == "attention" {
			att = append(att, l)
		}
	}
	if len(att) != 4 || len(counted.Layers) != len(none.Layers)+4 {
		t.Fatalf("default: %d attention layers of %d (without: %d)", len(att), len(counted.Layers), len(none.Layers))
	}
	for _, l := range att {
		if l.MACs != 8192 || l.Bits != 16 || !l.Pinned || l.Costs["bops"] != 8192*256 || l.Costs["size"] != 0 {
			t.Errorf("%s: %g MACs, bits %d, pinned %v, costs %v", l.Name, l.MACs, l.Bits, l.Pinned, l.Costs)
		}
	}
	for i, l := range none.Layers {
		if counted.Layers[i].Name != l.Name || counted.Layers[i].Bits != l.Bits {
			t.Fatalf("layer %d: %s at %d bits without attention, %s at %d with", i, l.Name, l.Bits, counted.Layers[i].Name, counted.Layers[i].Bits)
		}
	}
	if d := counted.Usage["bops"].Used - none.Usage["bops"].Used; math.Abs(d-8388608) > 1e-6 {
		t.Errorf("attention adds %g BOPS, want 32768·16·16 = 8388608", d)
	}
	cands, path := run("4,8,16")
	quantized := 0
	for _, l := range cands.Layers {
		if l.Kind == "attention" && l.Bits < 16 {
			quantized++
		}
	}
	if quantized == 0 {
		t.Errorf("no attention point quantized under a size budget that they do not use: %+v", cands.Layers)
	}
	_, errs, code := runCmd(t, "quantize", model, "--plan", path, "--inputs", in, "--labels", labels, "-o", filepath.Join(tmp, "q.onnx"))
	if code != 0 {
		t.Fatalf("quantize: exit %d: %s", code, errs)
	}

	// --nonlinear choose on the T4: /layers.0/gelu has 16·64 = 1,024
	// elements per sample; integer-only they move 5 B each (1.6e-8 s at
	// 320 GB/s, above 10 ops at 4.07 T op/s) and cost 7·0.1 + 3·3.1 pJ plus
	// 5 B·162.5 pJ each (842.24 nJ); in float 8 B (2.56e-8 s) and
	// 14·0.9 + 19·3.7 pJ plus 8 B·162.5 pJ (1,416.0896 nJ).
	out := filepath.Join(tmp, "plan-nl.json")
	_, errs, code = runCmd(t, "plan", model, "--inputs", in, "--labels", labels, "--max-size", "50%", "--verify", "0",
		"--method", "hutchinson", "--min-probes", "2", "--max-probes", "3", "--nonlinear", "choose", "--profile", "t4", "--format", "json", "-o", out)
	if code != 0 {
		t.Fatalf("--nonlinear choose: exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var p planJSON
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, l := range p.Layers {
		if l.Kind != "nonlinear" {
			continue
		}
		found++
		if l.Name != "/layers.0/gelu" {
			continue
		}
		lat, en := 1.6e-5, 842.24e-9
		if l.Bits == 16 {
			lat, en = 2.56e-5, 1416.0896e-9
		}
		if math.Abs(l.Costs["latency@t4"]-lat) > 1e-12 || math.Abs(l.Costs["energy@t4"]-en) > 1e-15 {
			t.Errorf("%s at %d bits: latency %g ms, energy %g J; want %g, %g", l.Name, l.Bits, l.Costs["latency@t4"], l.Costs["energy@t4"], lat, en)
		}
	}
	if found != 7 {
		t.Errorf("%d non-linearity layers, want 7 (embedding norm; per layer softmax, gelu, layer norms)", found)
	}
}
