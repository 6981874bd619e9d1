package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/plan"
)

// TestPruneGolden is the pruning report: the same certificate line,
// budgets table and range column as a quantization plan's.
func TestPruneGolden(t *testing.T) {
	out, errs, code := runCmd(t, "prune", lenet, "--data", "mnist", "--samples", "64", "--probes", "4", "--max-params", "50%", "--test-samples", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "prune_lenet.stdout", out)
}

// TestPruneJSONIsAPlan: a pruning plan's JSON is read by plan.Parse (one
// plan format) and its budget resolves as documented.
func TestPruneJSONIsAPlan(t *testing.T) {
	for _, c := range []struct {
		flag, value string
		want        func(u *plan.Usage) float64
	}{
		{"--max-params", "50%", func(u *plan.Usage) float64 { return 0.5 * u.Max }},
		{"--max-params", "50%max", func(u *plan.Usage) float64 { return 0.5 * u.Max }},
		{"--max-params", "50%range", func(u *plan.Usage) float64 { return u.Min + 0.5*(u.Max-u.Min) }},
		{"--max-size", "40%max", func(u *plan.Usage) float64 { return 0.4 * u.Max }},
		{"--max-flops", "60%range", func(u *plan.Usage) float64 { return u.Min + 0.6*(u.Max-u.Min) }},
	} {
		out, errs, code := runCmd(t, "prune", lenet, "--data", "mnist", "--samples", "32", "--probes", "2", c.flag, c.value,
			"--test-samples", "0", "--format", "json")
		if code != 0 {
			t.Fatalf("%s %s: exit %d: %s", c.flag, c.value, code, errs)
		}
		p, warn, err := plan.Parse([]byte(out))
		if err != nil || len(warn) > 0 {
			t.Fatalf("%s %s: plan.Parse: %v %v", c.flag, c.value, err, warn)
		}
		if p.Pruning == nil || p.Pruning.Mode != "ilp" || len(p.Keep()) != len(p.Pruning.Groups) {
			t.Fatalf("%s %s: pruning part %+v", c.flag, c.value, p.Pruning)
		}
		u := p.Usage[strings.TrimPrefix(c.flag, "--max-")]
		if u == nil || u.Limit == nil || u.Used == nil {
			t.Fatalf("%s %s: usage %+v", c.flag, c.value, u)
		}
		if want := c.want(u); *u.Limit != want || *u.Used > want {
			t.Errorf("%s %s: limit %v used %v, want limit %v (range %v..%v)", c.flag, c.value, *u.Limit, *u.Used, want, u.Min, u.Max)
		}
	}
}

// TestBudgetSpellings: a bare P% has one meaning per resource; the
// spelling whose meaning changed in prune fails naming the new ones, and
// the explicit spellings work in every command.
func TestBudgetSpellings(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"prune", lenet, "--data", "mnist", "--max-size", "50%"}, 2, "write 50%max for the first or 50%range"},
		{[]string{"prune", lenet, "--data", "mnist", "--max-latency", "30%", "--profile", "t4"}, 2, "write 30%max"},
		{[]string{"prune", lenet, "--data", "mnist", "--max-params", "50%of"}, 2, `"of" after %`},
		{[]string{"solve", hawq, "--max-size", "50%range"}, 0, ""},
		{[]string{"solve", hawq, "--max-size", "50%maximum"}, 2, "want nothing"},
	} {
		_, errs, code := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("bitplan %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(c.args, " "), code, errs, c.code, c.want)
		}
	}
	// In plan and solve a bare P% is HAWQ's range and P%range the same;
	// P%max is a fraction of the all-highest cost.
	limit := func(v string) (lim, lo, hi float64) {
		out, errs, code := runCmd(t, "solve", hawq, "--max-size", v, "--format", "json")
		if code != 0 {
			t.Fatalf("solve --max-size %s: %s", v, errs)
		}
		var p struct {
			Usage map[string]struct{ Limit, Min, Max float64 }
		}
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatal(err)
		}
		u := p.Usage["size"]
		return u.Limit, u.Min, u.Max
	}
	a, lo, hi := limit("50%")
	b, _, _ := limit("50%range")
	m, _, _ := limit("50%max")
	if a != b || a != lo+0.5*(hi-lo) || m != 0.5*hi {
		t.Errorf("50%% → %v, 50%%range → %v, 50%%max → %v on range %v..%v", a, b, m, lo, hi)
	}
}

