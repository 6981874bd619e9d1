package nn

import (
	"context"
	"fmt"
	"sync"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/op"
)

// Eval summarizes a pass over a dataset.
type Eval struct {
	// Loss is the mean loss (the mean cross-entropy for class labels).
	Loss float64
	// Correct counts the predictions whose largest logit is the label (or,
	// for KL, the reference's largest logit) among Scored scored
	// predictions (samples for class labels, labelled positions for
	// per-position labels, 0 for MSE); N is the number of samples.
	Correct, Scored, N int
}

// Accuracy returns Correct/Scored (0 when nothing was scored).
func (r Eval) Accuracy() float64 {
	if r.Scored == 0 {
		return 0
	}
	return float64(r.Correct) / float64(r.Scored)
}

type mode int

const (
	modeEval mode = iota
	modeGrad
	modeHVP
)

// vecPool recycles the per-worker accumulators of passes (vectors of the
// length of θ), so that repeated products do not leave a
// garbage vector per worker and direction for the collector.
type vecPool struct {
	mu   sync.Mutex
	free map[int][][]float64
}

// get returns a vector of length n; its contents are undefined (chunks
// overwrite their accumulators).
func (p *vecPool) get(n int) []float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.free[n]; len(l) > 0 {
		v := l[len(l)-1]
		p.free[n] = l[:len(l)-1]
		return v
	}
	return make([]float64, n)
}

func (p *vecPool) put(v []float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.free == nil {
		p.free = make(map[int][][]float64)
	}
	p.free[len(v)] = append(p.free[len(v)], v)
}

// chunkResult is what one chunk contributes.
type chunkResult struct {
	loss            float64
	correct, scored int
	grad            []float64
	hv              [][]float64
	err             error
}

// pass runs the dataset through the engine in chunks, in parallel, and adds
// the chunk results in chunk order into grad / hv (which must be zeroed by
// the caller when used).
//
// The vectors vs and hv cover θ[base : base+len]. When hi > lo the
// directions are zero outside θ[lo:hi) and only θ[lo:hi) of the products is
// wanted: passes skip the steps before the first one reading those
// parameters.
func (e *Engine) pass(ctx context.Context, ds data.Dataset, md mode, vs [][]float64, grad []float64, hv [][]float64, base, lo, hi int) (Eval, error) {
	total := ds.Len()
	if total == 0 {
		return Eval{}, fmt.Errorf("nn: empty dataset")
	}
	denom, err := e.loss.Prepare(e.outShape, ds)
	if err != nil {
		return Eval{}, err
	}
	bs := e.opts.BatchSize
	chunks := (total + bs - 1) / bs
	workers := min(e.opts.Workers, chunks)
	scale := 1 / denom
	res := make([]chunkResult, workers)
	var held [][]float64
	vec := func(n int) []float64 {
		if n != len(e.theta) { // only full-length vectors are kept
			return make([]float64, n)
		}
		v := e.vecs.get(n)
		held = append(held, v)
		return v
	}
	defer func() {
		for _, v := range held {
			e.vecs.put(v)
		}
	}()
	for i := range res {
		if md == modeGrad {
			res[i].grad = vec(len(e.theta))
		}
		if md == modeHVP {
			res[i].hv = make([][]float64, len(vs))
			for j := range vs {
				res[i].hv[j] = vec(len(vs[j]))
			}
		}
	}
	var out Eval
	out.N = total
	lossSum := 0.0
	for wave := 0; wave < chunks; wave += workers {
		if err := ctx.Err(); err != nil {
			return Eval{}, err
		}
		var wg sync.WaitGroup
		nw := min(workers, chunks-wave)
		for i := 0; i < nw; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				start := (wave + i) * bs
				n := min(bs, total-start)
				e.chunk(ds, start, n, md, vs, scale, &res[i], base, lo, hi)
			}(i)
		}
		wg.Wait()
		for i := 0; i < nw; i++ {
			r := &res[i]
			if r.err != nil {
				return Eval{}, r.err
			}
			lossSum += r.loss
			out.Correct += r.correct
			out.Scored += r.scored
			if grad != nil {
				op.AddTo(grad, r.grad)
			}
			for j := range hv {
				op.AddTo(hv[j], r.hv[j])
			}
		}
	}
	out.Loss = lossSum / denom
	return out, nil
}

