package ilp

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// hawqRef is testdata/hawq_resnet18.json: HAWQ-V3's ResNet18 numbers with
// the CBC optimum of nine budgets.
type hawqRef struct {
	Ties   [][]int `json:"ties"`
	Layers []struct {
		Name      string             `json:"name"`
		Params    float64            `json:"params"`
		MACs      float64            `json:"macs"`
		AvgTrace  float64            `json:"avg_trace"`
		DeltaSq   map[string]float64 `json:"delta_sq"`
		LatencyMS map[string]float64 `json:"latency_ms"`
	} `json:"layers"`
	Schemes map[string]struct {
		Limit     float64 `json:"limit"`
		Bits      []int   `json:"bits"`
		Objective float64 `json:"objective"`
	} `json:"schemes"`
}

var hawqRows = []string{"size", "bops", "latency"}

// hawqProblem builds the 19 layers (choices 4 and 8 bits) with the three
// rows size = params·b/8, BOPS = macs·b², latency = latency_ms[b], merges the
// ties and returns the per-layer problem and the merged groups.
func hawqProblem(t *testing.T) (*hawqRef, *Problem, []Group) {
	t.Helper()
	data, err := os.ReadFile("../testdata/hawq_resnet18.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref hawqRef
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	layers := &Problem{}
	for _, l := range ref.Layers {
		g := Group{Name: l.Name}
		for _, b := range []int{4, 8} {
			key := strconv.Itoa(b)
			fb := float64(b)
			g.Choices = append(g.Choices, Choice{
				Label: key,
				Value: l.AvgTrace * l.DeltaSq[key],
				Costs: []float64{l.Params * fb / 8, l.MACs * fb * fb, l.LatencyMS[key]},
			})
		}
		layers.Groups = append(layers.Groups, g)
	}
	for _, r := range hawqRows {
		layers.Rows = append(layers.Rows, Row{Name: r, Limit: math.Inf(1)})
	}
	merged, err := Merge(layers.Groups, ref.Ties)
	if err != nil {
		t.Fatal(err)
	}
	if len(merged) != 16 {
		t.Fatalf("%d merged groups; want 16", len(merged))
	}
	return &ref, layers, merged
}

func TestHAWQResNet18Schemes(t *testing.T) {
	ref, layers, merged := hawqProblem(t)
	if len(ref.Schemes) != 9 {
		t.Fatalf("%d schemes; want 9", len(ref.Schemes))
	}
	for name, sc := range ref.Schemes {
		row := strings.SplitN(name, "_", 2)[0]
		p := &Problem{Groups: merged}
		for _, r := range hawqRows {
			lim := math.Inf(1)
			if r == row {
				lim = sc.Limit
			}
			p.Rows = append(p.Rows, Row{Name: r, Limit: lim})
		}
		sol, err := Solve(context.Background(), p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sol.Status != Optimal {
			t.Fatalf("%s: status %v", name, sol.Status)
		}
		if math.Abs(sol.Objective-sc.Objective) > 1e-9*sc.Objective {
			t.Errorf("%s: objective %.12g; HAWQ/CBC %.12g", name, sol.Objective, sc.Objective)
		}
		per, err := layers.Expand(merged, sol.Choices)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range per {
			if got := layers.Groups[i].Choices[c].Label; got != strconv.Itoa(sc.Bits[i]) {
				t.Errorf("%s: layer %d (%s) at %s bits; want %d", name, i, layers.Groups[i].Name, got, sc.Bits[i])
			}
		}
	}
}

func TestHAWQResNet18AllRows(t *testing.T) {
	ref, _, merged := hawqProblem(t)
	for _, level := range []string{"0.25", "0.5", "0.75"} {
		p := &Problem{Groups: merged}
		for _, r := range hawqRows {
			p.Rows = append(p.Rows, Row{Name: r, Limit: ref.Schemes[r+"_"+level].Limit})
		}
		sol, err := Solve(context.Background(), p, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := BruteForce(p)
		if err != nil {
			t.Fatal(err)
		}
		if sol.Status != want.Status || math.Abs(sol.Objective-want.Objective) > 1e-9*want.Objective {
			t.Fatalf("level %s: %v %.12g; brute force %v %.12g", level, sol.Status, sol.Objective, want.Status, want.Objective)
		}
		// Every single-row optimum is a relaxation of the joint one.
		for _, r := range hawqRows {
			if single := ref.Schemes[r+"_"+level].Objective; sol.Objective < single*(1-1e-9) {
				t.Errorf("level %s: joint optimum %.12g below %s-only optimum %.12g", level, sol.Objective, r, single)
			}
		}
		for k, s := range sol.Shadow {
			if s < 0 {
				t.Errorf("level %s: shadow price of %s is %g", level, hawqRows[k], s)
			}
		}
		t.Logf("level %s: objective %.6g usage %.4g nodes %d shadow %.3g", level, sol.Objective, sol.Usage, sol.Nodes, sol.Shadow)
	}
}
