//go:build ort

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/ort"
	"github.com/bitplan/bitplan/profiles"
)

func needORT(t *testing.T) {
	t.Helper()
	skipWithoutMNIST(t)
	if err := ort.Init(""); err != nil {
		t.Skipf("ONNX Runtime not available: %v", err)
	}
}

func TestEvalRuntimeORT(t *testing.T) {
	needORT(t)
	out, errs, code := runEvalCmd(t, lenetModel, "--plan", evalPlan, "--data", "mnist", "--samples", "300", "--calib-samples", "64", "--runtime", "ort")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"onnxruntime " + ort.Version(), "vs simulation", "kernels:", "integer kernels:"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestMeasureWritesLatencyTable(t *testing.T) {
	needORT(t)
	dir := t.TempDir()
	csv := filepath.Join(dir, "lenet.csv")
	var out, errb strings.Builder
	err := runMeasure(t.Context(), []string{lenetModel, "--data", "mnist", "--samples", "16", "--runs", "5", "--warmup", "1",
		"--bits", "fp32,w8a8,w4a32", "--plan", evalPlan, "-o", csv}, &out, &errb)
	if err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	tab, err := profiles.LoadTable(csv)
	if err != nil {
		t.Fatalf("profiles cannot read the table: %v", err)
	}
	if n := len(tab.Entries()); n != 5*3 {
		t.Errorf("%d table entries, want 5 layers × 3 precisions", n)
	}
	if _, ok := tab.Lookup("/conv1/Conv", profiles.Precision{W: 8, A: 8}); !ok {
		t.Error("no /conv1/Conv w8a8 entry")
	}
	for _, want := range []string{"uniform w32a32", "uniform w8a8", "plan eval_lenet_plan.json"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(csv); err != nil {
		t.Fatal(err)
	}
}
