package plan

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/internal/outfile"
)

// mix summarises a plan's choices as "8×10 4×9" (candidate × layers).
func mix(p *Plan) string {
	count := map[string]int{}
	for _, l := range p.Layers {
		if l.Choice != "" {
			count[l.Choice]++
		}
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, _ := strconv.Atoi(keys[i])
		b, _ := strconv.Atoi(keys[j])
		if a != b {
			return a > b
		}
		return keys[i] < keys[j]
	})
	var s []string
	for _, k := range keys {
		s = append(s, fmt.Sprintf("%s×%d", k, count[k]))
	}
	return strings.Join(s, " ")
}

// Write renders the frontier as a table (text or Markdown), CSV or JSON.
func (f *Frontier) Write(w io.Writer, format Format) error {
	switch format {
	case JSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(f)
	case CSV:
		cw := csv.NewWriter(w)
		cw.Write([]string{"fraction", "limit_" + strings.ToLower(f.Unit), "status", "objective", "bound", "used_" + strings.ToLower(f.Unit), "shadow_price", "mix"})
		g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
		for _, pt := range f.Points {
			u := pt.Plan.Usage[f.Resource]
			row := []string{g(pt.Fraction), g(pt.Limit), pt.Plan.Status, optRaw(pt.Plan.Objective), optRaw(pt.Plan.Bound), optRaw(u.Used), optRaw(u.ShadowPrice), mix(pt.Plan)}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case Text, Markdown:
		t := newTable(w, format, 7)
		t.Header("budget", f.Resource+" limit", "status", "Ω", f.Resource+" used", "shadow price", "mix")
		for _, pt := range f.Points {
			u := pt.Plan.Usage[f.Resource]
			used, shadow := "-", "-"
			if u.Used != nil {
				used = budget.Format(f.kind, *u.Used)
			}
			if u.ShadowPrice != nil {
				shadow = num(*u.ShadowPrice) + " Ω/" + f.Unit
			}
			if err := t.Append(strconv.FormatFloat(pt.Fraction*100, 'g', 4, 64)+"%", budget.Format(f.kind, pt.Limit),
				pt.Plan.Status, optNum(pt.Plan.Objective), used, shadow, mix(pt.Plan)); err != nil {
				return err
			}
		}
		return t.Render()
	}
	return fmt.Errorf("unexpected output format %q", format)
}

func optRaw(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

// Plot draws Ω against the swept resource's use (feasible points only) and
// saves it; the extension of path (.svg, .png, .pdf) picks the format.
func (f *Frontier) Plot(path, title string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = fmt.Sprintf("%s (%s)", f.Resource, f.Unit)
	p.Y.Label.Text = "Σ Ω (sensitivity)"
	var pts plotter.XYs
	for _, pt := range f.Points {
		u := pt.Plan.Usage[f.Resource]
		if pt.Plan.Objective == nil || u.Used == nil {
			continue
		}
		pts = append(pts, plotter.XY{X: *u.Used, Y: *pt.Plan.Objective})
	}
	if len(pts) == 0 {
		return fmt.Errorf("plot %s: no feasible point to draw", path)
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
	line, points, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	line.StepStyle = plotter.PostStep
	p.Add(line, points, plotter.NewGrid())
	return savePlot(p, path)
}

// CheckImagePath reports whether path names an image format the plots can
// be saved in (by its extension: .svg, .png, .pdf, .eps, .jpg, .tif), so a
// command can refuse a bad --plot or --density before any work.
func CheckImagePath(path string) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".svg", ".png", ".pdf", ".eps", ".jpg", ".jpeg", ".tif", ".tiff":
		return nil
	}
	return fmt.Errorf("plot %s: unknown image format %q; use .svg, .png or .pdf", path, filepath.Ext(path))
}

// savePlot renders p (6 × 4 inches) in the format of path's extension and
// writes it atomically (outfile: a failed run leaves the old file).
func savePlot(p *plot.Plot, path string) error {
	if err := CheckImagePath(path); err != nil {
		return err
	}
	wt, err := p.WriterTo(6*vg.Inch, 4*vg.Inch, strings.ToLower(filepath.Ext(path))[1:])
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return outfile.Write(path, func(w io.Writer) error {
		_, err := wt.WriteTo(w)
		return err
	})
}
