package nn

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
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

// vecPool recycles the vectors of passes: the per-parameter accumulators
// of chunks (see accum), the converted copies of directions' parameters
// and a Referenced loss's float32 reference, so that repeated products do
// not leave garbage for the collector. It hands out the smallest free
// vector at least as long as asked for (resliced), so that a few vectors
// of the largest parameters' size serve every smaller one.
type vecPool[T op.Real] struct {
	mu   sync.Mutex
	free [][]T // by capacity, ascending
}

// get returns a vector of length n; its contents are undefined.
func (p *vecPool[T]) get(n int) []T {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, _ := slices.BinarySearchFunc(p.free, n, func(v []T, n int) int { return cmp.Compare(cap(v), n) })
	if i < len(p.free) {
		v := p.free[i]
		p.free = slices.Delete(p.free, i, i+1)
		return v[:n]
	}
	return make([]T, n)
}

func (p *vecPool[T]) put(v []T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, _ := slices.BinarySearchFunc(p.free, cap(v), func(v []T, n int) int { return cmp.Compare(cap(v), n) })
	p.free = slices.Insert(p.free, i, v)
}

// poolOf returns the engine's vector pool of element type T.
func poolOf[T op.Real](e *Engine) *vecPool[T] {
	if p, ok := any(&e.vecs).(*vecPool[T]); ok {
		return p
	}
	return any(&e.vecs32).(*vecPool[T])
}

// chunkResult is what one chunk contributes besides its derivatives (which
// go through the pass's accum).
type chunkResult struct {
	loss            float64
	correct, scored int
	err             error
}

// accum adds a pass's parameter derivatives (the gradient, or one product
// per direction) into the float64 results, parameter by parameter: a
// chunk accumulates a parameter's contribution in a vector of precision T
// taken at the parameter's first accumulation in the backward (or
// R-backward) pass and hands it over after the last, and the chunks'
// vectors of a parameter are added in chunk order, whichever chunk ends
// first — the sums of a full accumulator per chunk added chunk after
// chunk, bit for bit, without a θ-sized vector per worker.
type accum[T op.Real] struct {
	e   *Engine
	dst [][]float64 // per direction (one for the gradient), covering θ[base:]
	// base is the offset in θ of dst's first element.
	base int
	// params holds, per parameter, the order of its chunks' hand-overs.
	params []paramAcc[T]
}

// paramAcc orders one parameter's hand-overs.
type paramAcc[T op.Real] struct {
	mu sync.Mutex
	// next is, per direction, the chunk whose vector is added next;
	// pending holds the vectors of later chunks handed over early (nil:
	// the chunk had nothing to add).
	next    []int
	pending map[[2]int][]T
}

func newAccum[T op.Real](e *Engine, dst [][]float64, base int) *accum[T] {
	a := &accum[T]{e: e, dst: dst, base: base, params: make([]paramAcc[T], len(e.params))}
	for i := range a.params {
		a.params[i].next = make([]int, len(dst))
	}
	return a
}

// wanted reports whether parameter i lies inside the results' range.
func (a *accum[T]) wanted(i int) bool {
	if len(a.dst) == 0 {
		return false
	}
	prm := a.e.params[i]
	lo := prm.Offset - a.base
	return lo >= 0 && lo+prm.Size <= len(a.dst[0])
}

// handOver adds chunk c's vector v for parameter i and direction j (nil:
// nothing to add) once every earlier chunk's is added, with those of later
// chunks that wait for it, and returns the added vectors to the pool.
func (a *accum[T]) handOver(i, j, c int, v []T) {
	pa := &a.params[i]
	pa.mu.Lock()
	defer pa.mu.Unlock()
	if pa.next[j] != c {
		if pa.pending == nil {
			pa.pending = make(map[[2]int][]T)
		}
		pa.pending[[2]int{j, c}] = v
		return
	}
	off := a.e.params[i].Offset - a.base
	for {
		if v != nil {
			addInto(a.dst[j][off:off+len(v)], v)
			poolOf[T](a.e).put(v)
		}
		pa.next[j]++
		var ok bool
		if v, ok = pa.pending[[2]int{j, pa.next[j]}]; !ok {
			return
		}
		delete(pa.pending, [2]int{j, pa.next[j]})
	}
}

