package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"

	"github.com/bitplan/bitplan/profiles"
	"github.com/bitplan/bitplan/sensitivity"
)

// runProfiles lists the built-in profiles, or describes the named ones
// (built-in names or JSON files) with every figure and its source. With
// --fit it calibrates one profile to a measured latency table instead (see
// runFit).
func runProfiles(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("profiles", "[NAME|FILE ...] [flags]", stdout)
	format := fs.String("format", "table", "output `FORMAT` of a description: table or markdown")
	var f fitFlags
	fs.StringVar(&f.table, "fit", "", "calibrate the profile's per-precision overhead and efficiency and its memory efficiency to this measured latency `TABLE` (CSV layer,precision,ms or JSON, as --latency-table); writes the fitted profile")
	fs.StringVar(&f.layers, "layers", "", "with --fit: the sensitivity table `FILE` (JSON) giving each measured layer's params, MACs, in_elems and out_elems")
	fs.IntVar(&f.batch, "batch", 1, "with --fit: the batch size `N` the table was measured at")
	fs.BoolVar(&f.perChannel, "per-channel", false, "with --fit: cost per-channel weight scales, as the planner will")
	fs.StringVar(&f.out, "o", "", "with --fit: write the fitted profile to `FILE` (default standard output)")
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if *format != "table" && *format != "markdown" {
		return usageError{fmt.Errorf("flag --format: unknown format %q: want table or markdown", *format)}
	}
	if f.table != "" {
		if len(pos) != 1 {
			return usageError{fmt.Errorf("--fit calibrates one profile: give one NAME or FILE, got %d", len(pos))}
		}
		return runFit(pos[0], f, stdout, stderr)
	}
	if f.layers != "" || f.out != "" {
		return usageError{errors.New("--layers and -o go with --fit TABLE")}
	}
	if len(pos) == 0 {
		ps, err := profiles.All()
		if err != nil {
			return err
		}
		if err := profiles.WriteList(stdout, ps); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "\nRun `bitplan profiles NAME` for a profile's figures and their sources.")
		return nil
	}
	for i, name := range pos {
		p, err := profiles.Load(name)
		if err != nil {
			return err
		}
		warn(stderr, p.Warnings)
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if *format == "markdown" {
			err = p.WriteMarkdown(stdout)
		} else {
			err = p.WriteText(stdout)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

type fitFlags struct {
	table, layers, out string
	batch              int
	perChannel         bool
}

// runFit fits profile name to the measured table (profiles.Profile.Fit),
// prints the fitted terms and their fit error on stderr and writes the
// fitted profile (the JSON file format, for --profile) to f.out or stdout.
func runFit(name string, f fitFlags, stdout, stderr io.Writer) error {
	if f.layers == "" {
		return usageError{errors.New("--fit needs --layers FILE: the sensitivity table with each layer's params, MACs, in_elems and out_elems")}
	}
	if f.batch < 1 {
		return usageError{fmt.Errorf("flag --batch: must be ≥ 1, got %d", f.batch)}
	}
	if f.out != "" {
		for _, in := range []string{name, f.table, f.layers} {
			if sameFile(f.out, in) {
				return usageError{fmt.Errorf("flag -o %s would overwrite the input %s", f.out, in)}
			}
		}
	}
	p, err := profiles.Load(name)
	if err != nil {
		return err
	}
	warn(stderr, p.Warnings)
	tab, err := profiles.LoadTable(f.table)
	if err != nil {
		return err
	}
	st, ws, err := sensitivity.ReadFile(f.layers)
	if err != nil {
		return fmt.Errorf("--layers: %w", err)
	}
	warn(stderr, ws)
	r := func(v float64) int64 { return int64(math.Round(v)) }
	var layers []profiles.Layer
	for _, l := range st.Layers {
		layers = append(layers, profiles.Layer{Name: l.Name, Params: r(l.Params), MACs: r(l.MACs),
			InElems: r(l.InElems), OutElems: r(l.OutElems), OutChannels: r(l.OutChannels)})
	}
	cal, err := p.Fit(layers, tab, &profiles.Options{Batch: f.batch, PerChannel: f.perChannel})
	if err != nil {
		return err
	}
	warn(stderr, cal.Warnings)
	fmt.Fprintf(stderr, "bitplan: fitted %s to %s:\n%s", p.Name, tab.Origin, cal.Summary())
	data, err := cal.Profile.MarshalFile()
	if err != nil {
		return err
	}
	if f.out == "" {
		_, err = stdout.Write(data)
		return err
	}
	if err := writeAtomic(f.out, data); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	fmt.Fprintf(stderr, "bitplan: wrote %s (use it with --profile %s)\n", f.out, f.out)
	return nil
}
