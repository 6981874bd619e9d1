package nn

import (
	"fmt"
	"math"

	"github.com/bitplan/bitplan/data"
)

// Loss is the objective whose gradient and Hessian the engine computes: a
// sum over samples of a function of the model's output, divided by the
// denominator Prepare returns (the number of samples for a mean over
// samples). The zero Options.Loss is ClassLabels{}.
type Loss interface {
	// Prepare checks the loss against the per-sample output shape and the
	// dataset before any work, and returns the denominator of the mean.
	Prepare(out []int, ds data.Dataset) (float64, error)
	// Eval scores chunk c and returns the sum of the per-sample losses and
	// the numbers of correct and of scored predictions (both 0 when the
	// loss has no notion of a correct prediction). When g is non-nil it
	// sets g = scale·∂L/∂z; when rg is non-nil it sets
	// rg = scale·∇²_z L·rz (rz = R{z}).
	Eval(c *Chunk, scale float64, g, rz, rg []float64) (loss float64, correct, scored int, err error)
}

// Chunk is what a Loss sees of one chunk of samples.
type Chunk struct {
	// Start is the index of the first sample and N the number of samples.
	Start, N int
	// Out holds the model's outputs, N × prod(Shape) values.
	Out []float64
	// Shape is the output shape of one sample.
	Shape []int
	// Labels are the dataset's labels of the samples.
	Labels []int
	// Ref holds the outputs at the reference parameters of a Referenced
	// loss (nil otherwise).
	Ref []float64
}

// Referenced losses compare the model with its own outputs at fixed
// reference parameters; the engine computes those outputs (Chunk.Ref).
type Referenced interface {
	Loss
	// Reference returns the reference parameters θ_ref (length Dim()).
	Reference() []float64
}

// softmaxRow sets p = softmax(z) and returns log Σ exp z.
func softmaxRow(z, p []float64) float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = max(m, v)
	}
	sum := 0.0
	for _, v := range z {
		sum += math.Exp(v - m)
	}
	lse := m + math.Log(sum)
	for j, v := range z {
		p[j] = math.Exp(v - lse)
	}
	return lse
}

// softmaxHessian sets rg = scale · (diag(p) − p pᵀ) rz, the Hessian of
// lse(z) (and of cross-entropy and KL divergence in z) applied to rz.
func softmaxHessian(p, rz, rg []float64, scale float64) {
	dot := 0.0
	for j, v := range p {
		dot += v * rz[j]
	}
	for j, v := range p {
		rg[j] = scale * v * (rz[j] - dot)
	}
}

func argmax(z []float64) int {
	arg := 0
	for j, v := range z {
		if v > z[arg] {
			arg = j
		}
	}
	return arg
}

// ClassLabels is the mean cross-entropy of batch×classes logits against
// one class label per sample (the default loss):
//
//	L = (1/N) Σ_n lse(z_n) − z_n[y_n],  ∂L/∂z_n = (p_n − e_{y_n})/N,
//	∇²_{z_n} L = (diag p_n − p_n p_nᵀ)/N.
type ClassLabels struct{}

// Prepare requires one axis of classes.
func (ClassLabels) Prepare(out []int, ds data.Dataset) (float64, error) {
	if len(out) != 1 {
		return 0, fmt.Errorf("nn: the output has shape %v per sample; class labels need one axis of class logits (use per-position labels or MSE for other outputs)", out)
	}
	return float64(ds.Len()), nil
}

// Eval scores a chunk; labels outside the classes are errors.
func (ClassLabels) Eval(c *Chunk, scale float64, g, rz, rg []float64) (float64, int, int, error) {
	k := c.Shape[0]
	p := make([]float64, k)
	loss, correct := 0.0, 0
	for s, y := range c.Labels {
		if y < 0 || y >= k {
			return 0, 0, 0, fmt.Errorf("%w: sample %d has label %d, the model has %d classes", data.ErrLabel, c.Start+s, y, k)
		}
		row := c.Out[s*k : (s+1)*k]
		if argmax(row) == y {
			correct++
		}
		loss += softmaxRow(row, p) - row[y]
		if g != nil {
			for j, v := range p {
				g[s*k+j] = scale * v
			}
			g[s*k+y] -= scale
		}
		if rg != nil {
			softmaxHessian(p, rz[s*k:(s+1)*k], rg[s*k:(s+1)*k], scale)
		}
	}
	return loss, correct, len(c.Labels), nil
}

