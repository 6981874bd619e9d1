// Command gen writes a synthetic bitplan benchmark instance: a sensitivity
// table (the JSON format of bitplan solve, with delta_sq and latency_ms at
// 2, 3, 4, 5, 6 and 8 bits) and the same problem as fixed-format MPS for
// external solvers, with the size and latency budgets at 50 % between
// all-lowest and all-highest (HAWQ-V3's convention, as bitplan solve
// --max-size 50% --max-latency 50% reads them).
//
// Usage:
//
//	go run ./bench/gen -groups 5000 -table t.json -mps t.mps [-seed 1] [-solve]
//	go run ./bench/gen -read t.json
//
// With -solve it also solves the instance with package ilp and prints the
// status, objective and time (a driver when the CLI is not available). With
// -read it only reads a table (bench/parse.sh times it).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/bitplan/bitplan/ilp"
	"github.com/bitplan/bitplan/sensitivity"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// bits are the candidate weight bit widths.
var bits = []int{2, 3, 4, 5, 6, 8}

// layer is one entry of the sensitivity table.
type layer struct {
	Name      string             `json:"name"`
	Params    int64              `json:"params"`
	MACs      int64              `json:"macs"`
	AvgTrace  float64            `json:"avg_trace"`
	DeltaSq   map[string]float64 `json:"delta_sq"`
	LatencyMS map[string]float64 `json:"latency_ms"`
}

type table struct {
	Model  string  `json:"model"`
	Source string  `json:"source"`
	Layers []layer `json:"layers"`
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	groups := fs.Int("groups", 500, "number of `N` layers")
	seed := fs.Uint64("seed", 1, "random `SEED`")
	tablePath := fs.String("table", "", "write the sensitivity table to `FILE` (JSON)")
	mpsPath := fs.String("mps", "", "write the problem to `FILE` (fixed MPS)")
	solve := fs.Bool("solve", false, "solve with package ilp and print the result")
	read := fs.String("read", "", "only read the sensitivity table `FILE` with package sensitivity and print the layer count and the time (bench/parse.sh)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *read != "" {
		t0 := time.Now()
		tab, _, err := sensitivity.ReadFile(*read)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "read %d layers in %.3f s\n", len(tab.Layers), time.Since(t0).Seconds())
		return nil
	}
	if *groups < 1 {
		return fmt.Errorf("-groups %d: want at least 1", *groups)
	}
	t := generate(*groups, *seed)
	if *tablePath != "" {
		data, err := json.MarshalIndent(t, "", " ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*tablePath, data, 0o644); err != nil {
			return err
		}
	}
	p := problem(t)
	if *mpsPath != "" {
		f, err := os.Create(*mpsPath)
		if err != nil {
			return err
		}
		if err := ilp.WriteMPS(f, p); err != nil {
			f.Close()
			return fmt.Errorf("-mps %s: %w", *mpsPath, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if *solve {
		t0 := time.Now()
		sol, err := ilp.Solve(context.Background(), p, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "status %v objective %.12g bound %.12g gap %.3g nodes %d time %.6f s\n",
			sol.Status, sol.Objective, sol.Bound, sol.Gap, sol.Nodes, time.Since(t0).Seconds())
	}
	return nil
}

// generate draws n layers: params log-uniform over 1e3..4e5, MACs a
// log-uniform multiple of params, average trace log-normal, Δ² falling about
// 4× per bit, latency roughly affine in the bit width.
func generate(n int, seed uint64) *table {
	rng := rand.New(rand.NewPCG(seed, 2024))
	t := &table{Model: fmt.Sprintf("synthetic-%d", n), Source: "bitplan bench/gen"}
	for i := 0; i < n; i++ {
		params := math.Round(math.Exp(rng.Float64()*6) * 1e3)
		macs := math.Round(params * math.Exp(rng.Float64()*4) * 50)
		l := layer{
			Name:      fmt.Sprintf("layer%d", i),
			Params:    int64(params),
			MACs:      int64(macs),
			AvgTrace:  math.Exp(rng.NormFloat64() * 2),
			DeltaSq:   map[string]float64{},
			LatencyMS: map[string]float64{},
		}
		base := params * (0.5 + rng.Float64())
		speed := macs * 1e-9 * (0.5 + rng.Float64())
		for _, b := range bits {
			key := strconv.Itoa(b)
			l.DeltaSq[key] = base * math.Pow(4, -float64(b)) * (0.8 + 0.4*rng.Float64())
			l.LatencyMS[key] = speed * (0.4 + 0.1*float64(b)) * (0.9 + 0.2*rng.Float64())
		}
		t.Layers = append(t.Layers, l)
	}
	return t
}

// problem builds the ILP: value avg_trace·Δ²(b), rows size = params·b/8 bytes
// and latency, both limited at 50 % between all-lowest and all-highest
// precision (the same limits `bitplan solve --max-size 50% --max-latency
// 50%` derives from the table).
func problem(t *table) *ilp.Problem {
	p := &ilp.Problem{Rows: []ilp.Row{{Name: "size", Unit: "B"}, {Name: "latency", Unit: "ms"}}}
	lo := make([]float64, 2)
	hi := make([]float64, 2)
	for _, l := range t.Layers {
		g := ilp.Group{Name: l.Name}
		for _, b := range bits {
			key := strconv.Itoa(b)
			g.Choices = append(g.Choices, ilp.Choice{
				Label: key,
				Value: l.AvgTrace * l.DeltaSq[key],
				Costs: []float64{float64(l.Params) * float64(b) / 8, l.LatencyMS[key]},
			})
		}
		// HAWQ's convention, as `bitplan solve` resolves P%: the cost with
		// every layer at its lowest and at its highest bit width.
		for k := range lo {
			lo[k] += g.Choices[0].Costs[k]
			hi[k] += g.Choices[len(g.Choices)-1].Costs[k]
		}
		p.Groups = append(p.Groups, g)
	}
	for k := range p.Rows {
		p.Rows[k].Limit = lo[k] + 0.5*(hi[k]-lo[k])
	}
	return p
}
