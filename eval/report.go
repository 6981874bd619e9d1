package eval

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"

	"github.com/bitplan/bitplan/internal/table"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/plan"
)

// Write renders the report: plan.Text (ASCII tables), plan.Markdown,
// plan.CSV (one row per model and per layer) or plan.JSON.
func (r *Report) Write(w io.Writer, f plan.Format) error {
	switch f {
	case plan.Text, plan.Markdown:
		return r.writeTables(w, f == plan.Markdown)
	case plan.CSV:
		return r.WriteCSV(w)
	case plan.JSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return fmt.Errorf("unexpected output format %q", f)
}

// WriteCSV writes one table: a row per model ("float", "quantized") with
// its accuracy, loss, correct, scored (what they count: Report.Scoring)
// and n (samples), then a row per layer with bits,
// abits, weights, Δ², relative error and the input range, step and
// signedness. Columns that do not apply to a row are empty.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	rows := [][]string{{"kind", "name", "accuracy", "loss", "correct", "scored", "n",
		"bits", "abits", "weights", "delta_sq", "rel_err", "input_min", "input_max", "input_step", "input_signed"}}
	for _, m := range []struct {
		name string
		r    Result
	}{{"float", r.Float}, {"quantized", r.Quantized}} {
		rows = append(rows, []string{"model", m.name, g(m.r.Accuracy), g(m.r.Loss), strconv.Itoa(m.r.Correct), strconv.Itoa(m.r.Scored), strconv.Itoa(m.r.N),
			"", "", "", "", "", "", "", "", ""})
	}
	for _, l := range r.Layers {
		row := []string{"layer", l.Name, "", "", "", "", "", strconv.Itoa(l.Bits), strconv.Itoa(l.ABits), strconv.Itoa(l.Weights),
			g(l.DeltaSq), g(l.RelErr), "", "", "", ""}
		if l.ABits > 0 {
			row[12], row[13], row[14], row[15] = g(l.InputMin), g(l.InputMax), g(l.InputStep), strconv.FormatBool(l.InputSigned)
		}
		rows = append(rows, row)
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return cw.Error()
}

func newTable(w io.Writer, md bool, ncol int) *tablewriter.Table {
	return table.New(w, md, ncol)
}

func pct(v float64) string { return strconv.FormatFloat(100*v, 'f', 2, 64) + " %" }

func (r *Report) writeTables(w io.Writer, md bool) error {
	title := "bitplan eval"
	if r.Model != "" {
		title += ": " + r.Model
	}
	if r.Plan != "" {
		title += ", plan " + r.Plan
	}
	if md {
		fmt.Fprintf(w, "## %s\n\n", title)
	} else {
		fmt.Fprintln(w, title)
	}
	if r.CalibSamples > 0 {
		fmt.Fprintf(w, "%d test samples; activation ranges from %d calibration samples\n", r.Samples, r.CalibSamples)
	} else {
		fmt.Fprintf(w, "%d test samples\n", r.Samples)
	}
	fmt.Fprintf(w, "weights: %s quantizer; activations: %s\n", strings.ReplaceAll(r.WeightQuantizer, ",", " "), r.ActQuantizer)
	if md {
		fmt.Fprintln(w)
	}
	t := newTable(w, md, 4)
	t.Header("model", "accuracy", "loss", correctHeader(r.Scoring))
	count := func(res Result) string {
		if r.Scoring == ScoringNone {
			return "-"
		}
		return fmt.Sprintf("%d/%d", res.Correct, res.Scored)
	}
	for _, m := range []struct {
		name string
		r    Result
	}{{"float", r.Float}, {"quantized", r.Quantized}} {
		if err := t.Append(m.name, pct(m.r.Accuracy), g4(m.r.Loss), count(m.r)); err != nil {
			return err
		}
	}
	if rt := r.Runtime; rt != nil {
		if err := t.Append(rt.Name, pct(rt.Result.Accuracy), g4(rt.Result.Loss), count(rt.Result)); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	if rt := r.Runtime; rt != nil {
		if md {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s vs simulation: %+.2f points; latency %s ms/sample (float model %s ms)\n", rt.Name, 100*(rt.Result.Accuracy-r.Quantized.Accuracy), g4(rt.LatencyMS), g4(rt.FloatLatencyMS))
		fmt.Fprintf(w, "%s kernels: %s\n", rt.Name, kernelList(rt.Kernels))
		if len(rt.Quantized) == 0 {
			fmt.Fprintf(w, "integer kernels: none (every layer runs as DequantizeLinear + float operator)\n")
		} else {
			fmt.Fprintf(w, "integer kernels: %s\n", kernelList(rt.Quantized))
		}
	}
	if md {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "accuracy change %+.2f points, loss change %+.4g; weights %s (float32 %s)\n",
		100*(r.Quantized.Accuracy-r.Float.Accuracy), r.Quantized.Loss-r.Float.Loss,
		budget.Format(budget.Size, r.WeightBytes), budget.Format(budget.Size, r.FloatBytes))
	if md {
		fmt.Fprintf(w, "\n### Layers\n\n")
	} else {
		fmt.Fprintf(w, "\nLayers\n")
	}
	t = newTable(w, md, 7)
	t.Header("layer", "bits", "abits", "weights", "‖ΔW‖/‖W‖", "input range", "input grid")
	for _, l := range r.Layers {
		ab, rng, grid := "float", "-", "-"
		if l.ABits > 0 {
			ab = strconv.Itoa(l.ABits)
			rng = "[" + g4(l.InputMin) + ", " + g4(l.InputMax) + "]"
			kind := "unsigned"
			if l.InputSigned {
				kind = "asymmetric"
			}
			grid = kind + ", step " + g4(l.InputStep)
		}
		if err := t.Append(l.Name, strconv.Itoa(l.Bits), ab, strconv.Itoa(l.Weights), g4(l.RelErr), rng, grid); err != nil {
			return err
		}
	}
	return t.Render()
}

// correctHeader names the count column after what it counts.
func correctHeader(scoring string) string {
	switch scoring {
	case ScoringPositions:
		return "correct positions"
	case ScoringAgreement:
		return "top-1 agreeing"
	case ScoringNone:
		return "correct"
	}
	return "correct samples"
}

// kernelList lists operator counts sorted by name: "Conv×2, QGemm×1".
func kernelList(k map[string]int) string {
	names := make([]string, 0, len(k))
	for n := range k {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s×%d", n, k[n])
	}
	return strings.Join(parts, ", ")
}
