package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/sensitivity"
)

const lenet = "../../testdata/models/lenet.onnx"

// fast keeps the model tests quick: few calibration samples and probes.
var fast = []string{"--data", "mnist", "--samples", "32", "--max-probes", "12", "--min-probes", "12"}

func TestTraceGolden(t *testing.T) {
	out, errs, code := runCmd(t, append([]string{"trace", lenet}, fast...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "trace_lenet.stdout", out)

	// JSON is a sensitivity table that solve accepts.
	dir := t.TempDir()
	table := filepath.Join(dir, "lenet.json")
	_, errs, code = runCmd(t, append([]string{"trace", lenet, "--format", "json", "-o", table}, fast...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	tab, warn, err := sensitivity.ReadFile(table)
	if err != nil || len(warn) != 0 {
		t.Fatalf("trace JSON is not a clean sensitivity table: %v %v", err, warn)
	}
	if len(tab.Layers) != 5 || tab.Layers[0].AvgTraceStderr <= 0 {
		t.Errorf("unexpected table: %+v", tab.Layers)
	}
	out, errs, code = runCmd(t, "solve", table, "--max-size", "50%", "--format", "json")
	if code != 0 || !strings.Contains(out, `"status": "optimal"`) {
		t.Errorf("solve on the trace table: exit %d, %s\n%s", code, errs, out)
	}
}

func TestPlanJSONAndErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "plan.json")
	_, errs, code := runCmd(t, append([]string{"plan", lenet, "--profile", "t4", "--max-bops", "40%", "--format", "json", "-o", out, "--stability", "5"}, fast...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	p, _, err := plan.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != "optimal" || len(p.Layers) != 5 || p.Stability == nil || p.Stability.Runs != 5 {
		t.Errorf("plan: %+v", p)
	}
	if u := p.Usage["bops"]; u == nil || *u.Used > *u.Limit {
		t.Errorf("bops usage %+v", u)
	}
	raw, _ := os.ReadFile(out)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"plan", "nosuch.onnx", "--data", "mnist"}, 1, "nosuch.onnx"},
		{[]string{"plan", lenet}, 2, "no data: give --data mnist"},
		{[]string{"plan", lenet, "--data", "cifar"}, 2, `unknown dataset "cifar"`},
		{[]string{"plan", lenet, "--data", "mnist", "--inputs", "x.npy"}, 2, "give one or the other"},
		{[]string{"plan", lenet, "--data", "mnist", "--method", "magic"}, 2, `unknown estimator "magic"`},
		{[]string{"plan", lenet, "--data", "mnist", "--bits", "4,x"}, 2, "flag --bits"},
		{[]string{"plan", lenet, "--data", "mnist", "--quantizer", "fancy"}, 2, `flag --quantizer: unknown word "fancy"`},
		{append([]string{"plan", lenet, "--max-size", "1B"}, fast...), 3, "no plan meets the budgets"},
		{[]string{"plan", lenet, "--data", "mnist", "--verify", "-1"}, 2, "flag --verify: -1 is not allowed"},
		{[]string{"plan", lenet, "--data", "mnist", "--samples", "0"}, 2, "--verify needs held-out ones"},
		{[]string{"plan", lenet, "--data", "mnist", "--verify-samples", "0"}, 2, "flag --verify-samples"},
		{[]string{"trace", "../../testdata/hawq_resnet18.json", "--data", "mnist", "--samples", "8"}, 1, "hawq_resnet18.json"},
	}
	for _, c := range cases {
		_, errs, code := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("bitplan %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(c.args, " "), code, errs, c.code, c.want)
		}
	}
}

func TestPlanGolden(t *testing.T) {
	out, errs, code := runCmd(t, append([]string{"plan", lenet, "--profile", "t4", "--max-size", "40%", "--bits", "2,4,8"}, fast...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "plan_lenet.stdout", out)
}

// trace adds the activation term to hessian and diag tables (W4A4 then
// costs more Ω than W4A8 on a layer whose input is not exact at 4 bits),
// also as the exact quadratic form (--act-quadratic); --weight-only
// leaves HAWQ-V3's weight-only Ω.
func TestTraceActivationTerm(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		act  bool
	}{{[]string{"--sensitivity", "diag", "--method", "hutchinson"}, true}, {[]string{"--weight-only"}, false}, {[]string{"--act-quadratic"}, true}} {
		table := filepath.Join(dir, "t.json")
		args := append(append([]string{"trace", lenet, "--format", "json", "-o", table, "--bits", "4,w4a8"}, fast...), c.args...)
		if _, errs, code := runCmd(t, args...); code != 0 {
			t.Fatalf("bitplan %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
		tab, _, err := sensitivity.ReadFile(table)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range tab.Layers {
			if c.act != (l.ActDeltaSq != nil) {
				t.Errorf("%v: layer %s: act_delta_sq %v", c.args, l.Name, l.ActDeltaSq)
			}
			if l.Name == "/fc1/Gemm" {
				if o4, o8 := l.Omega("4"), l.Omega("w4a8"); c.act != (o4 > o8) || (!c.act && o4 != o8) {
					t.Errorf("%v: %s: Ω W4A4 %v, W4A8 %v", c.args, l.Name, o4, o8)
				}
			}
		}
	}
}

// --stability resamples the activation traces' probes as well as the
// weight traces' (and says so); with --act-quadratic, whose activation
// term is exact, the weight traces' only; with --sensitivity diag the
// diagonal sums of both runs.
func TestPlanStabilityActivation(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{nil, "activation traces: bootstrap over their"},
		{[]string{"--act-quadratic"}, "activation term: exact quadratic form, fixed"},
		{[]string{"--sensitivity", "diag"}, "activation traces: bootstrap over their 12 probes, independently; diag Ω from the same rows"},
	} {
		out := filepath.Join(dir, "plan.json")
		args := append(append([]string{"plan", lenet, "--bits", "4,w4a8,8", "--max-bops", "40%", "--verify", "0", "--stability", "4", "--format", "json", "-o", out}, fast...), c.extra...)
		if _, errs, code := runCmd(t, args...); code != 0 {
			t.Fatalf("bitplan %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
		p, _, err := plan.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if p.Stability == nil || p.Stability.Runs != 4 || !strings.Contains(p.Stability.Method, c.want) || !strings.Contains(p.Stability.Method, "weight traces: ") {
			t.Errorf("%v: stability %+v, want its method to mention %q", c.extra, p.Stability, c.want)
		}
	}
}
