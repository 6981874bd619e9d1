// Package synthetic makes calibration data without any real data, from the
// statistics a model's BatchNormalization layers keep (data-free
// quantization: ZeroQ, Cai et al., CVPR 2020, arXiv:2001.00281; Q-ASR,
// Kim et al., ICASSP 2022, arXiv:2103.16827, for 1-D speech models).
//
// Inputs start as Gaussian noise and are optimised with Adam (Kingma & Ba
// 2015) on the inputs, with gradients from the engine, to minimise the
// batch-statistics loss of DeepInversion (Yin et al., CVPR 2020) and ZeroQ
// (eq. 2), summed over every BatchNormalization node l and channel c, plus
// ZeroQ's prior on the input itself (l = 0):
//
//	L(x) = Σ_l Σ_c (μ̃_lc − μ_lc)² + (σ̃_lc − σ_lc)²
//	μ̃_lc = mean of the node's input over batch and positions,
//	σ̃_lc = sqrt(biased variance + ε),  σ_lc = sqrt(running_var + ε)
//
// (ZeroQ's code matches each sample's own statistics; this package matches
// the batch's, as DeepInversion and the ZeroQ paper write it.) The
// gradient of one channel's term with respect to an element x_i of the
// node's input, over M = batch·positions elements, is
//
//	∂/∂x_i = 2(μ̃ − μ)/M + 2(σ̃ − σ)(x_i − μ̃)/(σ̃ M)
//
// and the engine carries it back to the input (nn.Engine.InputGradient).
// Samples are labelled with the float model's own prediction, so that the
// cross-entropy of traces and plans is defined without labels.
package synthetic

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/nn"
)

// Settings tune Generate. The zero value means all defaults; a nil
// *Settings too.
type Settings struct {
	// Samples is the number of inputs made (default 64).
	Samples int
	// Batch is the number of inputs optimised together, over which the
	// statistics are taken (default 32, ZeroQ's).
	Batch int
	// Steps is the number of Adam steps per batch (default 500, ZeroQ's).
	Steps int
	// LR is Adam's initial step size (default 0.1); it decays to LR/100
	// along a cosine.
	LR float64
	// InputMean and InputStd are the prior on the input's per-channel
	// statistics, one value per channel or one for all (default 0 and 1,
	// ZeroQ's prior for normalised images). Set NoPrior to drop the term.
	InputMean, InputStd []float64
	// NoPrior drops the input term of the loss.
	NoPrior bool
	// Seed seeds the initial noise (default 1).
	Seed uint64
	// Progress, when set, is called after each step with the batch, the
	// step and the loss.
	Progress func(batch, batches, step, steps int, loss float64)
}

// Report says how the optimisation went.
type Report struct {
	// BatchNorms is the number of BatchNormalization nodes matched.
	BatchNorms int
	// Start and End are the loss of each batch before the first and after
	// the last step.
	Start, End []float64
}

// ErrNoBatchNorm is returned for a model without BatchNormalization nodes
// (transformers' LayerNorm keeps no running statistics).
var ErrNoBatchNorm = errors.New("synthetic: the model has no BatchNormalization node (with running statistics) to match; data-free calibration needs one. Export the model with its BatchNorm nodes: torch.onnx.export(model.eval(), x, f, training=torch.onnx.TrainingMode.PRESERVE) skips the Conv+BatchNorm fusion. Or calibrate with real data (--data, --inputs)")

