package profiles

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"gonum.org/v1/gonum/mat"
)

// Calibration fits the roofline's free terms to measured latencies. The
// model is the one Cost evaluates, with per-precision terms:
//
//	latency(l, b) = overhead_b + max(C(l, b) / η_b, M(l, b) / η_mem)
//
// where C = B·MACs / P_mac(b) is the compute time at the dense datasheet
// peak, M = traffic / bandwidth the memory time at peak bandwidth, b the
// precision the device computes in (after fallback), η_b ∈ (0, 1] the
// achieved fraction of peak compute at b, overhead_b ≥ 0 the fixed time of
// one kernel at b, and η_mem ∈ (0, 1] the achieved fraction of peak
// bandwidth (one for all precisions). Peaks and bandwidth stay the
// datasheet's; only the efficiencies and overheads are fitted, so the fitted
// profile keeps its citations and the fit says how far the device falls
// short of them.
//
// The loss is the sum of squared relative errors, Σ ((model − measured) /
// measured)², so a 10 µs layer weighs as much as a 1 ms one. It is minimised
// in two stages: Nelder–Mead (nelderMead below; gonum/optimize would pull
// golang.org/x/tools into the module) from a grid of starts over
// unconstrained parameters (η = logistic(u), overhead = exp(v)), then,
// holding each point's bound (compute or memory) fixed, the model is linear
// in (overhead_b, 1/η_b, 1/η_mem) and a weighted linear least squares
// (gonum/mat) polishes the optimum; the polish is kept only when it stays
// feasible and lowers the loss.
type Calibration struct {
	// Profile is the fitted copy of the profile: per-precision Efficiency
	// and Overhead, and MemoryEfficiency, set; Sources name the table.
	Profile *Profile
	// Terms are the fitted per-precision terms, sorted by precision.
	Terms []FitTerm
	// MemoryEfficiency is the fitted η_mem (1 when no point is memory-bound,
	// see MemoryDetermined).
	MemoryEfficiency float64
	// MemoryDetermined is false when no measurement is memory-bound under
	// the fit, so the data say nothing about η_mem.
	MemoryDetermined bool
	// Points are the measurements used, with the latency before and after.
	Points []FitPoint
	// MedianAbsBefore and MedianAbsAfter are the median absolute relative
	// errors of the original and fitted profile over Points.
	MedianAbsBefore, MedianAbsAfter float64
	// RMSRelAfter is the root mean square relative error of the fit.
	RMSRelAfter float64
	// Warnings are notes on the fit: precisions whose efficiency is not
	// determined by the data, table entries left out.
	Warnings []string
}

// FitTerm is one precision's fitted overhead and efficiency.
type FitTerm struct {
	// Precision is the precision the device computes in.
	Precision Precision
	// Efficiency is the fitted η_b.
	Efficiency float64
	// Overhead is the fitted per-layer time in seconds.
	Overhead float64
	// N is the number of measurements at this precision.
	N int
	// ComputeBound is how many of them are compute-bound under the fit.
	ComputeBound int
	// MedianAbsAfter is the median absolute relative error at this precision.
	MedianAbsAfter float64
}

// FitPoint is one measurement and the model's latency for it.
type FitPoint struct {
	// Layer and Precision identify the measurement.
	Layer     string
	Precision Precision
	// MeasuredMS is the table's latency; BeforeMS and AfterMS the original
	// and the fitted profile's.
	MeasuredMS, BeforeMS, AfterMS float64
	// Bound is what limits the fitted latency.
	Bound Bound
}

// minFitPoints is the fewest measurements per precision that can determine
// its two terms.
const minFitPoints = 2

type fitPoint struct {
	term    int     // index into terms
	compute float64 // s at η = 1
	memory  float64 // s at η_mem = 1
	meas    float64 // s
}

