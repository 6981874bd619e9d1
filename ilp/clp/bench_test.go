//go:build clp

package clp

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/bitplan/bitplan/ilp"
)

// benchProblem builds a seeded HAWQ-like instance: G layers with 6 bit
// widths {2, 3, 4, 5, 6, 8}, value Ω = trace·params·2^(−2b) with noise,
// rows size = params·b/8, BOPS = MACs·b² and (if rows = 3) a latency-like
// cost, each limited halfway between all-lowest and all-highest; then
// extra sparse random rows that a planted assignment meets.
func benchProblem(G, rows, extra int, seed uint64) *ilp.Problem {
	rng := rand.New(rand.NewPCG(seed, 77))
	bitsW := []float64{2, 3, 4, 5, 6, 8}
	K := rows + extra
	p := &ilp.Problem{}
	planted := make([]int, G)
	for g := 0; g < G; g++ {
		params := math.Exp2(float64(10 + rng.IntN(12)))
		hw := []float64{7, 14, 28, 56}[rng.IntN(4)]
		macs := params * hw * hw
		trace := math.Exp(rng.NormFloat64() * 1.5)
		gr := ilp.Group{Name: "layer" + strconv.Itoa(g)}
		for _, b := range bitsW {
			ch := ilp.Choice{Label: strconv.Itoa(int(b)), Costs: make([]float64, K)}
			ch.Value = trace * params * math.Exp2(-2*b) * (1 + 0.1*rng.Float64())
			ch.Costs[0] = params * b / 8
			if rows > 1 {
				ch.Costs[1] = macs * b * b
			}
			if rows > 2 {
				ch.Costs[2] = macs * (0.3 + b/8) * (1 + 0.2*rng.Float64()) * 1e-9
			}
			for k := rows; k < K; k++ {
				if rng.Float64() < 0.3 {
					ch.Costs[k] = rng.Float64()
				}
			}
			gr.Choices = append(gr.Choices, ch)
		}
		planted[g] = rng.IntN(len(bitsW))
		p.Groups = append(p.Groups, gr)
	}
	for k := 0; k < K; k++ {
		lo, hi, pl := 0.0, 0.0, 0.0
		for g, gr := range p.Groups {
			a, b := math.Inf(1), math.Inf(-1)
			for _, ch := range gr.Choices {
				a, b = min(a, ch.Costs[k]), max(b, ch.Costs[k])
			}
			lo, hi, pl = lo+a, hi+b, pl+gr.Choices[planted[g]].Costs[k]
		}
		lim := lo + 0.5*(hi-lo)
		if k >= rows {
			lim = pl + 0.3*(hi-pl)
		}
		p.Rows = append(p.Rows, ilp.Row{Name: "r" + strconv.Itoa(k), Limit: lim})
	}
	return p
}

// benchCases are the instances of BenchmarkSolve.
var benchCases = []struct{ groups, rows, extra int }{
	{54, 2, 0}, {54, 3, 0},
	{500, 2, 0}, {500, 3, 0},
	{5000, 2, 0}, {5000, 3, 0},
	{20000, 2, 0},
	{200, 2, 50},
}

// BenchmarkSolve compares this engine ("clp") with ilp.Solve ("ilp") on the
// same instances, each solve limited to a minute; run with
// -bench Solve -benchtime 1x for one solve each.
func BenchmarkSolve(b *testing.B) {
	engines := []struct {
		name string
		s    ilp.Solver
	}{{"clp", Solver{}}, {"ilp", ilp.Default{}}}
	for _, bc := range benchCases {
		p := benchProblem(bc.groups, bc.rows, bc.extra, uint64(bc.groups))
		for _, e := range engines {
			name := fmt.Sprintf("groups=%d/rows=%d/engine=%s", bc.groups, bc.rows+bc.extra, e.name)
			b.Run(name, func(b *testing.B) {
				var sol *ilp.Solution
				for b.Loop() {
					var err error
					sol, err = e.s.Solve(context.Background(), p, &ilp.Settings{TimeLimit: time.Minute})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(sol.Nodes), "nodes")
				b.ReportMetric(sol.Gap, "gap")
				if sol.Status != ilp.Optimal {
					b.Logf("%s: status %v objective %v bound %v", name, sol.Status, sol.Objective, sol.Bound)
				}
			})
		}
	}
}