// PositionLabels is the cross-entropy of per-position logits against one
// label per position (token tagging, segmentation), averaged over the
// positions whose label is not Ignore, as PyTorch's CrossEntropyLoss with
// ignore_index. The output of a sample has a class axis (ClassAxis: 0 for
// N×C×positions…, the layout of segmentation models; -1 for
// N×positions…×C, the layout of token classifiers) and Labels holds the
// labels sample after sample, positions per sample: sample i of a dataset
// reads Labels[i·positions : (i+1)·positions], so Labels may cover more
// samples than the dataset (a dataset that is a prefix of the labelled
// one, data.Head, is scored with the same loss).
type PositionLabels struct {
	Labels    []int
	ClassAxis int
	Ignore    int
}

// layout returns the number of classes, positions, and the strides of the
// class and position indices within a sample.
func (l PositionLabels) layout(out []int) (classes, positions, cstride, pstride int) {
	total := 1
	for _, d := range out {
		total *= d
	}
	if l.ClassAxis == 0 {
		classes = out[0]
		positions = total / classes
		return classes, positions, positions, 1
	}
	classes = out[len(out)-1]
	return classes, total / classes, 1, classes
}

// Prepare checks the label count and range and counts the scored
// positions.
func (l PositionLabels) Prepare(out []int, ds data.Dataset) (float64, error) {
	if len(out) < 1 || (l.ClassAxis != 0 && l.ClassAxis != -1) {
		return 0, fmt.Errorf("nn: per-position labels: output shape %v per sample, class axis %d (want 0 or -1)", out, l.ClassAxis)
	}
	classes, positions, _, _ := l.layout(out)
	if len(l.Labels) < ds.Len()*positions || len(l.Labels)%positions != 0 {
		return 0, fmt.Errorf("nn: per-position labels: %d labels for %d samples of %d positions (output %v per sample)", len(l.Labels), ds.Len(), positions, out)
	}
	n := 0
	for i, y := range l.Labels[:ds.Len()*positions] {
		if y == l.Ignore {
			continue
		}
		if y < 0 || y >= classes {
			return 0, fmt.Errorf("%w: sample %d position %d has label %d, the model has %d classes", data.ErrLabel, i/positions, i%positions, y, classes)
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("nn: per-position labels: every label is the ignore index %d", l.Ignore)
	}
	return float64(n), nil
}

// Eval scores a chunk.
func (l PositionLabels) Eval(c *Chunk, scale float64, g, rz, rg []float64) (float64, int, int, error) {
	classes, positions, cs, ps := l.layout(c.Shape)
	per := classes * positions
	z, p, rzr, rgr := make([]float64, classes), make([]float64, classes), make([]float64, classes), make([]float64, classes)
	if g != nil {
		clear(g[:c.N*per])
	}
	if rg != nil {
		clear(rg[:c.N*per])
	}
	loss, correct, scored := 0.0, 0, 0
	for s := 0; s < c.N; s++ {
		for q := 0; q < positions; q++ {
			y := l.Labels[(c.Start+s)*positions+q]
			if y == l.Ignore {
				continue
			}
			base := s*per + q*ps
			for j := range z {
				z[j] = c.Out[base+j*cs]
			}
			scored++
			if argmax(z) == y {
				correct++
			}
			loss += softmaxRow(z, p) - z[y]
			if g != nil {
				for j, v := range p {
					g[base+j*cs] = scale * v
				}
				g[base+y*cs] -= scale
			}
			if rg != nil {
				for j := range rzr {
					rzr[j] = rz[base+j*cs]
				}
				softmaxHessian(p, rzr, rgr, scale)
				for j, v := range rgr {
					rg[base+j*cs] = v
				}
			}
		}
	}
	return loss, correct, scored, nil
}

// MSE is the mean squared error against target arrays, averaged over all
// output elements as PyTorch's MSELoss: with E elements in all,
//
//	L = (1/E) Σ (z − t)²,  ∂L/∂z = 2(z − t)/E,  ∇²_z L = 2I/E.
//
// Targets holds prod(output shape) values per sample, sample after sample,
// for at least Len() samples (sample i reads the i-th block, as
// PositionLabels).
type MSE struct {
	Targets []float64
}

// Prepare checks the number of targets.
func (l MSE) Prepare(out []int, ds data.Dataset) (float64, error) {
	per := 1
	for _, d := range out {
		per *= d
	}
	if len(l.Targets) < ds.Len()*per || len(l.Targets)%per != 0 {
		return 0, fmt.Errorf("nn: MSE: %d target values for %d samples of output shape %v (want %d)", len(l.Targets), ds.Len(), out, ds.Len()*per)
	}
	return float64(ds.Len() * per), nil
}

// Eval scores a chunk.
func (l MSE) Eval(c *Chunk, scale float64, g, rz, rg []float64) (float64, int, int, error) {
	per := len(c.Out) / c.N
	t := l.Targets[c.Start*per : (c.Start+c.N)*per]
	loss := 0.0
	for i, z := range c.Out {
		d := z - t[i]
		loss += d * d
		if g != nil {
			g[i] = 2 * scale * d
		}
		if rg != nil {
			rg[i] = 2 * scale * rz[i]
		}
	}
	return loss, 0, 0, nil
}

// Unscored is the loss of passes that only run the model forward to read
// its activations (calibrating activation ranges): it takes no labels,
// suits any output shape, and scores every sample 0, with zero gradient
// and Hessian.
type Unscored struct{}

// Prepare accepts any output and dataset.
func (Unscored) Prepare(out []int, ds data.Dataset) (float64, error) {
	return float64(max(ds.Len(), 1)), nil
}

// Eval scores 0.
func (Unscored) Eval(c *Chunk, scale float64, g, rz, rg []float64) (float64, int, int, error) {
	if g != nil {
		clear(g[:len(c.Out)])
	}
	if rg != nil {
		clear(rg[:len(c.Out)])
	}
	return 0, 0, 0, nil
}

// KL is the mean Kullback–Leibler divergence from the model's own
// predictions at reference parameters Theta (the float model) to its
// predictions at θ, over batch×classes logits; it needs no labels:
//
//	L = (1/N) Σ_n Σ_c p⁰_nc (log p⁰_nc − log p_nc),  ∂L/∂z_n = (p_n − p⁰_n)/N,
//	∇²_{z_n} L = (diag p_n − p_n p_nᵀ)/N.
//
// At θ = Theta the gradient vanishes and the Hessian in θ is the
// Gauss–Newton matrix JᵀH_zJ, which here equals the Fisher information:
// positive semi-definite (Martens, "New insights and perspectives on the
// natural gradient method", JMLR 21, 2020, §9.2).
type KL struct {
	Theta []float64
}

// Reference returns Theta.
func (l KL) Reference() []float64 { return l.Theta }

// Prepare requires one axis of classes.
func (l KL) Prepare(out []int, ds data.Dataset) (float64, error) {
	if len(out) != 1 {
		return 0, fmt.Errorf("nn: KL: the output has shape %v per sample, want one axis of class logits", out)
	}
	return float64(ds.Len()), nil
}

// Eval scores a chunk against the reference outputs c.Ref.
func (l KL) Eval(c *Chunk, scale float64, g, rz, rg []float64) (float64, int, int, error) {
	k := c.Shape[0]
	p, p0 := make([]float64, k), make([]float64, k)
	loss, correct := 0.0, 0
	for s := 0; s < c.N; s++ {
		row, ref := c.Out[s*k:(s+1)*k], c.Ref[s*k:(s+1)*k]
		if argmax(row) == argmax(ref) {
			correct++
		}
		lse := softmaxRow(row, p)
		lse0 := softmaxRow(ref, p0)
		for j, q := range p0 {
			if q > 0 {
				loss += q * ((ref[j] - lse0) - (row[j] - lse))
			}
		}
		if g != nil {
			for j := range p {
				g[s*k+j] = scale * (p[j] - p0[j])
			}
		}
		if rg != nil {
			softmaxHessian(p, rz[s*k:(s+1)*k], rg[s*k:(s+1)*k], scale)
		}
	}
	return loss, correct, c.N, nil
}
