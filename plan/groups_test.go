package plan

import (
	"context"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/sensitivity"
)

// groupModel is an attention-shaped graph: q, k and v projections of one
// input, the gate and up projections of a gated FFN, a down projection,
// and an output projection tied (transposed) to another weight.
func groupModel(t *testing.T) *model.Model {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 3))
	w := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return v
	}
	e := w(8 * 4)
	et := make([]float64, len(e))
	for i := 0; i < 8; i++ {
		for j := 0; j < 4; j++ {
			et[j*8+i] = e[i*4+j]
		}
	}
	b := modeltest.New("groups", 17).Input("x", 1, 8).Output("o").
		Float("wq", []int{8, 8}, w(64)).Float("wk", []int{8, 8}, w(64)).Float("wv", []int{8, 8}, w(64)).
		Float("wg", []int{8, 16}, w(128)).Float("wu", []int{8, 16}, w(128)).Float("wd", []int{16, 8}, w(128)).
		Float("emb", []int{8, 4}, e).Float("emb_t", []int{4, 8}, et).
		Node("MatMul", "/l0/attn/q/MatMul", []string{"x", "wq"}, []string{"q"}).
		Node("MatMul", "/l0/attn/k/MatMul", []string{"x", "wk"}, []string{"k"}).
		Node("MatMul", "/l0/attn/v/MatMul", []string{"x", "wv"}, []string{"v"}).
		Node("Add", "a1", []string{"q", "k"}, []string{"qk"}).
		Node("Add", "a2", []string{"qk", "v"}, []string{"h"}).
		Node("MatMul", "/l0/ffn/gate/MatMul", []string{"h", "wg"}, []string{"g"}).
		Node("MatMul", "/l0/ffn/up/MatMul", []string{"h", "wu"}, []string{"u"}).
		Node("Mul", "m", []string{"g", "u"}, []string{"gu"}).
		Node("MatMul", "/l0/ffn/down/MatMul", []string{"gu", "wd"}, []string{"d"}).
		Node("MatMul", "/proj/MatMul", []string{"d", "emb"}, []string{"p"}).
		Node("MatMul", "/head/MatMul", []string{"p", "emb_t"}, []string{"o"})
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFindGroups(t *testing.T) {
	m := groupModel(t)
	got := FindGroups(m, nil)
	want := [][]string{
		{"/l0/attn/q/MatMul", "/l0/attn/k/MatMul", "/l0/attn/v/MatMul"},
		{"/l0/ffn/gate/MatMul", "/l0/ffn/up/MatMul"},
		{"/proj/MatMul", "/head/MatMul"},
	}
	if len(got) != len(want) {
		t.Fatalf("groups %+v, want %v", got, want)
	}
	for i := range want {
		if !slices.Equal(got[i].Units, want[i]) {
			t.Errorf("group %d: %v, want %v", i, got[i].Units, want[i])
		}
	}
	if !strings.HasPrefix(got[0].Reason, "shared input x") || got[2].Reason != "tied weights" {
		t.Errorf("reasons %q, %q", got[0].Reason, got[2].Reason)
	}
	g, err := ParseGroups([]string{"none", `/l0/(attn|ffn)/`})
	if err != nil {
		t.Fatal(err)
	}
	got = FindGroups(m, g)
	if len(got) != 1 || len(got[0].Units) != 6 || !strings.Contains(got[0].Reason, "--group") {
		t.Errorf("--group none --group /l0/(attn|ffn)/: %+v", got)
	}
	if _, err := ParseGroups([]string{"a(b"}); err == nil || !strings.Contains(err.Error(), `group "a(b"`) {
		t.Errorf("bad pattern: %v", err)
	}
}

// TestGroupPatternKey: a pattern groups the names whose matches agree
// outside its parenthesised parts.
func TestGroupPatternKey(t *testing.T) {
	names := []string{"layers.0.attn.q_proj", "layers.0.attn.k_proj", "layers.0.attn.v_proj", "layers.0.attn.o_proj",
		"layers.1.attn.q_proj", "layers.1.attn.v_proj", "layers.1.mlp"}
	got := joinGroups(names, byPatterns(names, []*regexp.Regexp{regexp.MustCompile(`layers\.\d+\.attn\.(q|k|v)_proj`)}))
	if len(got) != 2 || len(got[0].Units) != 3 || len(got[1].Units) != 2 || got[0].Units[2] != "layers.0.attn.v_proj" {
		t.Errorf("%+v", got)
	}
}

