package plan

import (
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"

	"github.com/bitplan/bitplan/hessian"
)

// Write renders the analysis: JSON is the sensitivity table (the input of
// `bitplan solve`); the text, Markdown and CSV reports show per layer the
// average trace with its standard error and confidence interval, and Δ² per
// candidate (and, when the table has the activation term, the average
// activation trace and E‖Δa‖² per candidate), then the whole-model figures.
func (s *Sensitivity) Write(w io.Writer, f Format) error {
	t := s.Table
	var keys []string
	if len(t.Layers) > 0 {
		_, keys = t.Layers[0].Candidates()
	}
	conf := s.Traces.Confidence
	// act: the table has the activation term (eval.ActivationTerm).
	act := false
	for _, l := range t.Layers {
		act = act || l.ActDeltaSq != nil
	}
	switch f {
	case JSON:
		return t.WriteJSON(w)
	case CSV:
		cw := csv.NewWriter(w)
		head := []string{"layer", "params", "macs", "trace", "avg_trace", "avg_trace_stderr", "avg_trace_lo", "avg_trace_hi"}
		for _, k := range keys {
			head = append(head, "delta_sq_"+k)
		}
		if act {
			head = append(head, "act_avg_trace", "act_avg_trace_stderr")
			for _, k := range keys {
				head = append(head, "act_delta_sq_"+k)
			}
		}
		cw.Write(head)
		g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
		for i, l := range t.Layers {
			est := s.Traces.Blocks[i]
			row := []string{l.Name, g(l.Params), g(l.MACs), g(est.Trace), g(l.AvgTrace), g(l.AvgTraceStderr), g(est.Lo / l.Params), g(est.Hi / l.Params)}
			for _, k := range keys {
				row = append(row, g(l.DeltaSq[k]))
			}
			if act {
				row = append(row, g(l.ActAvgTrace), g(l.ActAvgTraceStderr))
				for _, k := range keys {
					row = append(row, g(l.ActDeltaSq[k]))
				}
			}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case Text, Markdown:
	default:
		return fmt.Errorf("unexpected output format %q", f)
	}
	title := "bitplan trace"
	if t.Model != "" {
		title += ": " + t.Model
	}
	if f == Markdown {
		fmt.Fprintf(w, "## %s\n\n", title)
	} else {
		fmt.Fprintln(w, title)
	}
	fmt.Fprintln(w, t.Source)
	head := []string{"layer", "params", "MACs", "avg trace ± s.e.", fmt.Sprintf("%.0f%% interval", 100*conf)}
	for _, k := range keys {
		head = append(head, "Δ² ("+k+")")
	}
	if act {
		head = append(head, "act trace ± s.e.")
		for _, k := range keys {
			head = append(head, "E‖Δa‖² ("+k+")")
		}
	}
	tab := newTable(w, f, len(head))
	tab.Header(toAny(head)...)
	for i, l := range t.Layers {
		est := s.Traces.Blocks[i]
		tr := num(l.AvgTrace)
		if l.AvgTraceStderr > 0 {
			tr += " ± " + num(l.AvgTraceStderr)
		}
		interval := "exact"
		if s.Traces.Method != "exact" {
			interval = "[" + num(est.Lo/l.Params) + ", " + num(est.Hi/l.Params) + "]"
		}
		row := []string{l.Name, num(l.Params), num(l.MACs), tr, interval}
		for _, k := range keys {
			row = append(row, num(l.DeltaSq[k]))
		}
		if act {
			at := "-"
			if l.ActDeltaSq != nil {
				at = num(l.ActAvgTrace)
				if l.ActAvgTraceStderr > 0 {
					at += " ± " + num(l.ActAvgTraceStderr)
				}
			}
			row = append(row, at)
			for _, k := range keys {
				if v, ok := l.ActDeltaSq[k]; ok {
					row = append(row, num(v))
				} else {
					row = append(row, "-")
				}
			}
		}
		if err := tab.Append(toAny(row)...); err != nil {
			return err
		}
	}
	if err := tab.Render(); err != nil {
		return err
	}
	if len(s.Groups) > 0 {
		fmt.Fprintln(w, "units sharing one precision (ties of the table; --group none or patterns change them):")
		for _, g := range s.Groups {
			fmt.Fprintf(w, "- %s (%s)\n", strings.Join(g.Units, ", "), g.Reason)
		}
	}
	r := s.Traces
	total := "total trace (weights) " + num(r.Total.Trace)
	if r.Total.StdErr > 0 {
		total += " ± " + num(r.Total.StdErr)
	}
	conv := ""
	if (r.Method == "hutchinson" || r.Method == "a-hutch++") && !r.Converged {
		conv = " (tolerance not reached: raise --max-probes)"
		if r.Stop == hessian.StopTimeBudget {
			conv = " (time budget spent before the tolerance: raise --time-budget)"
		}
	}
	fmt.Fprintf(w, "%s; %s, %d probes, %d Hessian-vector products%s\n", total, r.Method, r.Probes, r.Matvecs, conv)
	if pl := r.Pilot; pl != nil && pl.Sketch > 0 {
		if pl.Sketched {
			ran := pl.Choice
			if len(pl.Blocks) > 0 {
				var pp []string
				for i, c := range pl.Blocks {
					if c == "a-hutch++" && i < len(r.Blocks) {
						pp = append(pp, r.Blocks[i].Name)
					}
				}
				ran = fmt.Sprintf("adaptive Hutch++ on %d of %d layers (%s), Hutchinson on the others", len(pp), len(pl.Blocks), strings.Join(pp, ", "))
				switch len(pp) {
				case 0:
					ran = fmt.Sprintf("Hutchinson on all %d layers (their residual probes' samples varied less that way)", len(pl.Blocks))
				case len(pl.Blocks):
					ran = fmt.Sprintf("adaptive Hutch++ on all %d layers", len(pl.Blocks))
				}
			}
			fmt.Fprintf(w, "auto: a %d-vector pilot sketch captured %.0f%% of ‖H‖²_F (top Ritz value %s); predicted %d Hutchinson or %d residual probes; ran %s\n",
				pl.Sketch, 100*pl.Captured, num(pl.Ritz[0]), pl.Hutchinson, pl.Residual, ran)
		} else {
			fmt.Fprintf(w, "auto: the pilot predicted %d Hutchinson probes (twice that is below %d, too few for a sketch to pay, or no time was left for it); ran hutchinson\n", pl.Hutchinson, 10*pl.Sketch)
		}
	}
	if ev := s.TopEigenvalue; ev != nil && len(ev.Values) > 0 {
		fmt.Fprintf(w, "top eigenvalue %s (residual %s, %d products)\n", num(ev.Values[0]), num(ev.Residuals[0]), ev.Matvecs)
	}
	if d := s.Density; d != nil {
		fmt.Fprintf(w, "spectral density: %d runs × %d products, σ = %s\n", len(d.Nodes), d.Matvecs/max(1, len(d.Nodes)), num(d.Sigma))
	}
	return nil
}

// PlotDensity draws the smoothed spectral density (stochastic Lanczos
// quadrature) on a log scale; the extension of path picks the format.
func PlotDensity(d *hessian.DensityResult, path, title string) error {
	if err := CheckImagePath(path); err != nil {
		return err
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "eigenvalue"
	p.Y.Label.Text = "density (log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	var pts plotter.XYs
	for i, x := range d.Grid {
		y := d.Density[i]
		if y > 1e-12 {
			pts = append(pts, plotter.XY{X: x, Y: y})
		}
	}
	if len(pts) < 2 {
		return fmt.Errorf("plot %s: the density has no positive values to draw", path)
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	p.Add(line, plotter.NewGrid())
	return savePlot(p, path)
}