// addInto adds src into the float64 vector dst.
func addInto[T op.Real](dst []float64, src []T) {
	if s, ok := any(src).([]float64); ok {
		op.AddTo(dst, s)
		return
	}
	addWide(dst, any(src).([]float32))
}

// accState is a chunk's side of an accum for one direction: which buffer
// kind of the parameter slots receives the derivatives (bufAdj for the
// gradient, bufRAdj for products), and the vector held per parameter.
type accState[T op.Real] struct {
	a          *accum[T]
	kind       int
	dir, chunk int
	held       [][]T
	done       []bool
}

// startAcc makes the backward (kind bufAdj) or R-backward (bufRAdj)
// passes that follow accumulate the parameters' derivatives for direction
// j of chunk c into a.
func (w *work[T]) startAcc(a *accum[T], kind, j, c int) {
	s := &w.acc
	if len(s.held) != len(w.p.e.params) {
		s.held, s.done = make([][]T, len(w.p.e.params)), make([]bool, len(w.p.e.params))
	}
	s.a, s.kind, s.dir, s.chunk = a, kind, j, c
	clear(s.held)
	clear(s.done)
}

// accTake gives the parameters whose derivative step i of kind k starts
// accumulating a zeroed vector.
func (w *work[T]) accTake(k, i int) {
	s := &w.acc
	if s.a == nil || s.kind != k {
		return
	}
	for _, q := range w.p.accTake[i] {
		if s.done[q] || s.held[q] != nil || !s.a.wanted(q) {
			continue
		}
		v := poolOf[T](w.p.e).get(w.p.e.params[q].Size)
		clear(v)
		s.held[q] = v
		w.entries(k)[w.p.pslot[q]] = v
	}
}

// accGive hands over the parameters whose last accumulation is step i.
func (w *work[T]) accGive(k, i int) {
	s := &w.acc
	if s.a == nil || s.kind != k {
		return
	}
	for _, q := range w.p.accGive[i] {
		w.handOver(q)
	}
}

// handOver hands parameter q's vector (or nothing) over to the accum.
func (w *work[T]) handOver(q int) {
	s := &w.acc
	if s.done[q] {
		return
	}
	s.done[q] = true
	v := s.held[q]
	s.held[q] = nil
	w.entries(s.kind)[w.p.pslot[q]] = nil
	if v != nil || s.a.wanted(q) {
		s.a.handOver(q, s.dir, s.chunk, v)
	}
}

// endAcc hands over every parameter not handed over yet (read only by
// steps a late start skipped, or by none: nothing to add) and detaches the
// accum.
func (w *work[T]) endAcc() {
	s := &w.acc
	if s.a == nil {
		return
	}
	for q := range s.held {
		w.handOver(q)
	}
	s.a = nil
}

// dirState is a float32 work's direction during a product: the float64
// direction v covering θ[base:], whose parameters' components are
// converted where a step's R-passes read them (dirTake) instead of once
// into a θ-sized float32 copy; held are the converted vectors.
type dirState[T op.Real] struct {
	v    []float64
	base int
	held [][]T
}

// dirTake gives the parameters step i reads their R-values, converted from
// the direction, for its R-forward event, or its R-backward event (rb)
// when that reads its inputs' R-values (op.Retains.InRV); a no-op when the
// direction has precision T and is bound whole.
func (w *work[T]) dirTake(i int, rb bool) {
	d := &w.dir
	if d.v == nil || (rb && !w.p.all[i] && !w.p.retains[i].InRV) {
		return
	}
	if len(d.held) != len(w.p.e.params) {
		d.held = make([][]T, len(w.p.e.params))
	}
	for _, q := range w.p.stepParams[i] {
		prm := w.p.e.params[q]
		lo := prm.Offset - d.base
		if lo < 0 || lo+prm.Size > len(d.v) {
			continue
		}
		x := poolOf[T](w.p.e).get(prm.Size)
		for k, v := range d.v[lo : lo+prm.Size] {
			x[k] = T(v)
		}
		d.held[q] = x
		w.RV[w.p.pslot[q]] = x
	}
}

