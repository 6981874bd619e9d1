package prune

import (
	"testing"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/model"
)

// TestActMatMulFLOPs: tiny_bert's 2 layers × (Q·Kᵀ, P·V) at its sequence
// length 16 are 4 products of 4 heads · 16 · 16 · 8 = 8,192 MACs, each
// mapped to its layer's head group. With one head of the first layer
// removed, the cost model counts 2·8,192 + 2·6,144 MACs of them, and the
// pruned model Apply writes, imported again, has exactly the units' and
// products' FLOPs the cost model predicted; a FLOPs-budgeted plan's dense
// total includes the products and Realize checks its count.
func TestActMatMulFLOPs(t *testing.T) {
	l := loadZoo(t, "tiny_bert", "op13")
	st := l.st
	ac := newActCosts(st)
	heads, _ := headGroups(st)
	if len(ac) != 4 || len(heads) != 2 {
		t.Fatalf("%d activation products, %d head groups; want 4 and 2", len(ac), len(heads))
	}
	perGroup := map[int]int{}
	for _, a := range ac {
		if a.macs != 4*16*16*8 || a.group < 0 || a.heads != 4 || st.Groups[a.group].Channels != 4 {
			t.Errorf("%s: %d MACs, group %d of %d heads; want 8192 MACs in a 4-head group", a.name, a.macs, a.group, a.heads)
		}
		perGroup[a.group]++
	}
	for _, g := range heads {
		if perGroup[g.Index] != 2 {
			t.Errorf("head group %s has %d products, want 2 (Q·Kᵀ and P·V)", g.Name, perGroup[g.Index])
		}
	}
	p := &problem{st: st, uc: newUnitCosts(st), ac: ac, rows: []row{{res: budget.FLOPs, name: "flops"}}}
	bits := p.uniformBits(32)
	_, unitMACs := unitTotals(l.m)
	full, err := p.exact(p.fullKeep(), bits)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * float64(unitMACs+4*8192); full[0] != want {
		t.Errorf("unpruned FLOPs %v, want %v (units %d MACs + 32768)", full[0], want, unitMACs)
	}
	kc := p.fullKeep()
	kc[heads[0].Index] = 3
	pruned, err := p.exact(kc, bits)
	if err != nil {
		t.Fatal(err)
	}
	keep := make([][]int, len(st.Groups))
	for i, g := range st.Groups {
		for c := g.Channels - kc[i]; c < g.Channels; c++ {
			keep[i] = append(keep[i], c)
		}
	}
	out, err := Apply(l.mp, st, keep)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.FromProto(out)
	if err != nil {
		t.Fatal(err)
	}
	var act int64
	for _, a := range m.ActMatMuls() {
		act += a.MACs
	}
	if act != 2*8192+2*6144 {
		t.Errorf("pruned model's products: %d MACs, want 2·8192 + 2·6144 = 28672", act)
	}
	_, um := unitTotals(m)
	if got := 2 * float64(um+act); got != pruned[0] {
		t.Errorf("pruned model: %v FLOPs (units %d MACs, products %d); the cost model predicted %v", got, um, act, pruned[0])
	}
	t.Logf("FLOPs: unpruned %v, one head removed %v (products 32768 → %d MACs)", full[0], pruned[0], act)
}
