package plan

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/profiles"
	"github.com/bitplan/bitplan/sensitivity"
)

// smallTable returns a six-layer table with three candidates per layer and
// activation sizes, so that roofline latency depends on both weights and
// activations.
func smallTable() *sensitivity.Table {
	t := &sensitivity.Table{Model: "small"}
	for i := 0; i < 6; i++ {
		params := float64(1000 * (i + 1) * (i + 1))
		t.Layers = append(t.Layers, sensitivity.Layer{
			Name: fmt.Sprintf("l%d", i), Params: params, MACs: params * float64(400/(i+1)),
			InElems: float64(20000 / (i + 1)), OutElems: float64(20000 / (i + 2)), OutChannels: float64(16 * (i + 1)),
			AvgTrace: 1 / float64(i+1),
			DeltaSq:  map[string]float64{"2": params * 0.5, "4": params * 0.03, "8": params * 0.0001},
		})
	}
	return t
}

// TestTwoDevices plans for a T4 and a Jetson Orin at once, with a latency
// budget on each, and checks the plan against brute force over all 3^6
// assignments costed by the same profiles.
func TestTwoDevices(t *testing.T) {
	tab := smallTable()
	var devs []Device
	for _, name := range []string{"t4", "orin"} {
		p, err := profiles.Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, Device{Profile: p})
	}
	for _, pct := range []string{"20%", "45%", "70%"} {
		spec, _ := budget.Parse(budget.Latency, pct)
		size, _ := budget.Parse(budget.Size, "60%")
		req := &Request{Table: tab, Devices: devs, Budgets: []Budget{
			{devs[0].LatencyName(), spec}, {devs[1].LatencyName(), spec}, {"size", size}}}
		p, err := Solve(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		// Brute force with the limits the plan resolved.
		limT4, limOrin, limSize := *p.Usage["latency@t4"].Limit, *p.Usage["latency@orin"].Limit, *p.Usage["size"].Limit
		best := math.Inf(1)
		keys := []string{"2", "4", "8"}
		var rec func(i int, omega, lt, lo, sz float64)
		rec = func(i int, omega, lt, lo, sz float64) {
			if i == len(tab.Layers) {
				if lt <= limT4*(1+1e-12) && lo <= limOrin*(1+1e-12) && sz <= limSize*(1+1e-12) && omega < best {
					best = omega
				}
				return
			}
			l := &tab.Layers[i]
			for _, k := range keys {
				pr, _ := sensitivity.ParsePrecision(k)
				q := profiles.Precision{W: pr.W, A: pr.A}
				ct, err1 := devs[0].Profile.Cost(profileLayer(l), q, nil)
				co, err2 := devs[1].Profile.Cost(profileLayer(l), q, nil)
				if err1 != nil || err2 != nil {
					continue
				}
				rec(i+1, omega+l.Omega(k), lt+ct.Latency*1e3, lo+co.Latency*1e3, sz+l.Params*float64(pr.W)/8)
			}
		}
		rec(0, 0, 0, 0, 0)
		if math.IsInf(best, 1) {
			if p.Status != "infeasible" {
				t.Errorf("%s: brute force finds no plan, solver says %s", pct, p.Status)
			}
			continue
		}
		if p.Status != "optimal" || math.Abs(*p.Objective-best) > 1e-9*math.Abs(best) {
			t.Errorf("%s: %s objective %v, brute force %v", pct, p.Status, *p.Objective, best)
		}
		for _, r := range []string{"latency@t4", "latency@orin", "size"} {
			if u := p.Usage[r]; *u.Used > *u.Limit*(1+1e-12) {
				t.Errorf("%s: %s used %v over limit %v", pct, r, *u.Used, *u.Limit)
			}
		}
	}
}
