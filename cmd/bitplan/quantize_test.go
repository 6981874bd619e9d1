package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/qdq"
)

func runQuantizeCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := exitCode(&errb, runQuantize(context.Background(), args, &out, &errb))
	return out.String(), errb.String(), code
}

func TestQuantizeWritesQDQModel(t *testing.T) {
	skipWithoutMNIST(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "lenet.qdq.onnx")
	ov := filepath.Join(dir, "overrides.json")
	stdout, stderr, code := runQuantizeCmd(t, lenetModel, "--plan", evalPlan, "--data", "mnist", "--samples", "64",
		"--calibration", "percentile:99.99", "--overrides", ov, "--dyadic", "--format", "json", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var s qdq.Summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, stdout)
	}
	if s.Calibration != "percentile:99.99" || len(s.Layers) != 5 {
		t.Errorf("summary calibration %q, %d layers", s.Calibration, len(s.Layers))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil || mp.OpsetImport[0].Version != qdq.Opset {
		t.Fatalf("output is not an opset-%d model: %v", qdq.Opset, err)
	}
	var o map[string][]qdq.Override
	ob, _ := os.ReadFile(ov)
	if err := json.Unmarshal(ob, &o); err != nil || len(o["conv1.weight"]) != 6 || o["input"] == nil {
		t.Errorf("overrides: %v, conv1.weight %d entries, input %v", err, len(o["conv1.weight"]), o["input"])
	}
	dy := 0
	for _, l := range s.Layers {
		if l.Dyadic != nil {
			dy++
		}
	}
	if dy == 0 {
		t.Error("--dyadic recorded no multipliers")
	}
	// The text summary names the storage of every layer.
	stdout, _, code = runQuantizeCmd(t, lenetModel, "--plan", evalPlan, "--data", "mnist", "--samples", "32", "-o", out)
	if code != 0 || !strings.Contains(stdout, "INT4") || !strings.Contains(stdout, "/fc3/Gemm") {
		t.Errorf("exit %d, text summary:\n%s", code, stdout)
	}
}

func TestQuantizeErrors(t *testing.T) {
	dir := t.TempDir()
	badPlan := filepath.Join(dir, "bad.json")
	os.WriteFile(badPlan, []byte(`{"status": "optimal", "layers": [{"name": "/nope/Conv", "bits": 8}]}`), 0o644)
	wide := filepath.Join(dir, "wide.json")
	os.WriteFile(wide, []byte(`{"status": "optimal", "layers": [{"name": "/conv1/Conv", "bits": 8, "abits": 20},
		{"name": "/conv2/Conv", "bits": 8}, {"name": "/fc1/Gemm", "bits": 8}, {"name": "/fc2/Gemm", "bits": 8}, {"name": "/fc3/Gemm", "bits": 8}]}`), 0o644)
	out := filepath.Join(dir, "out.onnx")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{lenetModel, "--plan", evalPlan, "--data", "mnist"}, 2, "flag -o"},
		{[]string{lenetModel, "--data", "mnist", "-o", out}, 2, "flag --plan"},
		{[]string{lenetModel, "--plan", evalPlan, "--data", "mnist", "-o", lenetModel}, 2, "refusing to overwrite"},
		{[]string{lenetModel, "--plan", evalPlan, "--data", "mnist", "-o", out, "--quantizer", "asymmetric"}, 2, "symmetric weights"},
		{[]string{lenetModel, "--plan", evalPlan, "--data", "mnist", "-o", out, "--calibration", "entropy"}, 2, "unknown method"},
		{[]string{lenetModel, "--plan", badPlan, "--data", "mnist", "-o", out}, 1, `plan layer "/nope/Conv" is not a quantizable layer`},
		{[]string{lenetModel, "--plan", wide, "--data", "mnist", "--samples", "8", "-o", out}, 1, "activation width 20 bits cannot be stored"},
	} {
		_, stderr, code := runQuantizeCmd(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed quantize left %s behind", out)
	}
}

func TestPlanExport(t *testing.T) {
	skipWithoutMNIST(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "lenet.qdq.onnx")
	pj := filepath.Join(dir, "plan.json")
	_, errs, code := runCmd(t, append([]string{"plan", lenet, "--profile", "t4", "--max-size", "40%", "--bits", "4,8",
		"--format", "json", "-o", pj, "--export", out, "--calibration", "mse"}, fast...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "wrote the QDQ model of the plan") {
		t.Errorf("stderr %q", errs)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil {
		t.Fatal(err)
	}
	var meta string
	for _, p := range mp.MetadataProps {
		if p.Key == qdq.MetadataKey {
			meta = p.Value
		}
	}
	var s qdq.Summary
	if err := json.Unmarshal([]byte(meta), &s); err != nil || s.Calibration != "mse" || len(s.Layers) != 5 {
		t.Fatalf("metadata %s: %v %+v", qdq.MetadataKey, err, s)
	}
	// The exported widths are the plan's.
	pb, _ := os.ReadFile(pj)
	var p struct {
		Layers []struct {
			Name        string
			Bits, ABits int
		}
	}
	if err := json.Unmarshal(pb, &p); err != nil {
		t.Fatal(err)
	}
	for i, l := range p.Layers {
		if s.Layers[i].Name != l.Name || s.Layers[i].Bits != l.Bits || s.Layers[i].ABits != l.ABits {
			t.Errorf("layer %d: exported %s W%dA%d, plan %s W%dA%d", i, s.Layers[i].Name, s.Layers[i].Bits, s.Layers[i].ABits, l.Name, l.Bits, l.ABits)
		}
	}
}
