package nn

import (
	"math"

	"github.com/bitplan/bitplan/op"
)

// Liveness-based recycling of a work's buffers.
//
// Every activation has up to four buffers: its value, R-value, adjoint
// and R-adjoint. A chunk runs the passes of its mode in a fixed order of
// events,
//
//	forward F_0 … F_{n−1}, validate, score (the loss: the output's adjoint),
//	backward B_{n−1} … B_0,
//	R-forward RF_0 … RF_{n−1}, R-score, R-backward RB_{n−1} … RB_0,
//
// (an evaluation stops after the score, a gradient after the backward
// pass; the R-passes repeat for every direction of a product). From what
// every kernel reads (op.Retains) each buffer's first and last event
// follow: a value lives from its producer's forward step to the last step
// that reads it — its consumers' forward steps, and their derivative
// passes only when they declare that they read their inputs' values; an
// adjoint from its first accumulation (its last consumer's backward step)
// to its producer's backward step, and to the end of the chunk when the
// producer's R-backward reads it; an R-value from its producer's R-forward
// step to its last reader; an R-adjoint from its first accumulation to
// its producer's R-backward step. A buffer taken before the R-passes and
// read in them lives to the end of the chunk (the R-passes repeat). The
// schedule of a mode lists, per event, the buffers taken from the work's
// pool before it and given back after it; the pool keeps the given
// buffers by length and hands them out again, so a work holds, for every
// buffer length, the largest number of such buffers live at one event —
// the memory plan counts exactly that (plan.memory).
//
// The arithmetic is that of keeping every buffer: each kernel sees the
// same values, adjoints are zeroed when taken instead of at the start of
// the pass, and a recycled buffer's slice stays in the Work, so no
// kernel's test for a nil buffer changes.

// Buffer kinds, the four per activation.
const (
	bufVal = iota
	bufRV
	bufAdj
	bufRAdj
	nBufs
)

// modeHVP1 is a product with one direction: the backward pass runs
// fused into the R-backward pass (B_i then RB_i for each step, from the
// last), so an adjoint lives only from its first accumulation to its
// producer's steps, not across the R-forward pass: the arithmetic of
// every kernel is unchanged, and each direction would repeat the
// backward pass, so products with several directions share it (modeHVP).
const modeHVP1 = modeHVP + 1

// nModes is the number of pass modes with a schedule (modeEval, modeGrad,
// modeHVP, modeHVP1).
const nModes = 4

// buf names one buffer: its kind and its root slot (views share their
// source's buffers).
type buf struct {
	kind int
	slot int
}

// schedule lists the buffers taken before and given back after each event
// (indexed by the event's id, see plan.tF; tEnd: released at the end of
// the chunk). Ids are in the order modeHVP runs the events; rank gives
// the order of another mode.
type schedule struct {
	take, give [][]buf
}

// Event times of the passes of a plan with n steps.
func (p *plan) tF(i int) int   { return i }
func (p *plan) tValidate() int { return len(p.steps) }
func (p *plan) tScore() int    { return len(p.steps) + 1 }
func (p *plan) tB(i int) int   { n := len(p.steps); return n + 2 + n - 1 - i }
func (p *plan) tRF(i int) int  { return 2*len(p.steps) + 2 + i }
func (p *plan) tScoreR() int   { return 3*len(p.steps) + 2 }
func (p *plan) tRB(i int) int  { n := len(p.steps); return 3*n + 3 + n - 1 - i }
func (p *plan) tEnd() int      { return 4*len(p.steps) + 3 }

// rank returns the position of event t in the order mode md runs its
// events: the id itself, except in modeHVP1, where the R-forward pass
// follows the score and each step's backward event precedes its
// R-backward event.
func (p *plan) rank(md mode, t int) int {
	n := len(p.steps)
	if md != modeHVP1 || t < p.tB(n-1) || t >= p.tEnd() {
		return t
	}
	switch {
	case t < p.tRF(0): // B_i, the j-th backward event
		return 2*n + 3 + 2*(t-p.tB(n-1))
	case t < p.tScoreR(): // RF_i
		return t - n
	case t == p.tScoreR():
		return 2*n + 2
	}
	return 2*n + 3 + 2*(t-p.tRB(n-1)) + 1 // RB_i
}

// root returns the slot whose storage s uses.
func (p *plan) root(s int) int {
	if a := p.slots[s].alias; a >= 0 {
		return a
	}
	return s
}

// buildSchedules reads every step's declaration and computes the
// schedule of each mode.
func (p *plan) buildSchedules() {
	p.retains = make([]op.Retains, len(p.steps))
	p.all = make([]bool, len(p.steps))
	for i, st := range p.steps {
		var declared bool
		p.retains[i], declared = op.RetainsOf(st.k)
		p.all[i] = !declared
	}
	for md := range p.sched {
		p.sched[md] = p.buildSchedule(mode(md))
	}
}