// dirGive returns the R-values dirTake gave step i.
func (w *work[T]) dirGive(i int) {
	d := &w.dir
	if d.v == nil {
		return
	}
	for _, q := range w.p.stepParams[i] {
		if x := d.held[q]; x != nil {
			d.held[q] = nil
			w.RV[w.p.pslot[q]] = nil
			poolOf[T](w.p.e).put(x)
		}
	}
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
	var acc any
	if dst := hv; md == modeGrad || md == modeHVP {
		if md == modeGrad {
			dst = [][]float64{grad}
		}
		if e.prec == Float32 {
			acc = newAccum[float32](e, dst, base)
		} else {
			acc = newAccum[float64](e, dst, base)
		}
	}
	cv := e.convertPass()
	defer e.releasePass(cv)
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
				e.chunk(ds, start, n, md, vs, scale, &res[i], base, lo, hi, cv, acc)
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
		}
	}
	out.Loss = lossSum / denom
	return out, nil
}

// chunk evaluates samples [start, start+n) into r (overwriting it), in
// the engine's precision.
func (e *Engine) chunk(ds data.Dataset, start, n int, md mode, vs [][]float64, scale float64, r *chunkResult, base, lo, hi int, cv *converted, acc any) {
	if e.prec == Float32 {
		a, _ := acc.(*accum[float32])
		runChunk(e, ds, start, n, md, vs, scale, r, base, lo, hi, cv, a)
	} else {
		a, _ := acc.(*accum[float64])
		runChunk(e, ds, start, n, md, vs, scale, r, base, lo, hi, cv, a)
	}
}

// converted holds a pass's float32 copies of θ and a Referenced loss's
// parameters, shared read-only by its chunks (nil in float64). The
// directions are converted parameter by parameter where a step reads
// them (see work.dirTake).
type converted struct {
	theta, ref []float32
}

// convertPass returns the float32 copies a pass of the engine needs, or
// nil in float64.
func (e *Engine) convertPass() *converted {
	if e.prec != Float32 {
		return nil
	}
	cv := &converted{theta: e.theta32()}
	conv := func(v []float64) []float32 {
		f := e.vecs32.get(len(v))
		for i, x := range v {
			f[i] = float32(x)
		}
		return f
	}
	if ref, ok := e.loss.(Referenced); ok {
		cv.ref = conv(ref.Reference())
	}
	return cv
}

// releasePass returns a pass's converted vectors to the pool (they are
// garbage otherwise).
func (e *Engine) releasePass(cv *converted) {
	if cv == nil {
		return
	}
	if cv.ref != nil {
		e.vecs32.put(cv.ref)
	}
}

// pick returns x as []T when it already has that type (float64 runs), else
// its float32 copy f.
func pick[T op.Real](x []float64, f []float32) []T {
	if t, ok := any(x).([]T); ok {
		return t
	}
	return any(f).([]T)
}

// staging returns *buf resized to n (float64 staging of a float32 run).
func staging(buf *[]float64, n int) []float64 {
	if len(*buf) != n {
		*buf = make([]float64, n)
	}
	return *buf
}

// addWide adds the float32 vector src into the float64 vector dst.
func addWide(dst []float64, src []float32) {
	for i, v := range src {
		dst[i] += float64(v)
	}
}