// chunk evaluates samples [start, start+n) into r (overwriting it).
func (e *Engine) chunk(ds data.Dataset, start, n int, md mode, vs [][]float64, scale float64, r *chunkResult, base, lo, hi int) {
	r.err = nil
	p, err := e.plan(n)
	if err != nil {
		r.err = err
		return
	}
	w := p.getWork()
	defer p.putWork(w)
	labels := w.labels[:n]
	if err := ds.Read(start, w.Val[p.in], labels); err != nil {
		r.err = fmt.Errorf("nn: reading samples %d..%d: %w", start, start+n, err)
		return
	}
	c := &Chunk{Start: start, N: n, Shape: e.outShape, Labels: labels, Out: w.Val[p.out]}
	if ref, ok := e.loss.(Referenced); ok {
		c.Ref = w.reference(ref.Reference())
	}
	out := p.out
	score := func(g, rz, rg []float64) {
		var err error
		r.loss, r.correct, r.scored, err = e.loss.Eval(c, scale, g, rz, rg)
		if err != nil && r.err == nil {
			r.err = err
		}
	}
	switch md {
	case modeEval:
		w.bind(e.theta, nil, nil, nil, 0)
		w.forwardQuant()
		score(nil, nil, nil)
	case modeGrad:
		clear(r.grad)
		w.bind(e.theta, nil, r.grad, nil, 0)
		w.forward()
		score(w.Adj[out], nil, nil)
		w.backward()
	case modeHVP:
		w.bind(e.theta, nil, nil, nil, 0)
		w.forward()
		score(w.Adj[out], nil, nil)
		w.backward()
		first := 0
		if hi > lo {
			first = p.span(lo, hi)
		}
		loss, correct, scored := r.loss, r.correct, r.scored
		for j, v := range vs {
			clear(r.hv[j])
			w.bind(e.theta, v, nil, r.hv[j], base)
			w.rforward(first)
			score(nil, w.RV[out], w.RAdj[out])
			w.rbackward(first)
		}
		r.loss, r.correct, r.scored = loss, correct, scored
	}
}

// reference runs the samples in the work's input at parameters ref
// (without input quantizers) and returns a copy of the outputs.
func (w *work) reference(ref []float64) []float64 {
	out := w.p.out
	if len(w.refBuf) != len(w.Val[out]) {
		w.refBuf = make([]float64, len(w.Val[out]))
	}
	w.bind(ref, nil, nil, nil, 0)
	w.forward()
	copy(w.refBuf, w.Val[out])
	return w.refBuf
}

func (e *Engine) checkData(ds data.Dataset) error {
	if ds == nil {
		return fmt.Errorf("nn: nil dataset")
	}
	if ds.Len() == 0 {
		return fmt.Errorf("nn: empty dataset")
	}
	ss := ds.SampleShape()
	if len(ss) != len(e.sample) {
		return fmt.Errorf("nn: samples have shape %v, the model expects %v", ss, e.sample)
	}
	for i := range ss {
		if ss[i] != e.sample[i] {
			return fmt.Errorf("nn: samples have shape %v, the model expects %v", ss, e.sample)
		}
	}
	return nil
}

// Evaluate returns the mean cross-entropy and the accuracy of the model on
// ds, with the input quantizers (SetInputQuantizer) applied.
func (e *Engine) Evaluate(ctx context.Context, ds data.Dataset) (Eval, error) {
	if err := e.checkData(ds); err != nil {
		return Eval{}, err
	}
	return e.pass(ctx, ds, modeEval, nil, nil, nil, 0, 0, 0)
}

// Gradient sets grad = ∇_θ L, the gradient of the mean cross-entropy over
// ds, and returns the evaluation. len(grad) must be Dim().
func (e *Engine) Gradient(ctx context.Context, ds data.Dataset, grad []float64) (Eval, error) {
	if err := e.checkData(ds); err != nil {
		return Eval{}, err
	}
	if len(grad) != len(e.theta) {
		return Eval{}, fmt.Errorf("nn: gradient buffer has %d values, want %d", len(grad), len(e.theta))
	}
	clear(grad)
	return e.pass(ctx, ds, modeGrad, nil, grad, nil, 0, 0, 0)
}

// HVP sets dst[j] = H·v[j] for the Hessian H of the mean cross-entropy over
// ds with respect to θ (exact, by the R-operator), sharing the value and
// adjoint passes between the vectors.
func (e *Engine) HVP(ctx context.Context, ds data.Dataset, dst, v [][]float64) error {
	if err := e.checkData(ds); err != nil {
		return err
	}
	if len(dst) != len(v) {
		return fmt.Errorf("nn: %d destination vectors for %d directions", len(dst), len(v))
	}
	for j := range v {
		if len(v[j]) != len(e.theta) || len(dst[j]) != len(e.theta) {
			return fmt.Errorf("nn: vector %d has %d values (destination %d), want %d", j, len(v[j]), len(dst[j]), len(e.theta))
		}
		clear(dst[j])
	}
	if len(v) == 0 {
		return nil
	}
	_, err := e.pass(ctx, ds, modeHVP, v, nil, dst, 0, 0, 0)
	return err
}