// buildSchedule computes the first and last event of every buffer in mode
// md and turns them into a schedule.
func (p *plan) buildSchedule(md mode) *schedule {
	ns := len(p.slots)
	end := p.tEnd()
	// first and last hold event ids, compared by rank.
	var first, last [nBufs][]int
	for k := range first {
		first[k], last[k] = make([]int, ns), make([]int, ns)
		for s := range first[k] {
			first[k][s], last[k][s] = -1, -1
		}
	}
	// touch records that event t uses buffer k of slot s (of a
	// recycled kind: an activation's; adjoints and R-values only where θ
	// flows).
	touch := func(k, s, t int) {
		if s < 0 {
			return
		}
		s = p.root(s)
		sl := p.slots[s]
		if sl.kind != kAct || (k != bufVal && !sl.theta) {
			return
		}
		if first[k][s] < 0 || p.rank(md, t) < p.rank(md, first[k][s]) {
			first[k][s] = t
		}
		if last[k][s] < 0 || p.rank(md, t) > p.rank(md, last[k][s]) {
			last[k][s] = t
		}
	}
	touchAll := func(k int, slots []int, t int) {
		for _, s := range slots {
			touch(k, s, t)
		}
	}
	grad, hvp := md >= modeGrad, md >= modeHVP
	for _, st := range p.steps {
		i, r, all := st.idx, p.retains[st.idx], p.all[st.idx]
		touchAll(bufVal, st.ins, p.tF(i))
		touchAll(bufVal, st.outs, p.tF(i))
		// deriv records the reads of a derivative pass at event t (rb:
		// R-backward); a kernel without a declaration reads everything.
		deriv := func(t int, rb bool) {
			if r.InVal {
				touchAll(bufVal, st.ins, t)
			}
			if r.OutVal {
				touchAll(bufVal, st.outs, t)
			}
			if all {
				touchAll(bufAdj, st.ins, t)
				touchAll(bufAdj, st.outs, t)
			}
			if rb {
				if r.InRV {
					touchAll(bufRV, st.ins, t)
				}
				if r.OutRV {
					touchAll(bufRV, st.outs, t)
				}
				if r.OutAdj {
					touchAll(bufAdj, st.outs, t)
				}
			}
		}
		if grad {
			touchAll(bufAdj, st.ins, p.tB(i))
			touchAll(bufAdj, st.outs, p.tB(i))
			deriv(p.tB(i), false)
		}
		if hvp {
			touchAll(bufRV, st.ins, p.tRF(i))
			touchAll(bufRV, st.outs, p.tRF(i))
			deriv(p.tRF(i), false)
			touchAll(bufRAdj, st.ins, p.tRB(i))
			touchAll(bufRAdj, st.outs, p.tRB(i))
			deriv(p.tRB(i), true)
		}
	}
	for _, i := range p.validators {
		touchAll(bufVal, p.steps[i].ins, p.tValidate())
		touchAll(bufVal, p.steps[i].outs, p.tValidate())
	}
	// The output: its value is read by the score and by the caller
	// after the pass, its adjoint set by the score, its R-value read and
	// its R-adjoint set by the R-score.
	touch(bufVal, p.out, end)
	if grad {
		touch(bufAdj, p.out, p.tScore())
	}
	if hvp {
		touch(bufRV, p.out, p.tScoreR())
		touch(bufRAdj, p.out, p.tScoreR())
	}
	sc := &schedule{take: make([][]buf, end+1), give: make([][]buf, end+1)}
	r0 := p.tRF(0)
	for k := range first {
		for s, f := range first[k] {
			if f < 0 {
				continue
			}
			l := last[k][s]
			if (md == modeHVP && f < r0 && l >= r0) || p.e.opts.check == checkKeep {
				l = end // read by R-passes that repeat per direction
			}
			sc.take[f] = append(sc.take[f], buf{k, s})
			sc.give[l] = append(sc.give[l], buf{k, s})
		}
	}
	return sc
}

// poolPeak simulates the schedules of the given modes on a pool that
// keeps given buffers by length and returns the bytes it ends up holding:
// for every length, the most buffers live at one event in any of the
// modes.
func (p *plan) poolPeak(elem int64, modes ...mode) int64 {
	most := map[int]int{}
	for _, md := range modes {
		sc := p.sched[md]
		live := map[int]int{}
		order := make([]int, len(sc.take))
		for t := range order {
			order[p.rank(md, t)] = t
		}
		for _, t := range order {
			for _, b := range sc.take[t] {
				n := p.slots[b.slot].size
				live[n]++
				most[n] = max(most[n], live[n])
			}
			for _, b := range sc.give[t] {
				live[p.slots[b.slot].size]--
			}
		}
	}
	var bytes int64
	for n, c := range most {
		bytes += elem * int64(n) * int64(c)
	}
	return bytes
}

