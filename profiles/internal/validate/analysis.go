package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	"gonum.org/v1/gonum/stat"

	"github.com/bitplan/bitplan/profiles"
)

// batch is the batch size of HAWQ-V3's T4 latency measurements.
const batch = 8

// bitsChoices are the two precisions of HAWQ's ILP (w4a4 and w8a8).
var bitsChoices = [2]int{4, 8}

var precisions = [2]profiles.Precision{profiles.W4A4, profiles.W8A8}

// layerRow is one layer's measured and modelled latencies (ms), index 0 at
// w4a4 and 1 at w8a8.
type layerRow struct {
	layer    profiles.Layer
	measured [2]float64
	model    [2]float64
	fitted   [2]float64
	// calibrated is the profile fitted on the even layers (calibrate).
	calibrated [2]float64
	bound      [2]profiles.Bound
}

// rankStats are Spearman rank correlations between model and measurement.
type rankStats struct {
	pooled, w4, w8, saving float64
}

// errStats summarise relative errors (model − measured)/measured.
type errStats struct {
	median, min, max, medianAbs float64
}

type report struct {
	p          *profiles.Profile
	source     string
	rows       []layerRow
	groups     [][]int
	rank, fitR rankStats
	err, fitE  errStats
	fitEta     float64
	fitOv      float64 // seconds
	schemes    []schemeRow
	sweep      []sweepRow
	fitSweep   []sweepRow
	calib      *calibration
	enum       *enumerator
	ilpN       int     // budgets re-solved with ilp.Solve
	ilpWorst   float64 // largest relative objective difference
	ilpErr     error
}

// analyse costs every layer on p, compares with the measurements and
// compares the plans the two latency tables give.
func analyse(h *hawqFile, p *profiles.Profile) (*report, error) {
	layers, err := h.layers()
	if err != nil {
		return nil, err
	}
	groups, err := h.groups()
	if err != nil {
		return nil, err
	}
	r := &report{p: p, source: h.Source, groups: groups}
	o := &profiles.Options{Batch: batch}
	compute := make([][2]float64, len(layers)) // seconds at p's efficiency
	memory := make([][2]float64, len(layers))
	for i, l := range layers {
		row := layerRow{layer: l}
		for j, q := range precisions {
			c, err := p.Cost(l, q, o)
			if err != nil {
				return nil, err
			}
			row.model[j] = c.Latency * 1e3
			row.bound[j] = c.Bound
			row.measured[j] = h.Layers[i].LatencyMS[strconv.Itoa(bitsChoices[j])]
			compute[i][j], memory[i][j] = c.Compute, c.Memory
		}
		r.rows = append(r.rows, row)
	}
	// Fit one efficiency η and one overhead to the measurements (least
	// squares on log latency, grid search): how far a calibrated roofline
	// gets, in sample.
	eta0 := p.Efficiency
	model := func(eta, ov float64, i, j int) float64 {
		return (math.Max(compute[i][j]*eta0/eta, memory[i][j]) + ov) * 1e3
	}
	best := math.Inf(1)
	for k := 0; k <= 400; k++ {
		eta := math.Pow(10, -3+3*float64(k)/400)
		for us := 0; us <= 100; us++ {
			ov := float64(us) * 1e-6
			var ss float64
			for i := range r.rows {
				for j := range precisions {
					d := math.Log(model(eta, ov, i, j)) - math.Log(r.rows[i].measured[j])
					ss += d * d
				}
			}
			if ss < best {
				best, r.fitEta, r.fitOv = ss, eta, ov
			}
		}
	}
	for i := range r.rows {
		for j := range precisions {
			r.rows[i].fitted[j] = model(r.fitEta, r.fitOv, i, j)
		}
	}
	r.rank = ranks(r.rows, func(x layerRow) [2]float64 { return x.model })
	r.fitR = ranks(r.rows, func(x layerRow) [2]float64 { return x.fitted })
	r.err = errors(r.rows, func(x layerRow) [2]float64 { return x.model })
	r.fitE = errors(r.rows, func(x layerRow) [2]float64 { return x.fitted })

	if r.calib, err = calibrate(h, p, layers, r.rows); err != nil {
		return nil, err
	}

	// Plans.
	e := newEnumerator(h, groups, r.rows)
	r.enum = e
	r.schemes = e.schemes(h)
	for k := 1; k <= 9; k++ {
		frac := float64(k) / 10
		r.sweep = append(r.sweep, e.compare(frac, rowModel))
		r.fitSweep = append(r.fitSweep, e.compare(frac, rowFitted))
		r.calib.sweep = append(r.calib.sweep, e.compareAbs(frac, rowCalibrated))
	}
	r.ilpN, r.ilpWorst, r.ilpErr = r.solverAgreement(e)
	return r, nil
}

