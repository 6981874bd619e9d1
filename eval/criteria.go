package eval

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/sensitivity"
)

// ScoreSettings tunes Score. The zero value (or nil) means defaults.
type ScoreSettings struct {
	// Settings are those of Apply (the weight quantizer the table's Δ²
	// was priced with, activation calibration, bias rounding) for the
	// criteria that quantize one layer at a time (fisher, measured).
	Settings
	// Batch is the number of samples per pass of the fisher criterion
	// (default 32): its output gradients are held for all samples, the
	// passes only bound the work area.
	Batch int
}

// Score sets Ω of every layer of t under criterion c, measured on the
// calibration data calib with the engine e (which must be the model the
// table describes, at float weights; it is restored before Score
// returns): t.Layers[i].Scores for each candidate of DeltaSq, and
// t.Criterion. The criteria are those of sensitivity.Criterion that need
// no Hessian: Weight (‖ΔW‖²), Taylor (|∇_W L · ΔW|, one gradient pass),
// Fisher (½·mean over samples of Σ (∂ℓ/∂y)² (Δy)² over the outputs y of
// the layer's node that the graph reads, one gradient pass and
// one forward pass per layer and candidate) and Measured (the calibration
// loss increase with that layer alone quantized, one forward pass per
// layer and candidate), and Quadratic (ΔWᵀ H_ii ΔW, one block-local
// Hessian-vector product per layer sharing its weight widths, plus
// ActivationTerm's exact quadratic form of each layer's input error, one
// input R-pass per layer and activation width; all of calib). Fisher and
// Measured quantize the layer's input at
// the candidate's activation width as Apply does (activation range from
// calib); Weight and Taylor see the weights only, as the Hessian criteria
// do without their activation term. Hessian and Diag come from
// plan.Analyze (the activation term from ActivationTerm) and are refused
// here.
func Score(ctx context.Context, e *nn.Engine, calib data.Dataset, t *sensitivity.Table, c sensitivity.Criterion, s *ScoreSettings) error {
	var set ScoreSettings
	if s != nil {
		set = *s
	}
	if set.Batch <= 0 {
		set.Batch = 32
	}
	if calib == nil || calib.Len() == 0 {
		return fmt.Errorf("eval: criterion %s needs calibration data", c)
	}
	units := e.Units()
	byName := make(map[string]nn.UnitLayout, len(units))
	for _, u := range units {
		byName[u.Name] = u
	}
	for i := range t.Layers {
		if _, ok := byName[t.Layers[i].Name]; !ok {
			return fmt.Errorf("eval: table layer %q is not a quantizable layer of the model", t.Layers[i].Name)
		}
	}
	scores := make([]map[string]float64, len(t.Layers))
	for i := range scores {
		scores[i] = map[string]float64{}
	}
	var err error
	switch c {
	case sensitivity.Weight:
		for i := range t.Layers {
			for k, d := range t.Layers[i].DeltaSq {
				scores[i][k] = d
			}
		}
	case sensitivity.Taylor:
		err = taylor(ctx, e, calib, t, byName, set, scores)
	case sensitivity.Measured:
		err = measured(ctx, e, calib, t, set, scores)
	case sensitivity.Quadratic:
		if err = quadratic(ctx, e, calib, t, byName, set, scores); err != nil {
			return err
		}
		if err = t.SetScores(c, scores, nil); err != nil {
			return err
		}
		// The activation part, added to Scores: ActivationTerm's exact
		// quadratic form along each activation quantizer's error.
		_, err = ActivationTerm(ctx, e, calib, t, &ActivationSettings{Calibration: set.Calibration, Quadratic: true})
		return err
	case sensitivity.Fisher:
		err = fisher(ctx, e, calib, t, byName, set, scores)
	case sensitivity.Hessian, sensitivity.Diag:
		return fmt.Errorf("eval: criterion %s comes from the Hessian probes (plan.Analyze), not from Score", c)
	default:
		return fmt.Errorf("eval: unknown criterion %q", c)
	}
	if err != nil {
		return err
	}
	return t.SetScores(c, scores, nil)
}

