package profiles

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Description is a profile laid out for reports: the data model behind
// WriteText and WriteMarkdown, for callers (the CLI) that render it their
// own way. Units are SI.
type Description struct {
	// Name, Summary, Kind and Origin repeat the profile's identity.
	Name, Summary string
	// Kind is gpu, cpu or npu.
	Kind Kind
	// Origin is "builtin" or the file path.
	Origin string
	// Bandwidth (bytes/s), Overhead (s), Efficiency and DRAMEnergy (J/byte)
	// repeat the profile's fields.
	Bandwidth, Overhead, Efficiency, DRAMEnergy float64
	// MemoryEfficiency is the fraction of Bandwidth achieved (0: not set,
	// the peak).
	MemoryEfficiency float64
	// Calibrated is true when a precision carries its own overhead (a
	// fitted profile, Profile.Fit): the rows then show it.
	Calibrated bool
	// Rows describe each native precision.
	Rows []DescriptionRow
	// ALU repeats the profile's element-wise units, keyed "int32" and
	// "fp32" (nil when it has none).
	ALU map[string]ALUSpec
	// Fallbacks tell what each of CommonPrecisions runs as when the device
	// lacks it.
	Fallbacks []Fallback
	// Sources lists the citations, sorted by field.
	Sources []Source
	// Notes and Warnings repeat the profile's.
	Notes, Warnings []string
}

// DescriptionRow is one native precision of a Description.
type DescriptionRow struct {
	// Precision and Format identify the row.
	Precision Precision
	// Format is "int" or "fp".
	Format string
	// PeakOps is the dense peak in ops/s (1 MAC = 2 ops).
	PeakOps float64
	// Efficiency is the factor applied at this precision.
	Efficiency float64
	// EffectiveMACs is PeakOps/2 · Efficiency, the MAC/s the model uses.
	EffectiveMACs float64
	// Ridge is the roofline ridge point EffectiveMACs / Bandwidth, in MACs
	// per DRAM byte: layers with fewer MACs per byte moved are memory bound.
	Ridge float64
	// EnergyPerMAC is joules per MAC (0 = unknown).
	EnergyPerMAC float64
	// Overhead is the per-layer time at this precision, in seconds.
	Overhead float64
}

// Fallback records how a precision the device lacks is run.
type Fallback struct {
	// Requested is the precision asked for.
	Requested Precision
	// Used is the wider pair used; zero when Removed.
	Used Precision
	// Removed is true when no listed pair holds Requested.
	Removed bool
}

// Source is one field's citation.
type Source struct {
	// Field is the path in the profile file, e.g. "precisions.w8a8.peak_tops".
	Field string
	// Citation is the reference or derivation.
	Citation string
}

// Describe lays the profile out for reports.
func (p *Profile) Describe() Description {
	d := Description{
		Name: p.Name, Summary: p.Description, Kind: p.Kind, Origin: p.Origin,
		Bandwidth: p.Bandwidth, Overhead: p.Overhead, Efficiency: p.Efficiency, DRAMEnergy: p.DRAMEnergy,
		MemoryEfficiency: p.MemoryEfficiency, ALU: p.ALU,
		Notes: p.Notes, Warnings: p.Warnings,
	}
	for _, s := range p.Precisions {
		eff := p.efficiency(s)
		r := DescriptionRow{Precision: s.Precision, Format: s.Format, PeakOps: s.PeakOps, Efficiency: eff,
			EffectiveMACs: s.PeakMACs() * eff, EnergyPerMAC: s.EnergyPerMAC, Overhead: p.overhead(s)}
		r.Ridge = r.EffectiveMACs / p.bandwidth()
		d.Calibrated = d.Calibrated || s.HasOverhead
		d.Rows = append(d.Rows, r)
	}
	for _, q := range CommonPrecisions() {
		spec, fell, err := p.Resolve(q)
		switch {
		case err != nil:
			d.Fallbacks = append(d.Fallbacks, Fallback{Requested: q, Removed: true})
		case fell:
			d.Fallbacks = append(d.Fallbacks, Fallback{Requested: q, Used: spec.Precision})
		}
	}
	for _, k := range sortedKeys(p.Sources) {
		d.Sources = append(d.Sources, Source{k, p.Sources[k]})
	}
	return d
}

// WriteText writes the profile's description as aligned plain text.
func (p *Profile) WriteText(w io.Writer) error { return p.Describe().WriteText(w) }

