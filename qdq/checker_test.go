package qdq

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPythonONNXChecker validates an exported model independently with
// scripts/check_qdq.py: ONNX's own checker (onnx ≥ 1.16) and the QDQ
// conventions read back by Python. It skips, saying how to install, when
// python3 or its onnx package is missing or too old for opset 21.
func TestPythonONNXChecker(t *testing.T) {
	py, err := exec.LookPath("python3")
	if _, e := os.Stat("/usr/bin/python3"); e == nil {
		py, err = "/usr/bin/python3", nil // Debian's, where python3-onnx lives
	}
	if err != nil {
		t.Skip("python3 not found: apt-get install python3-onnx (or pip install 'onnx>=1.16')")
	}
	b, e := load(t, "lenet")
	r, err := Export(context.Background(), &Config{Model: b, Engine: e, Layers: mixedLeNet, Calib: calib(t, 32)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lenet.qdq.onnx")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("..", "scripts", "check_qdq.py"), path)
	msg, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		t.Logf("%s", msg)
	case errors.As(err, &ee) && ee.ExitCode() == 77:
		if !strings.Contains(string(msg), ": ok (conventions only") && !strings.Contains(string(msg), "not installed") {
			t.Fatalf("check_qdq.py skipped without checking the conventions:\n%s", msg)
		}
		t.Skipf("%s", msg)
	default:
		t.Fatalf("check_qdq.py: %v\n%s", err, msg)
	}
}