// TestGroupedUnitsShareOneWidth: on random tables over the grouped model
// and random budgets, q, k and v (and every other group) always get one
// width, and the ILP's group carries the members' summed Ω and costs.
func TestGroupedUnitsShareOneWidth(t *testing.T) {
	m := groupModel(t)
	groups := FindGroups(m, nil)
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := 0; trial < 200; trial++ {
		tab := &sensitivity.Table{Model: "groups"}
		for _, u := range m.Units {
			l := sensitivity.Layer{Name: u.Name, Params: float64(u.Params), MACs: float64(u.MACs),
				AvgTrace: math.Exp(3 * rng.NormFloat64()), DeltaSq: map[string]float64{}}
			d := rng.Float64()
			for _, b := range []int{2, 4, 8} {
				l.DeltaSq[sensitivity.Precision{W: b, A: b}.String()] = d * math.Pow(4, float64(8-b)) * (0.5 + rng.Float64())
			}
			tab.Layers = append(tab.Layers, l)
		}
		GroupTable(tab, groups, nil)
		sz, _ := budget.Parse(budget.Size, "50%")
		sz.Value = rng.Float64()
		bo, _ := budget.Parse(budget.BOPS, "50%")
		bo.Value = rng.Float64()
		req := &Request{Table: tab, Budgets: []Budget{{Resource: "size", Spec: sz}, {Resource: "bops", Spec: bo}}}
		p, err := Solve(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if p.Objective == nil {
			continue
		}
		bits := map[string]int{}
		for _, l := range p.Layers {
			bits[l.Name] = l.Bits
		}
		for _, g := range groups {
			for _, u := range g.Units[1:] {
				if bits[u] != bits[g.Units[0]] {
					t.Fatalf("trial %d: %s at %d bits, %s at %d in group %s", trial, u, bits[u], g.Units[0], bits[g.Units[0]], g.Name)
				}
			}
		}
		prob, err := Problem(req)
		if err != nil {
			t.Fatal(err)
		}
		if len(prob.Groups) != len(m.Units)-4 { // 3 → 1, 2 → 1, 2 → 1
			t.Fatalf("%d ILP groups for %d units in 3 groups", len(prob.Groups), len(m.Units))
		}
		for _, ig := range prob.Groups {
			if len(ig.Members) < 2 {
				continue
			}
			for _, c := range ig.Choices {
				var omega float64
				cost := make([]float64, len(req.Budgets))
				for _, name := range ig.Members {
					l := tab.Layers[slices.IndexFunc(tab.Layers, func(l sensitivity.Layer) bool { return l.Name == name })]
					omega += l.Omega(c.Label)
					pr, _ := sensitivity.ParsePrecision(c.Label)
					cost[0] += SizeResource.Cost(&l, c.Label, pr)
					cost[1] += BOPSResource.Cost(&l, c.Label, pr)
				}
				if math.Abs(c.Value-omega) > 1e-12*math.Abs(omega) {
					t.Fatalf("group %s at %s: Ω %v, members sum to %v", ig.Name, c.Label, c.Value, omega)
				}
				for k := range cost {
					if math.Abs(c.Costs[k]-cost[k]) > 1e-9*cost[k] {
						t.Fatalf("group %s at %s: cost %d = %v, members sum to %v", ig.Name, c.Label, k, c.Costs[k], cost[k])
					}
				}
			}
		}
	}
}

func TestCheckGroups(t *testing.T) {
	groups := []UnitGroup{{Name: "input:x", Units: []string{"q", "k", "v"}, Reason: "shared input x"}}
	p := &Plan{Layers: []Layer{{Name: "q", Bits: 4, ABits: 8}, {Name: "k", Bits: 4, ABits: 8}, {Name: "o", Bits: 8, ABits: 8}}}
	if err := p.CheckGroups(groups); err != nil {
		t.Errorf("one width (v absent): %v", err)
	}
	p.Layers = append(p.Layers, Layer{Name: "v", Bits: 8, ABits: 8})
	if err := p.CheckGroups(groups); err == nil || !strings.Contains(err.Error(), "q w4a8 and v w8a8") {
		t.Errorf("split group: %v", err)
	}
}
