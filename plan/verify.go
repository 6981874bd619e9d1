package plan

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bitplan/bitplan/ilp"
	"github.com/bitplan/bitplan/sensitivity"
)

// Measurer measures the model with some layers quantized, on data the
// sensitivities were not estimated on. package eval provides one
// (eval.Measurer: fake quantization, the simulation of bitplan eval).
type Measurer interface {
	// Measure returns the loss (and accuracy, where the data has labels)
	// of the model with the given layers quantized to their Bits and ABits
	// and every other layer left in float; no layers means the float
	// model.
	Measure(ctx context.Context, layers []Layer) (Measurement, error)
}

// Measurement is a measured loss.
type Measurement struct {
	// Loss is the mean loss (cross-entropy) on the held-out samples.
	Loss float64 `json:"loss"`
	// Accuracy is the fraction of correct predictions; nil without labels.
	Accuracy *float64 `json:"accuracy,omitempty"`
	// N counts the samples.
	N int `json:"n"`
}

// Verify asks Solve to measure its plan against the alternatives and
// return the best measured (see Verification).
type Verify struct {
	// Measure measures candidate plans; required.
	Measure Measurer
	// K is the number of next-best ILP plans measured besides the optimum
	// and the widest uniform plan that fits (0: none).
	K int
	// Rounds bounds the correction rounds; 0 means DefaultRounds,
	// negative means no correction.
	Rounds int
}

// DefaultRounds is the default number of correction rounds of a
// verification.
const DefaultRounds = 3

// Verification is what measuring the plan found: every measured candidate
// with its Ω beside its measured loss, the Ω values that measurement
// replaced, and which candidate the plan returns.
//
// The candidates are the ILP optimum, its K next-best plans (ilp.KBest:
// each proven the next best in Ω by a solve with no-good rows) and the
// widest uniform plan that fits. When one of them measures a lower loss
// than the optimum, the measurement overrules Ω. The correction then finds
// the layers where the optimum and the best measured plan differ, measures
// each such layer alone at each of its candidates (one pass per layer and
// width: the single-layer loss increase ΔL over the float model), replaces
// Ω of those choices by 2·ΔL — Ω = Tr(H)/n·‖ΔW‖² is twice the second-order
// loss increase ½·ΔWᵀHΔW when H is isotropic within the layer, so 2·ΔL is
// its measured counterpart — and solves again. The new optimum is measured
// too; rounds go on until the corrected ILP's optimum is the best measured
// plan, no layer is left to correct, or Rounds is reached.
type Verification struct {
	// Samples counts the held-out samples of every measurement.
	Samples int `json:"samples"`
	// Float is the float model's measurement.
	Float Measurement `json:"float"`
	// Candidates lists every measured plan, in the order measured.
	Candidates []Candidate `json:"candidates"`
	// Chosen is the index in Candidates of the plan returned.
	Chosen int `json:"chosen"`
	// Overruled reports that a candidate other than the ILP optimum
	// measured best: the plan's Layers are that candidate's.
	Overruled bool `json:"overruled"`
	// Corrections lists the measured values that replaced Ω.
	Corrections []Correction `json:"corrections,omitempty"`
	// Rounds counts the correction rounds run.
	Rounds int `json:"rounds"`
	// Passes counts the measurements (each one pass over the held-out
	// samples, plus an activation calibration pass where eval needs it).
	Passes int `json:"passes"`
	// Seconds is the wall time of the verification.
	Seconds float64 `json:"seconds"`
	// Note says in a sentence what the verification concluded.
	Note string `json:"note"`
}

// Candidate is one measured plan.
type Candidate struct {
	// Name says what the plan is: "ILP optimum", "ILP #2", "uniform w3a8",
	// "corrected ILP (round 1)".
	Name string `json:"name"`
	// Choices holds the candidate key of every layer, in table order.
	Choices []string `json:"choices"`
	// Omega is Σ Ω of the choices (the table's Ω, before any correction).
	Omega float64 `json:"omega"`
	// Corrected is the ILP objective the plan was chosen under, for the
	// corrected ILP's plans (Ω with the corrections in place).
	Corrected *float64 `json:"corrected_omega,omitempty"`
	// Status is the certificate of an ILP plan ("optimal": proven the
	// best, or next best, of its objective).
	Status string `json:"status,omitempty"`
	// Measured is the plan's measurement.
	Measured Measurement `json:"measured"`
}

