// Command vitstudy regenerates the transformer pruning studies: attention
// heads and FFN rows removed with HAP importances and ILP keep ratios,
// against the uniform-ratio and L1 magnitude baselines and HAP's global
// threshold, at 30 % and 50 % of the attention and FFN parameters, each
// fine-tuned briefly, and the pruned models' latency in ONNX Runtime when
// the build has it. Two studies share the code:
//
//   - vit (default): docs/pruning-vit.md, the Fashion-MNIST vision
//     transformer (testdata/models/fmnist_vit.onnx,
//     scripts/train_vit_fashion.py: separate q, k and v projections,
//     constant Reshape shapes);
//   - bert: docs/pruning-bert.md, the zoo's BERT-style encoder trained on a
//     bracket task (testdata/models/bert_brackets.onnx and its .npz data,
//     scripts/train_bert_tokens.py: token ids and an attention mask, one
//     fused q/k/v projection split by Slice, shapes computed at run time).
//
// Usage:
//
//	go run -tags ort ./prune/internal/vitstudy             # with $BITPLAN_ORT_LIB set
//	go run -tags ort ./prune/internal/vitstudy -study bert
//	go run ./prune/internal/vitstudy                       # no latency section
//
// Flags given explicitly override the study's defaults (-model, -train,
// -test-data, -o, ...), so another model and data set can be studied.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/ort"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/prune"
)

type config struct {
	study                string
	model, out, ortLib   string
	train, testData      string // NumPy archives; "" is Fashion-MNIST
	fixed                string // prunable groups left intact (regular expression)
	calib, probes, steps int
	tune                 int
	test, runs           int
	lr                   float64
	seed                 uint64
	fracs                []float64
}

// studies are the defaults of each study.
var studies = map[string]config{
	"vit": {model: "testdata/models/fmnist_vit.onnx", out: "docs/pruning-vit.md",
		calib: 512, tune: 5000, probes: 16, steps: 150, test: 2000, runs: 200, lr: 0.0005},
	"bert": {model: "testdata/models/bert_brackets.onnx", out: "docs/pruning-bert.md",
		train: "testdata/models/bert_brackets_train.npz", testData: "testdata/models/bert_brackets_test.npz",
		fixed: "/pool/", calib: 512, tune: 4000, probes: 16, steps: 150, test: 1000, runs: 200, lr: 0.001},
}

type result struct {
	frac    float64
	mode    prune.Mode
	plan    *plan.Plan
	model   []byte
	nodes   int        // ONNX nodes of the written model
	ms      [2]float64 // ONNX Runtime median latency at batch 1 and 32
	base    [2]float64 // the unpruned model's, measured alternately with it
	seconds float64
}

