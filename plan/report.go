package plan

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"

	"github.com/bitplan/bitplan/internal/jsonx"
	"github.com/bitplan/bitplan/internal/table"

	"github.com/bitplan/bitplan/budget"
)

// Format is an output format of the report (shared by every command).
type Format = table.Format

// The report formats.
const (
	Text     = table.Text
	Markdown = table.Markdown
	CSV      = table.CSV
	JSON     = table.JSON
)

// ParseFormat checks a --format value: table (or text), markdown (or md),
// csv or json.
func ParseFormat(s string) (Format, error) { return table.ParseFormat(s) }

// Write renders the plan in the given format.
func (p *Plan) Write(w io.Writer, f Format) error {
	switch f {
	case Text, Markdown:
		return p.writeTables(w, f)
	case CSV:
		return p.WriteCSV(w)
	case JSON:
		return p.WriteJSON(w)
	}
	return fmt.Errorf("unexpected output format %q", f)
}

// WriteJSON writes the plan contract as indented JSON, byte for byte what
// encoding/json's indenting encoder writes; the layers (most of a large
// plan) are formatted directly rather than through reflection.
func (p *Plan) WriteJSON(w io.Writer) error {
	head := *p
	head.Layers = nil
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&head); err != nil {
		return err
	}
	out := buf.Bytes()
	const mark = "\n  \"layers\": null"
	i := bytes.Index(out, []byte(mark))
	if p.Layers == nil || i < 0 {
		_, err := w.Write(out)
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(out[:i+len(mark)-len("null")])
	b := make([]byte, 0, 4096)
	b = append(b, '[')
	for k := range p.Layers {
		if k > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = p.Layers[k].appendJSON(b); err != nil {
			return fmt.Errorf("layers[%d] (%q): %w", k, p.Layers[k].Name, err)
		}
		if len(b) > 32<<10 {
			bw.Write(b)
			b = b[:0]
		}
	}
	if len(p.Layers) > 0 {
		b = jsonx.AppendIndent(b, 1)
	}
	b = append(b, ']')
	bw.Write(b)
	bw.Write(out[i+len(mark):])
	return bw.Flush()
}

// appendJSON appends the layer as WriteJSON's encoder writes it at depth 2.
func (l *Layer) appendJSON(b []byte) ([]byte, error) {
	var bad error
	num := func(name string, v float64) {
		b = jsonx.AppendIndent(b, 3)
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `": `...)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			if bad == nil {
				bad = fmt.Errorf("%s is %v, which JSON cannot hold", name, v)
			}
			v = 0
		}
		b = jsonx.AppendFloat(b, v)
		b = append(b, ',')
	}
	b = jsonx.AppendIndent(b, 2)
	b = append(b, '{')
	b = jsonx.AppendIndent(b, 3)
	b = append(b, `"name": `...)
	b = jsonx.AppendString(b, l.Name)
	b = append(b, ',')
	b = jsonx.AppendIndent(b, 3)
	b = append(b, `"bits": `...)
	b = strconv.AppendInt(b, int64(l.Bits), 10)
	b = append(b, ',')
	b = jsonx.AppendIndent(b, 3)
	b = append(b, `"abits": `...)
	b = strconv.AppendInt(b, int64(l.ABits), 10)
	b = append(b, ',')
	b = jsonx.AppendIndent(b, 3)
	b = append(b, `"choice": `...)
	b = jsonx.AppendString(b, l.Choice)
	b = append(b, ',')
	num("omega", l.Omega)
	num("avg_trace", l.AvgTrace)
	if l.AvgTraceStderr != 0 {
		num("avg_trace_stderr", l.AvgTraceStderr)
	}
	num("params", l.Params)
	num("macs", l.MACs)
	if len(l.Costs) > 0 {
		b = jsonx.AppendIndent(b, 3)
		b = append(b, `"costs": {`...)
		var arr [16]string
		ks := arr[:0]
		for k := range l.Costs {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for j, k := range ks {
			if j > 0 {
				b = append(b, ',')
			}
			b = jsonx.AppendIndent(b, 4)
			b = jsonx.AppendString(b, k)
			b = append(b, `: `...)
			v := l.Costs[k]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				if bad == nil {
					bad = fmt.Errorf("costs[%q] is %v, which JSON cannot hold", k, v)
				}
				v = 0
			}
			b = jsonx.AppendFloat(b, v)
		}
		b = jsonx.AppendIndent(b, 3)
		b = append(b, "},"...)
	}
	if l.Tie != "" {
		b = jsonx.AppendIndent(b, 3)
		b = append(b, `"tie": `...)
		b = jsonx.AppendString(b, l.Tie)
		b = append(b, ',')
	}
	if l.Pinned {
		b = jsonx.AppendIndent(b, 3)
		b = append(b, `"pinned": true,`...)
	}
	if l.Kind != "" {
		b = jsonx.AppendIndent(b, 3)
		b = append(b, `"kind": `...)
		b = jsonx.AppendString(b, l.Kind)
		b = append(b, ',')
	}
	if l.Pruned != nil {
		js, err := json.MarshalIndent(l.Pruned, "      ", "  ")
		if err != nil && bad == nil {
			bad = err
		}
		b = jsonx.AppendIndent(b, 3)
		b = append(b, `"pruned": `...)
		b = append(b, js...)
		b = append(b, ',')
	}
	b = b[:len(b)-1] // the last comma
	b = jsonx.AppendIndent(b, 2)
	b = append(b, '}')
	return b, bad
}

