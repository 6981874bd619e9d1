package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/plan"
)

const lenetModel = "../../testdata/models/lenet.onnx"

// evalPlan is a plan of lenet written by
//
//	bitplan plan testdata/models/lenet.onnx --data mnist --bits w2a8,w3a8,w4a8,w8a8 \
//	    --max-size 25% --max-probes 50 --format json -o cmd/bitplan/testdata/eval_lenet_plan.json
//
// kept fixed so that the golden eval report does not move with the trace
// estimator.
const evalPlan = "testdata/eval_lenet_plan.json"

// runEvalCmd runs `bitplan eval args` (through runEval: the lead registers
// the command in main.go's table).
func runEvalCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := runEval(context.Background(), args, &out, &errb)
	code := exitCode(&errb, err)
	return out.String(), errb.String(), code
}

func skipWithoutMNIST(t *testing.T) {
	t.Helper()
	if _, err := data.MNISTDir(); err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
}

func TestEvalGolden(t *testing.T) {
	skipWithoutMNIST(t)
	cases := []struct {
		name string
		args []string
	}{
		{"eval_lenet.stdout", []string{lenetModel, "--plan", evalPlan, "--data", "mnist", "--samples", "500"}},
		{"eval_lenet_md.stdout", []string{lenetModel, "--plan", evalPlan, "--data", "mnist", "--samples", "500", "--calib-samples", "64", "--format", "markdown"}},
		{"eval_lenet_weights.stdout", []string{lenetModel, "--data", "mnist", "--samples", "200", "--plan", evalPlan, "--weights-only"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errs, code := runEvalCmd(t, c.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, errs)
			}
			golden(t, c.name, out)
		})
	}
}

