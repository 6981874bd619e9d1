package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bitplan/bitplan/data"
)

// TestValidationBeforeWork: bad flag values and combinations are usage
// errors before any work. The model named does not exist, so a check that
// came after loading it (or after the trace) would report a missing file.
func TestValidationBeforeWork(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.onnx")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"--bits 33", []string{"trace", missing, "--data", "mnist", "--bits", "4,33"}, "flag --bits 33: weights: quantizer: 33 bits out of range [2, 32]"},
		{"--bits w4a40", []string{"plan", missing, "--data", "mnist", "--bits", "w4a40"}, "flag --bits w4a40: activations"},
		{"--density d.txt", []string{"trace", missing, "--data", "mnist", "--density", "d.txt"}, `flag --density: plot d.txt: unknown image format ".txt"`},
		{"--plot p.txt", []string{"pareto", missing, "--sweep", "bops", "--plot", "p.txt"}, "flag --plot: plot p.txt: unknown image format"},
		{"--max-energy without --profile", []string{"plan", missing, "--data", "mnist", "--max-energy", "1mJ"}, "flag --max-energy: needs a --profile"},
		{"--max-latency without --profile", []string{"plan", missing, "--data", "mnist", "--max-latency", "1ms"}, "flag --max-latency: needs a --profile"},
		{"--quantizer conflict", []string{"trace", missing, "--data", "mnist", "--quantizer", "symmetric,asymmetric"}, `flag --quantizer: "symmetric" and "asymmetric" conflict`},
		{"--quantizer conflict 2", []string{"plan", missing, "--data", "mnist", "--quantizer", "mse,per-tensor,minmax"}, `"mse" and "minmax" conflict`},
		{"--exact --method", []string{"trace", missing, "--data", "mnist", "--exact", "--method", "hutchinson"}, "flags --exact and --method hutchinson conflict"},
		{"--tol NaN", []string{"trace", missing, "--data", "mnist", "--tol", "NaN"}, "flag --tol"},
	}
	for _, c := range cases {
		_, stderr, code := runCmd(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q", c.name, code, stderr, c.want)
		}
	}
	// Agreeing words are fine: --exact --method exact, a repeated word.
	if _, stderr, code := runCmd(t, "trace", missing, "--data", "mnist", "--exact", "--method", "exact", "--quantizer", "mse,mse"); code != 1 || !strings.Contains(stderr, "missing.onnx") {
		t.Errorf("agreeing flags: exit %d, stderr %q; want the missing model (exit 1)", code, stderr)
	}
}

// errAfter is a context that reports itself cancelled from the n-th call
// of Err on: a Ctrl-C that comes at a chosen point of the run.
type errAfter struct {
	context.Context
	n, calls atomic.Int64
}

func (c *errAfter) Err() error {
	if c.calls.Add(1) >= c.n.Load() {
		return context.Canceled
	}
	return nil
}

// TestInterrupt: Ctrl-C while the table is read, or during the search,
// exits 130 with a clear word and writes no plan (it exited 0 with the
// search's best plan so far, or kept parsing).
func TestInterrupt(t *testing.T) {
	out := filepath.Join(t.TempDir(), "plan.json")
	for _, n := range []int64{1, 3, 6} {
		ctx := &errAfter{Context: context.Background()}
		ctx.n.Store(n)
		var stdout, stderr bytes.Buffer
		err := run(ctx, []string{"solve", "../../testdata/hawq_resnet18.json", "--max-bops", "50%", "-o", out}, &stdout, &stderr)
		code := exitCode(&stderr, err)
		if code != exitInterrupted || !strings.Contains(stderr.String(), "interrupted") {
			t.Errorf("cancelled at Err call %d (%d calls): exit %d, stderr %q; want %d and \"interrupted\"", n, ctx.calls.Load(), code, stderr.String(), exitInterrupted)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("cancelled at Err call %d: the plan was written", n)
		}
	}
}

