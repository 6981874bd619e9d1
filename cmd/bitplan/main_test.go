package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// runCmd runs bitplan with args and returns stdout, stderr and exit status.
func runCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	code := exitCode(&errb, err)
	return out.String(), errb.String(), code
}

// volatile matches the parts of a report that change from run to run (solve
// time) or with solver internals (node counts).
var volatile = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`\d+ nodes, [0-9.]+ (µs|ms|s) \(`), "N nodes, T ("},
	{regexp.MustCompile(`"solve_seconds": [0-9.e-]+`), `"solve_seconds": 0`},
	{regexp.MustCompile(`"nodes": \d+`), `"nodes": 0`},
	{regexp.MustCompile(`\d+ passes, [0-9.]+ (µs|ms|s)`), "N passes, T"},
}

func normalise(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.repl)
	}
	return s
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	got = normalise(got)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/bitplan -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

const hawq = "../../testdata/hawq_resnet18.json"

func TestSolveGolden(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"solve_bops50.stdout", []string{"solve", hawq, "--max-bops", "50%"}},
		{"solve_bops50_json.stdout", []string{"solve", "--format", "json", hawq, "--max-bops", "50%"}},
		{"solve_bops50_csv.stdout", []string{"solve", hawq, "--max-bops", "50%", "--format", "csv"}},
		{"solve_three_md.stdout", []string{"solve", hawq, "--max-size", "50%", "--max-bops", "50%", "--max-latency", "4.2ms", "--format", "markdown"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errs, code := runCmd(t, c.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, errs)
			}
			golden(t, c.name, out)
		})
	}
}

func TestSolveInfeasible(t *testing.T) {
	out, errs, code := runCmd(t, "solve", hawq, "--max-size", "1KB", "--max-latency", "0%", "--max-bops", "100%")
	if code != 3 {
		t.Fatalf("exit %d, want 3; stderr:\n%s", code, errs)
	}
	if !strings.Contains(errs, "no plan meets the budgets") {
		t.Errorf("stderr = %q", errs)
	}
	golden(t, "solve_infeasible.stdout", out)
}

func TestCommandErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"layers": [{"name": "a", "params": -3, "delta_sq": {"4": 1}}]}`), 0o644)
	garbage := filepath.Join(dir, "garbage.json")
	os.WriteFile(garbage, []byte("{\"layers\": [\n  {\"name\": 1}]}"), 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"solve"}, 2, "want exactly one sensitivity table"},
		{[]string{"solve", hawq, "--max-size", "6.5XB"}, 2, `invalid value "6.5XB" for flag -max-size: size budget "6.5XB": unknown unit "XB"`},
		{[]string{"solve", hawq, "--max-latency", "3"}, 2, `flag -max-latency: latency budget "3": missing unit`},
		{[]string{"solve", hawq, "--format", "yaml"}, 2, `flag --format: unknown format "yaml"`},
		{[]string{"solve", hawq, "--engine", "gurobi"}, 2, `unknown engine "gurobi"`},
		{[]string{"solve", hawq, "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"solve", filepath.Join(dir, "missing.json")}, 1, "missing.json: no such file"},
		{[]string{"solve", bad}, 1, `bad.json: layers[0] ("a"): "params" must be a finite non-negative number, got -3`},
		{[]string{"solve", garbage}, 1, `garbage.json: field "layers.name" at line 2`},
		{[]string{"solve", hawq, "--max-energy", "1mJ"}, 2, "flag --max-energy: needs a --profile"},
		{[]string{"solve", hawq, "--profile", "tpu9"}, 2, `profile "tpu9": not a built-in profile`},
		{[]string{"solve", hawq, "--profile", "t4", "--profile", "a100", "--max-energy", "50%", "--max-latency", "50%"}, 0, ""},
		{[]string{"solve", hawq, "-h"}, 0, ""},
		{[]string{"solve", hawq, "--latency-table", "x.csv"}, 2, "give --profile before --latency-table"},
		{[]string{"solve", hawq, "--profile", "t4", "--batch", "0"}, 2, "flag --batch: must be at least 1"},
		{[]string{"solve", hawq, "-o", hawq}, 2, "is an input file; refusing to overwrite it"},
		{[]string{"solve", hawq, "--max-size", "50%", "--gap", "0"}, 2, "flag --gap: 0 is not a relative gap"},
		{[]string{"solve", hawq, "--max-size", "50%", "--gap", "1.5"}, 2, "flag --gap: 1.5 is not a relative gap"},
		{[]string{"solve", hawq, "--max-size", "50%", "--gap", "1e-6"}, 0, ""},
		{[]string{"plan", "--gap", "-1"}, 2, "flag --gap: -1 is not allowed"},
	}
	for _, c := range cases {
		out, errs, code := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("bitplan %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(c.args, " "), code, errs, c.code, c.want)
		}
		if strings.Contains(errs, "panic") || strings.Contains(errs, "goroutine") {
			t.Errorf("bitplan %s: panicked:\n%s", strings.Join(c.args, " "), errs)
		}
		_ = out
	}
}

func TestSolveWarnsOnUnknownFieldsAndNegativeTraces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.json")
	os.WriteFile(p, []byte(`{"layers": [
	  {"name": "a", "params": 10, "macs": 10, "avg_trace": -0.5, "delta_sq": {"4": 1, "8": 0.1}, "delta_sqr": 1},
	  {"name": "b", "params": 10, "macs": 10, "avg_trace": 2, "delta_sq": {"4": 1, "8": 0.1}}]}`), 0o644)
	out, errs, code := runCmd(t, "solve", p, "--max-size", "50%", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, w := range []string{`unknown field "delta_sqr"`, "negative avg_trace"} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errs)
		}
	}
	// The negative-trace layer gains from low precision; b keeps 8 bits.
	if !strings.Contains(out, `"name": "a",
      "bits": 4`) || !strings.Contains(out, `"name": "b",
      "bits": 8`) {
		t.Errorf("unexpected plan:\n%s", out)
	}
}

func TestWriteExports(t *testing.T) {
	dir := t.TempDir()
	lp, mps := filepath.Join(dir, "p.lp"), filepath.Join(dir, "p.mps")
	_, errs, code := runCmd(t, "solve", hawq, "--max-bops", "50%", "--write-lp", lp, "--write-mps", mps)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, f := range []string{lp, mps} {
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	// When glpsol and cbc are installed, they read the files and find the
	// same optimum as bitplan (HAWQ's recorded CBC optimum).
	for _, c := range []struct {
		prog, file string
		args       []string
		want       string
	}{
		{"glpsol", lp, []string{"--lp", lp, "-o", "/dev/stdout"}, "obj = 0.215689323"},
		{"cbc", mps, []string{mps, "solve"}, "Objective value:                0.21568932"},
	} {
		path, err := exec.LookPath(c.prog)
		if err != nil {
			t.Logf("%s not installed: skipping its cross-check", c.prog)
			continue
		}
		out, err := exec.Command(path, c.args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.prog, err, out)
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%s on %s did not find HAWQ's optimum (%s):\n%s", c.prog, c.file, c.want, out)
		}
	}
}

func TestProfilesGolden(t *testing.T) {
	out, errs, code := runCmd(t, "profiles")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "profiles.stdout", out)
	out, errs, code = runCmd(t, "profiles", "t4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "profiles_t4.stdout", out)
	_, errs, code = runCmd(t, "profiles", "nosuch")
	if code != 1 || !strings.Contains(errs, `profile "nosuch": not a built-in profile`) {
		t.Errorf("unknown profile: exit %d, %q", code, errs)
	}
}

func TestParetoGolden(t *testing.T) {
	out, errs, code := runCmd(t, "pareto", hawq, "--sweep", "bops", "--points", "5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "pareto_bops.stdout", out)
	svg := filepath.Join(t.TempDir(), "f.svg")
	_, errs, code = runCmd(t, "pareto", hawq, "--sweep", "latency@t4", "--profile", "t4", "--points", "3", "--plot", svg, "--format", "csv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, err := os.Stat(svg); err != nil {
		t.Errorf("plot not written: %v", err)
	}
	_, errs, code = runCmd(t, "pareto", hawq, "--sweep", "energy")
	if code != 2 || !strings.Contains(errs, `flag --sweep`) {
		t.Errorf("sweep without a device: exit %d, %q", code, errs)
	}
}
