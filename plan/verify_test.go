package plan

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/sensitivity"
)

// additive is a fake Measurer whose loss is 1 + Σ_i true_i(choice)/2 over
// the quantized layers: the second-order model Ω describes, with true as
// the real Ω, so a measured single-layer increase gives 2·ΔL = true.
type additive struct {
	truth map[string]map[string]float64 // layer, choice key → true Ω
	calls int
}

func (a *additive) Measure(_ context.Context, layers []Layer) (Measurement, error) {
	a.calls++
	loss := 1.0
	for _, l := range layers {
		v, ok := a.truth[l.Name][l.Choice]
		if !ok {
			return Measurement{}, fmt.Errorf("no truth for %s at %s", l.Name, l.Choice)
		}
		loss += v / 2
	}
	acc := math.Exp(-loss)
	return Measurement{Loss: loss, Accuracy: &acc, N: 100}, nil
}

var verifyKeys = []string{"w2a8", "w3a8", "w4a8", "w8a8"}

// verifyTable has one large layer (9000 weights) and four small ones; the
// true Ω of layer i at w bits is params · 4^-w. wrong divides the large
// layer's Ω at 2 bits by 100 in the table.
func verifyTable(wrong bool) (*sensitivity.Table, map[string]map[string]float64) {
	t := &sensitivity.Table{Model: "fake"}
	truth := map[string]map[string]float64{}
	for i, n := range []float64{9000, 1000, 1000, 1000, 1000} {
		l := sensitivity.Layer{Name: fmt.Sprintf("layer%d", i), Params: n, MACs: 10 * n, AvgTrace: 1, DeltaSq: map[string]float64{}}
		truth[l.Name] = map[string]float64{}
		for j, k := range verifyKeys {
			w := []float64{2, 3, 4, 8}[j]
			v := n * math.Pow(4, -w) * (1 + 0.1*float64(i))
			truth[l.Name][k] = v
			l.DeltaSq[k] = v
		}
		if wrong && i == 0 {
			l.DeltaSq["w2a8"] /= 100
		}
		t.Layers = append(t.Layers, l)
	}
	return t, truth
}

func verifyRequest(t *testing.T, tab *sensitivity.Table, m Measurer, k int) *Request {
	t.Helper()
	spec, err := budget.Parse(budget.Size, "20%")
	if err != nil {
		t.Fatal(err)
	}
	return &Request{Table: tab, Budgets: []Budget{{Resource: "size", Spec: spec}},
		Verify: &Verify{Measure: m, K: k}}
}

// TestVerifyConfirmsRightOmega: with Ω equal to the truth the ILP optimum
// measures best; the K next-best plans come out distinct, in
// non-decreasing Ω, and are all measured.
func TestVerifyConfirmsRightOmega(t *testing.T) {
	tab, truth := verifyTable(false)
	m := &additive{truth: truth}
	p, err := Solve(context.Background(), verifyRequest(t, tab, m, 3))
	if err != nil {
		t.Fatal(err)
	}
	vr := p.Verification
	if vr == nil || vr.Overruled || vr.Chosen != 0 || len(vr.Corrections) != 0 {
		t.Fatalf("verification %+v, want the ILP optimum confirmed", vr)
	}
	ilps := 0
	seen := map[string]bool{}
	for j, c := range vr.Candidates {
		if seen[strings.Join(c.Choices, ",")] {
			t.Errorf("candidate %d (%s) measured twice", j, c.Name)
		}
		seen[strings.Join(c.Choices, ",")] = true
		if strings.HasPrefix(c.Name, "ILP") {
			ilps++
			if j > 0 && c.Omega < vr.Candidates[j-1].Omega-1e-12 {
				t.Errorf("%s: Ω %g below the plan before (%g)", c.Name, c.Omega, vr.Candidates[j-1].Omega)
			}
		}
	}
	if ilps != 4 {
		t.Errorf("%d ILP candidates measured, want 4: %+v", ilps, vr.Candidates)
	}
	if m.calls != vr.Passes || vr.Passes != len(vr.Candidates)+1 {
		t.Errorf("%d calls, %d passes, %d candidates", m.calls, vr.Passes, len(vr.Candidates))
	}
	if !strings.Contains(vr.Note, "confirms") {
		t.Errorf("note %q", vr.Note)
	}
}