// Fit calibrates the profile's per-precision overhead and efficiency and its
// memory efficiency to the measurements in t of the given layers (counts as
// for Cost, o's batch and scale options applied; o.Table is ignored). Every
// table entry must name one of layers and a precision the profile can run;
// each precision computed in needs at least two measurements. Errors name
// the table, line and value. The receiver is not changed.
func (p *Profile) Fit(layers []Layer, t *Table, o *Options) (*Calibration, error) {
	if t == nil || len(t.entries) == 0 {
		return nil, errors.New("fit: no measurements")
	}
	if err := t.Check(layers); err != nil {
		return nil, fmt.Errorf("fit: %w", err)
	}
	var opt Options
	if o != nil {
		opt = *o
	}
	opt.Table = nil
	byName := map[string]Layer{}
	for _, l := range layers {
		byName[l.Name] = l
	}
	base := p.clone()
	// The fit's raw terms: the roofline at η = 1, η_mem = 1, no overhead.
	raw := p.clone()
	raw.Overhead = 0
	raw.MemoryEfficiency = 0
	for i := range raw.Precisions {
		raw.Precisions[i].Efficiency = 1
		raw.Precisions[i].Overhead, raw.Precisions[i].HasOverhead = 0, false
	}
	raw.Efficiency = 1
	termIdx := map[Precision]int{}
	var terms []FitTerm
	var pts []fitPoint
	var out []FitPoint
	var errs []error
	for _, e := range t.entries {
		c, err := raw.Cost(byName[e.Layer], e.Precision, &opt)
		if err != nil {
			errs = append(errs, fmt.Errorf("table %s line %d: %w", t.Origin, e.Line, err))
			continue
		}
		before, _ := base.Cost(byName[e.Layer], e.Precision, &opt)
		k, ok := termIdx[c.Used]
		if !ok {
			k = len(terms)
			termIdx[c.Used] = k
			terms = append(terms, FitTerm{Precision: c.Used})
		}
		terms[k].N++
		pts = append(pts, fitPoint{term: k, compute: c.Compute, memory: c.Memory, meas: e.MS * 1e-3})
		out = append(out, FitPoint{Layer: e.Layer, Precision: e.Precision, MeasuredMS: e.MS, BeforeMS: before.Latency * 1e3})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("fit: %w", errors.Join(errs...))
	}
	for _, tm := range terms {
		if tm.N < minFitPoints {
			errs = append(errs, fmt.Errorf("table %s: precision %s has %d measurement(s); fitting its overhead and efficiency needs at least %d", t.Origin, tm.Precision, tm.N, minFitPoints))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("fit: %w", errors.Join(errs...))
	}
	nt := len(terms)
	x := fitTerms(pts, nt)
	eta, ov, etaMem := decode(x, nt)
	loss := fitLoss(pts, eta, ov, etaMem)
	if e2, o2, m2, ok := polish(pts, eta, ov, etaMem); ok {
		if l2 := fitLoss(pts, e2, o2, m2); l2 < loss {
			eta, ov, etaMem = e2, o2, m2
		}
	}
	cal := &Calibration{MemoryDetermined: false}
	memBound := 0
	for i, q := range pts {
		c := q.compute / eta[q.term]
		m := q.memory / etaMem
		if m > c {
			memBound++
			out[i].Bound = MemoryBound
		} else {
			terms[q.term].ComputeBound++
			out[i].Bound = ComputeBound
		}
	}
	if memBound == 0 {
		// η_mem is not determined; 1 keeps every point compute-bound.
		etaMem = 1
		cal.Warnings = append(cal.Warnings, "no measurement is memory-bound: memory efficiency not determined, left at 1")
	} else {
		cal.MemoryDetermined = true
	}
	for k := range terms {
		terms[k].Efficiency, terms[k].Overhead = eta[k], ov[k]
		if terms[k].ComputeBound == 0 {
			cal.Warnings = append(cal.Warnings, fmt.Sprintf("precision %s: no measurement is compute-bound, its efficiency is not determined by the data", terms[k].Precision))
		}
	}
	// The fitted profile.
	fp := p.clone()
	fp.MemoryEfficiency = etaMem
	src := fmt.Sprintf("fitted to %s (%d measurements) by Profile.Fit", t.Origin, len(pts))
	if fp.Sources == nil {
		fp.Sources = map[string]string{}
	}
	if cal.MemoryDetermined {
		fp.Sources["memory_efficiency"] = src
	} else {
		fp.Sources["memory_efficiency"] = src + "; not determined (no memory-bound point), set to 1"
	}
	for _, tm := range terms {
		for i := range fp.Precisions {
			if fp.Precisions[i].Precision == tm.Precision {
				fp.Precisions[i].Efficiency = tm.Efficiency
				fp.Precisions[i].Overhead, fp.Precisions[i].HasOverhead = tm.Overhead, true
				k := "precisions." + tm.Precision.String()
				fp.Sources[k+".efficiency"] = src
				fp.Sources[k+".layer_overhead_us"] = src
			}
		}
	}
	fp.Warnings = nil
	var before, after []float64
	perTerm := make([][]float64, nt)
	var ss float64
	for i, e := range out {
		c, err := fp.Cost(byName[e.Layer], e.Precision, &opt)
		if err != nil {
			return nil, err
		}
		out[i].AfterMS = c.Latency * 1e3
		rb := math.Abs(e.BeforeMS-e.MeasuredMS) / e.MeasuredMS
		ra := (out[i].AfterMS - e.MeasuredMS) / e.MeasuredMS
		before, after = append(before, rb), append(after, math.Abs(ra))
		perTerm[pts[i].term] = append(perTerm[pts[i].term], math.Abs(ra))
		ss += ra * ra
	}
	for k := range terms {
		terms[k].MedianAbsAfter = Median(perTerm[k])
	}
	sort.Slice(terms, func(a, b int) bool { return terms[a].Precision.less(terms[b].Precision) })
	cal.Profile, cal.Terms, cal.MemoryEfficiency, cal.Points = fp, terms, etaMem, out
	cal.MedianAbsBefore, cal.MedianAbsAfter = Median(before), Median(after)
	cal.RMSRelAfter = math.Sqrt(ss / float64(len(out)))
	return cal, nil
}

// Median returns the median of xs (NaN for none); xs is not changed.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func logistic(u float64) float64 { return 1 / (1 + math.Exp(-u)) }

func logit(p float64) float64 { return math.Log(p / (1 - p)) }

// decode maps the unconstrained vector [u_0, v_0, …, u_{n−1}, v_{n−1}, w]
// to η_b = logistic(u_b), overhead_b = exp(v_b), η_mem = logistic(w).
func decode(x []float64, nt int) (eta, ov []float64, etaMem float64) {
	eta, ov = make([]float64, nt), make([]float64, nt)
	for k := 0; k < nt; k++ {
		eta[k] = logistic(x[2*k])
		ov[k] = math.Exp(x[2*k+1])
	}
	return eta, ov, logistic(x[2*nt])
}

func fitLoss(pts []fitPoint, eta, ov []float64, etaMem float64) float64 {
	var s float64
	for _, q := range pts {
		m := ov[q.term] + math.Max(q.compute/eta[q.term], q.memory/etaMem)
		r := (m - q.meas) / q.meas
		s += r * r
	}
	return s
}

// fitTerms runs Nelder–Mead from a grid of starts and returns the best
// unconstrained parameter vector.
func fitTerms(pts []fitPoint, nt int) []float64 {
	f := func(x []float64) float64 {
		eta, ov, m := decode(x, nt)
		return fitLoss(pts, eta, ov, m)
	}
	var best []float64
	bestF := math.Inf(1)
	for _, e0 := range []float64{0.01, 0.1, 0.7} {
		for _, o0 := range []float64{1e-6, 1e-5, 1e-4} {
			for _, m0 := range []float64{0.1, 0.7} {
				x0 := make([]float64, 2*nt+1)
				for k := 0; k < nt; k++ {
					x0[2*k], x0[2*k+1] = logit(e0), math.Log(o0)
				}
				x0[2*nt] = logit(m0)
				x, fx := nelderMead(f, x0, 20000)
				if fx < bestF {
					bestF, best = fx, x
				}
			}
		}
	}
	if best == nil { // cannot happen with finite data; keep a defined start
		best = make([]float64, 2*nt+1)
	}
	return best
}

// polish solves, with each point's bound held at its current value, the
// weighted linear least squares in (overhead_b, 1/η_b, 1/η_mem) (weights
// 1/measured, so residuals are relative errors), repeating until the bounds
// settle. ok is false when the system is rank-deficient or the solution
// leaves the feasible set (η in (0, 1], overhead ≥ 0).
func polish(pts []fitPoint, eta, ov []float64, etaMem float64) ([]float64, []float64, float64, bool) {
	nt := len(eta)
	eta, ov = append([]float64(nil), eta...), append([]float64(nil), ov...)
	for iter := 0; iter < 10; iter++ {
		memCol := 2 * nt
		n := 2*nt + 1
		a := mat.NewDense(len(pts), n, nil)
		y := mat.NewVecDense(len(pts), nil)
		usedMem := false
		usedCompute := make([]bool, nt)
		mem := make([]bool, len(pts))
		for i, q := range pts {
			w := 1 / q.meas
			a.Set(i, 2*q.term, w)
			if q.memory/etaMem > q.compute/eta[q.term] {
				a.Set(i, memCol, q.memory*w)
				usedMem, mem[i] = true, true
			} else {
				a.Set(i, 2*q.term+1, q.compute*w)
				usedCompute[q.term] = true
			}
			y.SetVec(i, 1)
		}
		// Drop columns no point uses: those terms keep their values.
		var cols []int
		for k := 0; k < nt; k++ {
			cols = append(cols, 2*k)
			if usedCompute[k] {
				cols = append(cols, 2*k+1)
			}
		}
		if usedMem {
			cols = append(cols, memCol)
		}
		b := mat.NewDense(len(pts), len(cols), nil)
		for i := range pts {
			for j, c := range cols {
				b.Set(i, j, a.At(i, c))
			}
		}
		// Subtract the fixed terms' contribution from y.
		for i, q := range pts {
			if !usedCompute[q.term] && !mem[i] {
				y.SetVec(i, y.AtVec(i)-q.compute/eta[q.term]/q.meas)
			}
		}
		if len(pts) < len(cols) {
			return nil, nil, 0, false
		}
		var qr mat.QR
		qr.Factorize(b)
		var sol mat.VecDense
		if err := qr.SolveVecTo(&sol, false, y); err != nil {
			return nil, nil, 0, false
		}
		for j, c := range cols {
			v := sol.AtVec(j)
			switch {
			case c == memCol:
				if !(v >= 1) || math.IsInf(v, 0) {
					return nil, nil, 0, false
				}
				etaMem = 1 / v
			case c%2 == 0:
				if !(v >= 0) {
					return nil, nil, 0, false
				}
				ov[c/2] = v
			default:
				if !(v >= 1) || math.IsInf(v, 0) {
					return nil, nil, 0, false
				}
				eta[c/2] = 1 / v
			}
		}
		settled := true
		for i, q := range pts {
			if (q.memory/etaMem > q.compute/eta[q.term]) != mem[i] {
				settled = false
			}
		}
		if settled {
			return eta, ov, etaMem, true
		}
	}
	return nil, nil, 0, false
}

// clone returns a deep copy of p.
func (p *Profile) clone() *Profile {
	c := *p
	c.Precisions = append([]PrecisionSpec(nil), p.Precisions...)
	c.Sources = make(map[string]string, len(p.Sources))
	for k, v := range p.Sources {
		c.Sources[k] = v
	}
	c.Notes = append([]string(nil), p.Notes...)
	c.Warnings = append([]string(nil), p.Warnings...)
	return &c
}

// Summary is a short human description of the fit, one line per term.
func (c *Calibration) Summary() string {
	var b strings.Builder
	for _, t := range c.Terms {
		fmt.Fprintf(&b, "%s: efficiency %.4g, overhead %.4g µs (%d measurements, %d compute-bound, median |error| %.1f%%)\n",
			t.Precision, t.Efficiency, t.Overhead*1e6, t.N, t.ComputeBound, 100*t.MedianAbsAfter)
	}
	if c.MemoryDetermined {
		fmt.Fprintf(&b, "memory efficiency %.4g\n", c.MemoryEfficiency)
	} else {
		fmt.Fprintf(&b, "memory efficiency not determined (no memory-bound measurement), 1\n")
	}
	fmt.Fprintf(&b, "median |relative error| %.1f%% before, %.1f%% after; RMS relative error after %.1f%% (%d measurements, in sample)\n",
		100*c.MedianAbsBefore, 100*c.MedianAbsAfter, 100*c.RMSRelAfter, len(c.Points))
	return b.String()
}

// nelderMead minimises f from x0 with the Nelder–Mead simplex method
// (Nelder & Mead, Computer Journal 7(4), 1965; standard coefficients:
// reflection 1, expansion 2, contraction ½, shrink ½), restarting the
// simplex around the best point until a restart no longer improves, or
// maxEval evaluations are spent.
func nelderMead(f func([]float64) float64, x0 []float64, maxEval int) ([]float64, float64) {
	n := len(x0)
	best := append([]float64(nil), x0...)
	bestF := f(best)
	evals := 1
	for restart := 0; restart < 20 && evals < maxEval; restart++ {
		simplex := make([][]float64, n+1)
		fs := make([]float64, n+1)
		simplex[0], fs[0] = append([]float64(nil), best...), bestF
		for i := 0; i < n; i++ {
			v := append([]float64(nil), best...)
			v[i] += 0.5
			simplex[i+1], fs[i+1] = v, f(v)
			evals++
		}
		order := make([]int, n+1)
		point := func(c []float64, t float64, w []float64) []float64 {
			out := make([]float64, n)
			for i := range out {
				out[i] = c[i] + t*(w[i]-c[i])
			}
			return out
		}
		for evals < maxEval {
			for i := range order {
				order[i] = i
			}
			sort.Slice(order, func(a, b int) bool { return fs[order[a]] < fs[order[b]] })
			lo, hi, nh := order[0], order[n], order[n-1]
			if fs[hi]-fs[lo] <= 1e-15*(math.Abs(fs[lo])+1e-300) {
				break
			}
			c := make([]float64, n)
			for _, j := range order[:n] {
				for i := range c {
					c[i] += simplex[j][i] / float64(n)
				}
			}
			r := point(c, -1, simplex[hi])
			fr := f(r)
			evals++
			switch {
			case fr < fs[lo]:
				e := point(c, -2, simplex[hi])
				fe := f(e)
				evals++
				if fe < fr {
					simplex[hi], fs[hi] = e, fe
				} else {
					simplex[hi], fs[hi] = r, fr
				}
			case fr < fs[nh]:
				simplex[hi], fs[hi] = r, fr
			default:
				k := point(c, 0.5, simplex[hi])
				if fr < fs[hi] {
					k = point(c, -0.5, simplex[hi])
				}
				fk := f(k)
				evals++
				if fk < math.Min(fr, fs[hi]) {
					simplex[hi], fs[hi] = k, fk
					continue
				}
				for _, j := range order[1:] {
					simplex[j] = point(simplex[lo], 0.5, simplex[j])
					fs[j] = f(simplex[j])
					evals++
				}
			}
		}
		lo := 0
		for i := range fs {
			if fs[i] < fs[lo] {
				lo = i
			}
		}
		if !(fs[lo] < bestF*(1-1e-12)) {
			break
		}
		best, bestF = simplex[lo], fs[lo]
	}
	return best, bestF
}
