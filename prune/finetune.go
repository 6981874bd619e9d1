package prune

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/nn"
)

// FineTuneSettings configures FineTune. The zero value (or nil) means
// defaults.
type FineTuneSettings struct {
	// Steps is the number of SGD steps (default 300).
	Steps int
	// BatchSize is the mini-batch size (default 32).
	BatchSize int
	// LR is the learning rate (default 0.002; BatchNorm models in inference
	// form diverge at 0.01).
	LR float64
	// Momentum is the heavy-ball momentum (default 0.9).
	Momentum float64
	// Seed selects the mini-batches (default 0).
	Seed uint64
	// Progress, if not nil, is called after every step with the step's
	// mini-batch loss.
	Progress func(step int, loss float64)
	// Quantize, if not nil, makes the fine-tuning quantization-aware by
	// the straight-through estimator (Bengio et al., arXiv:1308.3432; the
	// fine-tuning of HAWQ-V3, arXiv:2011.10680): FineTune keeps the float
	// θ, runs every step at Quantize(θ) (written into dst, of θ's length)
	// and applies the gradient taken there to the float θ, as if the
	// quantizer were the identity. When it returns, the engine holds the
	// float θ; quantize it again to deploy. The activations are
	// fake-quantized in the gradient pass too when the engine's input
	// quantizers are installed and nn.Engine.SetQuantizedGradient is on
	// (the clipped straight-through estimator of PACT and LSQ: the
	// gradient passes the rounding and is cut where the quantizer
	// saturates); otherwise the steps see float activations.
	Quantize func(dst, theta []float64)
}

// FineTuneResult summarizes a fine-tuning run.
type FineTuneResult struct {
	// Steps is the number of steps taken.
	Steps int
	// FirstLoss and LastLoss are the mean mini-batch losses of the first
	// and last tenth of the steps.
	FirstLoss, LastLoss float64
}

// FineTune trains the engine's parameters θ (the units' weights and
// biases; BatchNormalization statistics stay fixed, the model runs in
// inference form) by mini-batch SGD with heavy-ball momentum on ds:
//
//	v ← μ v + ∇L_B(θ),   θ ← θ − η v
//
// with mini-batches B drawn by reshuffling ds every epoch (seeded); a
// data.Inputs ds feeds every input of a model of several (token ids and
// an attention mask). It is
// the brief recovery step after pruning (the engine keeps the trained θ)
// and, with FineTuneSettings.Quantize, after quantization.
func FineTune(ctx context.Context, e *nn.Engine, ds data.Dataset, s *FineTuneSettings) (*FineTuneResult, error) {
	var set FineTuneSettings
	if s != nil {
		set = *s
	}
	if set.Steps == 0 {
		set.Steps = 300
	}
	if set.BatchSize == 0 {
		set.BatchSize = 32
	}
	if set.LR == 0 {
		set.LR = 0.002
	}
	if set.Momentum == 0 {
		set.Momentum = 0.9
	}
	switch {
	case set.Steps < 0:
		return nil, fmt.Errorf("prune: FineTuneSettings.Steps = %d, want ≥ 0", set.Steps)
	case set.BatchSize < 1:
		return nil, fmt.Errorf("prune: FineTuneSettings.BatchSize = %d, want ≥ 1", set.BatchSize)
	case !(set.LR > 0) || math.IsInf(set.LR, 0):
		return nil, fmt.Errorf("prune: FineTuneSettings.LR = %v, want a positive finite value", set.LR)
	case !(set.Momentum >= 0 && set.Momentum < 1):
		return nil, fmt.Errorf("prune: FineTuneSettings.Momentum = %v, want a value in [0, 1)", set.Momentum)
	}
	n := ds.Len()
	if n == 0 {
		return nil, fmt.Errorf("prune: fine-tuning on an empty dataset")
	}
	bs := min(set.BatchSize, n)
	// Every input's samples (one for most models; token ids and a mask for
	// a BERT), read once, and a mini-batch dataset of the same inputs.
	shapes := [][]int{ds.SampleShape()}
	mi, multi := ds.(data.Inputs)
	if multi {
		shapes = mi.SampleShapes()
	}
	sizes := make([]int, len(shapes))
	all := make([][]float64, len(shapes))
	for k, sh := range shapes {
		sizes[k] = 1
		for _, d := range sh {
			sizes[k] *= d
		}
		all[k] = make([]float64, n*sizes[k])
	}
	labels := make([]int, n)
	var err error
	if multi {
		err = mi.ReadInputs(0, all, labels)
	} else {
		err = ds.Read(0, all[0], labels)
	}
	if err != nil {
		return nil, fmt.Errorf("prune: reading the fine-tuning data: %w", err)
	}
	rng := rand.New(rand.NewPCG(set.Seed, 0x9e3779b97f4a7c15))
	perm := rng.Perm(n)
	pos := 0
	bufs := make([][]float64, len(shapes))
	for k := range bufs {
		bufs[k] = make([]float64, bs*sizes[k])
	}
	blabels := make([]int, bs)
	var batch data.Dataset = &data.Memory{Inputs: bufs[0], Labels: blabels, Shape: ds.SampleShape()}
	if multi {
		arrays := make([]*data.Array, len(shapes))
		names := make([]string, len(shapes))
		for k, sh := range shapes {
			arrays[k] = &data.Array{Shape: append([]int{bs}, sh...), DType: "<f8", Float: bufs[k]}
			names[k] = fmt.Sprintf("input %d", k)
		}
		if batch, err = data.NewArrays(names, arrays, blabels); err != nil {
			return nil, err
		}
	}
	theta := e.Theta()
	grad := make([]float64, len(theta))
	vel := make([]float64, len(theta))
	run := theta // the point the gradient is taken at
	if set.Quantize != nil {
		run = make([]float64, len(theta))
		set.Quantize(run, theta)
		if err := e.SetTheta(run); err != nil {
			return nil, err
		}
		defer func() { _ = e.SetTheta(theta) }() // θ has the engine's length
	}
	res := &FineTuneResult{}
	tenth := max(1, set.Steps/10)
	var first, last float64
	for step := 0; step < set.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for j := 0; j < bs; j++ {
			if pos == n {
				rng.Shuffle(n, func(a, b int) { perm[a], perm[b] = perm[b], perm[a] })
				pos = 0
			}
			i := perm[pos]
			pos++
			for k, sz := range sizes {
				copy(bufs[k][j*sz:(j+1)*sz], all[k][i*sz:(i+1)*sz])
			}
			blabels[j] = labels[i]
		}
		ev, err := e.Gradient(ctx, batch, grad)
		if err != nil {
			return nil, err
		}
		for i := range theta {
			vel[i] = set.Momentum*vel[i] + grad[i]
			theta[i] -= set.LR * vel[i]
		}
		if set.Quantize != nil {
			set.Quantize(run, theta)
		}
		if err := e.SetTheta(run); err != nil {
			return nil, err
		}
		if step < tenth {
			first += ev.Loss
		}
		if step >= set.Steps-tenth {
			last += ev.Loss
		}
		if set.Progress != nil {
			set.Progress(step+1, ev.Loss)
		}
		res.Steps++
	}
	if set.Steps > 0 {
		res.FirstLoss, res.LastLoss = first/float64(min(tenth, set.Steps)), last/float64(min(tenth, set.Steps))
	}
	return res, nil
}