// Generate makes s.Samples inputs for the engine's model whose statistics
// at every BatchNormalization match the running statistics, labelled with
// the model's predictions.
func Generate(ctx context.Context, e *nn.Engine, s *Settings) (*data.Memory, *Report, error) {
	var st Settings
	if s != nil {
		st = *s
	}
	if st.Samples == 0 {
		st.Samples = 64
	}
	if st.Batch == 0 {
		st.Batch = 32
	}
	if st.Steps == 0 {
		st.Steps = 500
	}
	if st.LR == 0 {
		st.LR = 0.1
	}
	if st.Seed == 0 {
		st.Seed = 1
	}
	if st.Samples < 0 || st.Batch < 0 || st.Steps < 0 || !(st.LR > 0) {
		return nil, nil, fmt.Errorf("synthetic: samples %d, batch %d, steps %d, lr %g: want positive values", st.Samples, st.Batch, st.Steps, st.LR)
	}
	shape := e.SampleShape()
	if len(shape) < 1 {
		return nil, nil, fmt.Errorf("synthetic: sample shape %v, want C×…", shape)
	}
	channels := shape[0]
	mean, std := st.InputMean, st.InputStd
	if mean == nil {
		mean = []float64{0}
	}
	if std == nil {
		std = []float64{1}
	}
	for _, v := range [][]float64{mean, std} {
		if len(v) != 1 && len(v) != channels {
			return nil, nil, fmt.Errorf("synthetic: input prior has %d values, want 1 or %d (one per input channel)", len(v), channels)
		}
	}
	for _, v := range std {
		if !(v > 0) {
			return nil, nil, fmt.Errorf("synthetic: input prior std %v, want positive values", std)
		}
	}
	bns, err := e.BatchNorms()
	if err != nil {
		return nil, nil, err
	}
	if len(bns) == 0 {
		return nil, nil, ErrNoBatchNorm
	}
	names := make([]string, len(bns))
	for i, b := range bns {
		names[i] = b.Input
	}
	size := 1
	for _, d := range shape {
		size *= d
	}
	rng := rand.New(rand.NewPCG(st.Seed, 0x5eed))
	inputs := make([]float64, st.Samples*size)
	labels := make([]int, st.Samples)
	rep := &Report{BatchNorms: len(bns)}
	batches := (st.Samples + st.Batch - 1) / st.Batch
	for b := range batches {
		lo := b * st.Batch
		n := min(st.Batch, st.Samples-lo)
		x := inputs[lo*size : (lo+n)*size]
		inner := size / channels
		for i := range x {
			c := (i / inner) % channels
			x[i] = at(mean, c) + at(std, c)*rng.NormFloat64()
		}
		opt := newAdam(len(x))
		var loss float64
		for step := 0; step <= st.Steps; step++ {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			loss = 0
			g, err := e.InputGradient(x, n, names, func(vals, adjs [][]float64) {
				for i, bn := range bns {
					loss += statLoss(vals[i], adjs[i], n, bn.Mean, bn.Var, bn.Epsilon)
				}
			})
			if err != nil {
				return nil, nil, err
			}
			if !st.NoPrior {
				pm, pv := make([]float64, channels), make([]float64, channels)
				for c := range channels {
					pm[c], pv[c] = at(mean, c), at(std, c)*at(std, c)
				}
				loss += statLoss(x, g, n, pm, pv, 0)
			}
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return nil, nil, fmt.Errorf("synthetic: batch %d step %d: the loss is %v (lower --synthetic-lr)", b+1, step, loss)
			}
			if step == 0 {
				rep.Start = append(rep.Start, loss)
			}
			if step == st.Steps {
				break
			}
			lr := st.LR * (0.01 + 0.99*0.5*(1+math.Cos(math.Pi*float64(step)/float64(st.Steps))))
			opt.step(x, g, lr)
			if st.Progress != nil {
				st.Progress(b+1, batches, step+1, st.Steps, loss)
			}
		}
		rep.End = append(rep.End, loss)
		logits, err := e.Logits(x, n)
		if err != nil {
			return nil, nil, err
		}
		k := e.Classes()
		for i := range n {
			best := 0
			for j := 1; j < k; j++ {
				if logits[i*k+j] > logits[i*k+best] {
					best = j
				}
			}
			labels[lo+i] = best
		}
	}
	m, err := data.NewMemory(inputs, labels, shape)
	if err != nil {
		return nil, nil, err
	}
	return m, rep, nil
}

func at(v []float64, c int) float64 { return v[min(c, len(v)-1)] }

// statLoss adds to adj the gradient of Σ_c (μ̃_c − mean_c)² + (σ̃_c − σ_c)²
// for x of batch n (n×C×inner), σ = sqrt(var + eps), and returns the loss.
func statLoss(x, adj []float64, n int, mean, vr []float64, eps float64) float64 {
	c := len(mean)
	inner := len(x) / (n * c)
	m := float64(n * inner)
	loss := 0.0
	for ch := range c {
		var s float64
		for b := range n {
			for _, v := range x[(b*c+ch)*inner : (b*c+ch+1)*inner] {
				s += v
			}
		}
		mu := s / m
		var q float64
		for b := range n {
			for _, v := range x[(b*c+ch)*inner : (b*c+ch+1)*inner] {
				q += (v - mu) * (v - mu)
			}
		}
		sd := math.Sqrt(q/m + eps)
		sr := math.Sqrt(vr[ch] + eps)
		loss += (mu-mean[ch])*(mu-mean[ch]) + (sd-sr)*(sd-sr)
		gm := 2 * (mu - mean[ch]) / m
		gs := 0.0
		if sd > 0 {
			gs = 2 * (sd - sr) / (sd * m)
		}
		for b := range n {
			off := (b*c + ch) * inner
			for i, v := range x[off : off+inner] {
				adj[off+i] += gm + gs*(v-mu)
			}
		}
	}
	return loss
}

// adam is Adam (Kingma & Ba 2015) with β1 = 0.9, β2 = 0.999, ε = 1e-8 and
// bias correction.
type adam struct {
	m, v []float64
	t    int
}

func newAdam(n int) *adam { return &adam{m: make([]float64, n), v: make([]float64, n)} }

func (a *adam) step(x, g []float64, lr float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	a.t++
	c1 := 1 - math.Pow(b1, float64(a.t))
	c2 := 1 - math.Pow(b2, float64(a.t))
	for i := range x {
		a.m[i] = b1*a.m[i] + (1-b1)*g[i]
		a.v[i] = b2*a.v[i] + (1-b2)*g[i]*g[i]
		x[i] -= lr * (a.m[i] / c1) / (math.Sqrt(a.v[i]/c2) + eps)
	}
}