// readInputs reads samples [start, start+len(labels)) of ds into the
// plan's input slots (through float64 staging when T is float32) and
// checks that integer inputs hold integers.
func (w *work[T]) readInputs(ds data.Dataset, start int, labels []int) error {
	p := w.p
	n := len(labels)
	if w.ins64 == nil {
		w.ins64 = make([][]float64, len(p.ins))
	}
	bufs := make([][]float64, len(p.ins))
	for i, s := range p.ins {
		if x, ok := any(w.Val[s]).([]float64); ok {
			bufs[i] = x
		} else {
			bufs[i] = staging(&w.ins64[i], len(w.Val[s]))
		}
	}
	var err error
	if mi, ok := ds.(data.Inputs); ok && len(p.ins) > 1 {
		err = mi.ReadInputs(start, bufs, labels)
	} else {
		err = ds.Read(start, bufs[0], labels)
	}
	if err != nil {
		return fmt.Errorf("nn: reading samples %d..%d: %w", start, start+n, err)
	}
	for i, in := range p.e.inputs {
		if err := checkInteger(in, bufs[i], start, inputSource(ds, i)); err != nil {
			return err
		}
		if x := w.Val[p.ins[i]]; !isFloat64(x) {
			for k, v := range bufs[i] {
				x[k] = T(v)
			}
		}
	}
	return nil
}

// isFloat64 reports whether x is a []float64 (the data's own buffer).
func isFloat64[T op.Real](x []T) bool {
	_, ok := any(x).([]float64)
	return ok
}

// checkInteger reports a value of an integer input that is not an integer
// (a rounded float where token ids were expected).
func checkInteger(in Input, x []float64, start int, src string) error {
	if !in.Integer {
		return nil
	}
	per := max(op.Numel(in.Sample), 1)
	for k, v := range x {
		if v != math.Trunc(v) {
			where := ""
			if src != "" {
				where = src + ": "
			}
			return fmt.Errorf("nn: %ssample %d of input %q (%v) holds %v, not an integer", where, start+k/per, in.Name, in.Type, v)
		}
	}
	return nil
}

// float64s returns x as float64: itself in float64, else converted into
// *buf (nil for nil).
func float64s[T op.Real](x []T, buf *[]float64) []float64 {
	if x == nil {
		return nil
	}
	if f, ok := any(x).([]float64); ok {
		return f
	}
	b := staging(buf, len(x))
	for i, v := range x {
		b[i] = float64(v)
	}
	return b
}