func ranks(rows []layerRow, get func(layerRow) [2]float64) rankStats {
	var pm, pg, m4, g4, m8, g8, ms, gs []float64
	for _, x := range rows {
		g := get(x)
		pm = append(pm, x.measured[0], x.measured[1])
		pg = append(pg, g[0], g[1])
		m4, g4 = append(m4, x.measured[0]), append(g4, g[0])
		m8, g8 = append(m8, x.measured[1]), append(g8, g[1])
		ms, gs = append(ms, x.measured[1]-x.measured[0]), append(gs, g[1]-g[0])
	}
	return rankStats{spearman(pm, pg), spearman(m4, g4), spearman(m8, g8), spearman(ms, gs)}
}

func errors(rows []layerRow, get func(layerRow) [2]float64) errStats {
	var e, a []float64
	for _, x := range rows {
		g := get(x)
		for j := range precisions {
			v := (g[j] - x.measured[j]) / x.measured[j]
			e = append(e, v)
			a = append(a, math.Abs(v))
		}
	}
	sort.Float64s(e)
	sort.Float64s(a)
	return errStats{median: median(e), min: e[0], max: e[len(e)-1], medianAbs: median(a)}
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// spearman is Spearman's rank correlation: Pearson's correlation of the
// ranks, ties given their average rank (Spearman 1904; e.g. Kendall &
// Gibbons, "Rank Correlation Methods", ch. 2).
func spearman(x, y []float64) float64 {
	return stat.Correlation(rank(x), rank(y), nil)
}

// rank returns 1-based ranks with ties averaged.
func rank(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	r := make([]float64, len(x))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && x[idx[j+1]] == x[idx[i]] {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = avg
		}
		i = j + 1
	}
	return r
}

// Cost rows of the enumerated problem.
const (
	rowSize = iota
	rowBOPS
	rowMeasured
	rowModel
	rowFitted
	rowCalibrated
	nRows
)

var rowNames = [nRows]string{"size", "bops", "latency (measured)", "latency (roofline)", "latency (fitted roofline)", "latency (calibrated roofline)"}

// enumerator solves HAWQ's ILP exactly by listing all 2^groups assignments
// (16 groups: 65,536), an independent check on any solver.
type enumerator struct {
	groups [][]int
	nLayer int
	omega  []float64        // per assignment
	cost   [nRows][]float64 // per row, per assignment
	gOmega [][2]float64     // per group
	gCost  [nRows][][2]float64
}

func newEnumerator(h *hawqFile, groups [][]int, rows []layerRow) *enumerator {
	e := &enumerator{groups: groups, nLayer: len(h.Layers)}
	g := len(groups)
	e.gOmega = make([][2]float64, g)
	for k := range e.gCost {
		e.gCost[k] = make([][2]float64, g)
	}
	for gi, members := range groups {
		for j, b := range bitsChoices {
			key := strconv.Itoa(b)
			for _, i := range members {
				l := h.Layers[i]
				e.gOmega[gi][j] += l.AvgTrace * l.DeltaSq[key]
				e.gCost[rowSize][gi][j] += float64(l.Params) * float64(b) / 8
				e.gCost[rowBOPS][gi][j] += float64(l.MACs) * float64(b*b)
				e.gCost[rowMeasured][gi][j] += rows[i].measured[j]
				e.gCost[rowModel][gi][j] += rows[i].model[j]
				e.gCost[rowFitted][gi][j] += rows[i].fitted[j]
				e.gCost[rowCalibrated][gi][j] += rows[i].calibrated[j]
			}
		}
	}
	n := 1 << g
	e.omega = make([]float64, n)
	for k := range e.cost {
		e.cost[k] = make([]float64, n)
	}
	for m := 0; m < n; m++ {
		for gi := 0; gi < g; gi++ {
			j := (m >> gi) & 1
			e.omega[m] += e.gOmega[gi][j]
			for k := range e.cost {
				e.cost[k][m] += e.gCost[k][gi][j]
			}
		}
	}
	return e
}

// limitTol is the relative slack on budgets, for sums computed in another
// order than the limit.
const limitTol = 1e-12

