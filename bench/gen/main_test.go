package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/ilp"
	"github.com/bitplan/bitplan/sensitivity"
)

// TestTableBytes checks the streamed table against encoding/json's
// MarshalIndent of the same layers (what gen wrote before it streamed),
// and that package sensitivity reads it back.
func TestTableBytes(t *testing.T) {
	type jsonLayer struct {
		Name      string             `json:"name"`
		Params    int64              `json:"params"`
		MACs      int64              `json:"macs"`
		AvgTrace  float64            `json:"avg_trace"`
		DeltaSq   map[string]float64 `json:"delta_sq"`
		LatencyMS map[string]float64 `json:"latency_ms"`
	}
	type jsonTable struct {
		Model  string      `json:"model"`
		Source string      `json:"source"`
		Layers []jsonLayer `json:"layers"`
	}
	const n = 300
	path := filepath.Join(t.TempDir(), "t.json")
	if err := run([]string{"-groups", "300", "-seed", "7", "-table", path}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 2024))
	want := jsonTable{Model: "synthetic-300", Source: "bitplan bench/gen"}
	for i := 0; i < n; i++ {
		l := draw(rng)
		jl := jsonLayer{Name: "layer" + strconv.Itoa(i), Params: l.params, MACs: l.macs, AvgTrace: l.avgTrace,
			DeltaSq: map[string]float64{}, LatencyMS: map[string]float64{}}
		for k, key := range bitKeys {
			jl.DeltaSq[key], jl.LatencyMS[key] = l.deltaSq[k], l.latencyMS[k]
		}
		want.Layers = append(want.Layers, jl)
	}
	wb, err := json.MarshalIndent(want, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, wb) {
		i := 0
		for i < len(got) && i < len(wb) && got[i] == wb[i] {
			i++
		}
		t.Fatalf("the table differs from MarshalIndent at byte %d: %q vs %q", i, got[i:min(i+40, len(got))], wb[i:min(i+40, len(wb))])
	}
	tab, _, err := sensitivity.ReadFile(path)
	if err != nil || len(tab.Layers) != n || tab.Layers[n-1].DeltaSq["8"] != want.Layers[n-1].DeltaSq["8"] {
		t.Fatalf("reading the table back: %v", err)
	}
}

func TestRunSolve(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-groups", "60", "-solve"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "status optimal") {
		t.Fatalf("output %q", out.String())
	}
}

func TestRunBadFlag(t *testing.T) {
	if err := run([]string{"-groups", "0"}, &bytes.Buffer{}); err == nil {
		t.Fatal("no error for -groups 0")
	}
}

func BenchmarkGen500(b *testing.B) {
	for b.Loop() {
		run([]string{"-groups", "500", "-solve"}, &bytes.Buffer{})
	}
}

// BenchmarkSolve5000 solves, with package ilp, the 5,000-layer instance
// that bench/solve_vs_cbc.sh 5000 gives both solvers (seed 1): the solve
// alone, without reading the table or writing the plan.
func BenchmarkSolve5000(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2024))
	ls := make([]layer, 5000)
	for i := range ls {
		ls[i] = draw(rng)
	}
	p := problem(ls)
	for b.Loop() {
		sol, err := ilp.Solve(context.Background(), p, nil)
		if err != nil || sol.Status != ilp.Optimal {
			b.Fatalf("status %v, error %v", sol.Status, err)
		}
	}
}
