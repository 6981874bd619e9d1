package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/model"
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

// TestQuantizeExternalData quantizes the model whose weights are ONNX
// external data (testdata/models/external: rescnn.onnx + rescnn.onnx.data)
// into another directory. The export once copied the input's references,
// which then pointed at a rescnn.onnx.data beside the output (24 BatchNorm
// tensors). Now the output keeps the layout: its large tensors in
// OUT.data, the rest inline, no reference to any other file, and resolved
// it equals the export of the inline rescnn.onnx tensor for tensor. The
// input's data file is never a target.
func TestQuantizeExternalData(t *testing.T) {
	skipWithoutMNIST(t)
	models := filepath.Join("..", "..", "testdata", "models")
	ext := filepath.Join(models, "external", "rescnn.onnx")
	dir := t.TempDir()
	planPath := filepath.Join(dir, "plan.json")
	if _, errs, code := runCmd(t, "plan", ext, "--data", "mnist", "--samples", "32", "--bits", "4,8", "--max-size", "50%",
		"--verify", "0", "--method", "hutchinson", "--min-probes", "2", "--max-probes", "2", "--format", "json", "-o", planPath); code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errs)
	}
	before, err := os.ReadFile(ext + ".data")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "q.onnx")
	if _, errs, code := runQuantizeCmd(t, ext, "--plan", planPath, "--data", "mnist", "--samples", "32", "-o", out); code != 0 {
		t.Fatalf("quantize: exit %d: %s", code, errs)
	}
	inline := filepath.Join(dir, "inline.onnx")
	if _, errs, code := runQuantizeCmd(t, filepath.Join(models, "rescnn.onnx"), "--plan", planPath, "--data", "mnist", "--samples", "32", "-o", inline); code != 0 {
		t.Fatalf("quantize (inline model): exit %d: %s", code, errs)
	}
	read := func(p string) *onnx.ModelProto {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		mp := &onnx.ModelProto{}
		if err := proto.Unmarshal(b, mp); err != nil {
			t.Fatal(err)
		}
		return mp
	}
	got, want := read(out), read(inline)
	external := 0
	for _, tp := range got.Graph.Initializer {
		if tp.DataLocation != onnx.TensorProto_EXTERNAL {
			continue
		}
		external++
		for _, kv := range tp.ExternalData {
			if kv.Key == "location" && kv.Value != "q.onnx.data" {
				t.Errorf("tensor %q refers to %q, want q.onnx.data", tp.Name, kv.Value)
			}
		}
	}
	if external == 0 {
		t.Errorf("no tensor in q.onnx.data: the input's external layout was not kept")
	}
	files, err := model.ResolveExternal(got, dir)
	if err != nil || len(files) != 1 || filepath.Base(files[0]) != "q.onnx.data" {
		t.Fatalf("resolving the output's external data: %v (files %v)", err, files)
	}
	byName := map[string]*onnx.TensorProto{}
	for _, tp := range want.Graph.Initializer {
		byName[tp.Name] = tp
	}
	if len(got.Graph.Initializer) != len(want.Graph.Initializer) {
		t.Errorf("%d initializers, the inline model's export has %d", len(got.Graph.Initializer), len(want.Graph.Initializer))
	}
	for _, tp := range got.Graph.Initializer {
		w := byName[tp.Name]
		if w == nil || !bytes.Equal(tp.RawData, w.RawData) || !slices.Equal(tp.FloatData, w.FloatData) || !slices.Equal(tp.Dims, w.Dims) {
			t.Errorf("initializer %q differs from the inline model's export", tp.Name)
		}
	}
	if after, _ := os.ReadFile(ext + ".data"); !bytes.Equal(before, after) {
		t.Error("the input's external data file changed")
	}
	// An output whose side file would be the input's data file is refused
	// before anything is written.
	clash := filepath.Join(dir, "clash")
	if err := os.Mkdir(clash, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"rescnn.onnx", "rescnn.onnx.data"} {
		b, _ := os.ReadFile(filepath.Join(models, "external", f))
		os.WriteFile(filepath.Join(clash, f), b, 0o644)
	}
	os.Rename(filepath.Join(clash, "rescnn.onnx.data"), filepath.Join(clash, "q.onnx.data"))
	mp := read(filepath.Join(clash, "rescnn.onnx"))
	for _, tp := range mp.Graph.Initializer {
		for _, kv := range tp.ExternalData {
			if kv.Key == "location" {
				kv.Value = "q.onnx.data"
			}
		}
	}
	b, _ := proto.Marshal(mp)
	os.WriteFile(filepath.Join(clash, "rescnn.onnx"), b, 0o644)
	_, errs, code := runQuantizeCmd(t, filepath.Join(clash, "rescnn.onnx"), "--plan", planPath, "--data", "mnist", "--samples", "8", "-o", filepath.Join(clash, "q.onnx"))
	if code == 0 || !strings.Contains(errs, "would overwrite the input file") {
		t.Errorf("output over the input's data file: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(clash, "q.onnx")); !os.IsNotExist(err) {
		t.Error("a refused quantize wrote q.onnx")
	}
}

// TestQuantizeNeedsNoLabels: calibration runs the model forward on its
// inputs only, so quantize takes --inputs without --labels whatever the
// loss (--loss position or mse fits the engine to a per-pixel output; they
// once asked for labels they did not read). Given labels are not read: the
// QDQ model is the same byte for byte, and stderr says so.
func TestQuantizeNeedsNoLabels(t *testing.T) {
	dir := filepath.Join(zoo, "tiny_unet")
	onnxPath, in := filepath.Join(dir, "op13.onnx"), filepath.Join(dir, "input.npy")
	px := make([]int64, 2*16*16)
	for i := range px {
		px[i] = int64(i % 3)
	}
	labels := writeInts(t, "y.npy", []int{2, 16, 16}, px)
	tmp := t.TempDir()
	planPath := filepath.Join(tmp, "plan.json")
	if _, errs, code := runCmd(t, "plan", onnxPath, "--inputs", in, "--labels", labels, "--loss", "position", "--max-size", "50%",
		"--verify", "0", "--format", "json", "-o", planPath, "--method", "hutchinson", "--min-probes", "2", "--max-probes", "2"); code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errs)
	}
	var first []byte
	for _, c := range []struct {
		loss   string
		labels bool
	}{{"position", false}, {"mse", false}, {"kl", false}, {"position", true}} {
		out := filepath.Join(tmp, c.loss+".onnx")
		args := []string{onnxPath, "--plan", planPath, "--inputs", in, "--loss", c.loss, "-o", out}
		if c.labels {
			args = append(args, "--labels", labels)
		}
		_, errs, code := runQuantizeCmd(t, args...)
		if code != 0 {
			t.Fatalf("--loss %s (labels %v): exit %d: %s", c.loss, c.labels, code, errs)
		}
		if c.labels != strings.Contains(errs, "--labels "+labels+" is not read") {
			t.Errorf("--loss %s (labels %v): stderr %q", c.loss, c.labels, errs)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Errorf("--loss %s (labels %v): the QDQ model differs from --loss position's without labels", c.loss, c.labels)
		}
	}
	// No data at all: a usage error that asks for inputs, not labels.
	_, errs, code := runQuantizeCmd(t, onnxPath, "--plan", planPath, "--loss", "position", "-o", filepath.Join(tmp, "none.onnx"))
	if code != 2 || !strings.Contains(errs, "no labels needed") {
		t.Errorf("no data: exit %d: %s", code, errs)
	}
}