// quadratic sets scores to the weight part of the quadratic criterion:
// ΔWᵀ H_ii ΔW of every layer at every weight width of its candidates, one
// block-local Hessian-vector product per layer (the widths share its
// passes) over all of calib.
func quadratic(ctx context.Context, e *nn.Engine, calib data.Dataset, t *sensitivity.Table, byName map[string]nn.UnitLayout, set ScoreSettings, scores []map[string]float64) error {
	e.ClearInputQuantizers()
	for i := range t.Layers {
		l := &t.Layers[i]
		u := byName[l.Name]
		ps, keys := l.Candidates()
		var ws []int
		for _, p := range ps {
			if !slices.Contains(ws, p.W) {
				ws = append(ws, p.W)
			}
		}
		vs, hv := make([][]float64, len(ws)), make([][]float64, len(ws))
		for k, w := range ws {
			d, err := quantError(e, u, set.Weights, w)
			if err != nil {
				return err
			}
			vs[k], hv[k] = make([]float64, u.Size), make([]float64, u.Size)
			copy(vs[k][u.WeightOffset-u.Offset:], d)
		}
		if err := e.BlockHVP(ctx, calib, hessian.Block{Name: u.Name, Offset: u.Offset, Size: u.Size}, hv, vs); err != nil {
			return fmt.Errorf("eval: quadratic: layer %q: %w", l.Name, err)
		}
		for j, p := range ps {
			k := slices.Index(ws, p.W)
			var q float64
			for m, x := range vs[k] {
				q += x * hv[k][m]
			}
			scores[i][keys[j]] = q
		}
	}
	return nil
}

// quantError returns Q_b(W) − W of the unit's weights at weight bits b.
func quantError(e *nn.Engine, u nn.UnitLayout, q sensitivity.Quantizer, bits int) ([]float64, error) {
	w, err := e.Weights(u.Name)
	if err != nil {
		return nil, err
	}
	q.Bits = bits
	d := make([]float64, len(w))
	if _, err := q.Quantize(d, w, weightLayout(u)); err != nil {
		return nil, fmt.Errorf("eval: layer %q: %w", u.Name, err)
	}
	for j := range d {
		d[j] -= w[j]
	}
	return d, nil
}

func taylor(ctx context.Context, e *nn.Engine, calib data.Dataset, t *sensitivity.Table, byName map[string]nn.UnitLayout, set ScoreSettings, scores []map[string]float64) error {
	g := make([]float64, e.Dim())
	if _, err := e.Gradient(ctx, calib, g); err != nil {
		return fmt.Errorf("eval: taylor: gradient: %w", err)
	}
	for i := range t.Layers {
		u := byName[t.Layers[i].Name]
		gw := g[u.WeightOffset : u.WeightOffset+u.WeightSize]
		for k := range t.Layers[i].DeltaSq {
			p, err := sensitivity.ParsePrecision(k)
			if err != nil {
				return err
			}
			d, err := quantError(e, u, set.Weights, p.W)
			if err != nil {
				return err
			}
			var s float64
			for j := range d {
				s += gw[j] * d[j]
			}
			scores[i][k] = math.Abs(s)
		}
	}
	return nil
}

// each applies every layer alone at every candidate and calls f, with the
// engine restored afterwards. A layer's input does not depend on its own
// weights, so the activation ranges are calibrated once per activation
// width at the float weights and reused.
func each(ctx context.Context, e *nn.Engine, calib data.Dataset, t *sensitivity.Table, set ScoreSettings, f func(i int, key string) error) error {
	ranges := map[int]map[string]Range{}
	for i := range t.Layers {
		_, keys := t.Layers[i].Candidates()
		for _, k := range keys {
			p, err := sensitivity.ParsePrecision(k)
			if err != nil {
				return err
			}
			if _, ok := ranges[p.A]; ok {
				continue
			}
			bits := map[string]int{}
			for _, l := range t.Layers {
				bits[l.Name] = p.A
			}
			e.ClearInputQuantizers()
			if ranges[p.A], err = CalibrateWith(ctx, e, calib, set.Calibration, bits); err != nil {
				return err
			}
		}
	}
	for i := range t.Layers {
		l := &t.Layers[i]
		_, keys := l.Candidates()
		for _, k := range keys {
			p, err := sensitivity.ParsePrecision(k)
			if err != nil {
				return err
			}
			s := set.Settings
			s.Ranges = ranges[p.A]
			a, err := Apply(ctx, e, []Layer{{Name: l.Name, Bits: p.W, ABits: p.A}}, calib, &s)
			if err != nil {
				return err
			}
			err = f(i, k)
			a.Restore()
			if err != nil {
				return fmt.Errorf("eval: layer %q at %s: %w", l.Name, k, err)
			}
		}
	}
	return nil
}

