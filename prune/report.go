package prune

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/olekukonko/tablewriter"

	"github.com/bitplan/bitplan/internal/table"
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
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	return fmt.Errorf("unexpected output format %q", f)
}

// WriteCSV writes one row per unit: name, group, bits, output and input
// channels before and after, params and FLOPs before and after, Ω removed.
func (p *Plan) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"layer", "group", "bits", "out_before", "out_after", "in_before", "in_after",
		"params_before", "params_after", "flops_before", "flops_after", "omega_removed"}); err != nil {
		return err
	}
	for _, l := range p.Layers {
		in := []string{"", ""}
		if l.InChannels != nil {
			in = []string{strconv.Itoa(l.InChannels[0]), strconv.Itoa(l.InChannels[1])}
		}
		r := []string{l.Name, l.Group, strconv.Itoa(l.Bits), strconv.Itoa(l.OutChannels[0]), strconv.Itoa(l.OutChannels[1]),
			in[0], in[1], strconv.FormatInt(l.Params[0], 10), strconv.FormatInt(l.Params[1], 10),
			strconv.FormatInt(l.FLOPs[0], 10), strconv.FormatInt(l.FLOPs[1], 10), strconv.FormatFloat(l.OmegaRemoved, 'g', -1, 64)}
		if err := cw.Write(r); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func newTable(w io.Writer, f Format, ncol int) *tablewriter.Table {
	return table.New(w, f == Markdown, ncol)
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func count(v int64) string {
	return formatValue(Params, float64(v))
}

func (p *Plan) writeTables(w io.Writer, f Format) error {
	md := f == Markdown
	heading := func(s string) {
		if md {
			fmt.Fprintf(w, "\n### %s\n\n", s)
		} else {
			fmt.Fprintf(w, "\n%s\n", s)
		}
	}
	title := "bitplan prune"
	if p.Model != "" {
		title += ": " + p.Model
	}
	title += " (" + string(p.Mode)
	if p.Joint {
		title += ", joint with quantization"
	}
	title += ")"
	if md {
		fmt.Fprintf(w, "## %s\n\n", title)
	} else {
		fmt.Fprintln(w, title)
	}
	line := "status " + p.Status
	if p.Objective != nil {
		line += ", Ω " + num(*p.Objective)
		if p.ObjectiveStdErr > 0 {
			line += " ± " + num(p.ObjectiveStdErr)
		}
	}
	if p.Mode == ILP {
		if p.Bound != nil {
			line += fmt.Sprintf(", bound %s, gap %s", num(*p.Bound), num(*p.Gap))
		}
		line += fmt.Sprintf(", ILP %d iterations (%d nodes, %.3g s), exact search %d nodes", p.Iterations, p.Nodes, p.SolveSeconds, p.SearchNodes)
		if p.ImprovedBy != "" {
			line += ", improved by " + p.ImprovedBy
		}
	}
	fmt.Fprintln(w, line)
	if len(p.Layers) > 0 && p.Objective != nil {
		heading("Layers")
		head := []string{"layer", "channels", "inputs", "Ω removed", "params", "FLOPs"}
		if p.Joint {
			head = append(head, "bits")
		}
		t := newTable(w, f, len(head))
		t.Header(toAny(head)...)
		for _, l := range p.Layers {
			ch := fmt.Sprintf("%d/%d", l.OutChannels[1], l.OutChannels[0])
			in := "-"
			if l.InChannels != nil {
				in = fmt.Sprintf("%d/%d", l.InChannels[1], l.InChannels[0])
			}
			r := []string{l.Name, ch, in, num(l.OmegaRemoved),
				count(l.Params[0]) + " → " + count(l.Params[1]), count(l.FLOPs[0]) + " → " + count(l.FLOPs[1])}
			if p.Joint {
				r = append(r, strconv.Itoa(l.Bits))
			}
			if err := t.Append(toAny(r)...); err != nil {
				return err
			}
		}
		if err := t.Render(); err != nil {
			return err
		}
	}
	heading("Budgets")
	t := newTable(w, f, 7)
	t.Header("resource", "dense", "used", "predicted", "limit", "shadow price", "least")
	for _, u := range p.Usage {
		used, pred, lim, sh := "-", "-", "-", "-"
		if u.Used != nil {
			used = fmt.Sprintf("%s (%.1f%%)", formatValue(u.res, *u.Used), 100**u.Used/u.Dense)
		}
		if u.Predicted != nil {
			pred = formatValue(u.res, *u.Predicted)
		}
		if u.Limit != nil {
			lim = formatValue(u.res, *u.Limit)
			if u.Budget != "" {
				lim += " (" + u.Budget + ")"
			}
		}
		if u.ShadowPrice != nil {
			sh = num(*u.ShadowPrice)
		}
		least := "-"
		if u.Limit != nil {
			least = formatValue(u.res, u.Least)
		}
		if err := t.Append(u.Resource, formatValue(u.res, u.Dense), used, pred, lim, sh, least); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	if a := p.Accuracy; a != nil {
		heading("Accuracy")
		s := fmt.Sprintf("test accuracy on %d samples: original %.2f%%, pruned %.2f%%", a.Samples, 100*a.Original, 100*a.Pruned)
		if a.FineTuned != nil {
			s += fmt.Sprintf(", fine-tuned (%d steps) %.2f%%", a.Steps, 100**a.FineTuned)
		}
		fmt.Fprintln(w, s)
	}
	if len(p.Unprunable) > 0 {
		heading("Left intact")
		for _, u := range p.Unprunable {
			fmt.Fprintln(w, "- "+u)
		}
	}
	if len(p.Warnings) > 0 {
		heading("Warnings")
		for _, s := range p.Warnings {
			fmt.Fprintln(w, "- "+s)
		}
	}
	return nil
}

func toAny(s []string) []any {
	a := make([]any, len(s))
	for i, v := range s {
		a[i] = v
	}
	return a
}
