package plan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/sensitivity"
)

// reference mirrors the schemes of testdata/hawq_resnet18.json.
type reference struct {
	Schemes map[string]struct {
		Limit     float64 `json:"limit"`
		Bits      []int   `json:"bits"`
		Objective float64 `json:"objective"`
	} `json:"schemes"`
}

func loadHAWQ(t *testing.T) (*sensitivity.Table, reference) {
	t.Helper()
	path := "../testdata/hawq_resnet18.json"
	tab, _, err := sensitivity.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	var ref reference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return tab, ref
}

// TestHAWQSchemes solves HAWQ-V3's nine ResNet18 budgets through the planning
// API, with the budgets given as percentages (HAWQ's convention), and checks
// limit, objective and bits against the recorded CBC optimum.
func TestHAWQSchemes(t *testing.T) {
	tab, ref := loadHAWQ(t)
	if len(ref.Schemes) != 9 {
		t.Fatalf("reference has %d schemes, want 9", len(ref.Schemes))
	}
	kinds := map[string]budget.Kind{"size": budget.Size, "bops": budget.BOPS, "latency": budget.Latency}
	for name, s := range ref.Schemes {
		res, frac, _ := strings.Cut(name, "_")
		f, _ := strconv.ParseFloat(frac, 64)
		spec, err := budget.Parse(kinds[res], strconv.FormatFloat(f*100, 'g', -1, 64)+"%")
		if err != nil {
			t.Fatal(err)
		}
		p, err := Solve(context.Background(), &Request{Table: tab, Budgets: []Budget{{res, spec}}})
		if err != nil {
			t.Fatal(err)
		}
		if lim := *p.Usage[res].Limit; math.Abs(lim-s.Limit) > 1e-9*s.Limit {
			t.Errorf("%s: limit %v, want %v", name, lim, s.Limit)
		}
		if p.Status != "optimal" || math.Abs(*p.Objective-s.Objective) > 1e-9*s.Objective {
			t.Errorf("%s: %s objective %v, want %v", name, p.Status, *p.Objective, s.Objective)
		}
		for i, l := range p.Layers {
			if l.Bits != s.Bits[i] {
				t.Errorf("%s: layer %d (%s) bits %d, want %d", name, i, l.Name, l.Bits, s.Bits[i])
			}
		}
		if *p.Usage[res].Used > *p.Usage[res].Limit*(1+1e-12) {
			t.Errorf("%s: used %v over limit %v", name, *p.Usage[res].Used, *p.Usage[res].Limit)
		}
	}
}

// TestTiesShareBits checks that tied layers get the same precision under
// every budget.
func TestTiesShareBits(t *testing.T) {
	tab, _ := loadHAWQ(t)
	for _, pct := range []string{"10%", "33%", "60%", "90%"} {
		spec, _ := budget.Parse(budget.BOPS, pct)
		p, err := Solve(context.Background(), &Request{Table: tab, Budgets: []Budget{{"bops", spec}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range tab.TieGroups() {
			for _, i := range g[1:] {
				if p.Layers[i].Bits != p.Layers[g[0]].Bits {
					t.Errorf("%s: tied layers %s and %s got %d and %d bits", pct, p.Layers[g[0]].Name, p.Layers[i].Name, p.Layers[g[0]].Bits, p.Layers[i].Bits)
				}
				if p.Layers[i].Tie == "" {
					t.Errorf("layer %s not marked as tied", p.Layers[i].Name)
				}
			}
		}
	}
}

func TestInfeasibleExplained(t *testing.T) {
	tab, _ := loadHAWQ(t)
	size, _ := budget.Parse(budget.Size, "1KB")
	p, err := Solve(context.Background(), &Request{Table: tab, Budgets: []Budget{{"size", size}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != "infeasible" || p.Infeasibility == nil || p.Objective != nil {
		t.Fatalf("status %s, infeasibility %v", p.Status, p.Infeasibility)
	}
	if r := p.Infeasibility.Rows[0]; r.Least != p.Usage["size"].Min {
		t.Errorf("least size %v, want the all-4-bit size %v", r.Least, p.Usage["size"].Min)
	}
	if fmt.Sprint(p.Infeasibility.Conflicts) != "[[size]]" {
		t.Errorf("conflicts = %v", p.Infeasibility.Conflicts)
	}
}

func TestPlanJSONRoundTrip(t *testing.T) {
	tab, _ := loadHAWQ(t)
	spec, _ := budget.Parse(budget.BOPS, "50%")
	p, err := Solve(context.Background(), &Request{Table: tab, Budgets: []Budget{{"bops", spec}}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := p.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "plan.json")
	os.WriteFile(path, buf.Bytes(), 0o644)
	q, _, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	p.Write(&a, Text)
	q.Write(&b, Text)
	if a.String() != b.String() {
		t.Errorf("report differs after a JSON round trip:\n%s\n---\n%s", a.String(), b.String())
	}
	// The contract's fields are present under their names.
	var m map[string]any
	json.Unmarshal(buf.Bytes(), &m)
	for _, k := range []string{"status", "objective", "bound", "gap", "layers", "usage"} {
		if _, ok := m[k]; !ok {
			t.Errorf("plan JSON lacks %q", k)
		}
	}
}

func ExampleSolve() {
	tab, _, err := sensitivity.Parse([]byte(`{"model": "toy", "layers": [
	  {"name": "conv1", "params": 1000, "macs": 100000, "avg_trace": 0.9, "delta_sq": {"4": 1.0, "8": 0.004}},
	  {"name": "conv2", "params": 4000, "macs": 400000, "avg_trace": 0.1, "delta_sq": {"4": 4.0, "8": 0.016}}]}`))
	if err != nil {
		panic(err)
	}
	size, _ := budget.Parse(budget.Size, "3.5KB")
	p, err := Solve(context.Background(), &Request{Table: tab, Budgets: []Budget{{Resource: "size", Spec: size}}})
	if err != nil {
		panic(err)
	}
	for _, l := range p.Layers {
		fmt.Println(l.Name, l.Bits)
	}
	fmt.Printf("%s, Ω %.4f, size %v B\n", p.Status, *p.Objective, *p.Usage["size"].Used)
	// Output:
	// conv1 8
	// conv2 4
	// optimal, Ω 0.4036, size 3000 B
}

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		`{`:                                     "not a bitplan plan",
		`{"status": "optimal"}`:                 `missing "status" or "layers"`,
		`{"status": "optimal", "layers": [{}]}`: `layers[0]: missing "name"`,
		`{"status": "x", "layers": [{"name": "a", "bits": 99}]}`: "out of range",
		`{"status": "x", "layers": [], "usage": {"size": null}}`: `usage["size"]: null`,
	} {
		if _, _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want %q", in, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"status": "optimal", "layers": [{"name": "a", "bits": 4, "abits": 8}], "usage": {"size": {"unit": "B", "used": 1, "limit": 2}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, _, err := Parse(b)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		for _, fm := range []Format{Text, CSV, JSON} {
			buf.Reset()
			if err := p.Write(&buf, fm); err != nil {
				return
			}
		}
	})
}
