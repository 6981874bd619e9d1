// Command validate compares the T4 profile's roofline latencies with
// HAWQ-V3's measured per-layer T4 latencies for ResNet18 and writes
// docs/profiles-validation.md. Run it from the repository root:
//
//	go run ./profiles/internal/validate
//
// Flags: -in (the HAWQ reference, default testdata/hawq_resnet18.json),
// -out (default docs/profiles-validation.md; "-" for standard output),
// -profile (default t4).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/bitplan/bitplan/profiles"
)

func main() {
	if err := run(os.Stdout, os.Stderr, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "validate:", err)
		os.Exit(1)
	}
}

func run(stdout, stderr io.Writer, args []string) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "testdata/hawq_resnet18.json", "HAWQ-V3 ResNet18 reference `file`")
	out := fs.String("out", "docs/profiles-validation.md", "output `file` (\"-\" for standard output)")
	prof := fs.String("profile", "t4", "profile `name or file` to validate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	h, err := loadHAWQ(*in)
	if err != nil {
		return err
	}
	p, err := profiles.Load(*prof)
	if err != nil {
		return err
	}
	r, err := analyse(h, p)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := r.writeMarkdown(&buf); err != nil {
		return err
	}
	if *out == "-" {
		_, err = stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %s\n", *out)
	return nil
}