func runChunk[T op.Real](e *Engine, ds data.Dataset, start, n int, md mode, vs [][]float64, scale float64, r *chunkResult, base, lo, hi int, cv *converted, acc *accum[T]) {
	r.err = nil
	p, err := e.plan(n)
	if err != nil {
		r.err = err
		return
	}
	w := getWork[T](p)
	defer w.release()
	labels := w.labels[:n]
	if err := w.readInputs(ds, start, labels); err != nil {
		r.err = err
		return
	}
	var theta []T
	if cv != nil {
		theta = any(cv.theta).([]T)
	} else {
		theta = any(e.theta).([]T)
	}
	out := p.out
	c := &Chunk{Start: start, N: n, Shape: e.outShape, Labels: labels}
	if ref, ok := e.loss.(Referenced); ok {
		var rt []T
		if cv != nil {
			rt = any(cv.ref).([]T)
		} else {
			rt = any(ref.Reference()).([]T)
		}
		c.Ref = w.reference(rt)
	}
	// score evaluates the loss on the output (float64 at the boundary):
	// with grad it sets the output's adjoint, with hv its R-adjoint.
	score := func(grad, hv bool) {
		c.Out = float64s(w.Val[out], &w.out64)
		var g, rz, rg []float64
		if grad {
			g = staging(&w.g64, len(w.Val[out]))
			if t, ok := any(w.Adj[out]).([]float64); ok {
				g = t
			}
		}
		if hv {
			rz = float64s(w.RV[out], &w.rz64)
			rg = staging(&w.rg64, len(w.Val[out]))
			if t, ok := any(w.RAdj[out]).([]float64); ok {
				rg = t
			}
			clear(rg)
		}
		var err error
		r.loss, r.correct, r.scored, err = e.loss.Eval(c, scale, g, rz, rg)
		if err != nil && r.err == nil {
			r.err = err
		}
		if g != nil {
			if _, same := any(w.Adj[out]).([]float64); !same {
				for i, v := range g {
					w.Adj[out][i] = T(v)
				}
			}
		}
		if rg != nil {
			if _, same := any(w.RAdj[out]).([]float64); !same {
				for i, v := range rg {
					w.RAdj[out][i] = T(v)
				}
			}
		}
	}
	// fail records an index out of range found after the forward pass.
	fail := func(err error) bool {
		if err != nil {
			r.err = fmt.Errorf("%w (samples %d..%d)", err, start, start+n)
			return true
		}
		return false
	}
	switch md {
	case modeEval:
		w.bind(theta, nil, nil, nil, 0)
		w.forwardQuant(modeEval)
		if fail(w.validate(md)) {
			return
		}
		score(false, false)
	case modeGrad:
		w.bind(theta, nil, nil, nil, 0)
		w.forwardGrad()
		if fail(w.validate(md)) {
			return
		}
		w.takeAt(w.schedule(modeGrad), p.tScore())
		score(true, false)
		w.giveAt(w.schedule(modeGrad), p.tScore())
		w.startAcc(acc, bufAdj, 0, start/e.opts.BatchSize)
		w.backwardGrad()
		w.endAcc()
	case modeHVP:
		// One direction: the backward pass fused into the R-backward
		// pass (modeHVP1), so adjoints need not outlive it; several share
		// one backward pass.
		sm := modeHVP
		if len(vs) == 1 {
			sm = modeHVP1
		}
		sc := p.sched[sm]
		w.bind(theta, nil, nil, nil, 0)
		w.forward(sm)
		if fail(w.validate(sm)) {
			return
		}
		w.takeAt(sc, p.tScore())
		score(true, false)
		w.giveAt(sc, p.tScore())
		if sm == modeHVP {
			w.backward(modeHVP)
		}
		first := 0
		if hi > lo {
			first = p.span(lo, hi)
		}
		loss, correct, scored := r.loss, r.correct, r.scored
		for j, v := range vs {
			vt, isT := any(v).([]T)
			if !isT {
				w.dir.v, w.dir.base = v, base
			}
			w.bind(theta, vt, nil, nil, base)
			w.rforward(sm, first)
			w.takeAt(sc, p.tScoreR())
			score(false, true)
			w.giveAt(sc, p.tScoreR())
			w.startAcc(acc, bufRAdj, j, start/e.opts.BatchSize)
			if sm == modeHVP1 {
				w.reverse(first)
			} else {
				w.rbackward(first)
			}
			w.endAcc()
			w.dir.v = nil
		}
		r.loss, r.correct, r.scored = loss, correct, scored
	}
}

// reference runs the samples in the work's input at parameters ref
// (without input quantizers) and returns a copy of the outputs.
func (w *work[T]) reference(ref []T) []float64 {
	out := w.p.out
	if n := w.p.slots[out].size; len(w.refBuf) != n {
		w.refBuf = make([]float64, n)
	}
	w.bind(ref, nil, nil, nil, 0)
	w.forward(modeEval)
	for i, v := range w.Val[out] {
		w.refBuf[i] = float64(v)
	}
	if !w.full {
		w.giveAll()
	}
	return w.refBuf
}

func (e *Engine) checkData(ds data.Dataset) error {
	if ds == nil {
		return fmt.Errorf("nn: nil dataset")
	}
	if ds.Len() == 0 {
		return fmt.Errorf("nn: empty dataset")
	}
	shapes := [][]int{ds.SampleShape()}
	if mi, ok := ds.(data.Inputs); ok {
		shapes = mi.SampleShapes()
	}
	if len(e.inputs) > 1 {
		if _, ok := ds.(data.Inputs); !ok || len(shapes) != len(e.inputs) {
			return fmt.Errorf("nn: the model has %d inputs (%s) but the data has %d; give one array per input", len(e.inputs), e.inputNames(), len(shapes))
		}
	}
	for i, in := range e.inputs {
		if !slices.Equal(shapes[i], in.Sample) {
			if src := inputSource(ds, i); src != "" {
				return fmt.Errorf("nn: %s: samples have shape %v, model input %q expects %v", src, shapes[i], in.Name, in.Sample)
			}
			if len(e.inputs) == 1 {
				return fmt.Errorf("nn: samples have shape %v, the model expects %v", shapes[i], in.Sample)
			}
			return fmt.Errorf("nn: samples of input %d have shape %v, model input %q expects %v", i, shapes[i], in.Name, in.Sample)
		}
	}
	return nil
}

