package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/bitplan/bitplan/plan"
)

// runPareto sweeps one budget over its range and prints the frontier: Ω,
// use and shadow price at each point, optionally plotted.
func runPareto(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pareto", "TABLE.json --sweep RESOURCE [flags]", stdout)
	var bf budgetFlags
	bf.register(fs)
	sweep := fs.String("sweep", "bops", "`RESOURCE` to sweep: size, bops, latency, or a device's latency@NAME / energy@NAME")
	from := fs.Float64("from", 0, "first budget, in `PERCENT` of the range (HAWQ's convention)")
	to := fs.Float64("to", 100, "last budget, in `PERCENT` of the range")
	points := fs.Int("points", 11, "number of `N` budgets swept")
	format := fs.String("format", "table", "output `FORMAT`: table, json, csv or markdown")
	plotPath := fs.String("plot", "", "also draw the frontier to `FILE` (.svg, .png or .pdf)")
	arg, f, help, err := parseOne(fs, args, "sensitivity table", format)
	if help || err != nil {
		return err
	}
	if *points < 1 || *points > 10000 {
		return usageError{fmt.Errorf("flag --points: want 1..10000, got %d", *points)}
	}
	for _, v := range []struct {
		flag string
		v    float64
	}{{"from", *from}, {"to", *to}} {
		if !(v.v >= 0) || math.IsInf(v.v, 0) {
			return usageError{fmt.Errorf("flag --%s: %g is not a percentage; want a finite number of 0 or more", v.flag, v.v)}
		}
	}
	if *to < *from {
		return usageError{fmt.Errorf("flags --from %g --to %g: want from ≤ to", *from, *to)}
	}
	req, err := tableRequest(ctx, arg, &bf, stderr)
	if err != nil {
		return err
	}
	resource := *sweep
	if (resource == "latency" || resource == "energy") && len(req.Devices) == 1 && !strings.Contains(resource, "@") {
		if resource == "energy" || !hasTableLatency(req) {
			resource += "@" + req.Devices[0].Profile.Name
		}
	}
	fr, err := plan.Sweep(ctx, req, resource, plan.Fractions(*from/100, *to/100, *points))
	if errors.Is(err, plan.ErrUnknownResource) {
		return usageError{fmt.Errorf("flag --sweep: %v", err)}
	}
	if err != nil {
		return err
	}
	if err := fr.Write(stdout, f); err != nil {
		return err
	}
	if *plotPath != "" {
		title := "Pareto frontier"
		if req.Table.Model != "" {
			title += ": " + req.Table.Model
		}
		if sameFile(*plotPath, arg) {
			return usageError{fmt.Errorf("flag --plot: %s is the input table; refusing to overwrite it", *plotPath)}
		}
		if err := fr.Plot(*plotPath, title); err != nil {
			return err
		}
	}
	return nil
}

func hasTableLatency(req *plan.Request) bool {
	for _, l := range req.Table.Layers {
		if l.LatencyMS == nil {
			return false
		}
	}
	return true
}
