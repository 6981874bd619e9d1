//go:build clp

package clp

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/ilp"
)

// hawqRef is the part of testdata/hawq_resnet18.json the tests read: the
// HAWQ-V3 ResNet18 ILP inputs and the optima of its nine budgets, from the
// HAWQ-V3 ILP notebook (see the file's "source" field).
type hawqRef struct {
	Ties   [][]int `json:"ties"`
	Layers []struct {
		Name      string             `json:"name"`
		AvgTrace  float64            `json:"avg_trace"`
		DeltaSq   map[string]float64 `json:"delta_sq"`
		Params    float64            `json:"params"`
		MACs      float64            `json:"macs"`
		LatencyMS map[string]float64 `json:"latency_ms"`
	} `json:"layers"`
	Schemes map[string]struct {
		Limit     float64 `json:"limit"`
		Bits      []int   `json:"bits"`
		Objective float64 `json:"objective"`
	} `json:"schemes"`
}

// loadHAWQ reads the reference and builds one problem per resource (size,
// bops, latency): 19 layers with choices 4 and 8 bits, the tied layers
// merged into one group by summing values and costs. members[g] lists the
// layers of group g.
func loadHAWQ(t testing.TB) (*hawqRef, map[string]*ilp.Problem, [][]int) {
	t.Helper()
	data, err := os.ReadFile("../../testdata/hawq_resnet18.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref hawqRef
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Layers) != 19 {
		t.Fatalf("%d layers, want 19", len(ref.Layers))
	}
	owner := make([]int, len(ref.Layers))
	for i := range owner {
		owner[i] = i
	}
	for _, tie := range ref.Ties {
		for _, l := range tie[1:] {
			owner[l] = tie[0]
		}
	}
	var members [][]int
	index := map[int]int{}
	for l := range ref.Layers {
		o := owner[l]
		if _, ok := index[o]; !ok {
			index[o] = len(members)
			members = append(members, nil)
		}
		members[index[o]] = append(members[index[o]], l)
	}
	cost := map[string]func(l int, b float64) float64{
		"size":    func(l int, b float64) float64 { return ref.Layers[l].Params * b / 8 },
		"bops":    func(l int, b float64) float64 { return ref.Layers[l].MACs * b * b },
		"latency": func(l int, b float64) float64 { return ref.Layers[l].LatencyMS[strconv.Itoa(int(b))] },
	}
	probs := map[string]*ilp.Problem{}
	for res, f := range cost {
		p := &ilp.Problem{Rows: []ilp.Row{{Name: res}}}
		for _, ms := range members {
			gr := ilp.Group{Name: ref.Layers[ms[0]].Name}
			for _, l := range ms {
				gr.Members = append(gr.Members, ref.Layers[l].Name)
			}
			for _, b := range []float64{4, 8} {
				ch := ilp.Choice{Label: strconv.Itoa(int(b)), Costs: []float64{0}}
				for _, l := range ms {
					ly := ref.Layers[l]
					ch.Value += ly.AvgTrace * ly.DeltaSq[ch.Label]
					ch.Costs[0] += f(l, b)
				}
				gr.Choices = append(gr.Choices, ch)
			}
			p.Groups = append(p.Groups, gr)
		}
		probs[res] = p
	}
	return &ref, probs, members
}

// TestHAWQResNet18 reproduces the nine HAWQ-V3 ResNet18 schemes: for every
// budget the engine must find the reference optimum and bit widths.
func TestHAWQResNet18(t *testing.T) {
	ref, probs, members := loadHAWQ(t)
	names := make([]string, 0, len(ref.Schemes))
	for n := range ref.Schemes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		sc := ref.Schemes[name]
		res, _, _ := strings.Cut(name, "_")
		p := probs[res]
		p.Rows[0].Limit = sc.Limit
		sol, err := Solver{}.Solve(context.Background(), p, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkCertificate(t, name, p, sol)
		if sol.Status != ilp.Optimal || !sameObjective(sol.Objective, sc.Objective) {
			t.Errorf("%s: %v objective %.12g, want optimal %.12g", name, sol.Status, sol.Objective, sc.Objective)
		}
		bits := make([]int, len(ref.Layers))
		for g, c := range sol.Choices {
			b, _ := strconv.Atoi(p.Groups[g].Choices[c].Label)
			for _, l := range members[g] {
				bits[l] = b
			}
		}
		if !slices.Equal(bits, sc.Bits) {
			t.Errorf("%s: bits %v, want %v", name, bits, sc.Bits)
		}
		t.Logf("%-12s objective %.9f bound %.9f nodes %d shadow %.3g time %v", name, sol.Objective, sol.Bound, sol.Nodes, sol.Shadow[0], sol.Time)
	}
}
