//go:build ort

package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
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

// TestEvalRuntimeORTPosition: eval --runtime ort scores per-position
// outputs with --loss position as the simulation does (ONNX Runtime once
// read each sample's N×C×H×W outputs as one row of classes: tiny_unet
// loss 7.022 against 1.122, accuracy 0): on a W8A8 plan the QDQ model's
// loss and correct count in ONNX Runtime are the simulation's.
func TestEvalRuntimeORTPosition(t *testing.T) {
	if err := ort.Init(""); err != nil {
		t.Skipf("ONNX Runtime not available: %v (%s)", err, ort.Install)
	}
	px := make([]int64, 2*16*16)
	for i := range px {
		px[i] = int64(i/16+i%16) % 3
		if i%16 == 0 {
			px[i] = -100
		}
	}
	dir := filepath.Join(zoo, "tiny_unet")
	onnxPath := filepath.Join(dir, "op13.onnx")
	d := []string{"--inputs", filepath.Join(dir, "input.npy"), "--labels", writeInts(t, "y.npy", []int{2, 16, 16}, px), "--loss", "position"}
	planPath := filepath.Join(t.TempDir(), "plan.json")
	if _, errs, code := runCmd(t, append([]string{"plan", onnxPath, "--bits", "8", "--verify", "0", "--format", "json", "-o", planPath,
		"--method", "hutchinson", "--min-probes", "2", "--max-probes", "2"}, d...)...); code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errs)
	}
	out, errs, code := runCmd(t, append([]string{"eval", onnxPath, "--plan", planPath, "--format", "json", "--runtime", "ort"}, d...)...)
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	var r eval.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Runtime == nil {
		t.Fatalf("eval report: %v:\n%s", err, out)
	}
	q, o := r.Quantized, r.Runtime.Result
	t.Logf("tiny_unet W8A8: loss simulated %.6f, ONNX Runtime %.6f; correct %d, %d", q.Loss, o.Loss, q.Correct, o.Correct)
	// ONNX Runtime's integer kernels requantize in float32; 2e-3 is the
	// loss change of a few of the 480 labelled pixels' logits moving by
	// one grid step.
	if math.Abs(q.Loss-o.Loss) > 2e-3 || q.Correct != o.Correct || q.N != o.N {
		t.Errorf("ONNX Runtime %+v, simulation %+v", o, q)
	}
}

// TestEvalRuntimeORTMultiInput: eval --runtime ort runs tiny_bert, whose
// token ids and attention mask (INT64) are both fed to ONNX Runtime (it
// once got the first input only and refused the model), and ONNX
// Runtime's W8A8 loss is the simulation's.
func TestEvalRuntimeORTMultiInput(t *testing.T) {
	if err := ort.Init(""); err != nil {
		t.Skipf("ONNX Runtime not available: %v (%s)", err, ort.Install)
	}
	dir := filepath.Join(zoo, "tiny_bert")
	onnxPath := filepath.Join(dir, "op17.onnx")
	d := []string{"--inputs", filepath.Join(dir, "attention_mask.npy") + "," + filepath.Join(dir, "input_ids.npy"),
		"--labels", writeInts(t, "y.npy", []int{2}, []int64{0, 2})}
	planPath := filepath.Join(t.TempDir(), "plan.json")
	if _, errs, code := runCmd(t, append([]string{"plan", onnxPath, "--bits", "8", "--verify", "0", "--format", "json", "-o", planPath,
		"--method", "hutchinson", "--min-probes", "2", "--max-probes", "2"}, d...)...); code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errs)
	}
	out, errs, code := runCmd(t, append([]string{"eval", onnxPath, "--plan", planPath, "--format", "json", "--runtime", "ort"}, d...)...)
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	var r eval.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Runtime == nil {
		t.Fatalf("eval report: %v:\n%s", err, out)
	}
	q, o := r.Quantized, r.Runtime.Result
	t.Logf("tiny_bert W8A8: loss simulated %.6f, ONNX Runtime %.6f; correct %d, %d of %d", q.Loss, o.Loss, q.Correct, o.Correct, o.Scored)
	if math.Abs(q.Loss-o.Loss) > 1e-3 || q.Correct != o.Correct || o.N != 2 || o.Scored != 2 {
		t.Errorf("ONNX Runtime %+v, simulation %+v", o, q)
	}
	// Both latencies are timed on one sample of both inputs (ort.TimeInputs).
	if r.Runtime.LatencyMS <= 0 || r.Runtime.FloatLatencyMS <= 0 {
		t.Errorf("latency %.3f ms, float %.3f ms", r.Runtime.LatencyMS, r.Runtime.FloatLatencyMS)
	}
	t.Logf("tiny_bert latency: QDQ %.3f ms, float %.3f ms", r.Runtime.LatencyMS, r.Runtime.FloatLatencyMS)
}

// TestQuantizeExternalDataORT: the QDQ model of the external-data rescnn
// (its large tensors in q.onnx.data) loads in ONNX Runtime from its file,
// ONNX Runtime reading the side file itself, and scores as the QDQ model
// of the inline rescnn.onnx does.
func TestQuantizeExternalDataORT(t *testing.T) {
	needORT(t)
	models := filepath.Join("..", "..", "testdata", "models")
	dir := t.TempDir()
	planPath := filepath.Join(dir, "plan.json")
	if _, errs, code := runCmd(t, "plan", filepath.Join(models, "external", "rescnn.onnx"), "--data", "mnist", "--samples", "32", "--bits", "4,8",
		"--max-size", "50%", "--verify", "0", "--method", "hutchinson", "--min-probes", "2", "--max-probes", "2", "--format", "json", "-o", planPath); code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errs)
	}
	var res []eval.Result
	for _, c := range []struct{ in, out string }{{filepath.Join(models, "external", "rescnn.onnx"), "q.onnx"}, {filepath.Join(models, "rescnn.onnx"), "inline.onnx"}} {
		out := filepath.Join(dir, c.out)
		if _, errs, code := runCmd(t, "quantize", c.in, "--plan", planPath, "--data", "mnist", "--samples", "32", "-o", out); code != 0 {
			t.Fatalf("quantize %s: exit %d: %s", c.in, code, errs)
		}
		s, err := ort.OpenFile(out, nil)
		if err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		test, err := data.MNIST(data.Test, 200)
		if err != nil {
			t.Fatal(err)
		}
		r, _, err := s.Evaluate(t.Context(), test, nil)
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, r)
	}
	if _, err := os.Stat(filepath.Join(dir, "q.onnx.data")); err != nil {
		t.Errorf("no side file: %v", err)
	}
	t.Logf("rescnn QDQ in ONNX Runtime: external data %+v, inline %+v", res[0], res[1])
	if res[0] != res[1] || res[0].N != 200 {
		t.Errorf("external-data QDQ model %+v, inline %+v", res[0], res[1])
	}
}
