package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bitplan/bitplan/profiles"
)

// calibration is the held-out check of profiles.Profile.Fit: the profile is
// fitted on the even-indexed layers' measurements (both precisions) and
// judged on the odd-indexed ones, which the fit never sees.
type calibration struct {
	cal                     *profiles.Calibration
	train, test             []int // layer indices
	before, after           errStats
	trainBefore, trainAfter errStats
	sweep                   []sweepRow
}

// trainingTable writes the measurements of the layers idx as a latency table
// in the CSV form profiles.LoadTable reads (bitplan measure's output).
func trainingTable(h *hawqFile, idx []int) (*profiles.Table, string, error) {
	var b strings.Builder
	b.WriteString("layer,precision,ms\n")
	for _, i := range idx {
		for j, q := range precisions {
			fmt.Fprintf(&b, "%s,%s,%.17g\n", h.Layers[i].Name, q, h.Layers[i].LatencyMS[strconv.Itoa(bitsChoices[j])])
		}
	}
	t, err := profiles.ParseTableCSV(strings.NewReader(b.String()), "hawq-even-layers.csv")
	return t, b.String(), err
}

// calibrate fits p on the even layers and fills rows[i].calibrated.
func calibrate(h *hawqFile, p *profiles.Profile, layers []profiles.Layer, rows []layerRow) (*calibration, error) {
	c := &calibration{}
	for i := range layers {
		if i%2 == 0 {
			c.train = append(c.train, i)
		} else {
			c.test = append(c.test, i)
		}
	}
	t, _, err := trainingTable(h, c.train)
	if err != nil {
		return nil, err
	}
	o := &profiles.Options{Batch: batch}
	c.cal, err = p.Fit(layers, t, o)
	if err != nil {
		return nil, err
	}
	for i, l := range layers {
		for j, q := range precisions {
			cost, err := c.cal.Profile.Cost(l, q, o)
			if err != nil {
				return nil, err
			}
			rows[i].calibrated[j] = cost.Latency * 1e3
		}
	}
	pick := func(idx []int) []layerRow {
		var out []layerRow
		for _, i := range idx {
			out = append(out, rows[i])
		}
		return out
	}
	c.before = errors(pick(c.test), func(x layerRow) [2]float64 { return x.model })
	c.after = errors(pick(c.test), func(x layerRow) [2]float64 { return x.calibrated })
	c.trainBefore = errors(pick(c.train), func(x layerRow) [2]float64 { return x.model })
	c.trainAfter = errors(pick(c.train), func(x layerRow) [2]float64 { return x.calibrated })
	return c, nil
}