// WriteMarkdown writes the profile's description as Markdown.
func (p *Profile) WriteMarkdown(w io.Writer) error { return p.Describe().WriteMarkdown(w) }

// WriteText writes d as aligned plain text.
func (d Description) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "%s: %s\n", d.Name, d.Summary)
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  kind\t%s\n", d.Kind)
	fmt.Fprintf(tw, "  origin\t%s\n", d.Origin)
	fmt.Fprintf(tw, "  memory bandwidth\t%s\n", si(d.Bandwidth, "B/s"))
	fmt.Fprintf(tw, "  layer overhead\t%s\n", si(d.Overhead, "s"))
	fmt.Fprintf(tw, "  efficiency\t%s\n", num(d.Efficiency))
	fmt.Fprintf(tw, "  DRAM energy\t%s\n", pj(d.DRAMEnergy, "pJ/B"))
	if d.MemoryEfficiency > 0 {
		fmt.Fprintf(tw, "  memory efficiency\t%s\n", num(d.MemoryEfficiency))
	}
	for _, k := range sortedKeys(d.ALU) {
		fmt.Fprintf(tw, "  %s ALU\t%s\n", k, aluText(d.ALU[k]))
	}
	tw.Flush()
	fmt.Fprintln(ew)
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	head := "  precision\tformat\tpeak (dense)\tefficiency\tmodel MAC/s\tridge MAC/B\tenergy/MAC"
	if d.Calibrated {
		head += "\toverhead"
	}
	fmt.Fprintln(tw, head)
	for _, r := range d.Rows {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s", r.Precision, r.Format, tops(r.PeakOps), num(r.Efficiency),
			si(r.EffectiveMACs, "MAC/s"), num(r.Ridge), pj(r.EnergyPerMAC, "pJ"))
		if d.Calibrated {
			fmt.Fprintf(tw, "\t%s", si(r.Overhead, "s"))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if len(d.Fallbacks) > 0 {
		fmt.Fprintf(ew, "\n  fallbacks: %s\n", fallbackText(d.Fallbacks, "→"))
	}
	if len(d.Sources) > 0 {
		fmt.Fprintln(ew, "\n  sources:")
		for _, s := range d.Sources {
			fmt.Fprintf(ew, "    %s: %s\n", s.Field, s.Citation)
		}
	}
	if len(d.Notes) > 0 {
		fmt.Fprintln(ew, "\n  notes:")
		for _, n := range d.Notes {
			fmt.Fprintf(ew, "    - %s\n", n)
		}
	}
	if len(d.Warnings) > 0 {
		fmt.Fprintln(ew, "\n  warnings:")
		for _, n := range d.Warnings {
			fmt.Fprintf(ew, "    - %s\n", n)
		}
	}
	return ew.err
}

// WriteMarkdown writes d as a Markdown section.
func (d Description) WriteMarkdown(w io.Writer) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "### %s\n\n%s\n\n", d.Name, mdEscape(d.Summary))
	fmt.Fprintln(ew, "| field | value |\n|---|---|")
	fmt.Fprintf(ew, "| kind | %s |\n", d.Kind)
	fmt.Fprintf(ew, "| origin | %s |\n", mdEscape(d.Origin))
	fmt.Fprintf(ew, "| memory bandwidth | %s |\n", si(d.Bandwidth, "B/s"))
	fmt.Fprintf(ew, "| layer overhead | %s |\n", si(d.Overhead, "s"))
	fmt.Fprintf(ew, "| efficiency | %s |\n", num(d.Efficiency))
	fmt.Fprintf(ew, "| DRAM energy | %s |\n", pj(d.DRAMEnergy, "pJ/B"))
	if d.MemoryEfficiency > 0 {
		fmt.Fprintf(ew, "| memory efficiency | %s |\n", num(d.MemoryEfficiency))
	}
	for _, k := range sortedKeys(d.ALU) {
		fmt.Fprintf(ew, "| %s ALU | %s |\n", k, aluText(d.ALU[k]))
	}
	fmt.Fprintln(ew)
	if d.Calibrated {
		fmt.Fprintln(ew, "| precision | format | peak (dense) | efficiency | model MAC/s | ridge MAC/B | energy/MAC | overhead |\n|---|---|--:|--:|--:|--:|--:|--:|")
	} else {
		fmt.Fprintln(ew, "| precision | format | peak (dense) | efficiency | model MAC/s | ridge MAC/B | energy/MAC |\n|---|---|--:|--:|--:|--:|--:|")
	}
	for _, r := range d.Rows {
		fmt.Fprintf(ew, "| %s | %s | %s | %s | %s | %s | %s |", r.Precision, r.Format, tops(r.PeakOps), num(r.Efficiency),
			si(r.EffectiveMACs, "MAC/s"), num(r.Ridge), pj(r.EnergyPerMAC, "pJ"))
		if d.Calibrated {
			fmt.Fprintf(ew, " %s |", si(r.Overhead, "s"))
		}
		fmt.Fprintln(ew)
	}
	if len(d.Fallbacks) > 0 {
		fmt.Fprintf(ew, "\nFallbacks: %s.\n", fallbackText(d.Fallbacks, "→"))
	}
	if len(d.Sources) > 0 {
		fmt.Fprintln(ew, "\n| field | source |\n|---|---|")
		for _, s := range d.Sources {
			fmt.Fprintf(ew, "| `%s` | %s |\n", s.Field, mdEscape(s.Citation))
		}
	}
	if len(d.Notes) > 0 {
		fmt.Fprintln(ew)
		for _, n := range d.Notes {
			fmt.Fprintf(ew, "- %s\n", mdEscape(n))
		}
	}
	if len(d.Warnings) > 0 {
		fmt.Fprintln(ew, "\nWarnings:")
		for _, n := range d.Warnings {
			fmt.Fprintf(ew, "- %s\n", mdEscape(n))
		}
	}
	return ew.err
}

