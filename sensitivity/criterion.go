package sensitivity

import (
	"fmt"
	"math"
	"strings"
)

// Criterion names a sensitivity criterion: how Ω_i(b), the predicted
// damage of quantizing layer i at candidate b, is scored. Every criterion
// feeds the same ILP (minimise Σ_i Ω_i(b_i) under the budgets); they
// differ in what they measure and what they cost. ΔW_i = Q_b(W_i) − W_i is
// the weight quantization error, L the calibration loss, N the calibration
// samples and n_i the layer's weights.
type Criterion string

// The criteria. Costs are in Hessian-vector products (HVPs, about 2–3×
// a gradient) or forward passes over the calibration data.
const (
	// Hessian is HAWQ-V3's Ω = Tr(H_i)/n_i · ‖ΔW_i‖² (Dong et al.,
	// HAWQ-V2, arXiv:1911.03852; Yao et al., HAWQ-V3, arXiv:2011.10680):
	// the second-order term with the error assumed spread evenly over the
	// layer. Cost: the Hutchinson probes (tens of HVPs). bitplan adds
	// an activation term, Tr(H_a)/n_a · E‖Q_A(a) − a‖² with H_a the
	// Hessian with respect to the layer's input activation a and Q_A the
	// activation quantizer at the candidate's width (eval.ActivationTerm;
	// Layer.ActAvgTrace, ActDeltaSq), so that W4A4 and W4A8 no longer tie:
	// our extension, not in HAWQ-V3's Ω. Its cost: a second Hutchinson
	// run over the layers' inputs.
	Hessian Criterion = "hessian"
	// Diag is Ω = Σ_j diag(H_i)_j · ΔW_ij², the second-order term without
	// that assumption, with the diagonal estimated from the same
	// Hutchinson probes: E[v ⊙ Hv] = diag H for probes with E[vvᵀ] = I
	// (Bekas, Kokiopoulou and Saad, "An estimator for the diagonal of a
	// matrix", 2007), so each probe's Σ_j ΔW_j² v_j (Hv)_j is an unbiased
	// sample and the table carries its standard error. Cost: as Hessian
	// (the same products). Its activation term is Σ_j diag(H_a)_j Δa_j²
	// over the calibration activations, from the probes of Hessian's.
	Diag Criterion = "diag"
	// Quadratic is Ω = ΔW_iᵀ H_i ΔW_i + (1/N) Σ_s Δa_sᵀ H_a,s Δa_s, the
	// second-order term along the candidate's own errors rather than a
	// trace or diagonal times their size: ΔW_i the weight rounding error
	// and Δa_s = Q_A(a_s) − a_s the activation rounding error of the
	// layer's input on calibration sample s, H_i the Hessian block of the
	// layer's weights and H_a,s that of its input (as the layer reads it),
	// both exact (R-operator). It sees what the trace cannot: errors
	// coherent with the curvature (HAWQ-V3's Tr(H)/n·‖ΔW‖² is its
	// expectation for an error spread evenly and independently over the
	// layer; the one-layer loss increase Measured is it plus the first-
	// and higher-order terms). No ½, like Hessian. Cost: one Hessian-vector
	// product per layer and weight width, on the layer's block only, and
	// one input R-pass per layer and activation width, over all of the
	// calibration data; no probes, no standard error.
	Quadratic Criterion = "quadratic"
	// Fisher is ModelOpt AutoQuantize's score Ω = ½·(1/N)·Σ_samples
	// Σ_outputs (∂ℓ/∂y_i)² (Δy_i)², y_i the layer's output and Δy_i its
	// change when that layer alone is quantized (weights and input): a
	// diagonal empirical-Fisher approximation of the loss increase in
	// output space (NVIDIA TensorRT Model Optimizer, auto_quantize).
	// Cost: one gradient pass plus one forward pass per layer and
	// candidate, and the output gradients held in memory.
	Fisher Criterion = "fisher"
	// Taylor is the first-order Ω = |∇_{W_i} L · ΔW_i| (the gradient-times-
	// rounding-error signal AutoRound tunes on: Cheng et al.,
	// arXiv:2309.05516; first-order Taylor importance, Molchanov et al.,
	// arXiv:1906.10771). Near a minimum the gradient is small and noisy,
	// which is what this baseline shows. Cost: one gradient pass.
	Taylor Criterion = "taylor"
	// Weight is Ω = ‖ΔW_i‖², the quantization error alone (no curvature).
	// Cost: none beyond quantizing the weights.
	Weight Criterion = "weight"
	// Measured is Ω = L(that layer alone quantized at b) − L(float), the
	// loss increase measured on the calibration data (the per-layer
	// output-error measurement ExLlamaV2 makes, taken to the loss): the
	// oracle the others approximate, exact for one layer but blind to
	// interactions between layers. Cost: one forward pass over the
	// calibration data per layer and candidate.
	Measured Criterion = "measured"
)

// Criteria lists every criterion, the default first.
var Criteria = []Criterion{Hessian, Diag, Quadratic, Fisher, Taylor, Weight, Measured}

// ParseCriterion reads a criterion name (case-insensitive; "" is Hessian).
func ParseCriterion(s string) (Criterion, error) {
	c := Criterion(strings.ToLower(strings.TrimSpace(s)))
	if c == "" {
		return Hessian, nil
	}
	for _, k := range Criteria {
		if c == k {
			return c, nil
		}
	}
	names := make([]string, len(Criteria))
	for i, k := range Criteria {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown sensitivity criterion %q (want %s)", s, strings.Join(names, ", "))
}

// NeedsTraces reports whether the criterion needs the Hutchinson products.
func (c Criterion) NeedsTraces() bool { return c == Hessian || c == Diag || c == "" }

// SetScores stores per-candidate Ω values on every layer (scores[i][key])
// and names the criterion; stderr may be nil. The values replace
// AvgTrace · DeltaSq in Omega. A missing candidate or a non-finite value
// is an error naming the layer.
func (t *Table) SetScores(c Criterion, scores, stderr []map[string]float64) error {
	if len(scores) != len(t.Layers) || (stderr != nil && len(stderr) != len(t.Layers)) {
		return fmt.Errorf("sensitivity: %d score sets for %d layers", len(scores), len(t.Layers))
	}
	for i := range t.Layers {
		l := &t.Layers[i]
		for k := range l.DeltaSq {
			v, ok := scores[i][k]
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("sensitivity: layer %q: %s score of candidate %s is missing or not finite (%v)", l.Name, c, k, v)
			}
		}
	}
	for i := range t.Layers {
		t.Layers[i].Scores = scores[i]
		if stderr != nil {
			t.Layers[i].ScoreStderr = stderr[i]
		}
	}
	t.Criterion = string(c)
	return nil
}
