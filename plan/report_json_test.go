package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestWriteJSONMatchesEncodingJSON: the plan writer's direct layer
// formatting writes exactly what encoding/json's indenting encoder does.
func TestWriteJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	num := func() float64 { return math.Exp(rng.NormFloat64()*20) * float64(rng.IntN(3)-1) }
	for trial := 0; trial < 100; trial++ {
		obj := num()
		p := &Plan{Model: "m<&>", Status: "optimal", Objective: &obj, Engine: "bitplan",
			Usage: map[string]*Usage{"size": {Unit: "B", Used: &obj, Min: 1, Max: 2}}, Warnings: []string{"w"}}
		if trial%7 != 0 {
			p.Layers = []Layer{}
		}
		for i := 0; i < rng.IntN(4); i++ {
			l := Layer{Name: fmt.Sprintf("l\"%d", i), Bits: rng.IntN(9), ABits: 8, Choice: "w4a8",
				Omega: num(), AvgTrace: num(), Params: num(), MACs: num(), Pinned: rng.IntN(2) == 0}
			if rng.IntN(2) == 0 {
				l.AvgTraceStderr = num()
			}
			if rng.IntN(3) > 0 {
				l.Costs = map[string]float64{"size": num(), "latency@t4": num(), "bops": num()}
			}
			if rng.IntN(2) == 0 {
				l.Tie = "t"
			}
			if rng.IntN(2) == 0 {
				l.Kind = "attention"
			}
			if rng.IntN(2) == 0 {
				l.Pruned = &LayerPruning{Group: "g<1>", OutChannels: [2]int{8, rng.IntN(9)}, Params: [2]int64{100, int64(rng.IntN(100))},
					FLOPs: [2]int64{1e6, 5e5}, OmegaRemoved: num()}
				if rng.IntN(2) == 0 {
					l.Pruned.InChannels = &[2]int{3, 2}
				}
			}
			p.Layers = append(p.Layers, l)
		}
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(p); err != nil {
			t.Fatal(err)
		}
		if err := p.WriteJSON(&got); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("WriteJSON:\n%s\nencoding/json:\n%s", got.String(), want.String())
		}
	}
	p := &Plan{Status: "optimal", Layers: []Layer{{Name: "x", Omega: math.NaN()}}}
	if err := p.WriteJSON(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `layers[0] ("x"): omega is NaN`) {
		t.Errorf("NaN: %v", err)
	}
	// appendJSON writes every field of Layer: a new field must be added there.
	if n := reflect.TypeOf(Layer{}).NumField(); n != 14 {
		t.Errorf("plan.Layer has %d fields; appendJSON writes 14", n)
	}
}

// TestParseDuplicatesAndUnknown: a key given twice in a plan is an error
// naming it and its place (encoding/json kept the last); unknown fields
// are warnings.
func TestParseDuplicatesAndUnknown(t *testing.T) {
	_, _, err := Parse([]byte(`{"status": "optimal", "layers": [{"name": "a", "bits": 4, "bits": 8}]}`))
	if err == nil || !strings.Contains(err.Error(), `duplicate key "bits" in layers[0] at line 1, column 59`) {
		t.Errorf("duplicate: %v", err)
	}
	p, warn, err := Parse([]byte(`{"status": "optimal", "stauts": "x", "layers": [{"name": "a", "bitz": 4, "Bits": 8}],
		"usage": {"size": {"unit": "B", "used": 1, "limit": null, "min": 0, "max": 1, "mni": 3}}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`layers[0]: field "Bits" read as "bits"`, `layers[0]: unknown field "bitz" ignored`, `unknown field "stauts" ignored`, `usage["size"]: unknown field "mni" ignored`}
	if len(warn) != len(want) {
		t.Fatalf("warnings %q, want %q", warn, want)
	}
	for i := range want {
		if !strings.Contains(warn[i], want[i]) {
			t.Errorf("warning %d = %q, want %q", i, warn[i], want[i])
		}
	}
	if p.Layers[0].Bits != 8 {
		t.Errorf("bits = %d", p.Layers[0].Bits)
	}
}