// Correction is one Ω value replaced by its measured counterpart.
type Correction struct {
	Layer  string `json:"layer"`
	Choice string `json:"choice"`
	// Omega is the table's Ω and Measured 2·ΔL, twice the measured loss
	// increase of the layer alone at the choice.
	Omega    float64 `json:"omega"`
	Measured float64 `json:"measured"`
}

// verify measures the plan's alternatives (see Verification) and, when a
// different plan measures best, puts that plan in p.
func (b *built) verify(ctx context.Context, p *Plan, opt []int) error {
	v := b.req.Verify
	if v.Measure == nil {
		return fmt.Errorf("plan: Verify needs a Measurer")
	}
	if v.K < 0 {
		return fmt.Errorf("plan: Verify.K must not be negative, got %d", v.K)
	}
	t0 := time.Now()
	t := b.req.Table
	vr := &Verification{}
	fl, err := v.Measure.Measure(ctx, nil)
	if err != nil {
		return fmt.Errorf("plan: verification: float model: %w", err)
	}
	vr.Passes++
	vr.Float, vr.Samples = fl, fl.N
	byKey := map[string]int{}
	// measure adds the plan chosen (per layer) as a candidate, or names an
	// already measured one, and returns its index.
	measure := func(chosen []int, name, status string, corrected *float64) (int, error) {
		key := fmt.Sprint(chosen)
		if j, ok := byKey[key]; ok {
			vr.Candidates[j].Name += " = " + name
			return j, nil
		}
		c := Candidate{Name: name, Status: status, Corrected: corrected}
		var layers []Layer
		for i, ci := range chosen {
			k := b.info[i].keys[ci]
			c.Choices = append(c.Choices, k)
			c.Omega += t.Layers[i].Omega(k)
			pr := b.info[i].precs[ci]
			layers = append(layers, Layer{Name: t.Layers[i].Name, Choice: k, Bits: pr.W, ABits: pr.A, Kind: t.Layers[i].Kind})
		}
		m, err := v.Measure.Measure(ctx, layers)
		if err != nil {
			return 0, fmt.Errorf("plan: verification: %s: %w", name, err)
		}
		vr.Passes++
		c.Measured = m
		vr.Candidates = append(vr.Candidates, c)
		byKey[key] = len(vr.Candidates) - 1
		return len(vr.Candidates) - 1, nil
	}
	plans := [][]int{opt}
	if _, err := measure(opt, "ILP optimum", p.Status, nil); err != nil {
		return err
	}
	solver := b.req.Solver
	if solver == nil {
		solver = defaultSolver{}
	}
	// The K next-best plans, each excluded from the solves after it.
	excluded := [][]int{}
	if g, err := b.groupChoices(opt); err == nil {
		excluded = append(excluded, g)
	} else {
		return err
	}
	for r := 0; r < v.K; r++ {
		sol, err := ilp.NextBest(ctx, solver, b.prob, excluded, b.req.Settings)
		if err != nil {
			return fmt.Errorf("plan: verification: ILP #%d: %w", r+2, err)
		}
		if sol.Choices == nil {
			break
		}
		chosen, err := b.layerChoices(sol.Choices)
		if err != nil {
			return err
		}
		plans = append(plans, chosen)
		if _, err := measure(chosen, fmt.Sprintf("ILP #%d", r+2), sol.Status.String(), nil); err != nil {
			return err
		}
		excluded = append(excluded, sol.Choices)
		if sol.Status != ilp.Optimal {
			break
		}
	}
	// The widest uniform plan that fits (Uniform is in candidate order,
	// lowest first).
	for j := len(p.Uniform) - 1; j >= 0; j-- {
		if u := p.Uniform[j]; u.Fits {
			if idx := uniformChoices(t, b.info, u.Choice); idx != nil {
				if _, err := measure(idx, "uniform "+u.Choice, "", nil); err != nil {
					return err
				}
			}
			break
		}
	}
	best := func() int {
		bi := 0
		for j, c := range vr.Candidates {
			if c.Measured.Loss < vr.Candidates[bi].Measured.Loss {
				bi = j
			}
		}
		return bi
	}
	chosenOf := func(j int) []int {
		out := make([]int, len(t.Layers))
		for i, k := range vr.Candidates[j].Choices {
			out[i] = slices.Index(b.info[i].keys, k)
		}
		return out
	}
	vr.Chosen = best()
	rounds := v.Rounds
	if rounds == 0 {
		rounds = DefaultRounds
	}
	cur := 0 // the (corrected) ILP optimum
	override := map[omegaKey]float64{}
	stop := ""
	for vr.Chosen != cur {
		if rounds < 0 {
			stop = "the correction is off (its round limit is below zero)"
			break
		}
		if vr.Rounds >= rounds {
			stop = fmt.Sprintf("the correction stopped after %d rounds (the limit)", rounds)
			break
		}
		a, bb := chosenOf(cur), chosenOf(vr.Chosen)
		added := 0
		for i := range t.Layers {
			if a[i] == bb[i] {
				continue
			}
			for c, k := range b.info[i].keys {
				ok := omegaKey{i, k}
				if _, done := override[ok]; done {
					continue
				}
				pr := b.info[i].precs[c]
				m, err := v.Measure.Measure(ctx, []Layer{{Name: t.Layers[i].Name, Choice: k, Bits: pr.W, ABits: pr.A, Kind: t.Layers[i].Kind}})
				if err != nil {
					return fmt.Errorf("plan: verification: layer %q at %s: %w", t.Layers[i].Name, k, err)
				}
				vr.Passes++
				override[ok] = 2 * (m.Loss - fl.Loss)
				vr.Corrections = append(vr.Corrections, Correction{Layer: t.Layers[i].Name, Choice: k,
					Omega: t.Layers[i].Omega(k), Measured: override[ok]})
				added++
			}
		}
		if added == 0 {
			stop = "no layer was left to correct"
			break
		}
		vr.Rounds++
		cb, err := buildWith(b.req, override)
		if err != nil {
			return err
		}
		sol, err := solver.Solve(ctx, cb.prob, b.req.Settings)
		if err != nil {
			return fmt.Errorf("plan: verification: corrected ILP: %w", err)
		}
		if sol.Choices == nil {
			stop = "the corrected ILP found no plan"
			break
		}
		chosen, err := cb.layerChoices(sol.Choices)
		if err != nil {
			return err
		}
		if cur, err = measure(chosen, fmt.Sprintf("corrected ILP (round %d)", vr.Rounds), sol.Status.String(), ptr(sol.Objective)); err != nil {
			return err
		}
		vr.Chosen = best()
	}
	c := vr.Candidates[vr.Chosen]
	ilp0 := vr.Candidates[0]
	if vr.Chosen == 0 {
		vr.Note = fmt.Sprintf("measurement confirms Ω: the ILP optimum has the least measured loss (%s) of %d candidates", num(ilp0.Measured.Loss), len(vr.Candidates))
	} else {
		vr.Overruled = true
		p.Layers = p.Layers[:0]
		b.fill(p, chosenOf(vr.Chosen))
		if p.Bound != nil && p.Objective != nil {
			p.Gap = ptr((*p.Objective - *p.Bound) / math.Max(math.Abs(*p.Objective), 1e-300))
		}
		vr.Note = fmt.Sprintf("measurement overruled Ω: the plan is %q (Ω %s, measured loss %s), not the ILP optimum (Ω %s, measured loss %s)",
			c.Name, num(c.Omega), num(c.Measured.Loss), num(ilp0.Omega), num(ilp0.Measured.Loss))
		if worst := worstCorrection(vr.Corrections, ilp0.Choices, t.Layers); worst != nil {
			vr.Note += fmt.Sprintf("; Ω underestimated %s at %s most (Ω %s, measured 2·ΔL %s)", worst.Layer, worst.Choice, num(worst.Omega), num(worst.Measured))
		}
		if stop != "" {
			vr.Note += "; " + stop
		}
		p.Warnings = append(p.Warnings, vr.Note)
	}
	vr.Seconds = time.Since(t0).Seconds()
	p.Verification = vr
	return nil
}