// TestVerifyCorrectsWrongOmega: the table underestimates the large layer
// at 2 bits a hundredfold, so the ILP optimum puts it there; the widest
// uniform plan measures better, the correction measures the layers where
// the two differ, finds the large layer at w2a8, and the re-solved plan is
// the optimum of the true Ω.
func TestVerifyCorrectsWrongOmega(t *testing.T) {
	tab, truth := verifyTable(true)
	m := &additive{truth: truth}
	p, err := Solve(context.Background(), verifyRequest(t, tab, m, 0))
	if err != nil {
		t.Fatal(err)
	}
	vr := p.Verification
	if vr == nil || !vr.Overruled {
		t.Fatalf("verification %+v, want Ω overruled", vr)
	}
	if vr.Candidates[0].Choices[0] != "w2a8" {
		t.Fatalf("the wrong Ω did not mislead the ILP: optimum %v", vr.Candidates[0].Choices)
	}
	right, _ := verifyTable(false)
	want, err := Solve(context.Background(), verifyRequest(t, right, m, 0))
	if err != nil {
		t.Fatal(err)
	}
	var got, exp []string
	for i := range p.Layers {
		got, exp = append(got, p.Layers[i].Choice), append(exp, want.Layers[i].Choice)
	}
	if !slices.Equal(got, exp) {
		t.Errorf("verified plan %v, optimum of the true Ω %v", got, exp)
	}
	if !slices.Equal(vr.Candidates[vr.Chosen].Choices, got) {
		t.Errorf("plan layers %v differ from the chosen candidate %v", got, vr.Candidates[vr.Chosen].Choices)
	}
	found := false
	for _, c := range vr.Corrections {
		if math.Abs(c.Measured-truth[c.Layer][c.Choice]) > 1e-9*truth[c.Layer][c.Choice] {
			t.Errorf("correction %+v: measured %g, truth %g", c, c.Measured, truth[c.Layer][c.Choice])
		}
		found = found || c.Layer == "layer0" && c.Choice == "w2a8"
	}
	if !found {
		t.Errorf("corrections %+v miss layer0 at w2a8", vr.Corrections)
	}
	if !strings.Contains(vr.Note, "overruled") || !strings.Contains(vr.Note, "layer0 at w2a8") {
		t.Errorf("note %q does not name the layer", vr.Note)
	}
	if !slices.Contains(p.Warnings, vr.Note) {
		t.Errorf("warnings %q lack the note", p.Warnings)
	}
	// The plan's Ω, usage and gap describe the returned plan.
	var om, size float64
	for _, l := range p.Layers {
		om += l.Omega
		size += l.Costs["size"]
	}
	if math.Abs(*p.Objective-om) > 1e-9*om || *p.Usage["size"].Used != size || *p.Usage["size"].Used > *p.Usage["size"].Limit {
		t.Errorf("objective %g (Σ Ω %g), size %g of %g", *p.Objective, om, *p.Usage["size"].Used, *p.Usage["size"].Limit)
	}
	if *p.Gap <= 0 {
		t.Errorf("gap %g: the returned plan is not the Ω optimum, its gap must be positive", *p.Gap)
	}
	var text strings.Builder
	if err := p.Write(&text, Text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Verification", "← returned", "measured 2·ΔL", "overruled"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, text.String())
		}
	}
	// Round trip through JSON keeps the verification.
	var js strings.Builder
	if err := p.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	q, warn, err := Parse([]byte(js.String()))
	if err != nil || len(warn) > 0 {
		t.Fatal(err, warn)
	}
	if q.Verification == nil || len(q.Verification.Candidates) != len(vr.Candidates) || !q.Verification.Overruled {
		t.Errorf("JSON lost the verification: %+v", q.Verification)
	}
}

// TestVerifyRoundLimit: with correction off the best measured candidate is
// still returned, and the note says the limit stopped the correction.
func TestVerifyRoundLimit(t *testing.T) {
	tab, truth := verifyTable(true)
	req := verifyRequest(t, tab, &additive{truth: truth}, 1)
	req.Verify.Rounds = -1
	p, err := Solve(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	vr := p.Verification
	if !vr.Overruled || len(vr.Corrections) != 0 || !strings.Contains(vr.Note, "limit") {
		t.Fatalf("verification %+v", vr)
	}
	for j, c := range vr.Candidates {
		if c.Measured.Loss < vr.Candidates[vr.Chosen].Measured.Loss {
			t.Errorf("candidate %d measures %g, below the returned %g", j, c.Measured.Loss, vr.Candidates[vr.Chosen].Measured.Loss)
		}
	}
}