// TestMessagesNameTheCause: a latency budget on a table where some layers
// lack latency_ms names the first such layer; a non-finite --to is blamed
// on --to, not on --sweep.
func TestMessagesNameTheCause(t *testing.T) {
	table := filepath.Join(t.TempDir(), "t.json")
	os.WriteFile(table, []byte(`{"layers": [
		{"name": "a", "params": 10, "macs": 10, "avg_trace": 1, "delta_sq": {"4": 1, "8": 0.1}, "latency_ms": {"4": 1, "8": 2}},
		{"name": "b", "params": 10, "macs": 10, "avg_trace": 1, "delta_sq": {"4": 1, "8": 0.1}}]}`), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"solve", table, "--max-latency", "50%"}, `layers[1] ("b") has no latency_ms (1 of 2 layers lack it)`},
		{[]string{"pareto", table, "--sweep", "bops", "--to", "Inf"}, "flag --to: +Inf is not a percentage"},
		{[]string{"pareto", table, "--sweep", "bogus"}, `flag --sweep: plan: sweep: no such resource: "bogus"`},
	}
	for _, c := range cases {
		_, stderr, code := runCmd(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Contains(c.want, "--to") && strings.Contains(stderr, "--sweep") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

// TestNPYMessagesNameTheFile: a wrong sample shape, a label out of range
// and an empty set name the .npy file at fault, before any trace.
func TestNPYMessagesNameTheFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, shape []int, ints bool) string {
		path := filepath.Join(dir, name)
		n := 1
		for _, d := range shape {
			n *= d
		}
		var buf bytes.Buffer
		var err error
		if ints {
			v := make([]int64, n)
			for i := range v {
				v[i] = int64(i * 4) // 0, 4, 8, 12: 12 is beyond LeNet's 10 classes
			}
			err = data.WriteNPYInt64(&buf, shape, v)
		} else {
			err = data.WriteNPY(&buf, shape, make([]float64, n))
		}
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, buf.Bytes(), 0o644)
		return path
	}
	good := write("x.npy", []int{4, 1, 28, 28}, false)
	bad := write("x20.npy", []int{4, 1, 20, 20}, false)
	empty := write("x0.npy", []int{0, 1, 28, 28}, false)
	labels := write("y.npy", []int{4}, true)
	noLabels := write("y0.npy", []int{0}, true)
	model := "../../internal/bundled/lenet.onnx"
	cases := []struct {
		x, y, want string
	}{
		{bad, labels, "--inputs " + bad + ": data: samples have shape [1 20 20]"},
		{good, labels, "--labels " + labels + ": data: label out of range: sample 3 has label 12"},
		{empty, noLabels, "--inputs " + empty + " and --labels " + noLabels + ": data: empty dataset"},
	}
	for _, c := range cases {
		_, stderr, code := runCmd(t, "trace", model, "--inputs", c.x, "--labels", c.y, "--min-probes", "2", "--max-probes", "2")
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s %s: exit %d, stderr %q; want %q", c.x, c.y, code, stderr, c.want)
		}
	}
}

// TestBoundedReads: every whole-file input is read with a size bound: a
// table that never ends (/dev/zero) fails at once, an oversized model or
// array (sparse files here) is refused before it is read.
func TestBoundedReads(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err == nil {
		_, stderr, code := runCmd(t, "solve", "/dev/zero", "--max-size", "50%")
		if code != 1 || !strings.Contains(stderr, "/dev/zero: malformed JSON at line 1, column 1") {
			t.Errorf("solve /dev/zero: exit %d, stderr %q", code, stderr)
		}
	}
	dir := t.TempDir()
	sparse := func(name string, size int64) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Skipf("no sparse files here: %v", err)
		}
		f.Close()
		return path
	}
	big := sparse("big.onnx", 2<<30+1)
	if _, stderr, code := runCmd(t, "trace", big, "--data", "mnist"); code != 1 || !strings.Contains(stderr, "big.onnx: 2147483649 bytes, more than the 2 GiB") {
		t.Errorf("big model: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := runCmd(t, "prune", big, "--data", "mnist", "--max-params", "50%"); code != 1 || !strings.Contains(stderr, "more than the 2 GiB") {
		t.Errorf("prune big model: exit %d, stderr %q", code, stderr)
	}
	bigX := sparse("x.npy", 4<<30+1)
	if _, stderr, code := runCmd(t, "trace", "../../internal/bundled/lenet.onnx", "--inputs", bigX, "--labels", bigX); code != 1 || !strings.Contains(stderr, "x.npy: 4294967297 bytes, more than the 4 GiB") {
		t.Errorf("big npy: exit %d, stderr %q", code, stderr)
	}
}
