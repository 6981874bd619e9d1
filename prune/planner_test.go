package prune

import (
	"fmt"
	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/plan"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/profiles"
)

// bruteForce enumerates every combination of the decisions' choices and
// returns the least Ω among those whose exact costs meet the budgets
// (+Inf when none does).
func bruteForce(t *testing.T, p *problem) (float64, []int) {
	t.Helper()
	ch := make([]int, len(p.decs))
	best, arg := math.Inf(1), []int(nil)
	for {
		keep, bits := p.assign(ch)
		v, err := p.exact(keep, bits)
		if err != nil {
			t.Fatal(err)
		}
		if p.feasible(v) {
			if o := p.objective(ch); o < best {
				best, arg = o, slices.Clone(ch)
			}
		}
		j := 0
		for ; j < len(ch); j++ {
			ch[j]++
			if ch[j] < len(p.decs[j].choices) {
				break
			}
			ch[j] = 0
		}
		if j == len(ch) {
			return best, arg
		}
	}
}

// pct is a budget of fraction v of the unpruned model.
func pct(k budget.Kind, v float64) plan.Budget {
	return plan.Budget{Spec: budget.Spec{Kind: k, Relative: true, Base: budget.Max, Value: v}}
}

// TestPlannerBruteForce compares the ILP planner (linearised costs, verify
// and repair, local search) with exhaustive enumeration of the true
// problem on lenet, rescnn (residual group, depthwise pass-through) and
// the ViT (attention heads and FFN rows) with
// four keep ratios, for several budgets and seeded importances, in plain
// and joint mode.
func TestPlannerBruteForce(t *testing.T) {
	ratios := []float64{1, 0.75, 0.5, 0.25}
	budgets := [][]plan.Budget{
		{pct(budget.Params, 0.5)},
		{pct(budget.Params, 0.3)},
		{pct(budget.FLOPs, 0.4)},
		{pct(budget.Params, 0.6), pct(budget.FLOPs, 0.5)},
	}
	jointBudgets := [][]plan.Budget{
		{pct(budget.Size, 0.15)},
		{pct(budget.Size, 0.25), pct(budget.FLOPs, 0.6)},
	}
	var worst float64
	for _, name := range []string{"lenet", "rescnn", "fmnist_vit"} {
		l := load(t, name)
		for seed := uint64(1); seed <= 3; seed++ {
			im := synthImportance(t, l.e, seed)
			run := func(b []plan.Budget, joint bool) {
				req := &Request{Structure: l.st, Importance: im, Budgets: b, Ratios: ratios, Joint: joint, Bits: []int{4, 8}}
				p, err := prepare(req)
				if err != nil {
					t.Fatal(err)
				}
				opt, _ := bruteForce(t, p)
				pp, err := Solve(t.Context(), req)
				if err != nil {
					t.Fatal(err)
				}
				if math.IsInf(opt, 1) {
					if pp.Status != "infeasible" {
						t.Errorf("%s seed %d %v: brute force finds no plan, planner says %s", name, seed, b, pp.Status)
					}
					return
				}
				if pp.Objective == nil {
					t.Errorf("%s seed %d %v joint=%v: no plan, brute force optimum %.6g", name, seed, b, joint, opt)
					return
				}
				for r, u := range pp.Usage {
					if u.Limit != nil && *u.Used > *u.Limit*(1+1e-12) {
						t.Errorf("%s seed %d: %s uses %.6g over the limit %.6g", name, seed, r, *u.Used, *u.Limit)
					}
				}
				got := *pp.Objective
				if got < opt*(1-1e-9)-1e-15 {
					t.Errorf("%s seed %d %v: Ω %.6g below the brute-force optimum %.6g", name, seed, b, got, opt)
				}
				gap := (got - opt) / math.Max(opt, 1e-300)
				worst = max(worst, gap)
				if gap > 1e-9 {
					t.Logf("%s seed %d %v joint=%v: Ω %.6g, optimum %.6g (gap %.2g%%)", name, seed, b, joint, got, opt, 100*gap)
				}
			}
			for _, b := range budgets {
				run(b, false)
			}
			for _, b := range jointBudgets {
				run(b, true)
			}
		}
	}
	// The planner is exact for the linearised model and polished with exact
	// costs; on these instances it must find the true optimum.
	if worst > 1e-9 {
		t.Errorf("worst gap to the true optimum %.3g%%", 100*worst)
	}
}