// BlockTrace returns the exact trace of the Hessian's diagonal block on
// θ[b.Offset : b.Offset+b.Size], Σ_i (H e_i)_i over the block's unit vectors
// e_i, in ⌈Size/batch⌉ batched products (batch ≤ 0 means 32). Each product
// runs the R-forward pass only from the first layer reading the block and
// the R-backward pass only down to it, so late layers are cheap. This is the
// ground truth the stochastic estimators (Hutchinson, Hutch++) approximate.
func (e *Engine) BlockTrace(ctx context.Context, ds data.Dataset, b hessian.Block, batch int) (float64, error) {
	if err := e.checkData(ds); err != nil {
		return 0, err
	}
	if b.Size <= 0 || b.Offset < 0 || b.Offset+b.Size > len(e.theta) {
		return 0, fmt.Errorf("nn: block %q [%d, %d) outside θ [0, %d)", b.Name, b.Offset, b.Offset+b.Size, len(e.theta))
	}
	if batch <= 0 {
		batch = 32
	}
	// Vectors local to the block when it is made of whole parameter
	// tensors (a unit's block is), else full-length.
	lo, hi := b.Offset, b.Offset+b.Size
	aligned := true
	for _, p := range e.params {
		if p.Offset < hi && p.Offset+p.Size > lo && (p.Offset < lo || p.Offset+p.Size > hi) {
			aligned = false
		}
	}
	base, n := lo, b.Size
	if !aligned {
		base, n = 0, len(e.theta)
	}
	tr := 0.0
	vs, hv := make([][]float64, batch), make([][]float64, batch)
	for j := range vs {
		vs[j], hv[j] = make([]float64, n), make([]float64, n)
	}
	for i0 := 0; i0 < b.Size; i0 += batch {
		k := min(batch, b.Size-i0)
		for j := 0; j < k; j++ {
			clear(vs[j])
			clear(hv[j])
			vs[j][lo-base+i0+j] = 1
		}
		if _, err := e.pass(ctx, ds, modeHVP, vs[:k], nil, hv[:k], base, lo, hi); err != nil {
			return 0, err
		}
		for j := 0; j < k; j++ {
			tr += hv[j][lo-base+i0+j]
		}
	}
	return tr, nil
}

// Logits runs the model on n samples x (n·prod(SampleShape) values) and
// returns the n×Classes() logits, with the input quantizers applied.
func (e *Engine) Logits(x []float64, n int) ([]float64, error) {
	p, w, err := e.forwardOn(x, n)
	if err != nil {
		return nil, err
	}
	defer p.putWork(w)
	return append([]float64(nil), w.Val[p.out]...), nil
}

// forwardOn checks n samples x, runs the forward pass (input quantizers
// applied) on a work area of the plan for n and returns both; the caller
// returns the work area with p.putWork.
func (e *Engine) forwardOn(x []float64, n int) (*plan, *work, error) {
	size := op.Numel(e.sample)
	if n <= 0 || len(x) != n*size {
		return nil, nil, fmt.Errorf("nn: %d input values for %d samples of shape %v", len(x), n, e.sample)
	}
	p, err := e.plan(n)
	if err != nil {
		return nil, nil, err
	}
	w := p.getWork()
	copy(w.Val[p.in], x)
	w.bind(e.theta, nil, nil, nil, 0)
	w.forwardQuant()
	return p, w, nil
}

// Tensor is an intermediate value of the graph.
type Tensor struct {
	Shape []int
	Data  []float64
}

// Intermediates runs the model on n samples x and returns every tensor the
// plan holds by name: the input, parameters, constants (including folded
// shape values) and activations. It is meant for debugging and for
// comparing with other runtimes node by node. Input quantizers act on
// private copies: a quantized unit's input is reported unquantized, its
// output (and everything downstream) as computed from the quantized copy.
func (e *Engine) Intermediates(x []float64, n int) (map[string]Tensor, error) {
	p, w, err := e.forwardOn(x, n)
	if err != nil {
		return nil, err
	}
	defer p.putWork(w)
	out := make(map[string]Tensor, len(p.slots))
	for i, s := range p.slots {
		out[s.name] = Tensor{Shape: append([]int(nil), s.shape...), Data: append([]float64(nil), w.Val[i]...)}
	}
	return out, nil
}
