package nn

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
)

var updateZoo = flag.Bool("update-zoo", false, "rewrite testdata/zoo/unsupported.txt from the static check")

// zooSupport is the expectation file of TestZooStaticCheck: one line per
// committed zoo model and opset, "name/opN: what the static check reports".
const zooSupport = "../testdata/zoo/unsupported.txt"

// zooFiles are the committed zoo exports (testdata/zoo/README.md).
var zooFiles = []string{
	"tiny_resnet", "tiny_bert", "tiny_vit", "tiny_quartznet", "tiny_lstm", "tiny_gru", "tiny_unet",
}

// checkSummary condenses Check's verdict on one model: "ok", or the
// unsupported operators (sorted) and the graph-level constructs.
func checkSummary(m *model.Model) (string, error) {
	err := Check(m)
	if err == nil {
		return "ok", nil
	}
	var ue *UnsupportedError
	if !errors.As(err, &ue) {
		return "", err
	}
	var parts []string
	if ops := ue.Ops(); len(ops) > 0 {
		parts = append(parts, "ops "+strings.Join(ops, " "))
	}
	var cons []string
	for _, p := range ue.Problems {
		if p.Op != "" {
			continue
		}
		switch {
		case strings.Contains(p.Reason, "data inputs"):
			cons = append(cons, "several-inputs")
		case strings.Contains(p.Reason, "element type"):
			cons = append(cons, "integer-input")
		case strings.Contains(p.Reason, "batch×classes"):
			cons = append(cons, "per-position-output")
		default:
			cons = append(cons, p.Reason)
		}
	}
	slices.Sort(cons)
	cons = slices.Compact(cons)
	if len(cons) > 0 {
		parts = append(parts, "constructs "+strings.Join(cons, " "))
	}
	return strings.Join(parts, "; "), nil
}

