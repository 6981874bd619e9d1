package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/bitplan/bitplan/profiles"
)

// runProfiles lists the built-in profiles, or describes the named ones
// (built-in names or JSON files) with every figure and its source.
func runProfiles(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("profiles", "[NAME|FILE ...] [flags]", stdout)
	format := fs.String("format", "table", "output `FORMAT` of a description: table or markdown")
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