// TestPlanToEval runs `bitplan plan --format json` and feeds its output to
// `bitplan eval`: the layers and bit widths must come through unchanged.
func TestPlanToEval(t *testing.T) {
	skipWithoutMNIST(t)
	dir := t.TempDir()
	pj := filepath.Join(dir, "plan.json")
	_, errs, code := runCmd(t, "plan", lenetModel, "--data", "mnist", "--samples", "64", "--bits", "w2a8,w4a8,w8a8",
		"--max-size", "30%", "--max-probes", "10", "--format", "json", "-o", pj)
	if code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errs)
	}
	p, _, err := plan.ReadFile(pj)
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code := runEvalCmd(t, lenetModel, "--plan", pj, "--data", "mnist", "--samples", "100", "--calib-samples", "32", "--format", "json")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	var r struct {
		Samples, CalibSamples int
		Float, Quantized      struct{ Accuracy float64 }
		Layers                []struct {
			Name        string
			Bits, ABits int
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if r.Samples != 100 || len(r.Layers) != len(p.Layers) {
		t.Fatalf("report %+v", r)
	}
	for i, l := range p.Layers {
		got := r.Layers[i]
		if got.Name != l.Name || got.Bits != l.Bits || got.ABits != l.ABits {
			t.Errorf("layer %d: eval applied %+v, the plan says %s W%d A%d", i, got, l.Name, l.Bits, l.ABits)
		}
	}
	if r.Quantized.Accuracy <= 0.5 || r.Float.Accuracy < 0.9 {
		t.Errorf("accuracies %+v", r)
	}
}

// TestEvalNPY evaluates on NumPy arrays, calibrating on the first samples
// of the same arrays and on separate calibration arrays.
func TestEvalNPY(t *testing.T) {
	skipWithoutMNIST(t)
	ds, err := data.MNIST(data.Test, 40)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	x, y := filepath.Join(dir, "x.npy"), filepath.Join(dir, "y.npy")
	writeNPY(t, x, func(f *os.File) error { return data.WriteNPY(f, []int{40, 1, 28, 28}, ds.Inputs) })
	labels := make([]int64, len(ds.Labels))
	for i, l := range ds.Labels {
		labels[i] = int64(l)
	}
	writeNPY(t, y, func(f *os.File) error { return data.WriteNPYInt64(f, []int{40}, labels) })
	out, errs, code := runEvalCmd(t, lenetModel, "--plan", evalPlan, "--inputs", x, "--labels", y, "--calib-samples", "16", "--format", "csv")
	if code != 0 || !strings.Contains(errs, "calibrating activation ranges on the first 16 samples") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if !strings.Contains(out, "model,quantized,") || !strings.Contains(out, ",40,") {
		t.Errorf("report:\n%s", out)
	}
	_, errs, code = runEvalCmd(t, lenetModel, "--plan", evalPlan, "--inputs", x, "--labels", y, "--calib-inputs", x, "--calib-labels", y)
	if code != 0 || errs != "" {
		t.Errorf("with calibration arrays: exit %d, stderr %q", code, errs)
	}
}

func writeNPY(t *testing.T, path string, write func(*os.File) error) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestEvalErrors(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(evalPlan)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name, old, new string) string {
		p := filepath.Join(dir, name)
		s := strings.Replace(string(src), old, new, 1)
		if s == string(src) {
			t.Fatalf("%s: %q not in the plan", name, old)
		}
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	extra := variant("extra.json", `"name": "/fc3/Gemm"`, `"name": "/fc4/Gemm"`)
	wide := variant("wide.json", `"bits": 4,`, `"bits": 40,`)
	garbage := filepath.Join(dir, "garbage.json")
	os.WriteFile(garbage, []byte(`{"status": "optimal", "layers": [{"bits": 4}]}`), 0o644)
	var one bytes.Buffer
	one.WriteString(`{"status": "optimal", "layers": [{"name": "/conv1/Conv", "bits": 8, "abits": 8}]}`)
	partial := filepath.Join(dir, "partial.json")
	os.WriteFile(partial, one.Bytes(), 0o644)
	mn := []string{"--data", "mnist", "--samples", "20", "--calib-samples", "8"}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{lenetModel}, 2, "flag --plan: give the plan"},
		{[]string{"--plan", evalPlan}, 2, "want exactly one ONNX model, got 0"},
		{[]string{lenetModel, "--plan", evalPlan, "--format", "yaml"}, 2, `flag --format: unknown format "yaml"`},
		{[]string{lenetModel, "--plan", evalPlan, "--quantizer", "per-row"}, 2, `flag --quantizer: quantizer "per-row": unknown word "per-row"`},
		{[]string{lenetModel, "--plan", evalPlan, "--calib-samples", "-1"}, 2, "flag --calib-samples: -1 is not allowed"},
		{[]string{lenetModel, "--plan", evalPlan, "--calib-inputs", "x.npy"}, 2, "give both"},
		{[]string{lenetModel, "--plan", evalPlan}, 2, "no data: give --data mnist"},
		{append([]string{lenetModel, "--plan", filepath.Join(dir, "missing.json")}, mn...), 1, "missing.json: no such file"},
		{append([]string{lenetModel, "--plan", garbage}, mn...), 1, `garbage.json: layers[0]: missing "name"`},
		{append([]string{lenetModel, "--plan", extra}, mn...), 1, `extra.json: layers[4]: plan layer "/fc4/Gemm" is not a quantizable layer of the model`},
		{append([]string{lenetModel, "--plan", partial}, mn...), 1, `partial.json: model layer "/conv2/Conv" has no entry in the plan`},
		{append([]string{lenetModel, "--plan", wide}, mn...), 1, `wide.json: layers[3] ("/fc2/Gemm"): bits 40 out of range [2, 32]`},
		{append([]string{filepath.Join(dir, "nomodel.onnx"), "--plan", evalPlan}, mn...), 1, "nomodel.onnx"},
		{append([]string{lenetModel, "--plan", evalPlan, "-o", evalPlan}, mn...), 2, "is an input file; refusing to overwrite it"},
		{[]string{lenetModel, "-h"}, 0, ""},
	}
	for _, c := range cases {
		_, errs, code := runEvalCmd(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("bitplan eval %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(c.args, " "), code, errs, c.code, c.want)
		}
		if strings.Contains(errs, "panic") || strings.Contains(errs, "goroutine") {
			t.Errorf("bitplan eval %s: panicked:\n%s", strings.Join(c.args, " "), errs)
		}
	}
}
