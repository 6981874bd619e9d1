//go:build !ort

package main

import (
	"strings"
	"testing"
)

// Without the ort tag, the runtime commands say how to get ONNX Runtime.
func TestRuntimeNotBuilt(t *testing.T) {
	skipWithoutMNIST(t)
	_, errs, code := runEvalCmd(t, lenetModel, "--plan", evalPlan, "--data", "mnist", "--samples", "50", "--calib-samples", "16", "--runtime", "ort")
	if code != 1 || !strings.Contains(errs, "-tags ort") || !strings.Contains(errs, "onnxruntime-node") {
		t.Errorf("eval --runtime ort: exit %d, stderr %q", code, errs)
	}
	var out, errb strings.Builder
	err := runMeasure(t.Context(), []string{lenetModel, "--data", "mnist"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "-tags ort") {
		t.Errorf("measure without ONNX Runtime: %v", err)
	}
}