// solve returns the assignment of least Ω with cost[row] ≤ limit (ties: the
// lower cost, then the lower mask), or -1.
func (e *enumerator) solve(row int, limit float64) int {
	best := -1
	for m := range e.omega {
		if e.cost[row][m] > limit*(1+limitTol) {
			continue
		}
		if best < 0 || e.omega[m] < e.omega[best] || e.omega[m] == e.omega[best] && e.cost[row][m] < e.cost[row][best] {
			best = m
		}
	}
	return best
}

// frac returns HAWQ-V3's budget min + f·(max − min) on a row, with min and
// max the all-4-bit and all-8-bit costs.
func (e *enumerator) frac(row int, f float64) float64 {
	lo, hi := e.cost[row][0], e.cost[row][len(e.omega)-1]
	return lo + f*(hi-lo)
}

// bits expands an assignment to per-layer bit widths.
func (e *enumerator) bits(m int) []int {
	b := make([]int, e.nLayer)
	for gi, members := range e.groups {
		for _, i := range members {
			b[i] = bitsChoices[(m>>gi)&1]
		}
	}
	return b
}

func (e *enumerator) mask(bits []int) (int, error) {
	m := 0
	for gi, members := range e.groups {
		var j int
		switch bits[members[0]] {
		case 4:
		case 8:
			j = 1
		default:
			return 0, fmt.Errorf("bit width %d", bits[members[0]])
		}
		for _, i := range members[1:] {
			if bits[i] != bits[members[0]] {
				return 0, fmt.Errorf("tied layers %v differ", members)
			}
		}
		m |= j << gi
	}
	return m, nil
}

// schemeRow checks one of HAWQ's nine published schemes.
type schemeRow struct {
	name          string
	row           int
	limit         float64
	published     float64 // HAWQ's objective
	publishedOK   bool    // HAWQ's plan meets the limit
	optimum       float64 // enumerated optimum under the measured table
	samePlan      bool    // enumerated optimum = HAWQ's plan
	roofObjective float64 // for latency schemes: Ω of the roofline plan
	roofMeasured  float64 // its latency under the measured table
	roofSame      bool
}

func (e *enumerator) schemes(h *hawqFile) []schemeRow {
	var out []schemeRow
	for _, kind := range []string{"size", "bops", "latency"} {
		for _, f := range []string{"0.25", "0.5", "0.75"} {
			name := kind + "_" + f
			s, ok := h.Schemes[name]
			if !ok {
				continue
			}
			row := map[string]int{"size": rowSize, "bops": rowBOPS, "latency": rowMeasured}[kind]
			x := schemeRow{name: name, row: row, limit: s.Limit, published: s.Objective}
			pm, err := e.mask(s.Bits)
			if err == nil {
				x.publishedOK = e.cost[row][pm] <= s.Limit*(1+limitTol)
			}
			m := e.solve(row, s.Limit)
			x.optimum = e.omega[m]
			x.samePlan = err == nil && m == pm
			if kind == "latency" {
				fv, _ := strconv.ParseFloat(f, 64)
				rm := e.solve(rowModel, e.frac(rowModel, fv))
				x.roofObjective = e.omega[rm]
				x.roofMeasured = e.cost[rowMeasured][rm]
				x.roofSame = rm == m
			}
			out = append(out, x)
		}
	}
	return out
}

// sweepRow compares, at one budget fraction, the plan solved with a model's
// latencies with the plan solved with the measured ones, both judged on the
// measured table.
type sweepRow struct {
	frac                   float64
	measLimit              float64
	measPlan, modelPlan    int
	measOmega, modelOmega  float64
	modelMeasuredLatency   float64
	same, modelFeasible    bool
	modelPlanBitsDiffering int
	modelPredicted         float64 // the plan's latency on the model's own row (compareAbs)
}

func (e *enumerator) compare(f float64, modelRow int) sweepRow {
	s := sweepRow{frac: f, measLimit: e.frac(rowMeasured, f)}
	s.measPlan = e.solve(rowMeasured, s.measLimit)
	s.modelPlan = e.solve(modelRow, e.frac(modelRow, f))
	s.measOmega, s.modelOmega = e.omega[s.measPlan], e.omega[s.modelPlan]
	s.modelMeasuredLatency = e.cost[rowMeasured][s.modelPlan]
	s.same = s.measPlan == s.modelPlan
	s.modelFeasible = s.modelMeasuredLatency <= s.measLimit*(1+limitTol)
	a, b := e.bits(s.measPlan), e.bits(s.modelPlan)
	for i := range a {
		if a[i] != b[i] {
			s.modelPlanBitsDiffering++
		}
	}
	return s
}