// memory sizes the shared scratch buffers and counts the bytes of one
// work: the inputs, the most its buffer pool holds (poolPeak), the
// kernels' state and the scratch.
func (p *plan) memory() {
	elem := int64(8)
	if p.e.prec == Float32 {
		elem = 4
	}
	p.buildSchedules()
	var b int64
	for _, s := range p.slots {
		if s.kind == kInput {
			b += elem * int64(s.size)
		}
	}
	p.poolBytes = p.poolPeak(elem, modeEval, modeGrad, modeHVP, modeHVP1)
	b += p.poolBytes
	for _, st := range p.steps {
		if sk, ok := st.k.(op.Stateful); ok {
			b += sk.StateBytes()
		}
		if su, ok := st.k.(op.ScratchUser); ok {
			for i, n := range su.ScratchSizes() {
				for len(p.scratch) <= i {
					p.scratch = append(p.scratch, 0)
				}
				p.scratch[i] = max(p.scratch[i], n)
			}
		}
	}
	for _, n := range p.scratch {
		b += elem * int64(n)
	}
	p.bytes = b
}

// bufPool keeps given buffers by length.
type bufPool[T op.Real] struct {
	free map[int][][]T
	// held counts the bytes of every buffer the pool made.
	held int64
}

func (q *bufPool[T]) get(n int) []T {
	if l := q.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		q.free[n] = l[:len(l)-1]
		return b
	}
	q.held += int64(n) * op.SizeOf[T]()
	return make([]T, n)
}

func (q *bufPool[T]) put(b []T) {
	if q.free == nil {
		q.free = make(map[int][][]T)
	}
	q.free[len(b)] = append(q.free[len(b)], b)
}

// bufferCheck is how a test makes the engine check its buffer schedule.
type bufferCheck int

const (
	// checkNone recycles buffers (the default).
	checkNone bufferCheck = iota
	// checkPoison fills every buffer taken from a pool and every buffer
	// given back with NaN and never hands a given buffer out again, so
	// that a kernel reading a buffer after the schedule gave it back (or
	// a value before its producer wrote it) changes the results.
	checkPoison
	// checkKeep keeps every buffer to the end of the chunk: the engine
	// without recycling, the reference the other two must equal bit for
	// bit.
	checkKeep
)

// schedule returns the schedule of mode md (nil for a full work).
func (w *work[T]) schedule(md mode) *schedule {
	if w.full {
		return nil
	}
	return w.p.sched[md]
}

// entries returns the Work's buffers of kind k.
func (w *work[T]) entries(k int) [][]T {
	switch k {
	case bufVal:
		return w.Val
	case bufRV:
		return w.RV
	case bufAdj:
		return w.Adj
	}
	return w.RAdj
}

// set points root slot s and its views at buffer b of kind k.
func (w *work[T]) set(k, s int, b []T) {
	e := w.entries(k)
	e[s] = b
	for _, a := range w.p.aliases[s] {
		e[a] = b
	}
}

// takeAt takes the buffers event t starts using (none for a full work).
// Adjoints and R-adjoints are zeroed (they accumulate); values and
// R-values are overwritten by their producer.
func (w *work[T]) takeAt(sc *schedule, t int) {
	if sc == nil {
		return
	}
	for _, b := range sc.take[t] {
		x := w.pool.get(w.p.slots[b.slot].size)
		switch {
		case b.kind == bufAdj || b.kind == bufRAdj:
			clear(x)
		case w.p.e.opts.check == checkPoison:
			fillNaN(x)
		}
		w.own[b.kind][b.slot] = x
		w.set(b.kind, b.slot, x)
	}
}

// giveAt gives back the buffers event t used last.
func (w *work[T]) giveAt(sc *schedule, t int) {
	if sc == nil {
		return
	}
	for _, b := range sc.give[t] {
		w.give(b.kind, b.slot)
	}
}

func (w *work[T]) give(k, s int) {
	x := w.own[k][s]
	if x == nil {
		return
	}
	w.own[k][s] = nil
	if w.p.e.opts.check == checkPoison {
		fillNaN(x)
		return
	}
	w.pool.put(x)
}

// giveKind gives back every buffer of kind k the work holds.
func (w *work[T]) giveKind(k int) {
	for s, x := range w.own[k] {
		if x != nil {
			w.give(k, s)
		}
	}
}

// giveAll gives back every buffer the work holds.
func (w *work[T]) giveAll() {
	for k := range w.own {
		w.giveKind(k)
	}
}

func fillNaN[T op.Real](x []T) {
	nan := T(math.NaN())
	for i := range x {
		x[i] = nan
	}
}
