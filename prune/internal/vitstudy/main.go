// Command vitstudy regenerates docs/pruning-vit.md: attention-head and
// FFN-row pruning of the Fashion-MNIST vision transformer
// (testdata/models/fmnist_vit.onnx, scripts/train_vit_fashion.py) with HAP
// importances and ILP keep ratios, against the uniform-ratio and L1
// magnitude baselines and HAP's global threshold, at 30 % and 50 % of the
// attention and FFN parameters removed, each fine-tuned briefly, and the
// pruned models' latency in ONNX Runtime when the build has it:
//
//	go run -tags ort ./prune/internal/vitstudy   # with $BITPLAN_ORT_LIB set
//	go run ./prune/internal/vitstudy             # no latency section
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
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
	model, out, ortLib   string
	calib, probes, steps int
	tune                 int
	test, runs           int
	lr                   float64
	seed                 uint64
	fracs                []float64
}

type result struct {
	frac    float64
	mode    prune.Mode
	plan    *plan.Plan
	model   []byte
	ms      [2]float64 // ONNX Runtime median latency at batch 1 and 32
	base    [2]float64 // the unpruned model's, measured right before
	seconds float64
}

func main() {
	var c config
	flag.StringVar(&c.model, "model", "testdata/models/fmnist_vit.onnx", "the ViT `FILE`")
	flag.StringVar(&c.out, "o", "docs/pruning-vit.md", "output `FILE` (- for standard output)")
	flag.StringVar(&c.ortLib, "ort-lib", os.Getenv("BITPLAN_ORT_LIB"), "ONNX Runtime shared `LIBRARY` (builds with -tags ort)")
	flag.IntVar(&c.calib, "calib", 512, "calibration `N` (the first Fashion-MNIST training images, for the traces)")
	flag.IntVar(&c.tune, "tune", 5000, "fine-tuning `N` (the first Fashion-MNIST training images)")
	flag.IntVar(&c.probes, "probes", 16, "Hutchinson probes `N`")
	flag.IntVar(&c.steps, "steps", 150, "fine-tuning SGD steps `N` (batch 32, momentum 0.9)")
	flag.IntVar(&c.test, "test", 2000, "Fashion-MNIST test images `N` for the accuracies")
	flag.IntVar(&c.runs, "runs", 200, "timed ONNX Runtime runs `N` per model and batch size")
	flag.Float64Var(&c.lr, "lr", 0.0005, "fine-tuning learning `RATE`")
	flag.Uint64Var(&c.seed, "seed", 1, "random `SEED` of probes and mini-batches")
	flag.Parse()
	c.fracs = []float64{0.3, 0.5}
	if err := run(context.Background(), c); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, c config) error {
	start := time.Now()
	tr, err := data.FashionMNIST(data.Train)
	if err != nil {
		return err
	}
	te, err := data.FashionMNIST(data.Test)
	if err != nil {
		return err
	}
	calib, tune, test := data.Head(tr, c.calib), data.Head(tr, c.tune), data.Head(te, c.test)
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
	ev, err := e.Evaluate(ctx, test)
	if err != nil {
		return err
	}
	st, err := prune.Analyze(m)
	if err != nil {
		return err
	}
	t0 := time.Now()
	im, err := prune.Estimate(ctx, e, calib, &prune.Settings{Probes: c.probes, Seed: c.seed})
	if err != nil {
		return err
	}
	traceSecs := time.Since(t0).Seconds()
	// The attention and FFN parameters: every unit whose outputs or inputs
	// are a prunable group (q, k, v, o, f1, f2).
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
	var orig [2]float64
	if ortOK {
		if orig, err = latency(raw, c.runs); err != nil {
			return err
		}
	}
	var results []result
	for _, f := range c.fracs {
		limit := float64(total) - f*float64(prunable)
		b := plan.Budget{Spec: budget.Spec{Kind: budget.Params, Value: limit, Text: fmt.Sprintf("%.0f", limit)}}
		for _, mode := range []prune.Mode{prune.ILP, prune.Uniform, prune.Magnitude, prune.Threshold} {
			t1 := time.Now()
			p, err := prune.Solve(ctx, &prune.Request{Structure: st, Importance: im, Mode: mode, Model: "fmnist_vit",
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
			r := result{frac: f, mode: mode, plan: p, model: b, seconds: time.Since(t1).Seconds()}
			if ortOK {
				// The unpruned model is timed right before each pruned
				// one: on a shared machine the load moves between them.
				if r.base, err = latency(raw, c.runs); err != nil {
					return err
				}
				if r.ms, err = latency(b, c.runs); err != nil {
					return err
				}
			}
			results = append(results, r)
			a := p.Pruning.Accuracy
			log.Printf("%g%% %s: %s, accuracy %.2f%% → %.2f%% (%.0f s)", 100*f, mode, prune.Summary(p), 100*a.Pruned, 100**a.FineTuned, r.seconds)
		}
	}
	var w io.Writer = os.Stdout
	if c.out != "-" {
		fh, err := os.Create(c.out)
		if err != nil {
			return err
		}
		defer fh.Close()
		w = fh
	}
	pf := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	pf("# Head and row pruning of a vision transformer\n\n")
	pf("Generated by `go run -tags ort ./prune/internal/vitstudy` (%s, %d CPUs, GOMAXPROCS %d; whole run %.0f s on a machine shared with other jobs). Do not edit by hand.\n\n",
		runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), time.Since(start).Seconds())
	pf("The model is `testdata/models/fmnist_vit.onnx` (`scripts/train_vit_fashion.py`): a pre-norm ViT trained briefly on Fashion-MNIST, 7×7 patches (16 tokens and a class token), width 64, 2 blocks of 4 attention heads of 16 with separate q, k and v projections, FFN 128, %d parameters, %d of them in attention and FFN (q, k, v, o, f1, f2). Test accuracy %.2f %% on the first %d test images.\n\n",
		total, prunable, 100*ev.Accuracy(), c.test)
	pf("`prune.Analyze` finds per block one head group (channel h = columns 16h..16h+15 of q, k and v with their biases, rows 16h..16h+15 of o, entry 2 of the Reshape constants) and one row group (column j of f1 and its bias, row j of f2); the residual stream, the patch embedding and the head are left intact:\n\n")
	for _, g := range st.Groups {
		if g.Prunable {
			pf("- %s: %d structures, read by %s\n", g.Name, g.Channels, strings.Join(g.Consumers, ", "))
		}
	}
	pf("\nImportances: HAP's Tr(H)/n·‖W‖² per head and per row from per-column Hessian blocks (a head's block trace is the sum of its columns'), %d Hutchinson probes on %d training images (%.0f s). ", c.probes, c.calib, traceSecs)
	pf("Budgets: the whole model's parameter count minus 30 %% or 50 %% of the attention/FFN parameters (`--max-params COUNT`). Methods: **ilp** (keep ratios per group from {1, 7/8, …, 1/4} by the ILP, HAP ranking), **uniform** (one ratio for every group, HAP ranking), **l1** (one ratio, L1-norm ranking: magnitude pruning), **threshold** (HAP's global threshold). Every pruned model, and the unpruned one as a control (row \"none\"), is fine-tuned for %d SGD steps (batch 32, learning rate %g, momentum 0.9) on the first %d training images.\n\n", c.steps, c.lr, c.tune)
	pf("| removed | method | params | heads kept | FFN rows kept | Ω removed | accuracy pruned | accuracy tuned |")
	if ortOK {
		pf(" ORT ms batch 1 (unpruned) | ORT ms batch 32 (unpruned) | batch 32 pruned/unpruned |")
	}
	pf("\n|---:|---|---:|---|---|---:|---:|---:|")
	if ortOK {
		pf("---:|---:|---:|")
	}
	pf("\n| 0 | none | %d | 4/4 4/4 | 128/128 128/128 | 0 | %.2f %% | %.2f %% |", total, 100*ev.Accuracy(), 100*ctlEv.Accuracy())
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
		pf("| %g %% | %s | %.0f | %s | %s | %.3g | %.2f %% | %.2f %% |", 100*r.frac, r.mode, *p.Usage["params"].Used,
			strings.Join(heads, " "), strings.Join(rows, " "), *p.Objective, 100*a.Pruned, 100**a.FineTuned)
		if ortOK {
			pf(" %.4f (%.4f) | %.3f (%.3f) | %.2f |", r.ms[0], r.base[0], r.ms[1], r.base[1], r.ms[1]/r.base[1])
		}
		pf("\n")
	}
	if ortOK {
		pf("\nONNX Runtime %s (CPU, one thread, all graph optimizations), median of %d runs after 10 warm-up runs, on a machine shared with other jobs (load average above 20 on 2 cores: the figures carry that noise, so the unpruned model is timed again right before every pruned one, in parentheses, and the ratio compares the two). The first timing of the unpruned model: %.4f ms at batch 1, %.3f ms at batch 32. At batch 1 the model is too small for the MatMuls to dominate (about 50 µs per call, most of it per-operator overhead).\n",
			ort.Version(), c.runs, orig[0], orig[1])
	} else {
		pf("\nNo ONNX Runtime latency: run with `-tags ort` and `$BITPLAN_ORT_LIB` (README, ONNX Runtime).\n")
	}
	pf("\nParameter counts are the written ONNX models' (checked by `prune.Realize` against the plan). FLOPs of the attention's activation products (Q·Kᵀ, P·V) shrink with the heads too but are not counted in the plan's FLOPs, which count the units.\n")
	pf("\n## Reproduce\n\n```\n/usr/bin/python3 scripts/train_vit_fashion.py\ngo run -tags ort ./prune/internal/vitstudy -calib %d -tune %d -probes %d -steps %d -test %d -lr %g -seed %d\n```\n\nor one plan at a time (fine-tuning there uses the --samples calibration images):\n\n```\nbitplan prune testdata/models/fmnist_vit.onnx --data fashion-mnist --samples %d --probes %d --max-params %.0f --finetune-steps %d --lr %g -o vit-30.onnx\n```\n",
		c.calib, c.tune, c.probes, c.steps, c.test, c.lr, c.seed, c.calib, c.probes, float64(total)-0.3*float64(prunable), c.steps, c.lr)
	log.Printf("wrote %s in %.0f s", c.out, time.Since(start).Seconds())
	return nil
}

// latency times a model in ONNX Runtime at batch 1 and 32 (median ms).
func latency(model []byte, runs int) ([2]float64, error) {
	var out [2]float64
	s, err := ort.Open(model, &ort.Options{Threads: 1})
	if err != nil {
		return out, err
	}
	defer s.Close()
	for i, n := range []int{1, 32} {
		x := make([]float32, n*784)
		for j := range x {
			x[j] = float32(j%255) / 255
		}
		l, err := s.Time(x, n, 10, runs)
		if errors.Is(err, ort.ErrNotBuilt) {
			return out, err
		}
		if err != nil {
			return out, err
		}
		out[i] = float64(l.Median.Microseconds()) / 1e3
	}
	return out, nil
}