// WriteList writes one line per profile: name, kind, native precisions with
// their dense peaks, bandwidth and description — the `bitplan profiles`
// listing.
func WriteList(w io.Writer, ps []*Profile) error {
	ew := &errWriter{w: w}
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tPEAKS (dense)\tBANDWIDTH\tDESCRIPTION")
	for _, p := range ps {
		var peaks []string
		for _, s := range p.Precisions {
			peaks = append(peaks, s.Precision.String()+" "+tops(s.PeakOps))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Kind, strings.Join(peaks, ", "), si(p.Bandwidth, "B/s"), p.Description)
	}
	tw.Flush()
	return ew.err
}

func fallbackText(fs []Fallback, arrow string) string {
	var parts []string
	for _, f := range fs {
		if f.Removed {
			parts = append(parts, f.Requested.String()+" unsupported")
		} else {
			parts = append(parts, f.Requested.String()+" "+arrow+" "+f.Used.String())
		}
	}
	return strings.Join(parts, ", ")
}

// si formats x with an SI prefix and 4 significant digits: 1.3e14 "OPS" →
// "130 TOPS", 5e-6 "s" → "5 µs".
func si(x float64, unit string) string {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return num(x) + " " + unit
	}
	prefixes := []struct {
		exp float64
		p   string
	}{{15, "P"}, {12, "T"}, {9, "G"}, {6, "M"}, {3, "k"}, {0, ""}, {-3, "m"}, {-6, "µ"}, {-9, "n"}, {-12, "p"}, {-15, "f"}}
	a := math.Abs(x)
	for _, pr := range prefixes {
		scale := math.Pow(10, pr.exp)
		if a >= scale*(1-1e-12) {
			return num(x/scale) + " " + pr.p + unit
		}
	}
	return strconv.FormatFloat(x, 'g', 4, 64) + " " + unit
}

// num formats with 4 significant digits and no exponent for ordinary sizes.
func num(x float64) string {
	if a := math.Abs(x); a != 0 && (a >= 1e6 || a < 1e-3) {
		return strconv.FormatFloat(x, 'g', 4, 64)
	}
	s := strconv.FormatFloat(x, 'g', 4, 64)
	if strings.Contains(s, "e") {
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return s
}

// tops formats ops/s in TOPS, the datasheets' unit.
// aluText describes an element-wise unit: "4.07 Tops/s, add 0.1 pJ, mul 3.1 pJ".
func aluText(a ALUSpec) string {
	return si(a.OpsPerSec, "op/s") + ", add " + pj(a.AddEnergy, "pJ") + ", mul " + pj(a.MulEnergy, "pJ")
}

func tops(x float64) string { return num(x/tera) + " TOPS" }

// pj formats joules in picojoules, or "unknown" for 0.
func pj(x float64, unit string) string {
	if x == 0 {
		return "unknown"
	}
	return num(x/pico) + " " + unit
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return len(b), nil
	}
	n, err := e.w.Write(b)
	if err != nil {
		e.err = err
	}
	return n, nil
}