// worstCorrection returns the correction of a choice of the plan (choices
// per layer) whose measured value exceeds Ω most, or nil.
func worstCorrection(cs []Correction, choices []string, layers []sensitivity.Layer) *Correction {
	var w *Correction
	for j := range cs {
		c := &cs[j]
		for i := range layers {
			if layers[i].Name == c.Layer && choices[i] == c.Choice && c.Measured > c.Omega &&
				(w == nil || c.Measured-c.Omega > w.Measured-w.Omega) {
				w = c
			}
		}
	}
	return w
}

// groupChoices maps a choice per layer back to a choice per merged group.
func (b *built) groupChoices(chosen []int) ([]int, error) {
	out := make([]int, len(b.merged))
	for gi, g := range b.merged {
		name := g.Name
		if len(g.Members) > 0 {
			name = g.Members[0]
		}
		i, ok := b.layerIndex[name]
		if !ok || chosen[i] < 0 {
			return nil, fmt.Errorf("plan: verification: group %q has no choice", g.Name)
		}
		label := b.info[i].keys[chosen[i]]
		out[gi] = slices.IndexFunc(g.Choices, func(c ilp.Choice) bool { return c.Label == label })
		if out[gi] < 0 {
			return nil, fmt.Errorf("plan: verification: group %q has no choice %q", g.Name, label)
		}
	}
	return out, nil
}

