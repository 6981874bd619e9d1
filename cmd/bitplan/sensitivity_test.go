package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestSensitivityFlag(t *testing.T) {
	lenet := filepath.Join("..", "..", "testdata", "models", "lenet.onnx")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", lenet, "--data", "mnist", "--sensitivity", "hawq"}, `flag --sensitivity: unknown sensitivity criterion "hawq"`},
		{[]string{"trace", lenet, "--data", "mnist", "--sensitivity", "diag", "--method", "hutch++"}, "--sensitivity diag needs Hutchinson probes"},
		{[]string{"plan", lenet, "--data", "mnist", "--sensitivity", "weight", "--stability", "3"}, "applies to --sensitivity hessian and diag, not weight"},
		{[]string{"trace", lenet, "--data", "mnist", "--sensitivity", "quadratic", "--weight-only"}, "apply to --sensitivity hessian and diag"},
	} {
		_, errs, code := runCmd(t, c.args...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("bitplan %s: exit %d, stderr %q; want exit 2 mentioning %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}
	// Each criterion's table carries its name and a score per candidate.
	for _, crit := range []string{"weight", "taylor", "diag", "quadratic"} {
		out, errs, code := runCmd(t, "trace", lenet, "--data", "mnist", "--samples", "8", "--max-probes", "4", "--min-probes", "4",
			"--sensitivity", crit, "--bits", "w2a8,8", "--format", "json")
		if code != 0 {
			t.Fatalf("--sensitivity %s: exit %d: %s", crit, code, errs)
		}
		var tab struct {
			Criterion string `json:"criterion"`
			Layers    []struct {
				AvgTrace float64            `json:"avg_trace"`
				Omega    map[string]float64 `json:"omega"`
				Stderr   map[string]float64 `json:"omega_stderr"`
			} `json:"layers"`
		}
		if err := json.Unmarshal([]byte(out), &tab); err != nil {
			t.Fatal(err)
		}
		if tab.Criterion != crit || len(tab.Layers) != 5 {
			t.Fatalf("--sensitivity %s: criterion %q, %d layers", crit, tab.Criterion, len(tab.Layers))
		}
		for i, l := range tab.Layers {
			if len(l.Omega) != 2 || (crit == "diag") != (len(l.Stderr) == 2) || (crit == "diag") != (l.AvgTrace != 0) {
				t.Errorf("--sensitivity %s: layer %d: omega %v, stderr %v, avg trace %v", crit, i, l.Omega, l.Stderr, l.AvgTrace)
			}
		}
	}
}
