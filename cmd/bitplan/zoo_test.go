package main

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/qdq"
)

const zoo = "../../testdata/zoo"

func zooLabels(t *testing.T, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "labels.npy")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := data.WriteNPYInt64(f, []int{n}, make([]int64, n)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// writeInts writes an int64 .npy file of the given shape into a test
// directory and returns its path.
func writeInts(t *testing.T, name string, shape []int, v []int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := data.WriteNPYInt64(f, shape, v); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestZooCommands runs trace, plan, eval, quantize and prune end to end on the
// committed zoo members the engine runs (CI's check that real exports
// work): tiny_bert (token ids and a mask through --inputs a,b, embedding
// units; also --loss kl without labels), tiny_vit, tiny_quartznet
// (per-frame outputs, --loss position with ignored frames), tiny_unet
// (per-pixel labels) and tiny_resnet. Small probe counts keep it fast; the
// pruned models must import. Prune leaves every tiny_unet structure
// intact (listing why), so its budget is 100%; tiny_vit loses heads of its
// fused q/k/v projections and FFN rows.
func TestZooCommands(t *testing.T) {
	qn := make([]int64, 2*16)
	for i := range qn {
		qn[i] = int64(i*7) % 6
	}
	qn[3], qn[20] = -100, -100
	px := make([]int64, 2*16*16) // tiny_unet: 3 classes per pixel, a border ignored
	for i := range px {
		px[i] = int64(i/16+i%16) % 3
		if i%16 == 0 {
			px[i] = -100
		}
	}
	cases := []struct {
		name, inputs, labels string
		loss                 string
		units                int
		prune                string
	}{
		{"tiny_bert", "input_ids.npy,attention_mask.npy", writeInts(t, "y.npy", []int{2}, []int64{0, 2}), "class", 13, "97%"},
		{"tiny_bert", "attention_mask.npy,input_ids.npy", "", "kl", 13, "97%"},
		{"tiny_vit", "input.npy", writeInts(t, "y.npy", []int{2}, []int64{3, 7}), "class", 10, "80%"},
		{"tiny_quartznet", "features.npy", writeInts(t, "y.npy", []int{2, 16}, qn), "position", 13, "80%"},
		{"tiny_unet", "input.npy", writeInts(t, "y.npy", []int{2, 16, 16}, px), "position", 0, "100%"},
		{"tiny_resnet", "input.npy", writeInts(t, "y.npy", []int{2}, []int64{1, 4}), "class", 9, "70%"},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.loss, func(t *testing.T) {
			dir := filepath.Join(zoo, c.name)
			var in []string
			for _, f := range strings.Split(c.inputs, ",") {
				in = append(in, filepath.Join(dir, f))
			}
			onnxPath := filepath.Join(dir, "op13.onnx")
			d := []string{"--inputs", strings.Join(in, ","), "--loss", c.loss}
			if c.labels != "" {
				d = append(d, "--labels", c.labels)
			}
			probes := []string{"--method", "hutchinson", "--min-probes", "2", "--max-probes", "3"}
			out, errs, code := runCmd(t, append(append([]string{"trace", onnxPath, "--format", "csv"}, d...), probes...)...)
			if code != 0 {
				t.Fatalf("trace: exit %d: %s", code, errs)
			}
			if n := strings.Count(out, "\n"); c.units > 0 && n != c.units+1 {
				t.Errorf("trace: %d lines, want a header and %d units:\n%s", n, c.units, out)
			}
			tmp := t.TempDir()
			planPath := filepath.Join(tmp, "plan.json")
			_, errs, code = runCmd(t, append(append([]string{"plan", onnxPath, "--max-size", "50%", "--verify", "0", "--format", "json", "-o", planPath}, d...), probes...)...)
			if code != 0 {
				t.Fatalf("plan: exit %d: %s", code, errs)
			}
			out, errs, code = runCmd(t, append([]string{"eval", onnxPath, "--plan", planPath, "--format", "csv"}, d...)...)
			if code != 0 {
				t.Fatalf("eval: exit %d: %s", code, errs)
			}
			if !strings.Contains(out, "quantized") {
				t.Errorf("eval: no quantized model in the report:\n%s", out)
			}
			// quantize takes the same data and --loss (per-pixel and
			// per-frame models once had no way to say so).
			qPath := filepath.Join(tmp, "q.onnx")
			out, errs, code = runCmd(t, append([]string{"quantize", onnxPath, "--plan", planPath, "--format", "json", "-o", qPath}, d...)...)
			if code != 0 {
				t.Fatalf("quantize: exit %d: %s", code, errs)
			}
			var qs qdq.Summary
			if err := json.Unmarshal([]byte(out), &qs); err != nil || (c.units > 0 && len(qs.Layers) != c.units) {
				t.Errorf("quantize: %v, %d layers, want %d:\n%s", err, len(qs.Layers), c.units, out)
			}
			if b, err := os.ReadFile(qPath); err != nil || proto.Unmarshal(b, &onnx.ModelProto{}) != nil {
				t.Errorf("quantize: the QDQ model %s is not an ONNX model: %v", qPath, err)
			}
			pruned := filepath.Join(tmp, "pruned.onnx")
			args := []string{"prune", onnxPath, "--max-params", c.prune, "--probes", "2", "--test-samples", "0", "-o", pruned}
			if c.loss == "class" {
				args = append(args, "--finetune-steps", "2") // every input fed (tiny_bert's two)
			}
			_, errs, code = runCmd(t, append(args, d...)...)
			if code != 0 {
				t.Fatalf("prune: exit %d: %s", code, errs)
			}
			if _, err := model.Load(pruned); err != nil {
				t.Errorf("pruned model: %v", err)
			}
		})
	}
}

// TestZooLossErrors: a loss that does not fit the output or the labels is
// refused before any work, naming the fix.
func TestZooLossErrors(t *testing.T) {
	qn := filepath.Join(zoo, "tiny_quartznet")
	bert := filepath.Join(zoo, "tiny_bert")
	bertIn := filepath.Join(bert, "input_ids.npy") + "," + filepath.Join(bert, "attention_mask.npy")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", filepath.Join(qn, "op13.onnx"), "--inputs", filepath.Join(qn, "features.npy"), "--labels", zooLabels(t, 2)},
			"give --loss position"},
		{[]string{"trace", filepath.Join(qn, "op13.onnx"), "--inputs", filepath.Join(qn, "features.npy"), "--labels", zooLabels(t, 2), "--loss", "position"},
			"do not fit the model's output [6 16] per sample: want [16]"},
		{[]string{"trace", filepath.Join(qn, "op13.onnx"), "--inputs", filepath.Join(qn, "features.npy"), "--loss", "kl"},
			"the KL loss takes batch×classes logits"},
		{[]string{"trace", filepath.Join(bert, "op13.onnx"), "--inputs", bertIn, "--labels", zooLabels(t, 2), "--loss", "kl"},
			"takes no labels"},
		{[]string{"trace", filepath.Join(bert, "op13.onnx"), "--inputs", bertIn, "--loss", "position"},
			"give --inputs X.npy and --labels Y.npy"},
		{[]string{"trace", filepath.Join(bert, "op13.onnx"), "--inputs", bertIn, "--labels", zooLabels(t, 2), "--loss", "ctc"},
			"unknown loss"},
		{[]string{"trace", filepath.Join(bert, "op13.onnx"), "--inputs", filepath.Join(bert, "input_ids.npy"), "--labels", zooLabels(t, 2)},
			"1 input files"},
		{[]string{"trace", filepath.Join(bert, "op13.onnx"), "--inputs", filepath.Join(zoo, "tiny_quartznet", "features.npy") + "," + filepath.Join(bert, "attention_mask.npy"), "--labels", zooLabels(t, 2)},
			"features.npy has dtype <f"},
	} {
		_, errs, code := runCmd(t, c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, want an error containing %q:\n%s", c.args[1:], code, c.want, errs)
		}
	}
}