func main() {
	var c config
	flag.StringVar(&c.study, "study", "vit", "the `STUDY`: vit (docs/pruning-vit.md) or bert (docs/pruning-bert.md)")
	flag.StringVar(&c.model, "model", "", "the transformer `FILE` (default: the study's)")
	flag.StringVar(&c.train, "train", "", "training data `FILE.npz` (arrays named after the model's inputs, and labels; default: the study's, Fashion-MNIST for vit)")
	flag.StringVar(&c.testData, "test-data", "", "test data `FILE.npz` (default: the study's)")
	flag.StringVar(&c.fixed, "fixed", "", "prunable groups left intact, a regular `EXPR` on group names (default: the study's, /pool/ for bert)")
	flag.StringVar(&c.out, "o", "", "output `FILE` (- for standard output; default: the study's doc)")
	flag.StringVar(&c.ortLib, "ort-lib", os.Getenv("BITPLAN_ORT_LIB"), "ONNX Runtime shared `LIBRARY` (builds with -tags ort)")
	flag.IntVar(&c.calib, "calib", 0, "calibration `N` (the first training samples, for the traces)")
	flag.IntVar(&c.tune, "tune", 0, "fine-tuning `N` (the first training samples)")
	flag.IntVar(&c.probes, "probes", 0, "Hutchinson probes `N`")
	flag.IntVar(&c.steps, "steps", 0, "fine-tuning SGD steps `N` (batch 32, momentum 0.9)")
	flag.IntVar(&c.test, "test", 0, "test samples `N` for the accuracies")
	flag.IntVar(&c.runs, "runs", 0, "timed ONNX Runtime runs `N` per model and batch size")
	flag.Float64Var(&c.lr, "lr", 0, "fine-tuning learning `RATE`")
	flag.Uint64Var(&c.seed, "seed", 1, "random `SEED` of probes and mini-batches")
	flag.Parse()
	d, ok := studies[c.study]
	if !ok {
		log.Fatalf("flag -study: %q, want vit or bert", c.study)
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	def := func(name string, v *string, d string) {
		if !set[name] {
			*v = d
		}
	}
	def("model", &c.model, d.model)
	def("o", &c.out, d.out)
	def("train", &c.train, d.train)
	def("test-data", &c.testData, d.testData)
	def("fixed", &c.fixed, d.fixed)
	for _, p := range []struct {
		v *int
		d int
	}{{&c.calib, d.calib}, {&c.tune, d.tune}, {&c.probes, d.probes}, {&c.steps, d.steps}, {&c.test, d.test}, {&c.runs, d.runs}} {
		if *p.v == 0 {
			*p.v = p.d
		}
	}
	if c.lr == 0 {
		c.lr = d.lr
	}
	c.fracs = []float64{0.3, 0.5}
	if err := run(context.Background(), c); err != nil {
		log.Fatal(err)
	}
}

// datasets returns the training and test sets: Fashion-MNIST, or NumPy
// archives whose arrays are named after the model's inputs. The closer
// releases the archives.
func datasets(c config, inputs []string) (train, test data.Dataset, closer func(), err error) {
	if c.train == "" {
		if train, err = data.FashionMNIST(data.Train); err != nil {
			return nil, nil, nil, err
		}
		test, err = data.FashionMNIST(data.Test)
		return train, test, func() {}, err
	}
	if c.testData == "" {
		return nil, nil, nil, fmt.Errorf("flag -test-data: needed with -train")
	}
	var open []*data.NPZ
	closer = func() {
		for _, z := range open {
			z.Close()
		}
	}
	var sets [2]data.Dataset
	for i, path := range []string{c.train, c.testData} {
		z, err := data.OpenNPZ(path)
		if err != nil {
			closer()
			return nil, nil, nil, err
		}
		open = append(open, z)
		if sets[i], err = z.Match(inputs); err != nil {
			closer()
			return nil, nil, nil, err
		}
	}
	return sets[0], sets[1], closer, nil
}

func run(ctx context.Context, c config) error {
	start := time.Now()
	raw, err := os.ReadFile(c.model)
	if err != nil {
		return err
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(raw, mp); err != nil {
		return fmt.Errorf("%s: %v", c.model, err)
	}
	mp, m, err := model.NormalizeProto(mp)
	if err != nil {
		return err
	}
	e, err := nn.New(m, nil)
	if err != nil {
		return err
	}
	var names []string
	for _, in := range e.Inputs() {
		names = append(names, in.Name)
	}
	tr, te, closer, err := datasets(c, names)
	if err != nil {
		return err
	}
	defer closer()
	calib, tune, test := data.Head(tr, c.calib), data.Head(tr, c.tune), data.Head(te, c.test)
	ev, err := e.Evaluate(ctx, test)
	if err != nil {
		return err
	}
	st, err := prune.Analyze(m)
	if err != nil {
		return err
	}
	var fixed []string
	if c.fixed != "" {
		re, err := regexp.Compile(c.fixed)
		if err != nil {
			return fmt.Errorf("flag -fixed: %v", err)
		}
		for _, g := range st.Groups {
			if g.Prunable && re.MatchString(g.Name) {
				g.Prunable = false
				g.Reasons = append(g.Reasons, "left intact by the study (-fixed "+c.fixed+")")
				fixed = append(fixed, g.Name)
			}
		}
	}
	t0 := time.Now()
	im, err := prune.Estimate(ctx, e, calib, &prune.Settings{Probes: c.probes, Seed: c.seed})
	if err != nil {
		return err
	}
	traceSecs := time.Since(t0).Seconds()
	// The attention and FFN parameters: every unit whose outputs or inputs
	// are a prunable group (q, k, v or the fused qkv, o, f1, f2).
	var total, prunable int64
	inPrunable := map[string]bool{}
	for _, g := range st.Groups {
		if g.Prunable {
			for _, u := range append(g.Members(), g.Consumers...) {
				inPrunable[u] = true
			}
		}
	}
	for _, u := range m.Units {
		total += u.Params
		if inPrunable[u.Name] {
			prunable += u.Params
		}
	}
	log.Printf("%s: %d params (%d in attention and FFN), test accuracy %.2f%%, traces in %.0f s", c.model, total, prunable, 100*ev.Accuracy(), traceSecs)

	// Control: the unpruned model fine-tuned the same way.
	ctl, err := nn.New(m, nil)
	if err != nil {
		return err
	}
	if _, err := prune.FineTune(ctx, ctl, tune, &prune.FineTuneSettings{Steps: c.steps, LR: c.lr, Seed: c.seed}); err != nil {
		return err
	}
	ctlEv, err := ctl.Evaluate(ctx, test)
	if err != nil {
		return err
	}
	log.Printf("unpruned, fine-tuned: %.2f%%", 100*ctlEv.Accuracy())
	ortOK := c.ortLib != "" && ort.Init(c.ortLib) == nil
	// The unpruned model is timed as imported (constants folded, Identity
	// nodes gone: the graph the pruned models are cut from).
	unpruned, err := proto.Marshal(mp)
	if err != nil {
		return err
	}
	var orig [2]float64
	if ortOK {
		if orig, _, err = latency(unpruned, nil, te, e.Inputs(), c.runs); err != nil {
			return err
		}
	}
	base := strings.TrimSuffix(filepath.Base(c.model), ".onnx")
	var results []result
	for _, f := range c.fracs {
		limit := float64(total) - f*float64(prunable)
		b := plan.Budget{Spec: budget.Spec{Kind: budget.Params, Value: limit, Text: fmt.Sprintf("%.0f", limit)}}
		for _, mode := range []prune.Mode{prune.ILP, prune.Uniform, prune.Magnitude, prune.Threshold} {
			t1 := time.Now()
			p, err := prune.Solve(ctx, &prune.Request{Structure: st, Importance: im, Mode: mode, Model: base,
				Budgets: []plan.Budget{b}, Ratios: []float64{1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25}})
			if err != nil {
				return err
			}
			if p.Keep() == nil {
				return fmt.Errorf("%s at %g: %s", mode, f, p.Status)
			}
			out, _, err := prune.Realize(ctx, mp, st, p, &prune.RealizeOptions{Test: test, Calibration: tune, Original: e,
				FineTune: &prune.FineTuneSettings{Steps: c.steps, LR: c.lr, Seed: c.seed}})
			if err != nil {
				return err
			}
			b, err := proto.Marshal(out)
			if err != nil {
				return err
			}
			r := result{frac: f, mode: mode, plan: p, model: b, nodes: len(out.Graph.Node), seconds: time.Since(t1).Seconds()}
			if ortOK {
				// The unpruned model is timed alternately with each
				// pruned one: on a shared machine the load moves.
				if r.ms, r.base, err = latency(b, unpruned, te, e.Inputs(), c.runs); err != nil {
					return err
				}
			}
			results = append(results, r)
			a := p.Pruning.Accuracy
			log.Printf("%g%% %s: %s, accuracy %.2f%% → %.2f%% (%.0f s)", 100*f, mode, prune.Summary(p), 100*a.Pruned, 100**a.FineTuned, r.seconds)
		}
	}
	var w io.Writer = os.Stdout
	var fh *os.File
	if c.out != "-" {
		// Written next to the doc and renamed on success.
		if fh, err = os.CreateTemp(filepath.Dir(c.out), ".vitstudy-*"); err != nil {
			return err
		}
		defer os.Remove(fh.Name())
		defer fh.Close()
		w = fh
	}
	pf := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	cmd := "go run -tags ort ./prune/internal/vitstudy"
	if c.study != "vit" {
		cmd += " -study " + c.study
	}
	kept := func(g *prune.Group, k int) string { return fmt.Sprintf("%d/%d", k, g.Channels) }
	var heads0, rows0 []string
	for _, g := range st.Groups {
		if !g.Prunable {
			continue
		}
		if strings.Contains(g.Name, "/att/") {
			heads0 = append(heads0, kept(g, g.Channels))
		} else {
			rows0 = append(rows0, kept(g, g.Channels))
		}
	}
	switch c.study {
	case "bert":
		pf("# Head and row pruning of a BERT-style encoder\n\n")
	default:
		pf("# Head and row pruning of a vision transformer\n\n")
	}
	pf("Generated by `%s` (%s, %d CPUs, GOMAXPROCS %d; whole run %.0f s on a machine shared with other jobs). Do not edit by hand.\n\n",
		cmd, runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), time.Since(start).Seconds())
	switch c.study {
	case "bert":
		pf("The model is `%s` (`scripts/train_bert_tokens.py`): the zoo's tiny_bert architecture (`scripts/zoo.py`'s `Bert`, exported by plain `torch.onnx.export` at opset 13 with inputs `input_ids` and `attention_mask`): token, position and type embeddings, width 32, 2 post-norm layers of 4 attention heads of 8 with **one fused q/k/v projection split by three Slice nodes** and head Reshapes whose shapes, like the Slice bounds, are computed at run time (Shape → Gather → Concat), FFN 64 with exact GELU, a [CLS] pooler and 3 classes; %d parameters in its units, %d of them in attention and FFN (qkv, out, f1, f2). ", c.model, total, prunable)
		pf("The task is generated by the script (seeded; `%s`, `%s`): bracket sequences with distractor tokens and random tokens in the masked padding, class 0 balanced, 1 unequal counts of \"(\" and \")\", 2 equal counts closed too early. Test accuracy %.2f %% on the %d test sequences.\n\n", c.train, c.testData, 100*ev.Accuracy(), test.Len())
		pf("`prune.Analyze` finds per layer one head group (channel h = columns 8h..8h+7 of each third of the fused projection and its bias, rows 8h..8h+7 of the output projection; the Slice bounds and the four Reshape shapes become constants for the heads kept, with 0 for the batch and sequence entries, and the shape arithmetic is dropped) and one row group (column j of f1 and its bias, row j of f2); the embeddings, the residual stream and the classifier are left intact, and the pooler's rows (a prunable group of its own, not attention or FFN) are held fixed by the study (%s):\n\n", strings.Join(fixed, ", "))
	default:
		pf("The model is `%s` (`scripts/train_vit_fashion.py`): a pre-norm ViT trained briefly on Fashion-MNIST, 7×7 patches (16 tokens and a class token), width 64, 2 blocks of 4 attention heads of 16 with separate q, k and v projections, FFN 128, %d parameters, %d of them in attention and FFN (q, k, v, o, f1, f2). Test accuracy %.2f %% on the first %d test images.\n\n",
			c.model, total, prunable, 100*ev.Accuracy(), test.Len())
		pf("`prune.Analyze` finds per block one head group (channel h = columns 16h..16h+15 of q, k and v with their biases, rows 16h..16h+15 of o, entry 2 of the Reshape constants) and one row group (column j of f1 and its bias, row j of f2); the residual stream, the patch embedding and the head are left intact:\n\n")
	}
	for _, g := range st.Groups {
		if g.Prunable {
			pf("- %s: %d structures, read by %s\n", g.Name, g.Channels, strings.Join(g.Consumers, ", "))
		}
	}
	pf("\nImportances: HAP's Tr(H)/n·‖W‖² per head and per row from per-column Hessian blocks (a head's block trace is the sum of its columns'), %d Hutchinson probes on %d training samples (%.0f s). ", c.probes, calib.Len(), traceSecs)
	pf("Budgets: the whole model's parameter count minus 30 %% or 50 %% of the attention/FFN parameters (`--max-params COUNT`). Methods: **ilp** (keep ratios per group from {1, 7/8, …, 1/4} by the ILP, HAP ranking), **uniform** (one ratio for every group, HAP ranking), **l1** (one ratio, L1-norm ranking: magnitude pruning), **threshold** (HAP's global threshold). Every pruned model, and the unpruned one as a control (row \"none\"), is fine-tuned for %d SGD steps (batch 32, learning rate %g, momentum 0.9) on the first %d training samples.\n\n", c.steps, c.lr, tune.Len())
	pf("| removed | method | params | ONNX nodes | heads kept | FFN rows kept | Ω removed | accuracy pruned | accuracy tuned |")
	if ortOK {
		pf(" ORT ms batch 1 (unpruned) | ORT ms batch 32 (unpruned) | batch 32 pruned/unpruned |")
	}
	pf("\n|---:|---|---:|---:|---|---|---:|---:|---:|")
	if ortOK {
		pf("---:|---:|---:|")
	}
	pf("\n| 0 | none | %d | %d | %s | %s | 0 | %.2f %% | %.2f %% |", total, len(mp.Graph.Node), strings.Join(heads0, " "), strings.Join(rows0, " "), 100*ev.Accuracy(), 100*ctlEv.Accuracy())
	if ortOK {
		pf(" %.4f | %.3f | 1 |", orig[0], orig[1])
	}
	pf("\n")
	for _, r := range results {
		p := r.plan
		var heads, rows []string
		for _, g := range p.Pruning.Groups {
			if !g.Prunable {
				continue
			}
			s := fmt.Sprintf("%d/%d", g.Kept, g.Channels)
			if strings.Contains(g.Name, "/att/") {
				heads = append(heads, s)
			} else {
				rows = append(rows, s)
			}
		}
		a := p.Pruning.Accuracy
		pf("| %g %% | %s | %.0f | %d | %s | %s | %.3g | %.2f %% | %.2f %% |", 100*r.frac, r.mode, *p.Usage["params"].Used, r.nodes,
			strings.Join(heads, " "), strings.Join(rows, " "), *p.Objective, 100*a.Pruned, 100**a.FineTuned)
		if ortOK {
			pf(" %.4f (%.4f) | %.3f (%.3f) | %.2f |", r.ms[0], r.base[0], r.ms[1], r.base[1], r.ms[1]/r.base[1])
		}
		pf("\n")
	}
	if ortOK {
		pf("\nONNX Runtime %s (CPU, one thread, all graph optimizations) on the first test samples, on a machine shared with other jobs: each pruned model and the unpruned one (in parentheses) are timed alternately in %d rounds of %d runs after 10 warm-up runs, and the figure is the least of the rounds' medians, so that a burst of load on the shared cores hits both; the ratio compares the two. The unpruned model is timed as imported (constants folded, Identity nodes removed: the graph the pruned ones are cut from); its first timing: %.4f ms at batch 1, %.3f ms at batch 32. At batch 1 the model is too small for the MatMuls to dominate (most of a call is per-operator overhead), and where a layer loses heads its run-time shape arithmetic (Shape, Gather, Unsqueeze, Concat and the Slice-bound arithmetic) is replaced by constants: the ONNX nodes column counts what is left.\n",
			ort.Version(), rounds, max(c.runs/rounds, 1), orig[0], orig[1])
	} else {
		pf("\nNo ONNX Runtime latency: run with `-tags ort` and `$BITPLAN_ORT_LIB` (README, ONNX Runtime).\n")
	}
	se := func(p float64) float64 { return 100 * math.Sqrt(p*(1-p)/float64(test.Len())) }
	pf("\nAccuracies are on %d test samples: one has a standard error of √(p(1−p)/%d), %.1f points at 95 %%, %.1f at 80 %%, %.1f at 60 %%; a difference of two accuracies on the same samples is usually more precise than that.\n", test.Len(), test.Len(), se(0.95), se(0.8), se(0.6))
	pf("\nParameter counts are the written ONNX models' (checked by `prune.Realize` against the plan). FLOPs of the attention's activation products (Q·Kᵀ, P·V) shrink with the heads too but are not counted in the plan's FLOPs, which count the units.\n")
	switch c.study {
	case "bert":
		pf("\n## Reproduce\n\n```\n/usr/bin/python3 scripts/train_bert_tokens.py\n%s -calib %d -tune %d -probes %d -steps %d -test %d -lr %g -seed %d\n```\n\nor one plan at a time (fine-tuning there uses the --samples calibration sequences, and the pooler's rows are pruned too):\n\n```\nbitplan prune %s --data npz:%s --samples %d --probes %d --max-params %.0f --finetune-steps %d --lr %g -o bert-30.onnx\n```\n",
			cmd, c.calib, c.tune, c.probes, c.steps, c.test, c.lr, c.seed, c.model, c.train, c.calib, c.probes, float64(total)-0.3*float64(prunable), c.steps, c.lr)
	default:
		pf("\n## Reproduce\n\n```\n/usr/bin/python3 scripts/train_vit_fashion.py\n%s -calib %d -tune %d -probes %d -steps %d -test %d -lr %g -seed %d\n```\n\nor one plan at a time (fine-tuning there uses the --samples calibration images):\n\n```\nbitplan prune %s --data fashion-mnist --samples %d --probes %d --max-params %.0f --finetune-steps %d --lr %g -o vit-30.onnx\n```\n",
			cmd, c.calib, c.tune, c.probes, c.steps, c.test, c.lr, c.seed, c.model, c.calib, c.probes, float64(total)-0.3*float64(prunable), c.steps, c.lr)
	}
	if fh != nil {
		if err := fh.Close(); err != nil {
			return err
		}
		if err := os.Rename(fh.Name(), c.out); err != nil {
			return err
		}
	}
	log.Printf("wrote %s in %.0f s", c.out, time.Since(start).Seconds())
	return nil
}

// rounds is the number of alternating timing rounds of a pruned model and
// the unpruned one.
const rounds = 3

// latency times model (and, when other is not nil, other alternately with
// it) in ONNX Runtime on the first 1 and 32 samples of ds at batch 1 and
// 32: the least over rounds of the median ms.
func latency(model, other []byte, ds data.Dataset, inputs []nn.Input, runs int) (ms, otherMs [2]float64, err error) {
	per := max(runs/rounds, 1)
	for i, n := range []int{1, 32} {
		feeds, err := feedsOf(ds, inputs, n)
		if err != nil {
			return ms, otherMs, err
		}
		ms[i], otherMs[i] = -1, -1
		for r := 0; r < rounds; r++ {
			for j, b := range [][]byte{model, other} {
				if b == nil {
					continue
				}
				l, err := ort.TimeInputs(b, &ort.Options{Threads: 1}, feeds, 10, per)
				if err != nil {
					return ms, otherMs, err
				}
				v := float64(l.Median.Microseconds()) / 1e3
				dst := &ms[i]
				if j == 1 {
					dst = &otherMs[i]
				}
				if *dst < 0 || v < *dst {
					*dst = v
				}
			}
		}
	}
	return ms, otherMs, nil
}

// feedsOf returns the first n samples of ds as ONNX Runtime feeds, one per
// model input (int64 for integer inputs, float32 otherwise).
func feedsOf(ds data.Dataset, inputs []nn.Input, n int) ([]ort.Feed, error) {
	if ds.Len() < n {
		return nil, fmt.Errorf("%d test samples, timing needs %d", ds.Len(), n)
	}
	bufs := make([][]float64, len(inputs))
	for i, in := range inputs {
		size := 1
		for _, d := range in.Sample {
			size *= d
		}
		bufs[i] = make([]float64, n*size)
	}
	labels := make([]int, n)
	if err := data.ReadAll(ds, 0, bufs, labels); err != nil {
		return nil, err
	}
	feeds := make([]ort.Feed, len(inputs))
	for i, in := range inputs {
		feeds[i] = ort.NewFeed(in.Name, in.Integer, bufs[i], n, in.Sample)
	}
	return feeds, nil
}