func measured(ctx context.Context, e *nn.Engine, calib data.Dataset, t *sensitivity.Table, set ScoreSettings, scores []map[string]float64) error {
	e.ClearInputQuantizers()
	base, err := e.Evaluate(ctx, calib)
	if err != nil {
		return err
	}
	return each(ctx, e, calib, t, set, func(i int, k string) error {
		r, err := e.Evaluate(ctx, calib)
		if err != nil {
			return err
		}
		scores[i][k] = r.Loss - base.Loss
		return nil
	})
}

func fisher(ctx context.Context, e *nn.Engine, calib data.Dataset, t *sensitivity.Table, byName map[string]nn.UnitLayout, set ScoreSettings, scores []map[string]float64) error {
	// A layer's outputs are those of its node that the graph reads: an
	// LSTM's Y_h when only the last hidden state is used, not its unused
	// Y (whose gradient would be zero).
	m := e.Model()
	read := map[string]bool{}
	for _, nd := range m.Nodes {
		for _, in := range nd.Inputs {
			read[in] = true
		}
	}
	for _, o := range m.Outputs {
		read[o.Name] = true
	}
	var names []string                   // every layer's output tensors, concatenated
	own := make([][2]int, len(t.Layers)) // layer i's span of names
	for i := range t.Layers {
		mu := m.Unit(t.Layers[i].Name)
		own[i][0] = len(names)
		if mu != nil {
			for _, o := range m.Nodes[mu.Node].Outputs {
				if o != "" && read[o] {
					names = append(names, o)
				}
			}
		}
		own[i][1] = len(names)
		if own[i][0] == own[i][1] {
			return fmt.Errorf("eval: fisher: no output tensor for layer %q", t.Layers[i].Name)
		}
	}
	// Per pass: the samples, the float outputs and the per-sample output
	// gradients n·∂(mean loss)/∂y of every layer.
	type pass struct {
		x    []float64
		n    int
		y, g [][]float64
	}
	e.ClearInputQuantizers()
	size := data.SampleSize(calib)
	var passes []pass
	for lo := 0; lo < calib.Len(); lo += set.Batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(set.Batch, calib.Len()-lo)
		idx := make([]int, n)
		for j := range idx {
			idx[j] = lo + j
		}
		sub, err := data.Rows(calib, idx)
		if err != nil {
			return err
		}
		y, g, err := e.TensorGradients(sub, names)
		if err != nil {
			return fmt.Errorf("eval: fisher: %w", err)
		}
		for _, gi := range g {
			for j := range gi {
				gi[j] *= float64(n)
			}
		}
		x := make([]float64, n*size)
		if err := calib.Read(lo, x, make([]int, n)); err != nil {
			return err
		}
		passes = append(passes, pass{x: x, n: n, y: y, g: g})
	}
	total := float64(calib.Len())
	return each(ctx, e, calib, t, set, func(i int, k string) error {
		var s float64
		lo, hi := own[i][0], own[i][1]
		for _, p := range passes {
			yq, err := e.TensorValues(p.x, p.n, names[lo:hi])
			if err != nil {
				return err
			}
			for o := range yq {
				y, g := p.y[lo+o], p.g[lo+o]
				for j, v := range yq[o] {
					d := (v - y[j]) * g[j]
					s += d * d
				}
			}
		}
		scores[i][k] = s / (2 * total)
		return nil
	})
}
