package nn

import (
	"context"
	"fmt"
	"sync"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/op"
)

// InputChunk is one chunk of samples of an InputHVP call: the data inputs
// of the requested units on samples [Start, Start+N) and, per direction,
// the directions and their products.
type InputChunk struct {
	// Start is the index of the chunk's first sample and N its number of
	// samples.
	Start, N int
	// X[u] holds unit u's data input on the chunk (N × the input's
	// per-sample elements, batch-major, at the float model); read-only.
	X [][]float64
	// V[j][u] is direction j's component on unit u's input (len(X[u])
	// values, zeroed before fill) and HV[j][u] the same component of the
	// product H·v_j (set before take); both are nil for the units a
	// direction is not on (see InputHVP's dirs).
	V, HV [][][]float64
}

// InputHVP computes exact Hessian-vector products (R-operator) of the
// engine's loss over ds with respect to the data inputs of the named
// units, as each unit reads it: the perturbation δ_u is added to unit u's
// own copy of its input (the copy SetInputQuantizer acts on), so other
// readers of the same tensor — a residual branch, another unit — do not
// see it. The Hessian is that of L(θ; δ_1, …, δ_U) at δ = 0 over the
// joint δ, so a product H·v with components on several units carries the
// cross terms H_{uk}·v_k in its unit-u component, and its diagonal block
// for unit u is H_a, the Hessian of the loss with respect to that unit's
// input activation (what a second-order estimate of activation
// quantization error needs).
//
// dirs has one entry per direction: −1 for a direction over every unit's
// input, or the index in units of the only unit it is on (its other
// components are zero, and only that unit's component of the product is
// returned). A direction's R-passes start at the step of the first unit
// it is on, so a direction on a late unit is cheap, and one probe per
// unit gives Hutchinson samples of each diagonal block H_a without the
// variance the cross terms H_{uk} add to joint probes.
//
// Samples are processed in chunks of the engine's batch size on its
// workers, and the directions share each chunk's value and adjoint passes.
// For every chunk fill is called with X set and V zeroed, to set the
// directions; after the products take is called with HV set. The loss is
// the mean over all of ds, so summing Σ v·Hv over the chunks gives vᵀHv
// for the whole dataset (the Hessian is block diagonal over samples: the
// engine evaluates in inference mode, where samples do not interact).
// Calls for different chunks may run concurrently; fill and take must be
// safe for that, and the slices they see are valid only during the call.
// Input quantizers are not applied (derivatives of the float model).
func (e *Engine) InputHVP(ctx context.Context, ds data.Dataset, units []string, dirs []int, fill func(c *InputChunk), take func(c *InputChunk) error) error {
	if err := e.checkData(ds); err != nil {
		return err
	}
	if len(dirs) < 1 {
		return fmt.Errorf("nn: InputHVP needs at least one direction")
	}
	if len(units) == 0 {
		return fmt.Errorf("nn: InputHVP needs at least one unit")
	}
	for j, d := range dirs {
		if d < -1 || d >= len(units) {
			return fmt.Errorf("nn: InputHVP direction %d is on unit %d, want -1 (all units) or one of the %d units", j, d, len(units))
		}
	}
	idx := make([]int, len(units))
	for i, name := range units {
		idx[i] = -1
		for j, u := range e.units {
			if u.Name == name {
				idx[i] = j
			}
		}
		switch {
		case idx[i] < 0:
			return fmt.Errorf("nn: no unit named %q", name)
		case !e.units[idx[i]].HasInput:
			return fmt.Errorf("nn: unit %q has no data input in the graph (the %s node computes it inside)", name, e.units[idx[i]].Op)
		}
	}
	denom, err := e.loss.Prepare(e.outShape, ds)
	if err != nil {
		return err
	}
	total := ds.Len()
	bs := e.opts.BatchSize
	chunks := (total + bs - 1) / bs
	workers := min(e.opts.Workers, chunks)
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				c := next
				next++
				stop := first != nil || c >= chunks
				mu.Unlock()
				if stop {
					return
				}
				err := ctx.Err()
				if err == nil {
					start := c * bs
					n := min(bs, total-start)
					if e.prec == Float32 {
						err = inputHVPChunk[float32](e, ds, start, n, idx, dirs, 1/denom, fill, take)
					} else {
						err = inputHVPChunk[float64](e, ds, start, n, idx, dirs, 1/denom, fill, take)
					}
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// inputHVPChunk runs InputHVP on samples [start, start+n): one value and
// adjoint pass, then per direction an R-forward pass that adds the
// direction to each unit's input at that unit's step only, and an
// R-backward pass that collects the R-adjoint each unit's step sends to
// its input (before it joins the tensor's other readers' contributions).
func inputHVPChunk[T op.Real](e *Engine, ds data.Dataset, start, n int, units []int, dirs []int, scale float64, fill func(c *InputChunk), take func(c *InputChunk) error) error {
	p, err := e.plan(n)
	if err != nil {
		return err
	}
	w := getWork[T](p)
	defer w.release()
	labels := w.labels[:n]
	if err := w.readInputs(ds, start, labels); err != nil {
		return err
	}
	theta := pick[T](e.theta, e.theta32())
	out := p.out
	lc := &Chunk{Start: start, N: n, Shape: e.outShape, Labels: labels}
	if ref, ok := e.loss.(Referenced); ok {
		r := ref.Reference()
		rt := make([]T, len(r))
		for i, v := range r {
			rt[i] = T(v)
		}
		lc.Ref = w.reference(rt)
	}
	w.bind(theta, nil, nil, nil, 0)
	w.forward(modeHVP)
	if err := w.validate(modeHVP); err != nil {
		return fmt.Errorf("%w (samples %d..%d)", err, start, start+n)
	}
	sc := p.sched[modeHVP]
	lc.Out = float64s(w.Val[out], &w.out64)
	g := make([]float64, len(w.Val[out]))
	if _, _, _, err := e.loss.Eval(lc, scale, g, nil, nil); err != nil {
		return err
	}
	w.takeAt(sc, p.tScore())
	for i, v := range g {
		w.Adj[out][i] = T(v)
	}
	w.giveAt(sc, p.tScore())
	w.backward(modeHVP)

	// at[step] lists the positions (in units) of the units run by step.
	at := map[int][]int{}
	firstStep := len(p.steps)
	k := len(dirs)
	c := &InputChunk{Start: start, N: n, X: make([][]float64, len(units)), V: make([][][]float64, k), HV: make([][][]float64, k)}
	rv, radj := make([][]T, len(units)), make([][]T, len(units))
	for i, u := range units {
		ui := p.unitIn[u]
		if ui.step < 0 {
			return fmt.Errorf("nn: unit %q is not executed", e.units[u].Name)
		}
		at[ui.step] = append(at[ui.step], i)
		firstStep = min(firstStep, ui.step)
		var buf []float64
		c.X[i] = append([]float64(nil), float64s(w.Val[ui.slot], &buf)...)
		size := p.slots[ui.slot].size
		rv[i], radj[i] = make([]T, size), make([]T, size)
	}
	// first[j] is the step of the first unit direction j is on.
	first := make([]int, k)
	for j := range c.V {
		c.V[j], c.HV[j] = make([][]float64, len(units)), make([][]float64, len(units))
		first[j] = firstStep
		for i := range units {
			if dirs[j] < 0 || dirs[j] == i {
				c.V[j][i], c.HV[j][i] = make([]float64, len(c.X[i])), make([]float64, len(c.X[i]))
			}
		}
		if dirs[j] >= 0 {
			first[j] = p.unitIn[units[dirs[j]]].step
		}
	}
	fill(c)
	rg := make([]float64, len(w.Val[out]))
	for j := range k {
		fs := first[j]
		// R-forward from the direction's first unit's step; R-values of
		// earlier steps are identically zero (θ has no direction).
		for _, s := range p.steps {
			if s.idx < fs {
				for _, o := range s.outs {
					if o >= 0 {
						w.set(bufRV, o, nil)
					}
				}
				continue
			}
			w.takeAt(sc, p.tRF(s.idx))
			for _, i := range at[s.idx] {
				in := p.unitIn[units[i]].slot
				if orig := w.RV[in]; orig != nil {
					copy(rv[i], orig)
				} else {
					clear(rv[i])
				}
				for q, v := range c.V[j][i] { // nil off the direction's unit
					rv[i][q] += T(v)
				}
			}
			w.withEdges(s.idx, at, units, rv, nil, func() { w.ks[s.idx].RForward(&w.Work) })
			w.giveAt(sc, p.tRF(s.idx))
		}
		// The loss's R-adjoint at the output.
		rz := float64s(w.RV[out], &w.rz64)
		clear(rg)
		if _, _, _, err := e.loss.Eval(lc, scale, nil, rz, rg); err != nil {
			return err
		}
		w.takeAt(sc, p.tScoreR())
		for i, v := range rg {
			w.RAdj[out][i] = T(v)
		}
		w.giveAt(sc, p.tScoreR())
		// R-backward down to the direction's first unit's step; a unit's step adds its
		// input's R-adjoint into a private buffer, which is then added to
		// the tensor's (for the units upstream). Buffers are taken and
		// given back by the engine's schedule (liveness.go).
		for si := len(p.steps) - 1; si >= fs; si-- {
			w.takeAt(sc, p.tRB(si))
			for _, i := range at[si] {
				clear(radj[i])
			}
			w.withEdges(si, at, units, rv, radj, func() { w.ks[si].RBackward(&w.Work) })
			for _, i := range at[si] {
				in := p.unitIn[units[i]].slot
				if t := w.RAdj[in]; t != nil {
					op.AddTo(t, radj[i])
				}
				if h := c.HV[j][i]; h != nil {
					for q, v := range radj[i] {
						h[q] = float64(v)
					}
				}
			}
			w.giveAt(sc, p.tRB(si))
		}
		w.giveKind(bufRV)
		w.giveKind(bufRAdj)
	}
	return take(c)
}

// withEdges runs f with the data input of every unit of step si (at)
// reading the private R-value rv (and, when radj is not nil, adding into
// the private R-adjoint radj) instead of the tensor's.
func (w *work[T]) withEdges(si int, at map[int][]int, units []int, rv, radj [][]T, f func()) {
	list := at[si]
	if len(list) == 0 {
		f()
		return
	}
	p := w.p
	type saved struct {
		slot    int
		rv, adj []T
	}
	keep := make([]saved, len(list))
	for q, i := range list {
		in := p.unitIn[units[i]].slot
		keep[q] = saved{in, w.RV[in], w.RAdj[in]}
		w.RV[in] = rv[i]
		if radj != nil {
			w.RAdj[in] = radj[i]
		}
	}
	f()
	for q := len(keep) - 1; q >= 0; q-- {
		w.RV[keep[q].slot], w.RAdj[keep[q].slot] = keep[q].rv, keep[q].adj
	}
}