// TestPruneViT: bitplan prune removes attention heads and FFN rows of the
// Fashion-MNIST ViT and writes a model that imports with the smaller
// MatMuls and Reshape constants.
func TestPruneViT(t *testing.T) {
	const vit = "../../testdata/models/fmnist_vit.onnx"
	out := filepath.Join(t.TempDir(), "vit.onnx")
	for _, mode := range []string{"ilp", "uniform", "l1"} {
		js, errs, code := runCmd(t, "prune", vit, "--data", "npz:../../testdata/models/fmnist_vit_ref.npz", "--probes", "4",
			"--max-params", "45K", "--mode", mode, "--format", "json", "-o", out)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", mode, code, errs)
		}
		p, _, err := plan.Parse([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		kept := map[int]int{} // structures per group → kept
		for _, g := range p.Pruning.Groups {
			if g.Prunable {
				kept[g.Channels] += g.Kept
			}
		}
		if kept[4] == 8 && kept[128] == 256 {
			t.Errorf("%s: nothing pruned: %+v", mode, p.Pruning.Groups)
		}
		m, err := model.Load(out)
		if err != nil {
			t.Fatalf("%s: pruned model: %v", mode, err)
		}
		params := unitParams(m)
		if float64(params) != *p.Usage["params"].Used || params > 45000 {
			t.Errorf("%s: written model has %d params, plan %v", mode, params, *p.Usage["params"].Used)
		}
	}
}

// TestQuantizeRefusesSplitGroup: a plan that gives q and k of one
// attention layer (automatic group: they read one activation) two widths
// is refused before any work, naming the group; --group none lets it pass
// the check.
func TestQuantizeRefusesSplitGroup(t *testing.T) {
	const vit = "../../testdata/models/fmnist_vit.onnx"
	dir := t.TempDir()
	pl := filepath.Join(dir, "split.json")
	if err := os.WriteFile(pl, []byte(`{"status": "optimal", "layers": [
		{"name": "/blocks/blocks.0/att/q/MatMul", "bits": 4, "abits": 4, "choice": "4"},
		{"name": "/blocks/blocks.0/att/k/MatMul", "bits": 8, "abits": 8, "choice": "8"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"quantize", vit, "--plan", pl, "--data", "npz:../../testdata/models/fmnist_vit_ref.npz", "-o", filepath.Join(dir, "q.onnx")}
	_, errs, code := runCmd(t, args...)
	if code != 1 || !strings.Contains(errs, "must share one precision") || !strings.Contains(errs, "/blocks/blocks.0/att/k/MatMul w8a8") {
		t.Errorf("split group: exit %d, stderr %q", code, errs)
	}
	_, errs, _ = runCmd(t, append(args, "--group", "none")...)
	if strings.Contains(errs, "must share one precision") {
		t.Errorf("--group none still checks the automatic groups: %q", errs)
	}
}

// TestBadFlagKeepsStdoutClean: a bad flag value is reported on stderr
// only; the usage goes to stdout when -h asks for it.
func TestBadFlagKeepsStdoutClean(t *testing.T) {
	out, errs, code := runCmd(t, "solve", hawq, "--max-size", "5XB")
	if code != 2 || out != "" || !strings.Contains(errs, "unknown unit") {
		t.Errorf("bad flag: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	out, _, code = runCmd(t, "solve", "-h")
	if code != 0 || !strings.HasPrefix(out, "Usage: bitplan solve") {
		t.Errorf("-h: exit %d, stdout %q", code, out)
	}
}

// TestPruneVariadicTiny: bitplan prune removes channels of the torch.onnx
// export whose joins read spatial ReduceMeans (the channels pass through
// them) and writes a model whose unit parameters are the plan's.
func TestPruneVariadicTiny(t *testing.T) {
	const tiny = "../../testdata/models/variadic_tiny_op13.onnx"
	out := filepath.Join(t.TempDir(), "tiny.onnx")
	js, errs, code := runCmd(t, "prune", tiny, "--data", "npz:../../testdata/models/variadic_tiny_ref.npz", "--probes", "2",
		"--max-params", "70%", "--format", "json", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	p, _, err := plan.Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	cut := false
	for _, g := range p.Pruning.Groups {
		cut = cut || (g.Prunable && g.Kept < g.Channels)
	}
	if !cut {
		t.Errorf("nothing pruned: %+v", p.Pruning.Groups)
	}
	m, err := model.Load(out)
	if err != nil {
		t.Fatalf("pruned model: %v", err)
	}
	params := unitParams(m)
	if float64(params) != *p.Usage["params"].Used {
		t.Errorf("written model has %d params, plan %v", params, *p.Usage["params"].Used)
	}
}

// unitParams sums the parameters of m's units.
func unitParams(m *model.Model) int64 {
	var params int64
	for _, u := range m.Units {
		params += u.Params
	}
	return params
}