// TestLinearizationExactAtPoint checks the separable model: at the point it
// is built around, the predicted costs equal the true costs, and moving a
// single decision is also exact.
func TestLinearizationExactAtPoint(t *testing.T) {
	l := load(t, "rescnn")
	prof, err := profiles.Load("t4")
	if err != nil {
		t.Fatal(err)
	}
	req := &Request{Structure: l.st, Importance: synthImportance(t, l.e, 2), Profile: prof,
		Budgets: []plan.Budget{pct(budget.Params, 0.5), pct(budget.FLOPs, 0.5), pct(budget.Latency, 0.9)}, Ratios: []float64{1, 0.75, 0.5, 0.25}}
	p, err := prepare(req)
	if err != nil {
		t.Fatal(err)
	}
	lin := make([]int, len(p.decs))
	for j, d := range p.decs {
		lin[j] = (j * 7) % len(d.choices)
	}
	prob, err := p.linearize(lin, make([]float64, len(p.rows)))
	if err != nil {
		t.Fatal(err)
	}
	check := func(ch []int) {
		keep, bits := p.assign(ch)
		truth, _ := p.exact(keep, bits)
		pred := predicted(prob, ch)
		for k := range truth {
			if math.Abs(truth[k]-pred[k]) > 1e-9*math.Max(1, truth[k]) {
				t.Errorf("choices %v: row %s predicted %.9g, true %.9g", ch, p.rows[k].name, pred[k], truth[k])
			}
		}
	}
	check(lin)
	for j := range p.decs {
		for c := range p.decs[j].choices {
			ch := slices.Clone(lin)
			ch[j] = c
			check(ch)
		}
	}
}

