package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOutputsNeverOverwriteInputs: every output flag refuses a file given as
// an input — positional, --profile FILE, --latency-table — and two outputs
// naming one file, before any work, leaving the files untouched.
func TestOutputsNeverOverwriteInputs(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "t.json")
	src, err := os.ReadFile("../../testdata/hawq_resnet18.json")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(table, src, 0o644)
	prof := filepath.Join(dir, "dev.json")
	psrc, err := os.ReadFile("../../profiles/builtin/t4.json")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(prof, psrc, 0o644)
	out := filepath.Join(dir, "out.txt")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"-o is the table", []string{"solve", table, "--max-bops", "50%", "-o", table}, "flag --o: " + table + " is an input file"},
		{"-o is the profile", []string{"solve", table, "--profile", prof, "--max-latency", "50%", "-o", prof}, "flag --o: " + prof + " is an input file"},
		{"--write-lp is the profile", []string{"solve", table, "--profile", prof, "--max-latency", "50%", "--write-lp", prof}, "flag --write-lp: " + prof},
		{"two outputs", []string{"solve", table, "--max-bops", "50%", "-o", out, "--write-lp", out}, "both name " + out},
		{"plot is the table", []string{"pareto", table, "--sweep", "bops", "--plot", table}, "flag --plot: " + table},
	}
	for _, c := range cases {
		_, stderr, code := runCmd(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q", c.name, code, stderr, c.want)
		}
	}
	if b, _ := os.ReadFile(table); string(b) != string(src) {
		t.Error("the input table was modified")
	}
	if b, _ := os.ReadFile(prof); string(b) != string(psrc) {
		t.Error("the profile was modified")
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an output was written by a refused run")
	}
}

// TestOutputWriteErrors: a full disk is an error in every format, not exit 0.
func TestOutputWriteErrors(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	for _, f := range []string{"table", "markdown", "csv", "json"} {
		_, stderr, code := runCmd(t, "solve", "../../testdata/hawq_resnet18.json", "--max-bops", "50%", "--format", f, "-o", "/dev/full")
		if code == 0 || !strings.Contains(stderr, "no space left") {
			t.Errorf("--format %s -o /dev/full: exit %d, stderr %q; want failure naming the full device", f, code, stderr)
		}
	}
}

// TestOutputKeepsOldFileOnFailure: a run that fails after parsing leaves an
// existing -o file as it was.
func TestOutputKeepsOldFileOnFailure(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "plan.json")
	os.WriteFile(out, []byte("previous plan"), 0o644)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"layers": [{"name": "a", "params": 3, "delta_sq": {"4": "x"}}]}`), 0o644)
	_, _, code := runCmd(t, "solve", bad, "--max-size", "50%", "-o", out)
	if code == 0 {
		t.Fatal("a bad table solved")
	}
	if b, _ := os.ReadFile(out); string(b) != "previous plan" {
		t.Fatalf("-o holds %q after a failed run", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("directory holds %d files, want 2 (no temporary left)", len(ents))
	}
}

// TestHelpPrintsUsageOnce: -h prints a command's usage once, on stdout.
func TestHelpPrintsUsageOnce(t *testing.T) {
	for _, cmd := range []string{"solve", "plan", "trace", "eval", "prune", "pareto"} {
		stdout, _, code := runCmd(t, cmd, "-h")
		if n := strings.Count(stdout, "Usage: bitplan "+cmd); n != 1 || code != 0 {
			t.Errorf("bitplan %s -h: usage printed %d times, exit %d; want once, exit 0", cmd, n, code)
		}
	}
}

// TestFlagsValidatedBeforeWork: negative counts and limits, NaN tolerances
// and a repeated budget are usage errors (exit 2) naming the flag.
func TestFlagsValidatedBeforeWork(t *testing.T) {
	tbl := "../../testdata/hawq_resnet18.json"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"solve", tbl, "--max-bops", "50%", "--stability", "-3"}, "flag --stability: -3"},
		{[]string{"solve", tbl, "--max-bops", "50%", "--time-limit", "-1s"}, "flag --time-limit: -1s is negative"},
		{[]string{"plan", "--time-limit", "-1s"}, "flag --time-limit"},
		{[]string{"prune", "x.onnx", "--node-limit", "-1"}, "flag --node-limit"},
		{[]string{"trace", "x.onnx", "--tol", "NaN"}, "flag --tol: NaN"},
		{[]string{"solve", tbl, "--max-size", "10%", "--max-size", "50%"}, "flag --max-size given twice"},
	}
	for _, c := range cases {
		_, stderr, code := runCmd(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
}
