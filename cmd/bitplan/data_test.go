package main

import (
	"archive/zip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// few are the trace flags of a quick run.
var few = []string{"--samples", "32", "--max-probes", "4", "--min-probes", "4", "--format", "json"}

// TestDataSources runs trace on LeNet with each kind of --data: the
// Fashion-MNIST IDX files of Debian's package, an image folder preprocessed
// to 1×28×28, and an .npz archive whose array is named as the model input.
func TestDataSources(t *testing.T) {
	dir := t.TempDir()
	npz := filepath.Join(dir, "mnist.npz")
	f, err := os.Create(npz)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, src := range map[string]string{"input": "inputs.npy", "labels": "labels.npy"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ref", "lenet", src))
		if err != nil {
			t.Fatal(err)
		}
		w, _ := zw.Create(name + ".npy")
		w.Write(b)
	}
	zw.Close()
	f.Close()
	for _, src := range [][]string{
		{"--data", "fashion-mnist"},
		{"--data", "idx:/usr/share/datasets/fashion-mnist"},
		{"--data", "imagefolder:../../testdata/imagefolder", "--grayscale", "--resize", "28x28", "--mean", "0.5", "--std", "0.5", "--shuffle", "5"},
		{"--data", "npz:" + npz},
	} {
		out, errs, code := runCmd(t, append(append([]string{"trace", lenet}, src...), few...)...)
		if code != 0 || !strings.Contains(out, `"avg_trace"`) {
			t.Errorf("%v: exit %d: %s", src, code, errs)
		}
	}
	// plan and eval from an image folder: eval calibrates on the same folder.
	planPath := filepath.Join(dir, "plan.json")
	img := []string{"--data", "imagefolder:../../testdata/imagefolder", "--grayscale", "--resize", "28x28"}
	if _, errs, code := runCmd(t, append(append([]string{"plan", lenet, "-o", planPath, "--profile", "t4", "--max-size", "50%"}, img...), few...)...); code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errs)
	}
	out, errs, code := runCmd(t, append([]string{"eval", lenet, "--plan", planPath, "--format", "json"}, img...)...)
	if code != 0 || !strings.Contains(errs, "calibrating activation ranges on the first 7 samples of imagefolder:") || !strings.Contains(errs, "skipped 1 files without an image extension") {
		t.Errorf("eval: exit %d: %s\n%s", code, errs, out)
	}
}

// TestSynthetic traces the residual CNN on data-free inputs; LeNet, which
// has no BatchNormalization, is refused with the export advice.
func TestSynthetic(t *testing.T) {
	rescnn := "../../testdata/models/rescnn.onnx"
	out, errs, code := runCmd(t, "trace", rescnn, "--data", "synthetic", "--synthetic-samples", "4", "--synthetic-steps", "5",
		"--max-probes", "2", "--min-probes", "2", "--format", "json")
	if code != 0 || !strings.Contains(out, `"avg_trace"`) || !strings.Contains(errs, "synthetic batch 1: BatchNorm statistics loss") {
		t.Errorf("exit %d: %s", code, errs)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", lenet, "--data", "synthetic"}, "TrainingMode.PRESERVE"},
		{[]string{"trace", rescnn, "--data", "synthetic", "--synthetic-prior", "1"}, "want MEAN,STD or none"},
		{[]string{"trace", rescnn, "--data", "mnist", "--synthetic-steps", "3"}, "go with --data synthetic"},
		{[]string{"eval", rescnn, "--plan", "p.json", "--data", "synthetic"}, "eval measures accuracy on real test data"},
	} {
		_, errs, code := runCmd(t, c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", c.args, code, errs, c.want)
		}
	}
}

func TestDataErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--data", "imagefolder:"}, "give a path, e.g. --data imagefolder:DIR"},
		{[]string{"--data", "imagefolder:../../testdata/imagefolder", "--preprocess", "cifar"}, `flag --preprocess: unknown preset "cifar"`},
		{[]string{"--data", "imagefolder:../../testdata/imagefolder", "--resize", "0"}, `flag --resize: "0": want a positive size`},
		{[]string{"--data", "imagefolder:../../testdata/imagefolder", "--mean", "a,b"}, `flag --mean: "a,b"`},
		{[]string{"--data", "imagefolder:../../testdata/imagefolder", "--layout", "CHW"}, `layout "CHW"`},
		{[]string{"--data", "imagefolder:../../testdata/imagefolder", "--std", "1,2"}, "std has 2 values, want 1 or 3"},
		{[]string{"--data", "imagefolder:../../testdata/imagefolder", "--preprocess", "imagenet"}, "samples have shape [3 224 224], the model expects [1 28 28]"},
		{[]string{"--data", "mnist", "--crop", "24"}, "go with --data imagefolder:DIR"},
		{[]string{"--data", "mnist", "--shuffle", "2"}, "--shuffle go with --data imagefolder:DIR"},
		{[]string{"--data", "npz:absent.npz"}, "absent.npz"},
		{[]string{"--data", "idx:../../testdata"}, "no images file of the train split"},
		{[]string{"--data", "cifar10"}, `unknown dataset "cifar10"`},
	}
	for _, c := range cases {
		_, stderr, code := runCmd(t, append(append([]string{"trace", lenet}, c.args...), few...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", c.args, code, stderr, c.want)
		}
	}
}
