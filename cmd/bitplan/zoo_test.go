package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
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

// TestZooStaticCheckCommands runs the commands that load models on the
// committed tiny BERT (token ids and a mask through --inputs a,b): each
// stops before any computation with the static check's list of every
// unsupported construct and operator, naming the nodes.
func TestZooStaticCheckCommands(t *testing.T) {
	dir := filepath.Join(zoo, "tiny_bert")
	in := filepath.Join(dir, "attention_mask.npy") + "," + filepath.Join(dir, "input_ids.npy")
	labels := zooLabels(t, 2)
	for _, args := range [][]string{
		{"trace"},
		{"plan", "--profile", "t4", "--max-size", "50%"},
		{"prune", "--max-params", "50%"},
	} {
		args = append(args, filepath.Join(dir, "op17.onnx"), "--inputs", in, "--labels", labels)
		_, errs, code := runCmd(t, args...)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1: %s", args[0], code, errs)
		}
		for _, want := range []string{
			"the graph has 2 data inputs input_ids (INT64), attention_mask (INT64)",
			`input "input_ids" has element type INT64; the engine takes floating-point inputs only`,
			`input "attention_mask" has element type INT64`,
			"supported operators: Abs, Add,",
		} {
			if !strings.Contains(errs, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", args[0], want, errs)
			}
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
// float in eval and in the QDQ model, and prune leaves the recurrent layers
// intact but writes a model that imports.
func TestZooRecurrentCommands(t *testing.T) {
	for _, c := range []struct{ name, node string }{{"tiny_lstm", "/rnn/LSTM"}, {"tiny_gru", "/rnn/GRU"}} {
		dir := filepath.Join(zoo, c.name)
		onnx, in, labels := filepath.Join(dir, "op17.onnx"), filepath.Join(dir, "input.npy"), zooLabels(t, 2)
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
		_, errs, code = runCmd(t, "prune", onnx, "--inputs", in, "--labels", labels, "--max-params", "100%", "--probes", "4",
			"--test-samples", "0", "-o", pruned)
		if code != 0 {
			t.Fatalf("%s: prune: exit %d: %s", c.name, code, errs)
		}
		if _, err := model.Load(pruned); err != nil {
			t.Errorf("%s: pruned model: %v", c.name, err)
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
	var params int64
	for _, u := range m.Units {
		params += u.Params
	}
	if params >= 5882 {
		t.Errorf("pruned model has %d unit parameters, want fewer than 5,882", params)
	}
}