// compareAbs solves, at budget fraction f of the measured table's range, the
// plan under the same absolute limit in ms with the calibrated latencies, and
// judges it on the measured table: with a calibrated profile an absolute
// budget means what it says.
func (e *enumerator) compareAbs(f float64, modelRow int) sweepRow {
	s := sweepRow{frac: f, measLimit: e.frac(rowMeasured, f)}
	s.measPlan = e.solve(rowMeasured, s.measLimit)
	s.modelPlan = e.solve(modelRow, s.measLimit)
	if s.modelPlan < 0 {
		return s
	}
	s.measOmega, s.modelOmega = e.omega[s.measPlan], e.omega[s.modelPlan]
	s.modelMeasuredLatency = e.cost[rowMeasured][s.modelPlan]
	s.modelPredicted = e.cost[modelRow][s.modelPlan]
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

// bitString is a plan's per-layer widths as one digit each (4 or 8).
func (e *enumerator) bitString(m int) string {
	if m < 0 {
		return "infeasible"
	}
	var b strings.Builder
	for _, x := range e.bits(m) {
		b.WriteString(strconv.Itoa(x))
	}
	return b.String()
}

// writeCalibration writes the calibrated-roofline section.
func (r *report) writeCalibration(b *strings.Builder, e *enumerator) {
	pf := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	c := r.calib
	pf("## Calibrated roofline (fitted on half the layers, checked on the other half)\n\n")
	pf("`profiles.Profile.Fit` (exposed as `bitplan profiles t4 --fit TABLE.csv --layers SENS.json`) fits, per precision b, "+
		"an efficiency η_b and a kernel overhead, and one memory efficiency η_mem, keeping the datasheet peaks:\n\n"+
		"    latency = overhead_b + max(8·MACs / (peak_b/2 · η_b), bytes / (bandwidth · η_mem))\n\n"+
		"minimising Σ((model − measured)/measured)² (Nelder–Mead from a grid of starts, then a weighted linear "+
		"least-squares polish with gonum/mat at fixed bounds). Training set: the %d even-indexed layers (%d measurements, "+
		"both precisions), written as a `layer,precision,ms` table; held-out set: the %d odd-indexed layers (%d measurements), "+
		"never seen by the fit.\n\n", len(c.train), 2*len(c.train), len(c.test), 2*len(c.test))
	pf("| term | fitted value | measurements | compute-bound under the fit | median abs. error (training) |\n|---|--:|--:|--:|--:|\n")
	for _, t := range c.cal.Terms {
		pf("| %s efficiency η | %.4g | %d | %d | %s |\n", t.Precision, t.Efficiency, t.N, t.ComputeBound, pctAbs(t.MedianAbsAfter))
		pf("| %s overhead | %.4g µs | | | |\n", t.Precision, t.Overhead*1e6)
	}
	if c.cal.MemoryDetermined {
		pf("| memory efficiency η_mem | %.4g | | | |\n", c.cal.MemoryEfficiency)
	} else {
		pf("| memory efficiency η_mem | not determined (no memory-bound point): 1 | | | |\n")
	}
	pf("\nFit error (training set): median absolute relative error %s, RMS relative error %s.\n\n",
		pctAbs(c.cal.MedianAbsAfter), pctAbs(c.cal.RMSRelAfter))
	for _, w := range c.cal.Warnings {
		pf("Fit note: %s.\n\n", w)
	}
	pf("| set | datasheet roofline median abs. error | calibrated median abs. error | calibrated median error | calibrated range |\n|---|--:|--:|--:|--:|\n")
	pf("| training (%d) | %s | %s | %s | %s … %s |\n", 2*len(c.train), pctAbs(c.trainBefore.medianAbs), pctAbs(c.trainAfter.medianAbs), pct(c.trainAfter.median), pct(c.trainAfter.min), pct(c.trainAfter.max))
	pf("| **held out (%d)** | **%s** | **%s** | %s | %s … %s |\n\n", 2*len(c.test), pctAbs(c.before.medianAbs), pctAbs(c.after.medianAbs), pct(c.after.median), pct(c.after.min), pct(c.after.max))
	pf("Held-out layers (ms, batch 8):\n\n| layer | measured w4 | calibrated w4 | measured w8 | calibrated w8 |\n|---|--:|--:|--:|--:|\n")
	for _, i := range c.test {
		x := r.rows[i]
		pf("| %s | %.4f | %.4f | %.4f | %.4f |\n", x.layer.Name, x.measured[0], x.calibrated[0], x.measured[1], x.calibrated[1])
	}
	pf("\n### Plans under absolute latency budgets: calibrated profile vs measured table\n\n")
	pf("Same exact ILP (enumeration, cross-checked with `ilp.Solve`), same limit in ms for both: the measured table's " +
		"min + f·(max − min). Bits list the 19 layers in order (4 = w4a4, 8 = w8a8).\n\n")
	pf("| f | limit (ms) | measured-table plan | calibrated plan | layers differing | calibrated plan: predicted (ms) | measured (ms) | within limit | Ω excess |\n|--:|--:|---|---|--:|--:|--:|---|--:|\n")
	same, feasible := 0, 0
	for _, s := range c.sweep {
		if s.modelPlan < 0 {
			pf("| %.1f | %.4f | %s | infeasible | | | | | |\n", s.frac, s.measLimit, e.bitString(s.measPlan))
			continue
		}
		if s.same {
			same++
		}
		if s.modelFeasible {
			feasible++
		}
		pf("| %.1f | %.4f | %s | %s | %d | %.4f | %.4f | %s | %s |\n", s.frac, s.measLimit, e.bitString(s.measPlan), e.bitString(s.modelPlan),
			s.modelPlanBitsDiffering, s.modelPredicted, s.modelMeasuredLatency, yes(s.modelFeasible), pct(s.modelOmega/s.measOmega-1))
	}
	pf("\nCalibrated profile: same plan as the measured table at %d of %d budgets; within the measured limit at %d of %d; largest Ω excess %s.\n\n",
		same, len(c.sweep), feasible, len(c.sweep), pct(worstRel(c.sweep)))
}