// describeChoices is the compact form of a candidate's choices: "w3a8" when
// every layer shares it, else the choices joined by "/".
func describeChoices(cs []string) string {
	if len(cs) > 0 && !slices.ContainsFunc(cs, func(c string) bool { return c != cs[0] }) {
		return "all " + cs[0]
	}
	return strings.Join(cs, "/")
}

// writeTables renders the verification: the measured candidates with Ω
// beside their measured loss, the corrections, and the conclusion.
func (vr *Verification) writeTables(w io.Writer, f Format) error {
	acc := func(m Measurement) string {
		if m.Accuracy == nil {
			return "-"
		}
		return strconv.FormatFloat(100**m.Accuracy, 'f', 2, 64) + " %"
	}
	fmt.Fprintf(w, "measured on %d held-out samples (float model: loss %s, accuracy %s), %d passes, %s\n",
		vr.Samples, num(vr.Float.Loss), acc(vr.Float), vr.Passes, seconds(vr.Seconds))
	t := newTable(w, f, 6)
	t.Header("candidate", "Ω", "measured loss", "accuracy", "choices", "")
	for j, c := range vr.Candidates {
		om := num(c.Omega)
		if c.Corrected != nil {
			om += " (corrected " + num(*c.Corrected) + ")"
		}
		mark := ""
		if j == vr.Chosen {
			mark = "← returned"
		}
		if err := t.Append(c.Name, om, num(c.Measured.Loss), acc(c.Measured), describeChoices(c.Choices), mark); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	if len(vr.Corrections) > 0 {
		fmt.Fprintf(w, "Ω replaced by the measured single-layer loss increase (2·ΔL) in %d correction round(s):\n", vr.Rounds)
		t = newTable(w, f, 4)
		t.Header("layer", "choice", "Ω", "measured 2·ΔL")
		for _, c := range vr.Corrections {
			if err := t.Append(c.Layer, c.Choice, num(c.Omega), num(c.Measured)); err != nil {
				return err
			}
		}
		if err := t.Render(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, vr.Note)
	return nil
}