// TestZooStaticCheck runs the static check over every committed zoo model at
// both opsets and compares what remains unsupported with
// testdata/zoo/unsupported.txt. When an operator is added to the engine, the
// file changes: run `go test ./nn -run TestZooStaticCheck -update-zoo` and
// review the diff. It also checks that every problem names its node and
// that the error lists them all at once.
func TestZooStaticCheck(t *testing.T) {
	want := map[string]string{}
	if f, err := os.Open(zooSupport); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("%s: bad line %q, want name/opN: summary", zooSupport, line)
			}
			want[k] = v
		}
		f.Close()
	} else if !*updateZoo {
		t.Fatalf("%v (regenerate with -update-zoo)", err)
	}
	var lines []string
	for _, name := range zooFiles {
		for _, op := range []int{11, 13, 17} {
			key := fmt.Sprintf("%s/op%d", name, op)
			m, err := model.Load(filepath.Join("..", "testdata", "zoo", name, fmt.Sprintf("op%d.onnx", op)))
			if err != nil {
				t.Fatalf("%s: import: %v", key, err)
			}
			got, err := checkSummary(m)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			lines = append(lines, key+": "+got)
			if !*updateZoo && want[key] != got {
				t.Errorf("%s: static check says %q, %s says %q (update with -update-zoo if the engine changed)", key, got, zooSupport, want[key])
			}
			var ue *UnsupportedError
			if errors.As(Check(m), &ue) {
				msg := ue.Error()
				for _, p := range ue.Problems {
					// The message names at most maxListed nodes per kind.
					if p.Op != "" && (!strings.Contains(p.Node, p.Op) || !strings.Contains(msg, p.Reason)) {
						t.Errorf("%s: problem %+v does not name its node and op, or is missing from %q", key, p, msg)
					}
				}
				if !strings.Contains(msg, "supported operators: ") {
					t.Errorf("%s: error does not list the supported operators", key)
				}
				if _, err := New(m, &Options{Loss: lossFor(m)}); err == nil || err.Error() != msg {
					t.Errorf("%s: New error %v, want the static check's", key, err)
				}
			}
		}
	}
	if *updateZoo {
		head := "# What the static check (nn.Check) reports for each committed zoo model.\n" +
			"# Written by: go test ./nn -run TestZooStaticCheck -update-zoo\n"
		if err := os.WriteFile(zooSupport, []byte(head+strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestZooCacheStaticCheck logs the static check of the large zoo models when
// BITPLAN_ZOO_DIR names a directory written by
// `scripts/zoo.py --large --out DIR` (skipped otherwise).
func TestZooCacheStaticCheck(t *testing.T) {
	dir := os.Getenv("BITPLAN_ZOO_DIR")
	if dir == "" {
		t.Skip("set BITPLAN_ZOO_DIR to a directory made by /usr/bin/python3 scripts/zoo.py --large --out DIR")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
	for _, f := range files {
		m, err := model.Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		got, err := checkSummary(m)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		t.Logf("| %s | %s |", strings.TrimSuffix(filepath.Base(f), ".onnx"), got)
	}
}

// TestZooLogits runs every committed zoo model the static check passes on
// its committed sample inputs and compares the logits with PyTorch's
// (float64, scripts/zoo.py). tiny_resnet's export has de-duplicated zero
// biases read through Identity and a weight read by two Conv nodes, so this
// checks those import rules numerically.
func TestZooLogits(t *testing.T) {
	// PyTorch ran the module in float64 with its float32 weights; the
	// export folded BatchNorm into the conv weights in float32 (a relative
	// rounding of 6e-8 per weight), so the logits agree to about 1e-7 of
	// their scale, not to float64 rounding.
	const tol = 1e-6
	ran := 0
	for _, name := range zooFiles {
		for _, op := range []int{11, 13, 17} {
			dir := filepath.Join("..", "testdata", "zoo", name)
			m, err := model.Load(filepath.Join(dir, fmt.Sprintf("op%d.onnx", op)))
			if err != nil {
				t.Fatal(err)
			}
			if Check(m) != nil {
				continue
			}
			var xs []*data.Array
			for _, in := range m.Inputs {
				xs = append(xs, readNPY(t, filepath.Join(dir, in.Name+".npy")))
			}
			want := readNPY(t, filepath.Join(dir, "logits.npy"))
			worst, scale := logitsError(t, m, xs, want)
			if worst > tol*scale {
				t.Errorf("%s/op%d: logits differ from PyTorch's by %.3g, more than %g of their scale %.3g", name, op, worst, tol, scale)
			}
			t.Logf("%s/op%d: max |Δlogit| %.3g (scale %.3g)", name, op, worst, scale)
			ran++
		}
	}
	if ran < 2 {
		t.Errorf("only %d zoo models ran; tiny_resnet at both opsets must", ran)
	}
}

// logitsError runs m on x and returns the largest absolute difference from
// want and the largest |want|.
func logitsError(t *testing.T, m *model.Model, xs []*data.Array, want *data.Array) (worst, scale float64) {
	t.Helper()
	// A float64 reference comparison whatever the model's size.
	e, err := New(m, &Options{Precision: Float64, Loss: lossFor(m)})
	if err != nil {
		t.Fatal(err)
	}
	vals := make([][]float64, len(xs))
	for i, x := range xs {
		vals[i] = arrayValues(x)
	}
	got, err := e.LogitsInputs(vals, xs[0].Shape[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want.Float) {
		t.Fatalf("%d logits, want %d", len(got), len(want.Float))
	}
	for i, v := range want.Float {
		scale = math.Max(scale, math.Abs(v))
		worst = math.Max(worst, math.Abs(got[i]-v))
	}
	return worst, scale
}

// TestZooCacheLogits compares the logits of the large zoo models the static
// check passes with PyTorch's, when BITPLAN_ZOO_DIR names a directory
// written by `scripts/zoo.py --large --out DIR` (skipped otherwise).
func TestZooCacheLogits(t *testing.T) {
	dir := os.Getenv("BITPLAN_ZOO_DIR")
	if dir == "" {
		t.Skip("set BITPLAN_ZOO_DIR to a directory made by /usr/bin/python3 scripts/zoo.py --large --out DIR")
	}
	// float32 BatchNorm folding by the exporter through up to 50 layers.
	const tol = 1e-4
	files, _ := filepath.Glob(filepath.Join(dir, "*_op1[37].onnx"))
	for _, f := range files {
		m, err := model.Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if Check(m) != nil {
			continue
		}
		name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".onnx"), "_op13"), "_op17")
		var xs []*data.Array
		for _, in := range m.Inputs {
			xs = append(xs, readNPY(t, filepath.Join(dir, name+"_"+in.Name+".npy")))
		}
		want := readNPY(t, filepath.Join(dir, name+"_logits.npy"))
		worst, scale := logitsError(t, m, xs, want)
		t.Logf("| %s | max |Δlogit| %.3g | scale %.3g |", filepath.Base(f), worst, scale)
		if worst > tol*scale {
			t.Errorf("%s: logits differ from PyTorch's by %.3g (scale %.3g)", f, worst, scale)
		}
	}
}

// lossFor is the loss a zoo model's output takes: class labels for
// batch×classes logits, per-position labels (class axis 1, PyTorch's
// layout) for anything else.
func lossFor(m *model.Model) Loss {
	if o := m.Outputs[0].Shape; len(o) > 2 {
		return PositionLabels{Ignore: -100}
	}
	return ClassLabels{}
}

// arrayValues returns a's elements as float64 (integers exactly).
func arrayValues(a *data.Array) []float64 {
	if a.Int == nil {
		return a.Float
	}
	v := make([]float64, len(a.Int))
	for i, x := range a.Int {
		v[i] = float64(x)
	}
	return v
}

func readNPY(t *testing.T, path string) *data.Array {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := data.ReadNPY(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return a
}