// TestThreshold checks HAP's global threshold: every removed channel is at
// most as important as every kept channel of a group that could still lose
// one, the budget holds, and putting back the last removed channel breaks
// it.
func TestThreshold(t *testing.T) {
	l := load(t, "lenet")
	im := synthImportance(t, l.e, 5)
	req := &Request{Structure: l.st, Importance: im, Mode: Threshold, Budgets: []plan.Budget{pct(budget.Params, 0.4)}}
	pp, err := Solve(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if pp.Status != "feasible" || *pp.Usage["params"].Used > *pp.Usage["params"].Limit {
		t.Fatalf("status %s usage %+v", pp.Status, pp.Usage["params"])
	}
	maxRemoved, minKept := math.Inf(-1), math.Inf(1)
	lastG, lastC := -1, -1
	for _, g := range l.st.Groups {
		if !g.Prunable {
			continue
		}
		s, _ := GroupScores(l.st, im, g, HAP)
		kept := map[int]bool{}
		for _, c := range pp.Keep()[g.Index] {
			kept[c] = true
		}
		for c := 0; c < g.Channels; c++ {
			switch {
			case !kept[c] && s[c] > maxRemoved:
				maxRemoved, lastG, lastC = s[c], g.Index, c
			case kept[c] && len(kept) > 1:
				minKept = min(minKept, s[c])
			}
		}
	}
	if maxRemoved > minKept {
		t.Errorf("a removed channel (%.3g) is more important than a kept one (%.3g)", maxRemoved, minKept)
	}
	p, _ := prepare(req)
	kc := make([]int, len(l.st.Groups))
	for g, k := range pp.Keep() {
		kc[g] = len(k)
	}
	kc[lastG]++
	v, _ := p.exact(kc, p.uniformBits(32))
	if p.feasible(v) {
		t.Errorf("putting back channel %d of group %d still meets the budget: threshold pruned too much", lastC, lastG)
	}
}

// TestMagnitude checks the L1 baseline: one ratio for every group, the
// largest L1 channels kept, and the budget met.
func TestMagnitude(t *testing.T) {
	l := load(t, "rescnn")
	im := synthImportance(t, l.e, 3)
	pp, err := Solve(t.Context(), &Request{Structure: l.st, Importance: im, Mode: Magnitude, Budgets: []plan.Budget{pct(budget.Params, 0.5)}})
	if err != nil {
		t.Fatal(err)
	}
	if pp.Status != "feasible" {
		t.Fatalf("status %s", pp.Status)
	}
	var lo, hi = 1.0, 0.0
	for _, g := range pp.Pruning.Groups {
		if !g.Prunable {
			continue
		}
		r := float64(g.Kept) / float64(g.Channels)
		lo, hi = min(lo, r), max(hi, r)
		s, _ := GroupScores(l.st, im, l.st.Groups[groupIndex(l.st, g.Name)], L1)
		kept := map[int]bool{}
		for _, c := range g.KeptChannels {
			kept[c] = true
		}
		for c := range s {
			for d := range s {
				if !kept[c] && kept[d] && s[c] > s[d] {
					t.Errorf("group %s: removed channel %d has a larger L1 norm than kept %d", g.Name, c, d)
				}
			}
		}
	}
	if hi-lo > 1.0/16+1e-9 {
		t.Errorf("keep ratios range over [%.3f, %.3f]: not uniform", lo, hi)
	}
}

func groupIndex(st *Structure, name string) int {
	for _, g := range st.Groups {
		if g.Name == name {
			return g.Index
		}
	}
	return -1
}

// TestInfeasible asks for fewer parameters than the unprunable classifier
// has.
func TestInfeasible(t *testing.T) {
	l := load(t, "lenet")
	for _, mode := range []Mode{ILP, Threshold, Magnitude} {
		pp, err := Solve(t.Context(), &Request{Structure: l.st, Importance: synthImportance(t, l.e, 1), Mode: mode,
			Budgets: []plan.Budget{{Spec: budget.Spec{Kind: budget.Params, Value: 50}}}})
		if err != nil {
			t.Fatal(err)
		}
		if pp.Status != "infeasible" || pp.Objective != nil || pp.Keep() != nil {
			t.Errorf("%s: status %s", mode, pp.Status)
		}
		if pp.Usage["params"].Min <= 50 {
			t.Errorf("%s: least params %.0f, want above the limit", mode, pp.Usage["params"].Min)
		}
	}
}

func TestRequestErrors(t *testing.T) {
	l := load(t, "lenet")
	im := synthImportance(t, l.e, 1)
	cases := map[string]*Request{
		"nil":       {},
		"mode":      {Structure: l.st, Importance: im, Mode: "greedy"},
		"joint":     {Structure: l.st, Importance: im, Mode: Threshold, Joint: true},
		"ratio":     {Structure: l.st, Importance: im, Ratios: []float64{1.5}},
		"bits":      {Structure: l.st, Importance: im, Joint: true, Bits: []int{1}},
		"latency":   {Structure: l.st, Importance: im, Budgets: []plan.Budget{pct(budget.Latency, 0.5)}},
		"twice":     {Structure: l.st, Importance: im, Budgets: []plan.Budget{pct(budget.Params, 0.5), pct(budget.Params, 0.4)}},
		"precision": {Structure: l.st, Importance: im, Precision: profiles.Precision{W: 80, A: 8}},
	}
	for name, req := range cases {
		if _, err := Solve(t.Context(), req); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// A node limit that stops the exact search leaves the status "limit" only
// while the plan's objective is above the proven bound; a plan attaining the
// bound is "optimal" (a report of "limit" beside a 0 % gap puzzled users).
func TestNodeLimitStatus(t *testing.T) {
	l := load(t, "lenet")
	im := synthImportance(t, l.e, 5)
	var seen []string
	for _, frac := range []float64{0.3, 0.5, 0.7, 0.9} {
		for _, limit := range []int{1, 0} {
			req := &Request{Structure: l.st, Importance: im, Mode: ILP, NodeLimit: limit, Budgets: []plan.Budget{pct(budget.Params, frac)}}
			pp, err := Solve(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			gap := -1.0
			if pp.Gap != nil {
				gap = *pp.Gap
			}
			switch {
			case pp.Status == "limit" && gap == 0:
				t.Errorf("params %.0f%%, node limit %d: status limit with a 0 gap", 100*frac, limit)
			case pp.Status == "optimal" && gap > 0:
				t.Errorf("params %.0f%%, node limit %d: status optimal with gap %g", 100*frac, limit, gap)
			}
			seen = append(seen, fmt.Sprintf("%.0f%%/%d: %s gap %g nodes %d", 100*frac, limit, pp.Status, gap, pp.Pruning.SearchNodes))
		}
	}
	t.Log(strings.Join(seen, "\n"))
}
