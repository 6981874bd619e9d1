package ilp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize/convex/lp"
)

func TestValidateErrors(t *testing.T) {
	ok := func() *Problem {
		return &Problem{
			Groups: []Group{{Name: "a", Choices: []Choice{{Label: "4", Value: 1, Costs: []float64{1}}, {Label: "8", Value: 0, Costs: []float64{2}}}}},
			Rows:   []Row{{Name: "size", Limit: 2}},
		}
	}
	cases := []struct {
		name  string
		edit  func(p *Problem)
		words string
	}{
		{"no groups", func(p *Problem) { p.Groups = nil }, "no groups"},
		{"no choices", func(p *Problem) { p.Groups[0].Choices = nil }, "no choices"},
		{"duplicate label", func(p *Problem) { p.Groups[0].Choices[1].Label = "4" }, "choices 0 and 1 share the label"},
		{"duplicate label, large group", func(p *Problem) {
			for c := 2; c < 40; c++ {
				p.Groups[0].Choices = append(p.Groups[0].Choices, Choice{Label: fmt.Sprint(c * 8), Value: 0, Costs: []float64{2}})
			}
			p.Groups[0].Choices[33].Label = "24"
		}, "choices 3 and 33 share the label \"24\""},
		{"duplicate label, third of three", func(p *Problem) {
			p.Groups[0].Choices = append(p.Groups[0].Choices, Choice{Label: "8", Value: 0, Costs: []float64{2}})
		}, "choices 1 and 2 share the label"},
		{"costs length", func(p *Problem) { p.Groups[0].Choices[0].Costs = nil }, "0 costs"},
		{"NaN value", func(p *Problem) { p.Groups[0].Choices[0].Value = math.NaN() }, "value is NaN"},
		{"Inf cost", func(p *Problem) { p.Groups[0].Choices[1].Costs[0] = math.Inf(1) }, "cost for row 0"},
		{"NaN limit", func(p *Problem) { p.Rows[0].Limit = math.NaN() }, "limit is NaN"},
		{"bad pin", func(p *Problem) { p.Groups[0].Pin = "16" }, "pin \"16\""},
	}
	for _, c := range cases {
		p := ok()
		c.edit(p)
		_, err := Solve(context.Background(), p, nil)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.words) {
			t.Errorf("%s: error %v; want ErrMalformed mentioning %q", c.name, err, c.words)
		}
	}
	if _, err := Solve(context.Background(), ok(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestMergeErrorsAndExpand(t *testing.T) {
	g := func(name string, labels ...string) Group {
		gr := Group{Name: name}
		for i, l := range labels {
			gr.Choices = append(gr.Choices, Choice{Label: l, Value: float64(i), Costs: []float64{float64(10 - i)}})
		}
		return gr
	}
	groups := []Group{g("a", "4", "8"), g("b", "8", "4"), g("c", "4", "6"), g("d", "4", "8")}
	if _, err := Merge(groups, [][]int{{0, 2}}); err == nil || !strings.Contains(err.Error(), "label sets differ") {
		t.Errorf("different labels: %v", err)
	}
	if _, err := Merge(groups, [][]int{{0, 7}}); err == nil {
		t.Error("no error for an index out of range")
	}
	pinned := append([]Group(nil), groups...)
	pinned[0].Pin, pinned[1].Pin = "4", "8"
	if _, err := Merge(pinned, [][]int{{0, 1}}); err == nil || !strings.Contains(err.Error(), "conflicting pins") {
		t.Errorf("conflicting pins: %v", err)
	}
	// Overlapping ties join transitively; labels may come in any order.
	merged, err := Merge(groups, [][]int{{0, 1}, {1, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if len(merged) != 2 || merged[0].Name != "a+b+d" || len(merged[0].Members) != 3 {
		t.Fatalf("merged %+v", merged)
	}
	// Values and costs are summed per label: "8" is a's 1, b's 0 and d's 1.
	if v := merged[0].Choices[1].Value; merged[0].Choices[1].Label != "8" || v != 2 {
		t.Errorf("label 8 value %v", v)
	}
	layers := &Problem{Groups: groups}
	per, err := layers.Expand(merged, []int{1, 0})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"8", "8", "4", "8"}
	for i, c := range per {
		if got := groups[i].Choices[c].Label; got != want[i] {
			t.Errorf("layer %d: %s; want %s", i, got, want[i])
		}
	}
	if _, err := layers.Expand(merged[:1], []int{0}); err == nil {
		t.Error("no error for an uncovered layer")
	}
}

// Limits never make Solve fail: they return Status Limit with a valid bound.
func TestLimits(t *testing.T) {
	p := benchProblem(3000, 3, 99)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, run := range map[string]func() (*Solution, error){
		"cancelled": func() (*Solution, error) { return Solve(ctx, p, nil) },
		"nodes":     func() (*Solution, error) { return Solve(context.Background(), p, &Settings{NodeLimit: 1}) },
		"time":      func() (*Solution, error) { return Solve(context.Background(), p, &Settings{TimeLimit: 1}) },
	} {
		sol, err := run()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if sol.Status == Infeasible {
			t.Fatalf("%s: status %v", name, sol.Status)
		}
		if sol.Choices != nil && sol.Bound > sol.Objective {
			t.Errorf("%s: bound %g above objective %g", name, sol.Bound, sol.Objective)
		}
		t.Logf("%s: %v objective %.6g bound %.6g gap %.2g", name, sol.Status, sol.Objective, sol.Bound, sol.Gap)
	}
	full, err := Solve(context.Background(), p, nil)
	if err != nil || full.Status != Optimal {
		t.Fatalf("full solve: %v %v", full.Status, err)
	}
	lim, _ := Solve(context.Background(), p, &Settings{NodeLimit: 1})
	if lim.Bound > full.Objective*(1+1e-9) {
		t.Errorf("limited bound %g above optimum %g", lim.Bound, full.Objective)
	}
}

// lpValue solves the LP relaxation of a root sub with gonum's simplex
// (standard form with one slack per row), an independent method.
func lpValue(t *testing.T, q *sub) (v float64, ok bool) {
	defer func() {
		// gonum's phase I panics on some degenerate bases: skip those.
		if recover() != nil {
			v, ok = 0, false
		}
	}()
	nc, ng, k := len(q.val), q.ng(), q.k
	nv := nc + k
	A := mat.NewDense(ng+k, nv, nil)
	b := make([]float64, ng+k)
	c := make([]float64, nv)
	copy(c, q.val)
	for g := 0; g < ng; g++ {
		for j := q.start[g]; j < q.start[g+1]; j++ {
			A.Set(g, int(j), 1)
		}
		b[g] = 1
	}
	for r := 0; r < k; r++ {
		for j := 0; j < nc; j++ {
			A.Set(ng+r, j, q.cost[j*k+r])
		}
		A.Set(ng+r, nc+r, 1)
		b[ng+r] = q.lim[r]
	}
	opt, _, err := lp.Simplex(c, A, b, 1e-10, nil)
	if errors.Is(err, lp.ErrInfeasible) {
		return math.Inf(1), false
	}
	if err != nil {
		return 0, false
	}
	return q.c0 + opt, true
}

// The relaxation bound (Lagrangian dual / hull greedy) equals the LP
// optimum computed by gonum's simplex, and never exceeds the integer optimum.
func TestRelaxationMatchesSimplex(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	checked := 0
	for i := 0; i < 3000 && checked < 600; i++ {
		p := randProblem(rng)
		m := presolve(p, nil, false)
		if len(m.impossible) > 0 || m.root.ng() == 0 || m.root.k == 0 {
			continue
		}
		q := m.root
		rel := q.relax(nil, math.Inf(1), &stopper{ctx: context.Background()})
		want, ok := lpValue(t, q)
		if !ok {
			continue // gonum could not solve it (e.g. degenerate data)
		}
		checked++
		if math.IsInf(want, 1) != math.IsInf(rel.bound, 1) {
			t.Fatalf("instance %d: relaxation %v, simplex %v", i, rel.bound, want)
		}
		if !math.IsInf(want, 1) && math.Abs(rel.bound-want) > 1e-7*(1+math.Abs(want)) {
			t.Errorf("instance %d (K=%d): relaxation %.12g (exact %v lam %v), simplex %.12g\nval %v cost %v lim %v start %v", i, q.k, rel.bound, rel.exact, rel.lam, want, q.val, q.cost, q.lim, q.start)
		}
		bf, err := BruteForce(p)
		if err != nil {
			t.Fatal(err)
		}
		if bf.Status == Optimal && m.toOriginal(rel.bound) > bf.Objective+1e-9*math.Abs(bf.Objective)+1e-12*objMag(p) {
			t.Fatalf("instance %d: bound %.17g above optimum %.17g", i, m.toOriginal(rel.bound), bf.Objective)
		}
	}
	if checked < 100 {
		t.Fatalf("only %d instances checked", checked)
	}
}

// FuzzSolve decodes bytes into a small problem with ties and checks that
// Merge and Solve never panic and agree with brute force.
func FuzzSolve(f *testing.F) {
	f.Add([]byte{3, 2, 1, 10, 20, 30, 40, 50, 60, 70, 80, 90})
	f.Add([]byte{1, 1, 1, 0, 0, 0, 255, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		ng, nc, nr := 1+int(next()%5), 1+int(next()%4), int(next()%4)
		val := func() float64 {
			b := next()
			if b == 255 {
				return math.NaN()
			}
			return float64(int(b)-64) / 8
		}
		groups := make([]Group, ng)
		for g := range groups {
			groups[g].Name = string(rune('a' + g))
			for c := 0; c < nc; c++ {
				ch := Choice{Label: string(rune('0' + c)), Value: val()}
				for k := 0; k < nr; k++ {
					ch.Costs = append(ch.Costs, val())
				}
				groups[g].Choices = append(groups[g].Choices, ch)
			}
			if next()%7 == 0 {
				groups[g].Pin = string(rune('0' + int(next())%(nc+1)))
			}
		}
		var ties [][]int
		for i := 0; i < int(next()%3); i++ {
			ties = append(ties, []int{int(next()) % (ng + 1), int(next()) % ng})
		}
		merged, err := Merge(groups, ties)
		if err != nil {
			return
		}
		p := &Problem{Groups: merged}
		for k := 0; k < nr; k++ {
			p.Rows = append(p.Rows, Row{Name: "r", Limit: val() * 2})
		}
		got, err := Solve(context.Background(), p, nil)
		want, werr := BruteForce(p)
		if (err == nil) != (werr == nil) {
			t.Fatalf("Solve error %v, brute force error %v", err, werr)
		}
		if err != nil {
			return
		}
		if got.Status != want.Status {
			t.Fatalf("status %v, brute force %v", got.Status, want.Status)
		}
		if got.Status == Optimal && !closeObj(got.Objective, want.Objective, objMag(p)) {
			t.Fatalf("objective %v, brute force %v", got.Objective, want.Objective)
		}
	})
}