// WriteCSV writes one row per layer: name, choice, bits, abits, Ω, trace,
// stderr, params, MACs and the cost of every resource (canonical units);
// a pruning plan adds the group, output and input channels before and
// after, params and FLOPs after, and the Ω removed.
func (p *Plan) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	res := p.Resources()
	head := []string{"layer", "choice", "bits", "abits", "omega", "avg_trace", "avg_trace_stderr", "params", "macs", "tie"}
	for _, r := range res {
		head = append(head, r+"_"+strings.ToLower(p.Usage[r].Unit))
	}
	if p.Pruning != nil {
		head = append(head, "group", "out_before", "out_after", "in_before", "in_after",
			"params_after", "flops_before", "flops_after", "omega_removed")
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, l := range p.Layers {
		row := []string{l.Name, l.Choice, strconv.Itoa(l.Bits), strconv.Itoa(l.ABits), g(l.Omega),
			g(l.AvgTrace), g(l.AvgTraceStderr), g(l.Params), g(l.MACs), l.Tie}
		for _, r := range res {
			row = append(row, g(l.Costs[r]))
		}
		if p.Pruning != nil {
			pr := l.Pruned
			if pr == nil {
				pr = &LayerPruning{}
			}
			in := []string{"", ""}
			if pr.InChannels != nil {
				in = []string{strconv.Itoa(pr.InChannels[0]), strconv.Itoa(pr.InChannels[1])}
			}
			row = append(row, pr.Group, strconv.Itoa(pr.OutChannels[0]), strconv.Itoa(pr.OutChannels[1]), in[0], in[1],
				strconv.FormatInt(pr.Params[1], 10), strconv.FormatInt(pr.FLOPs[0], 10), strconv.FormatInt(pr.FLOPs[1], 10), g(pr.OmegaRemoved))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// newTable returns a report table for format f (Markdown or ASCII text).
func newTable(w io.Writer, f Format, ncol int) *tablewriter.Table {
	return table.New(w, f == Markdown, ncol)
}

// num formats a plain number with four significant digits.
func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// writeTables renders the human report: certificate, per-layer table,
// budgets, uniform baselines, infeasibility and warnings.
func (p *Plan) writeTables(w io.Writer, f Format) error {
	md := f == Markdown
	heading := func(s string) {
		if md {
			fmt.Fprintf(w, "\n### %s\n\n", s)
		} else {
			fmt.Fprintf(w, "\n%s\n", s)
		}
	}
	title := "bitplan plan"
	if p.Pruning != nil {
		title = "bitplan prune"
	}
	if p.Model != "" {
		title += ": " + p.Model
	}
	if pr := p.Pruning; pr != nil {
		title += " (" + pr.Mode
		if pr.Joint {
			title += ", joint with quantization"
		}
		title += ")"
	}
	if md {
		fmt.Fprintf(w, "## %s\n\n", title)
	} else {
		fmt.Fprintln(w, title)
	}
	if p.Source != "" {
		fmt.Fprintln(w, p.Source)
	}
	obj := optNum(p.Objective)
	if pr := p.Pruning; pr != nil && p.Objective != nil && pr.ObjectiveStdErr > 0 {
		obj += " ± " + num(pr.ObjectiveStdErr)
	}
	fmt.Fprintf(w, "status %s, objective %s, bound %s, gap %s, %d nodes, %s (%s)\n",
		p.Status, obj, optNum(p.Bound), optGap(p.Gap), p.Nodes, seconds(p.SolveSeconds), p.Engine)
	if pr := p.Pruning; pr != nil && pr.Mode == "ilp" {
		line := fmt.Sprintf("%d ILP solves (linearise, solve, verify), exact search %d nodes", pr.Iterations, pr.SearchNodes)
		if pr.ImprovedBy != "" {
			line += ", improved by " + pr.ImprovedBy
		}
		fmt.Fprintln(w, line)
	}
	if vr := p.Verification; vr != nil && vr.Overruled {
		fmt.Fprintf(w, "the measurement overruled the Ω optimum: the plan below is %q, its Ω is the objective above (see Verification)\n", vr.Candidates[vr.Chosen].Name)
	}

	res := p.Resources()
	if p.Pruning != nil {
		if err := p.writePruneLayers(w, f, heading); err != nil {
			return err
		}
	} else if err := p.writeLayers(w, f, heading, res); err != nil {
		return err
	}

	heading("Budgets")
	if err := p.writeBudgets(w, f, res); err != nil {
		return err
	}
	return p.writeRest(w, f, heading, res)
}

// writeLayers renders the per-layer table of a quantization plan.
func (p *Plan) writeLayers(w io.Writer, f Format, heading func(string), res []string) error {
	heading("Layers")
	head := append([]string{"layer", "bits", "Ω", "avg trace"}, res...)
	t := newTable(w, f, len(head))
	t.Header(toAny(head)...)
	for _, l := range p.Layers {
		bits := l.Choice
		if bits == "" {
			bits = "-"
		}
		switch {
		case l.Kind == "nonlinear" && l.Bits > 0 && l.Bits < 16:
			bits = "int"
		case l.Kind != "" && l.Bits >= 16:
			bits = "float"
		}
		if l.Pinned {
			bits += " (pinned)"
		}
		if l.Tie != "" {
			bits += " *"
		}
		trace := num(l.AvgTrace)
		if l.AvgTraceStderr > 0 {
			trace += " ± " + num(l.AvgTraceStderr)
		}
		switch {
		case l.Kind != "" && l.Pinned:
			trace = l.Kind // no weights: no trace
		case l.Kind != "":
			trace = l.Kind + ", Ω measured"
		}
		row := []string{l.Name, bits, num(l.Omega), trace}
		for _, r := range res {
			row = append(row, budget.Format(p.Usage[r].Kind, l.Costs[r]))
		}
		if err := t.Append(toAny(row)...); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	if hasTies(p) {
		fmt.Fprintln(w, "* tied: layers of one tie group share a precision")
	}
	return nil
}

// writePruneLayers renders the per-unit table of a pruning plan.
func (p *Plan) writePruneLayers(w io.Writer, f Format, heading func(string)) error {
	if len(p.Layers) == 0 || p.Objective == nil {
		return nil
	}
	heading("Layers")
	head := []string{"layer", "channels", "inputs", "Ω removed", "params", "FLOPs"}
	if p.Pruning.Joint {
		head = append(head, "bits")
	}
	t := newTable(w, f, len(head))
	t.Header(toAny(head)...)
	count := func(v int64) string { return budget.Format(budget.Params, float64(v)) }
	for _, l := range p.Layers {
		pr := l.Pruned
		if pr == nil {
			continue
		}
		in := "-"
		if pr.InChannels != nil {
			in = fmt.Sprintf("%d/%d", pr.InChannels[1], pr.InChannels[0])
		}
		row := []string{l.Name, fmt.Sprintf("%d/%d", pr.OutChannels[1], pr.OutChannels[0]), in, num(pr.OmegaRemoved),
			count(pr.Params[0]) + " → " + count(pr.Params[1]), count(pr.FLOPs[0]) + " → " + count(pr.FLOPs[1])}
		if p.Pruning.Joint {
			row = append(row, strconv.Itoa(l.Bits))
		}
		if err := t.Append(toAny(row)...); err != nil {
			return err
		}
	}
	return t.Render()
}

// writeBudgets renders the budgets table, the same for every kind of plan:
// use, limit, slack, shadow price and the range the percentages refer to
// (a pruning plan's used values also as a share of the unpruned model, and
// its linear model's prediction).
func (p *Plan) writeBudgets(w io.Writer, f Format, res []string) error {
	predicted := false
	for _, r := range res {
		predicted = predicted || p.Usage[r].Predicted != nil
	}
	head := []string{"resource", "used", "limit", "slack", "shadow price", "range (lowest..highest)"}
	if predicted {
		head = append(head, "predicted")
	}
	t := newTable(w, f, len(head))
	t.Header(toAny(head)...)
	for _, r := range res {
		u := p.Usage[r]
		lim, slack, shadow := "-", "-", "-"
		if u.Limit != nil {
			lim = budget.Format(u.Kind, *u.Limit)
			if u.Budget != "" {
				lim += " (" + u.Budget + ")"
			}
		}
		if u.Slack != nil {
			slack = budget.Format(u.Kind, *u.Slack)
		}
		if u.ShadowPrice != nil {
			shadow = num(*u.ShadowPrice) + " Ω/" + u.Unit
		}
		used := "-"
		if u.Used != nil {
			used = budget.Format(u.Kind, *u.Used)
			if p.Pruning != nil && u.Max > 0 {
				used += fmt.Sprintf(" (%.1f%% of max)", 100**u.Used/u.Max)
			}
		}
		rng := budget.Format(u.Kind, u.Min) + " .. " + budget.Format(u.Kind, u.Max)
		row := []string{r, used, lim, slack, shadow, rng}
		if predicted {
			pv := "-"
			if u.Predicted != nil {
				pv = budget.Format(u.Kind, *u.Predicted)
			}
			row = append(row, pv)
		}
		if err := t.Append(toAny(row)...); err != nil {
			return err
		}
	}
	return t.Render()
}

// writeRest renders the uniform baselines, verification, stability,
// accuracy, groups left intact and infeasibility.
func (p *Plan) writeRest(w io.Writer, f Format, heading func(string), res []string) error {
	var t *tablewriter.Table

	if len(p.Uniform) > 0 {
		heading("Uniform precision")
		head := []string{"candidate", "Ω"}
		head = append(head, res...)
		head = append(head, "fits")
		t = newTable(w, f, len(head))
		t.Header(toAny(head)...)
		for _, u := range p.Uniform {
			row := []string{u.Choice, num(u.Omega)}
			for _, r := range res {
				row = append(row, budget.Format(p.Usage[r].Kind, u.Costs[r]))
			}
			fits := "no"
			if u.Fits {
				fits = "yes"
			}
			row = append(row, fits)
			if err := t.Append(toAny(row)...); err != nil {
				return err
			}
		}
		if err := t.Render(); err != nil {
			return err
		}
		if s := p.uniformSummary(); s != "" {
			fmt.Fprintln(w, s)
		}
	}

	if vr := p.Verification; vr != nil {
		heading("Verification")
		if err := vr.writeTables(w, f); err != nil {
			return err
		}
	}
	if st := p.Stability; st != nil {
		heading("Stability")
		fmt.Fprintf(w, "%d of %d resampled solves give the same plan (%s)\n", st.Unchanged, st.Runs, st.Method)
		t = newTable(w, f, 3)
		t.Header("layer", "nominal", "choice frequencies")
		for _, l := range st.Layers {
			keys := make([]string, 0, len(l.Freq))
			for k := range l.Freq {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var fr []string
			for _, k := range keys {
				fr = append(fr, fmt.Sprintf("%s: %.0f%%", k, 100*l.Freq[k]))
			}
			if err := t.Append(l.Name, l.Nominal, strings.Join(fr, ", ")); err != nil {
				return err
			}
		}
		if err := t.Render(); err != nil {
			return err
		}
	}
	if pr := p.Pruning; pr != nil {
		if a := pr.Accuracy; a != nil {
			heading("Accuracy")
			s := fmt.Sprintf("test accuracy on %d samples: original %.2f%%, pruned %.2f%%", a.Samples, 100*a.Original, 100*a.Pruned)
			if a.FineTuned != nil {
				s += fmt.Sprintf(", fine-tuned (%d steps) %.2f%%", a.Steps, 100**a.FineTuned)
			}
			fmt.Fprintln(w, s)
		}
		if len(pr.Unprunable) > 0 {
			heading("Left intact")
			for _, u := range pr.Unprunable {
				fmt.Fprintln(w, "- "+u)
			}
		}
	}
	if inf := p.Infeasibility; inf != nil {
		heading("Why no plan fits")
		for _, r := range inf.Rows {
			k := kindOfUnit(r.Unit)
			fmt.Fprintf(w, "- %s: limit %s, least achievable %s\n", r.Resource, budget.Format(k, r.Limit), budget.Format(k, r.Least))
		}
		for _, c := range inf.Conflicts {
			if len(c) == 1 {
				fmt.Fprintf(w, "- the %s budget alone cannot be met\n", c[0])
			} else {
				fmt.Fprintf(w, "- the budgets %s cannot be met together\n", strings.Join(c, " + "))
			}
		}
	}
	return nil
}

// uniformSummary compares the plan with the most accurate uniform candidate
// and the lowest uniform candidate that fits.
func (p *Plan) uniformSummary() string {
	if p.Objective == nil || len(p.Uniform) == 0 {
		return ""
	}
	top := p.Uniform[len(p.Uniform)-1]
	s := fmt.Sprintf("plan Ω %s vs uniform %s Ω %s", num(*p.Objective), top.Choice, num(top.Omega))
	for _, u := range p.Uniform {
		if u.Fits {
			return s + fmt.Sprintf("; lowest uniform candidate that fits: %s (Ω %s)", u.Choice, num(u.Omega))
		}
	}
	return s + "; no uniform candidate fits the budgets"
}

func hasTies(p *Plan) bool {
	for _, l := range p.Layers {
		if l.Tie != "" {
			return true
		}
	}
	return false
}

func optNum(v *float64) string {
	if v == nil {
		return "-"
	}
	return num(*v)
}

func optGap(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v*100, 'g', 3, 64) + "%"
}

func seconds(s float64) string {
	switch {
	case s < 1e-3:
		return strconv.FormatFloat(s*1e6, 'f', 0, 64) + " µs"
	case s < 1:
		return strconv.FormatFloat(s*1e3, 'f', 2, 64) + " ms"
	}
	return strconv.FormatFloat(s, 'f', 2, 64) + " s"
}

func toAny(s []string) []any {
	a := make([]any, len(s))
	for i, v := range s {
		a[i] = v
	}
	return a
}