// inputNames lists the inputs' names for messages.
func (e *Engine) inputNames() string {
	names := make([]string, len(e.inputs))
	for i, in := range e.inputs {
		names[i] = in.Name
	}
	return strings.Join(names, ", ")
}

// inputSource names where input i of ds comes from (a file, an archive's
// array), or "" when ds does not say.
func inputSource(ds data.Dataset, i int) string {
	switch d := ds.(type) {
	case *data.Arrays:
		if i < len(d.Files) {
			return d.Files[i]
		}
	case *data.NPZDataset:
		if i < len(d.Names) {
			return fmt.Sprintf("%s (array %q)", d.Path, d.Names[i])
		}
	}
	return ""
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
	if len(grad) != e.dim {
		return Eval{}, fmt.Errorf("nn: gradient buffer has %d values, want %d", len(grad), e.dim)
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
	if err := checkVectors(dst, v, e.dim, ""); err != nil || len(v) == 0 {
		return err
	}
	_, err := e.pass(ctx, ds, modeHVP, v, nil, dst, 0, 0, 0)
	return err
}

// checkVectors checks that dst and v pair up with n values each (what
// names n in the message: "" or "the block's ") and clears dst.
func checkVectors(dst, v [][]float64, n int, what string) error {
	if len(dst) != len(v) {
		return fmt.Errorf("nn: %d destination vectors for %d directions", len(dst), len(v))
	}
	for j := range v {
		if len(v[j]) != n || len(dst[j]) != n {
			return fmt.Errorf("nn: vector %d has %d values (destination %d), want %s%d", j, len(v[j]), len(dst[j]), what, n)
		}
		clear(dst[j])
	}
	return nil
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
	if b.Size <= 0 || b.Offset < 0 || b.Offset+b.Size > e.dim {
		return 0, fmt.Errorf("nn: block %q [%d, %d) outside θ [0, %d)", b.Name, b.Offset, b.Offset+b.Size, e.dim)
	}
	if batch <= 0 {
		batch = 32
	}
	// Vectors local to the block when it is made of whole parameter
	// tensors (a unit's block is), else full-length.
	lo, hi := b.Offset, b.Offset+b.Size
	base, n := lo, b.Size
	if !e.wholeParams(lo, hi) {
		base, n = 0, e.dim
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

// wholeParams reports whether θ[lo:hi] is made of whole parameter
// tensors (no tensor straddles either end).
func (e *Engine) wholeParams(lo, hi int) bool {
	for _, p := range e.params {
		if p.Offset < hi && p.Offset+p.Size > lo && (p.Offset < lo || p.Offset+p.Size > hi) {
			return false
		}
	}
	return true
}

// BlockHVP sets dst[j] = H_bb·v[j] for the diagonal block H_bb of the
// Hessian of HVP on θ[b.Offset : b.End()]: directions and products are
// local to the block (b.Size values each), as if v[j] were zero outside
// it. The block must be made of whole parameter tensors (a unit's Offset
// and Size are). Like BlockTrace's, the products run the R-forward pass
// only from the first layer reading the block and the R-backward pass
// only down to it, sharing the value and adjoint passes between the
// vectors; vᵀH_bb v is then the exact second-order term of moving those
// parameters alone along v.
func (e *Engine) BlockHVP(ctx context.Context, ds data.Dataset, b hessian.Block, dst, v [][]float64) error {
	if err := e.checkData(ds); err != nil {
		return err
	}
	lo, hi := b.Offset, b.Offset+b.Size
	if b.Size <= 0 || lo < 0 || hi > e.dim {
		return fmt.Errorf("nn: block %q [%d, %d) outside θ [0, %d)", b.Name, lo, hi, e.dim)
	}
	if !e.wholeParams(lo, hi) {
		return fmt.Errorf("nn: block %q [%d, %d) splits a parameter tensor", b.Name, lo, hi)
	}
	if err := checkVectors(dst, v, b.Size, "the block's "); err != nil || len(v) == 0 {
		return err
	}
	_, err := e.pass(ctx, ds, modeHVP, v, nil, dst, lo, lo, hi)
	return err
}

// Logits runs the model on n samples x (n·prod(SampleShape) values) of its
// only input and returns the n×Classes() logits (the outputs, n ×
// prod(OutputShape())), with the input quantizers applied.
func (e *Engine) Logits(x []float64, n int) ([]float64, error) {
	return e.LogitsInputs([][]float64{x}, n)
}

// LogitsInputs is Logits for a model with several inputs: xs[i] holds n
// samples of input i (Inputs()[i]), integer inputs as integer values.
func (e *Engine) LogitsInputs(xs [][]float64, n int) ([]float64, error) {
	var out []float64
	err := e.onForward(xs, n, false, func(get func(slot int) []float64, p *plan) {
		out = slices.Clone(get(p.out))
	})
	return out, err
}

// onForward checks n samples of every input xs, runs the forward pass
// (input quantizers applied) on a work area of the plan for n in the
// engine's precision, and calls f with an accessor of slot values as
// float64: of every slot when full, else of the output only.
func (e *Engine) onForward(xs [][]float64, n int, full bool, f func(get func(slot int) []float64, p *plan)) error {
	if len(xs) != len(e.inputs) {
		return fmt.Errorf("nn: %d input arrays for a model with %d inputs (%s)", len(xs), len(e.inputs), e.inputNames())
	}
	if n <= 0 {
		return fmt.Errorf("nn: %d samples, want at least 1", n)
	}
	for i, in := range e.inputs {
		if size := op.Numel(in.Sample); len(xs[i]) != n*size {
			return fmt.Errorf("nn: %d values of input %q for %d samples of shape %v", len(xs[i]), in.Name, n, in.Sample)
		}
		if err := checkInteger(in, xs[i], 0, ""); err != nil {
			return err
		}
	}
	p, err := e.plan(n)
	if err != nil {
		return err
	}
	if e.prec == Float32 {
		return forwardOn[float32](e, p, xs, full, f)
	}
	return forwardOn[float64](e, p, xs, full, f)
}

func forwardOn[T op.Real](e *Engine, p *plan, xs [][]float64, full bool, f func(get func(slot int) []float64, p *plan)) error {
	w := getWork[T](p)
	if full {
		w = getFullWork[T](p)
	}
	defer w.release()
	for j, s := range p.ins {
		in := w.Val[s]
		for i, v := range xs[j] {
			in[i] = T(v)
		}
	}
	w.bind(pick[T](e.theta, e.theta32()), nil, nil, nil, 0)
	w.forwardQuant(modeEval)
	if err := w.validate(modeEval); err != nil {
		return err
	}
	f(func(slot int) []float64 {
		var buf []float64
		return float64s(w.Val[slot], &buf)
	}, p)
	return nil
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
	return e.IntermediatesInputs([][]float64{x}, n)
}

// IntermediatesInputs is Intermediates for a model with several inputs
// (xs[i] holds n samples of input i).
func (e *Engine) IntermediatesInputs(xs [][]float64, n int) (map[string]Tensor, error) {
	var out map[string]Tensor
	err := e.onForward(xs, n, true, func(get func(slot int) []float64, p *plan) {
		out = make(map[string]Tensor, len(p.slots))
		for i, s := range p.slots {
			out[s.name] = Tensor{Shape: append([]int(nil), s.shape...), Data: slices.Clone(get(i))}
		}
	})
	return out, err
}
