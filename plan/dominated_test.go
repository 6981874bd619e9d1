package plan

import (
	"context"
	"testing"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/sensitivity"
)

// tiedW4Table is two layers whose weight-only Ω cannot tell W4A4 from W4A8:
// both have the same ‖ΔW‖², so the same Ω and the same size.
func tiedW4Table(pin string) *sensitivity.Table {
	layer := func(name string, tr float64) sensitivity.Layer {
		return sensitivity.Layer{Name: name, Params: 1000, MACs: 50000, AvgTrace: tr,
			DeltaSq: map[string]float64{"w4a4": 2, "w4a8": 2, "w8a8": 0.01}}
	}
	tab := &sensitivity.Table{Model: "tied", Layers: []sensitivity.Layer{layer("a", 1), layer("b", 3)}}
	tab.Layers[0].Pin = pin
	return tab
}

func solveBudget(t *testing.T, tab *sensitivity.Table, kind budget.Kind, res, limit string) *Plan {
	t.Helper()
	spec, err := budget.Parse(kind, limit)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Solve(context.Background(), &Request{Table: tab, Budgets: []Budget{{res, spec}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != "optimal" {
		t.Fatalf("%s %s: status %s", res, limit, p.Status)
	}
	return p
}

// TestDominatedNotChosen: under a size budget that forces W4, W4A4 and
// W4A8 tie on Ω and size, and the planner must take the wider activations.
// Under a BOPS budget W4A4 is cheaper, so it is not dominated and stays
// available; a pin on a dominated candidate is kept.
func TestDominatedNotChosen(t *testing.T) {
	p := solveBudget(t, tiedW4Table(""), budget.Size, "size", "0%")
	for _, l := range p.Layers {
		if l.Choice != "w4a8" {
			t.Errorf("size budget 0%%: layer %s chose %s (Ω %g), want w4a8: w4a4 has the same Ω and size", l.Name, l.Choice, l.Omega)
		}
	}
	// BOPS at the all-W4A4 minimum: only W4A4 fits.
	p = solveBudget(t, tiedW4Table(""), budget.BOPS, "bops", "0%")
	for _, l := range p.Layers {
		if l.Choice != "w4a4" {
			t.Errorf("bops budget 0%%: layer %s chose %s, want w4a4 (the only fit)", l.Name, l.Choice)
		}
	}
	p = solveBudget(t, tiedW4Table("w4a4"), budget.Size, "size", "0%")
	if got := p.Layers[0].Choice; got != "w4a4" {
		t.Errorf("pinned layer a chose %s, want its pin w4a4", got)
	}
	if got := p.Layers[1].Choice; got != "w4a8" {
		t.Errorf("layer b chose %s, want w4a8", got)
	}
}

// TestDominatedTies: tied layers drop a label only when the merged group
// (summed Ω and costs) is dominated, so the label sets stay equal.
func TestDominatedTies(t *testing.T) {
	tab := tiedW4Table("")
	tab.Layers[0].Tie, tab.Layers[1].Tie = "t", "t"
	p := solveBudget(t, tab, budget.Size, "size", "0%")
	for _, l := range p.Layers {
		if l.Choice != "w4a8" {
			t.Errorf("tied: layer %s chose %s, want w4a8", l.Name, l.Choice)
		}
	}
}