// TestStaticCheckOperator runs trace on a graph with an operator the
// engine lacks (Hardmax): the error names the node before any work.
func TestStaticCheckOperator(t *testing.T) {
	dir := t.TempDir()
	b := mt.New("hardmax", 17)
	b.Input("x", -1, 3)
	b.Float("w", []int{2, 3}, []float64{1, 2, 3, 4, 5, 6})
	b.Node("Gemm", "fc", []string{"x", "w"}, []string{"h"}, mt.Int("transB", 1))
	b.Node("Hardmax", "hardmax", []string{"h"}, []string{"y"})
	b.Output("y")
	path := filepath.Join(dir, "hardmax.onnx")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "x.npy")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := data.WriteNPY(f, []int{2, 3}, make([]float64, 6)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, errs, code := runCmd(t, "trace", path, "--inputs", in, "--labels", zooLabels(t, 2))
	if code != 1 {
		t.Errorf("exit %d, want 1: %s", code, errs)
	}
	if want := `Hardmax node "hardmax" (#1): operator Hardmax is not supported by the engine`; !strings.Contains(errs, want) {
		t.Errorf("stderr lacks %q:\n%s", want, errs)
	}
}

// TestZooRecurrentCommands runs trace, plan, eval, quantize and prune on
// the committed tiny LSTM and GRU classifiers: the recurrent node's W and R
// are units (named node/W and node/R), R's input (the hidden state) stays
// float in eval and in the QDQ model, and prune at 70% of the parameters
// removes hidden units (the recurrent layer holds most of them) and writes
// a model that imports.
func TestZooRecurrentCommands(t *testing.T) {
	for _, c := range []struct {
		name, node string
		scales     float64 // gates·hidden: one scale per gate row
	}{{"tiny_lstm", "/rnn/LSTM", 4 * 12}, {"tiny_gru", "/rnn/GRU", 3 * 12}} {
		dir := filepath.Join(zoo, c.name)
		onnx, in, labels := filepath.Join(dir, "op17.onnx"), filepath.Join(dir, "input.npy"), zooLabels(t, 2)
		// The table prices one scale per gate row of W and R (it once
		// counted one per direction).
		js, errs, code := runCmd(t, "trace", onnx, "--inputs", in, "--labels", labels, "--max-probes", "2", "--min-probes", "2", "--format", "json")
		var tab struct {
			Layers []struct {
				Name        string
				OutChannels float64 `json:"out_channels"`
			}
		}
		if err := json.Unmarshal([]byte(js), &tab); code != 0 || err != nil {
			t.Fatalf("%s: trace --format json: exit %d, %v: %s", c.name, code, err, errs)
		}
		for _, l := range tab.Layers {
			if strings.HasPrefix(l.Name, c.node+"/") && l.OutChannels != c.scales {
				t.Errorf("%s: %s prices %g scales, want %g (one per gate row)", c.name, l.Name, l.OutChannels, c.scales)
			}
		}
		out, errs, code := runCmd(t, "trace", onnx, "--inputs", in, "--labels", labels, "--max-probes", "4", "--min-probes", "4", "--format", "csv")
		if code != 0 {
			t.Fatalf("%s: trace: exit %d: %s", c.name, code, errs)
		}
		for _, u := range []string{c.node + "/W,", c.node + "/R,", "/fc/Gemm,"} {
			if !strings.Contains(out, "\n"+u) {
				t.Errorf("%s: trace lacks unit %s:\n%s", c.name, u, out)
			}
		}
		planOut, errs, code := runCmd(t, "plan", onnx, "--inputs", in, "--labels", labels, "--profile", "t4", "--max-size", "50%",
			"--max-probes", "4", "--min-probes", "4", "--format", "json")
		if code != 0 {
			t.Fatalf("%s: plan: exit %d: %s", c.name, code, errs)
		}
		planPath := filepath.Join(t.TempDir(), "plan.json")
		if err := os.WriteFile(planPath, []byte(planOut), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errs, code = runCmd(t, "eval", onnx, "--plan", planPath, "--inputs", in, "--labels", labels)
		if code != 0 {
			t.Fatalf("%s: eval: exit %d: %s", c.name, code, errs)
		}
		if !strings.Contains(out, "| "+c.node+"/R ") {
			t.Errorf("%s: eval report lacks %s/R:\n%s", c.name, c.node, out)
		}
		quantized := filepath.Join(t.TempDir(), "q.onnx")
		out, errs, code = runCmd(t, "quantize", onnx, "--plan", planPath, "--inputs", in, "--labels", labels, "-o", quantized)
		if code != 0 {
			t.Fatalf("%s: quantize: exit %d: %s", c.name, code, errs)
		}
		if st, err := os.Stat(quantized); err != nil || st.Size() == 0 || !strings.Contains(out, c.node+"/R") {
			t.Errorf("%s: quantized model: %v\n%s", c.name, err, out)
		}
		pruned := filepath.Join(t.TempDir(), "pruned.onnx")
		_, errs, code = runCmd(t, "prune", onnx, "--inputs", in, "--labels", labels, "--max-params", "70%", "--probes", "4",
			"--test-samples", "0", "-o", pruned)
		if code != 0 {
			t.Fatalf("%s: prune: exit %d: %s", c.name, code, errs)
		}
		orig, err := model.Load(onnx)
		if err != nil {
			t.Fatal(err)
		}
		pm, err := model.Load(pruned)
		if err != nil {
			t.Fatalf("%s: pruned model: %v", c.name, err)
		}
		var before, after int64
		for _, u := range orig.Units {
			before += u.Params
		}
		for _, u := range pm.Units {
			after += u.Params
		}
		if 10*after > 7*before {
			t.Errorf("%s: pruned model has %d of %d unit parameters, want at most 70%%", c.name, after, before)
		}
	}
}

// TestZooTinyResNetTrace traces the committed tiny ResNet (an export with
// de-duplicated biases and a tied weight) on its sample inputs.
func TestZooTinyResNetTrace(t *testing.T) {
	dir := filepath.Join(zoo, "tiny_resnet")
	out, errs, code := runCmd(t, "trace", filepath.Join(dir, "op13.onnx"), "--inputs", filepath.Join(dir, "input.npy"),
		"--labels", zooLabels(t, 2), "--max-probes", "4", "--min-probes", "4", "--format", "csv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if n := strings.Count(out, "\n"); n != 10 || !strings.Contains(out, "/proj/Conv") || !strings.Contains(out, "/hid/Gemm") {
		t.Errorf("want a header and 9 units (proj once):\n%s", out)
	}
}

// TestZooTinyResNetPrune prunes the committed tiny ResNet (whose export
// reads de-duplicated biases through Identity: the pruned file is the
// normalised graph) and checks that the written model imports with fewer
// parameters.
func TestZooTinyResNetPrune(t *testing.T) {
	dir := filepath.Join(zoo, "tiny_resnet")
	out := filepath.Join(t.TempDir(), "pruned.onnx")
	_, errs, code := runCmd(t, "prune", filepath.Join(dir, "op13.onnx"), "--inputs", filepath.Join(dir, "input.npy"),
		"--labels", zooLabels(t, 2), "--max-params", "70%", "--probes", "4", "--test-samples", "0", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	m, err := model.Load(out)
	if err != nil {
		t.Fatalf("pruned model: %v", err)
	}
	params := unitParams(m)
	if params >= 5882 {
		t.Errorf("pruned model has %d unit parameters, want fewer than 5,882", params)
	}
}

// writeNPZ writes an .npz archive of the given .npy files (member name →
// path) into a test directory.
func writeNPZ(t *testing.T, members map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data.npz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, src := range members {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(name + ".npy")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestZooLossNPZ reads the losses' labels from .npz archives: per-frame
// labels (N×T) for tiny_quartznet's --loss position, and tiny_bert's token
// ids and mask without labels for --loss kl.
func TestZooLossNPZ(t *testing.T) {
	qn := filepath.Join(zoo, "tiny_quartznet")
	frames := make([]int64, 2*16)
	for i := range frames {
		frames[i] = int64(i % 6)
	}
	frames[5] = -100
	z := writeNPZ(t, map[string]string{"features": filepath.Join(qn, "features.npy"), "labels": writeInts(t, "y.npy", []int{2, 16}, frames)})
	out, errs, code := runCmd(t, "trace", filepath.Join(qn, "op13.onnx"), "--data", "npz:"+z, "--loss", "position",
		"--method", "hutchinson", "--min-probes", "2", "--max-probes", "2", "--format", "csv")
	if code != 0 || strings.Count(out, "\n") != 14 {
		t.Errorf("quartznet --loss position from npz: exit %d: %s\n%s", code, errs, out)
	}
	bert := filepath.Join(zoo, "tiny_bert")
	z = writeNPZ(t, map[string]string{"input_ids": filepath.Join(bert, "input_ids.npy"), "attention_mask": filepath.Join(bert, "attention_mask.npy")})
	out, errs, code = runCmd(t, "trace", filepath.Join(bert, "op17.onnx"), "--data", "npz:"+z, "--loss", "kl",
		"--method", "hutchinson", "--min-probes", "2", "--max-probes", "2", "--format", "csv")
	if code != 0 || strings.Count(out, "\n") != 14 {
		t.Errorf("bert --loss kl from npz: exit %d: %s\n%s", code, errs, out)
	}
	// Without labels the class loss refuses the archive, naming it.
	if _, errs, code := runCmd(t, "trace", filepath.Join(bert, "op17.onnx"), "--data", "npz:"+z); code == 0 || !strings.Contains(errs, "no labels array") {
		t.Errorf("class loss on an unlabelled archive: exit %d: %s", code, errs)
	}
}

// TestEvalPositionCounts: with --loss position eval's correct column
// counts labelled positions, out of the scored ones (it once divided by
// the samples: "301/2" beside 62.71 %). tiny_unet: 2 samples of 16×16
// pixels, the first column ignored, 480 scored pixels.
func TestEvalPositionCounts(t *testing.T) {
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
	out, errs, code := runCmd(t, append([]string{"eval", onnxPath, "--plan", planPath, "--format", "json"}, d...)...)
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	var r struct {
		Scoring          string
		Float, Quantized struct {
			Accuracy           float64
			Correct, Scored, N int
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		name               string
		accuracy           float64
		correct, scored, n int
	}{{"float", r.Float.Accuracy, r.Float.Correct, r.Float.Scored, r.Float.N}, {"quantized", r.Quantized.Accuracy, r.Quantized.Correct, r.Quantized.Scored, r.Quantized.N}} {
		if m.scored != 480 || m.n != 2 || m.correct > 480 || math.Abs(m.accuracy-float64(m.correct)/480) > 1e-12 {
			t.Errorf("%s: correct %d of %d scored (%d samples), accuracy %g; want 480 scored positions of 2 samples", m.name, m.correct, m.scored, m.n, m.accuracy)
		}
	}
	if r.Scoring != "positions" {
		t.Errorf("scoring %q, want positions", r.Scoring)
	}
	out, errs, code = runCmd(t, append([]string{"eval", onnxPath, "--plan", planPath}, d...)...)
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	if want := fmt.Sprintf("%d/480", r.Quantized.Correct); !strings.Contains(out, want) || !strings.Contains(out, "correct positions") {
		t.Errorf("text report lacks %q under a header naming positions:\n%s", want, out)
	}
	out, _, _ = runCmd(t, append([]string{"eval", onnxPath, "--plan", planPath, "--format", "csv"}, d...)...)
	if !strings.HasPrefix(out, "kind,name,accuracy,loss,correct,scored,n,") {
		t.Errorf("csv header: %s", out)
	}
}

// writeFloats writes a float64 .npy file into a test directory.
func writeFloats(t *testing.T, name string, shape []int, v []float64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := data.WriteNPY(f, shape, v); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlanVerifyEveryLoss: plan --verify measures the candidates with
// --loss position (tiny_unet per pixel), mse (tiny_unet against float
// targets: loss only, no accuracy) and kl, on held-out samples after the
// traced ones, each scored with its own labels: the verification's float
// loss equals eval's float loss on the held-out samples alone. plan once
// skipped the verification for position and mse.
func TestPlanVerifyEveryLoss(t *testing.T) {
	const n, traced = 10, 4
	dir := filepath.Join(zoo, "tiny_unet")
	onnxPath := filepath.Join(dir, "op13.onnx")
	r := rand.New(rand.NewPCG(7, 3))
	x := make([]float64, n*3*16*16)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	px := make([]int64, n*16*16)
	for i := range px {
		px[i] = int64(r.IntN(3))
		if r.IntN(10) == 0 {
			px[i] = -100
		}
	}
	tg := make([]float64, n*3*16*16)
	for i := range tg {
		tg[i] = r.NormFloat64()
	}
	tail := func(name string, shape []int, per int, xs []float64, is []int64) string {
		sh := append([]int{n - traced}, shape...)
		if is != nil {
			return writeInts(t, name, sh, is[traced*per:])
		}
		return writeFloats(t, name, sh, xs[traced*per:])
	}
	in := writeFloats(t, "x.npy", []int{n, 3, 16, 16}, x)
	inTail := tail("xt.npy", []int{3, 16, 16}, 3*16*16, x, nil)
	for _, c := range []struct {
		loss, labels, labelsTail string
	}{
		{"position", writeInts(t, "y.npy", []int{n, 16, 16}, px), tail("yt.npy", []int{16, 16}, 16*16, nil, px)},
		{"mse", writeFloats(t, "t.npy", []int{n, 3, 16, 16}, tg), tail("tt.npy", []int{3, 16, 16}, 3*16*16, tg, nil)},
	} {
		planPath := filepath.Join(t.TempDir(), "plan.json")
		_, errs, code := runCmd(t, "plan", onnxPath, "--inputs", in, "--labels", c.labels, "--loss", c.loss, "--samples", strconv.Itoa(traced),
			"--bits", "4,8", "--max-size", "50%", "--verify", "1", "--format", "json", "-o", planPath,
			"--method", "hutchinson", "--min-probes", "2", "--max-probes", "2")
		if code != 0 {
			t.Fatalf("%s: plan: exit %d: %s", c.loss, code, errs)
		}
		b, err := os.ReadFile(planPath)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Verification *struct {
				Samples int
				Float   struct {
					Loss     float64
					Accuracy *float64
				}
				Candidates []struct {
					Measured struct{ Accuracy *float64 }
				}
			}
		}
		if err := json.Unmarshal(b, &p); err != nil || p.Verification == nil {
			t.Fatalf("%s: no verification in the plan (%v):\n%s\n%s", c.loss, err, b, errs)
		}
		v := p.Verification
		if v.Samples != n-traced || len(v.Candidates) == 0 || (c.loss == "mse") != (v.Float.Accuracy == nil) || (c.loss == "mse") != (v.Candidates[0].Measured.Accuracy == nil) {
			t.Errorf("%s: verification on %d samples, %d candidates, float accuracy %v; want %d samples, accuracy only with labels to count", c.loss, v.Samples, len(v.Candidates), v.Float.Accuracy, n-traced)
		}
		out, errs, code := runCmd(t, "eval", onnxPath, "--plan", planPath, "--inputs", inTail, "--labels", c.labelsTail, "--loss", c.loss, "--format", "json")
		if code != 0 {
			t.Fatalf("%s: eval: exit %d: %s", c.loss, code, errs)
		}
		var ev struct{ Float struct{ Loss float64 } }
		if err := json.Unmarshal([]byte(out), &ev); err != nil {
			t.Fatal(err)
		}
		if math.Abs(ev.Float.Loss-v.Float.Loss) > 1e-12*math.Abs(ev.Float.Loss) {
			t.Errorf("%s: the verification's float loss %.15g, eval's on the held-out samples %.15g: the held-out samples were not scored with their own labels", c.loss, v.Float.Loss, ev.Float.Loss)
		}
	}
	// kl on tiny_bert: the held-out window reads both inputs (token ids
	// and the mask; a window of a multi-input dataset once read only
	// one and failed).
	ids, mask := make([]int64, n*16), make([]int64, n*16)
	for i := range ids {
		ids[i] = int64(r.IntN(100))
		mask[i] = map[bool]int64{true: 1, false: 0}[i%16 < 16-i/16%5]
	}
	bert := filepath.Join(zoo, "tiny_bert", "op17.onnx")
	bertIn := writeInts(t, "input_ids.npy", []int{n, 16}, ids) + "," + writeInts(t, "attention_mask.npy", []int{n, 16}, mask)
	out, errs, code := runCmd(t, "plan", bert, "--inputs", bertIn, "--loss", "kl", "--samples", strconv.Itoa(traced),
		"--bits", "4,8", "--max-size", "50%", "--verify", "1", "--format", "json",
		"--method", "hutchinson", "--min-probes", "2", "--max-probes", "2")
	if code != 0 || !strings.Contains(out, `"verification"`) {
		t.Errorf("tiny_bert --loss kl --verify 1: exit %d: %s\n%s", code, errs, out)
	}
}

// TestZooCacheCommands runs trace, plan, eval and prune on every large zoo
// member at opsets 13 and 17, from the directory BITPLAN_ZOO_DIR names
// (made by `/usr/bin/python3 scripts/zoo.py --large --out DIR`; skipped
// without it): the batch-2 sample inputs, labelled by PyTorch's own
// predictions (class labels, or per position for per-frame and per-pixel
// outputs with --loss position), two Hutchinson probes, prune to 90% of
// the parameters (100% where the structures prune leaves intact hold more
// than a tenth, marked so). Each command's wall time and the process's CPU time
// (user + system, which a loaded machine does not inflate) are logged as
// a table row; run one member with -run 'TestZooCacheCommands/resnet18'. It is
// long (BERT-base-shaped, DenseNet-121): use nice and -timeout 2h.
func TestZooCacheCommands(t *testing.T) {
	dir := os.Getenv("BITPLAN_ZOO_DIR")
	if dir == "" {
		t.Skip("set BITPLAN_ZOO_DIR to a directory made by /usr/bin/python3 scripts/zoo.py --large --out DIR")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*_op13.onnx"))
	if len(files) == 0 {
		t.Fatalf("BITPLAN_ZOO_DIR=%s holds no NAME_op13.onnx: make it with /usr/bin/python3 scripts/zoo.py --large --out %s", dir, dir)
	}
	var rows []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), "_op13.onnx")
		for _, op := range []int{13, 17} {
			t.Run(fmt.Sprintf("%s/op%d", name, op), func(t *testing.T) {
				row := zooCacheCommands(t, dir, name, op)
				rows = append(rows, row)
			})
		}
	}
	t.Logf("wall (CPU) seconds per command:\n| model | opset | trace | plan | eval | prune |\n|---|---|---:|---:|---:|---:|\n%s", strings.Join(rows, "\n"))
}

// zooCacheCommands runs the four commands on one large zoo export and
// returns its table row (seconds per command, or the failing command).
func zooCacheCommands(t *testing.T, dir, name string, op int) string {
	onnxPath := filepath.Join(dir, fmt.Sprintf("%s_op%d.onnx", name, op))
	if _, err := os.Stat(onnxPath); err != nil {
		t.Fatalf("%v (make it with /usr/bin/python3 scripts/zoo.py --large --out %s)", err, dir)
	}
	// The inputs under their graph input names (bert_input_ids.npy →
	// input_ids.npy), so --inputs matches them by name.
	tmp := t.TempDir()
	npys, _ := filepath.Glob(filepath.Join(dir, name+"_*.npy"))
	var in []string
	for _, p := range npys {
		base := strings.TrimPrefix(filepath.Base(p), name+"_")
		if base == "logits.npy" {
			continue
		}
		link := filepath.Join(tmp, base)
		if err := os.Symlink(p, link); err != nil {
			t.Fatal(err)
		}
		in = append(in, link)
	}
	logits, err := data.LoadNPYArray(filepath.Join(dir, name+"_logits.npy"))
	if err != nil {
		t.Fatal(err)
	}
	// Labels: PyTorch's arg max per sample (N×C) or per position (N×C×…).
	sh := logits.Shape
	classes, positions := sh[1], 1
	for _, d := range sh[2:] {
		positions *= d
	}
	labels := make([]int64, sh[0]*positions)
	for s := 0; s < sh[0]; s++ {
		for p := 0; p < positions; p++ {
			best := 0
			for c := 1; c < classes; c++ {
				if logits.Float[(s*classes+c)*positions+p] > logits.Float[(s*classes+best)*positions+p] {
					best = c
				}
			}
			labels[s*positions+p] = int64(best)
		}
	}
	loss := "class"
	lshape := []int{sh[0]}
	if len(sh) > 2 {
		loss, lshape = "position", append([]int{sh[0]}, sh[2:]...)
	}
	d := []string{"--inputs", strings.Join(in, ","), "--labels", writeInts(t, "labels.npy", lshape, labels), "--loss", loss}
	probes := []string{"--method", "hutchinson", "--min-probes", "2", "--max-probes", "2"}
	planPath := filepath.Join(tmp, "plan.json")
	steps := []struct {
		cmd  string
		args []string
	}{
		{"trace", append([]string{"trace", onnxPath, "--format", "csv"}, probes...)},
		{"plan", append([]string{"plan", onnxPath, "--max-size", "50%", "--verify", "0", "--format", "json", "-o", planPath}, probes...)},
		{"eval", []string{"eval", onnxPath, "--plan", planPath, "--calib-samples", "2", "--format", "csv"}},
		{"prune", []string{"prune", onnxPath, "--max-params", "90%", "--probes", "2", "--test-samples", "0", "-o", filepath.Join(tmp, "pruned.onnx")}},
	}
	row := fmt.Sprintf("| %s | %d |", name, op)
	for _, s := range steps {
		t0, c0 := time.Now(), cpuTime()
		_, errs, code := runCmd(t, append(s.args, d...)...)
		if s.cmd == "prune" && code == 3 && strings.Contains(errs, "no plan meets the budgets") {
			// Structures prune leaves intact (recurrent layers, …) hold
			// more than 10% of the parameters: it must still write a
			// valid model, at 100%.
			t.Logf("prune %s/op%d: 90%% is infeasible (%s); at 100%%", name, op, firstLine(errs))
			if name == "lstm" || name == "gru" {
				t.Errorf("prune %s/op%d: 90%% is infeasible, but its recurrent layers' hidden units are prunable", name, op)
			}
			args := slices.Clone(s.args)
			args[slices.Index(args, "90%")] = "100%"
			_, errs, code = runCmd(t, append(args, d...)...)
			row += " (100%)"
		}
		sec, cpu := time.Since(t0).Seconds(), (cpuTime() - c0).Seconds()
		if code != 0 {
			t.Errorf("%s: exit %d after %.1f s: %s", s.cmd, code, sec, errs)
			return row + fmt.Sprintf(" failed | (%s: %s)", s.cmd, firstLine(errs))
		}
		row += fmt.Sprintf(" %.0f (%.0f) |", sec, cpu)
		t.Logf("%s %s/op%d: %.1f s wall, %.1f s CPU, peak RSS so far %.1f GB", s.cmd, name, op, sec, cpu, float64(maxRSS())/1e9)
	}
	if _, err := model.Load(filepath.Join(tmp, "pruned.onnx")); err != nil {
		t.Errorf("the pruned model does not import: %v", err)
		return row + " (pruned model: " + err.Error() + ")"
	}
	return row
}

// cpuTime returns the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// maxRSS returns the process's peak resident set size in bytes so far (a
// high-water mark: a command that raises it set a new peak).
func maxRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss * 1024
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
