// Command study regenerates docs/validation.md: which sensitivity criterion
// gives the ILP plans that keep the most accuracy? Every criterion of
// sensitivity.Criterion (HAWQ-V3's Hessian trace, the diagonal Hessian from
// the same probes, ModelOpt's output-space Fisher score, first-order
// Taylor, ‖ΔW‖² alone, the measured one-layer loss increase, and the
// exact second-order term along each candidate's own error) feeds the same
// ILP, at model-size and BOPS budgets; the widest uniform precision that
// fits, random maximal mixed plans and a greedy trace-ordered plan
// (HAWQ-V2 / NNCF style) are the baselines. Models are trained on
// Fashion-MNIST by scripts (a residual CNN, a MobileNetV2-style CNN, a
// small ViT and an LSTM; see testdata/models/README.md); accuracy is
// measured after post-training fake quantization (package eval) on a fixed
// subset of the test split, with three calibration seeds, and again after
// a short quantization-aware fine-tuning (prune.FineTune with the
// straight-through estimator on the weights and, through
// nn.Engine.SetQuantizedGradient, on the activations) of every
// criterion's and the uniform plans of every seed; every
// method is compared with the Hessian ILP (and with uniform) by paired
// bootstrap intervals over the test images.
//
// Run from the repository root (minutes on the shared 2-core machine;
// -quick takes seconds and is not a valid document):
//
//	nice -n 10 go run ./eval/internal/study [-o docs/validation.md] [-quick] [-models M1,M2] [-cpuprofile FILE]
//
// TestDocumentCurrent checks that the committed document was made from
// the committed inputs (their SHA-256 hashes are listed in it).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/prune"
	"github.com/bitplan/bitplan/sensitivity"
)

// config is the study's setup; every field is printed in the document.
type config struct {
	quick      bool
	models     []string
	testN      int
	calibN     int
	seeds      int
	maxProbes  int
	actProbes  int // probe limit of the activation term
	probeBatch int
	tol        float64
	randomN    int
	boot       int
	levels     []float64
	candidates []sensitivity.Precision
	batch      int
	// Fine-tuning: the plans of ftMethods at every budget, in the first
	// ftSeeds seeds, get ftSteps SGD steps (mini-batches of ftBatch, rate
	// ftLR) on ftN training images; ftLR is chosen per model among ftLRs
	// by the loss on the calibration images after fine-tuning the uniform
	// W4A4 plan (training images only).
	ftMethods             []string
	ftSeeds, ftSteps, ftN int
	ftBatch               int
	ftLRs                 []float64
}

// defaultModels are the study's models (testdata/models).
const defaultModels = "fmnist_rescnn,fmnist_mbv2,fmnist_vit,fmnist_lstm"

// defaultConfig is the full study's setup.
func defaultConfig() config {
	return config{models: strings.Split(defaultModels, ","), testN: 400, calibN: 128, seeds: 3, maxProbes: 60, actProbes: 30, probeBatch: 32,
		tol: 0.05, randomN: 1, boot: 1000, levels: []float64{10, 20, 30, 50},
		candidates: []sensitivity.Precision{{W: 2, A: 8}, {W: 3, A: 8}, {W: 4, A: 8}, {W: 8, A: 8}, {W: 4, A: 4}}, batch: 32,
		ftMethods: append(criteriaNames(), "uniform"), ftSeeds: 3, ftSteps: 100, ftN: 2048, ftBatch: 16, ftLRs: []float64{0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002}}
}

// quickConfig is the smoke test's setup: seconds, not a valid document.
func quickConfig(models []string) config {
	c := defaultConfig()
	c.quick, c.models, c.testN, c.calibN, c.seeds, c.boot, c.levels, c.maxProbes, c.actProbes, c.probeBatch = true, models, 100, 32, 1, 100, []float64{20, 50}, 4, 4, 16
	c.ftMethods, c.ftSteps, c.ftN, c.ftLRs = []string{"hessian", "uniform"}, 4, 64, []float64{0.0005, 0.002}
	return c
}

// criteria are the ILP methods, the reference (hessian) first.
var criteria = sensitivity.Criteria

// criteriaNames returns the criteria's names.
func criteriaNames() []string {
	var out []string
	for _, c := range criteria {
		out = append(out, string(c))
	}
	return out
}

// baselines are the methods that are not an ILP over a criterion.
var baselines = []string{"uniform", "greedy", "random"}

// inputs are the committed files the document depends on besides the
// models (whose hashes are listed too).
var inputs = []string{"eval/internal/study/main.go", "eval/internal/study/report.go", "scripts/train_study.py", "scripts/train_models.py", "scripts/train_vit_fashion.py"}

func main() {
	out := flag.String("o", "docs/validation.md", "write the document to `FILE` (- for standard output)")
	quick := flag.Bool("quick", false, "smoke test: one seed, two budget levels, 100 test images, 32 calibration images, 4 probes, 4 fine-tuning steps (seconds; not a valid document)")
	models := flag.String("models", defaultModels, "comma-separated `MODELS` of testdata/models")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to `FILE` (go tool pprof)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "study:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	cfg := defaultConfig()
	if *quick {
		cfg = quickConfig(nil)
	}
	cfg.models = strings.Split(*models, ",")
	if err := run(context.Background(), cfg, *out); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "study:", err)
		os.Exit(1)
	}
}

// budgetCase is one budget: a resource and a percentage of its range.
type budgetCase struct {
	resource string // "size" or "bops"
	pct      float64
}

func (b budgetCase) String() string { return fmt.Sprintf("%s %g %%", b.resource, b.pct) }

// outcome is one plan evaluated on the test images.
type outcome struct {
	choice  []int // candidate index per layer
	correct []bool
	loss    []float64 // per-image cross-entropy
}

func (o *outcome) accuracy() float64 {
	n := 0
	for _, c := range o.correct {
		if c {
			n++
		}
	}
	return float64(n) / float64(len(o.correct))
}

func (o *outcome) meanLoss() float64 {
	var s float64
	for _, v := range o.loss {
		s += v
	}
	return s / float64(len(o.loss))
}

// seedResult is one calibration seed of one model.
type seedResult struct {
	seed   int
	tables map[sensitivity.Criterion]*sensitivity.Table
	// plans maps budget index and method name to the evaluated plan (the
	// random baseline: the first of the random plans; randoms holds all).
	plans   []map[string]*outcome
	randoms [][]*outcome
	all     map[string]*outcome // every distinct plan evaluated, by choice
	// tuned maps budget index and method name to the plan evaluated after
	// fine-tuning (nil for a seed that is not fine-tuned); tunedAll holds
	// every distinct fine-tuned plan, by choice.
	tuned    []map[string]*outcome
	tunedAll map[string]*outcome
	// ftLR is the fine-tuning rate chosen, lrLoss the calibration loss
	// after fine-tuning at each of cfg.ftLRs (see chooseLR).
	ftLR      float64
	lrLoss    []float64
	limits    []float64
	times     map[string]time.Duration
	probes    int
	actProbes int // probes of the activation term
}

// modelResult is one model's study.
type modelResult struct {
	name    string
	layers  []sensitivity.Layer // of seed 1's Hessian table
	keys    [][]string
	precs   [][]sensitivity.Precision
	float   *outcome
	params  int
	budgets []budgetCase
	seeds   []*seedResult
	wall    time.Duration
}

func run(ctx context.Context, cfg config, out string) error {
	start := time.Now()
	train, err := data.FashionMNIST(data.Train)
	if err != nil {
		return err
	}
	testAll, err := data.FashionMNIST(data.Test)
	if err != nil {
		return err
	}
	test, err := memory(data.Head(testAll, cfg.testN))
	if err != nil {
		return err
	}
	// The models run concurrently (each on its own engine): on a machine
	// shared with other jobs this keeps the wall time near that of the
	// slowest model.
	results := make([]*modelResult, len(cfg.models))
	errs := make([]error, len(cfg.models))
	var wg sync.WaitGroup
	for i, name := range cfg.models {
		wg.Go(func() { results[i], errs[i] = study(ctx, cfg, name, train, test) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.models[i], err)
		}
	}
	hashes, err := hashInputs(cfg.models)
	if err != nil {
		return err
	}
	var w io.Writer = os.Stdout
	var f *os.File
	if out != "-" {
		if f, err = os.CreateTemp(filepath.Dir(out), ".validation-*.md"); err != nil {
			return err
		}
		defer os.Remove(f.Name())
		w = f
	}
	if err := write(w, cfg, results, hashes, time.Since(start)); err != nil {
		return err
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return err
		}
		return os.Rename(f.Name(), out)
	}
	return nil
}

// memory reads a dataset into memory.
func memory(ds data.Dataset) (*data.Memory, error) {
	n := ds.Len()
	x := make([]float64, n*data.SampleSize(ds))
	y := make([]int, n)
	if err := ds.Read(0, x, y); err != nil {
		return nil, err
	}
	return data.NewMemory(x, y, ds.SampleShape())
}

// hashInputs returns the SHA-256 of every committed input, by path.
func hashInputs(models []string) ([][2]string, error) {
	var paths []string
	for _, m := range models {
		paths = append(paths, filepath.ToSlash(filepath.Join("testdata", "models", m+".onnx")))
	}
	paths = append(paths, inputs...)
	var out [][2]string
	for _, p := range paths {
		b, err := os.ReadFile(filepath.FromSlash(p))
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(b)
		out = append(out, [2]string{p, hex.EncodeToString(h[:])})
	}
	return out, nil
}

func progress(format string, a ...any) { fmt.Fprintf(os.Stderr, "study: "+format+"\n", a...) }

func study(ctx context.Context, cfg config, name string, train data.Dataset, test *data.Memory) (*modelResult, error) {
	t0 := time.Now()
	m, err := model.Load(filepath.Join("testdata", "models", name+".onnx"))
	if err != nil {
		return nil, err
	}
	e, err := nn.New(m, &nn.Options{BatchSize: cfg.batch})
	if err != nil {
		return nil, err
	}
	res := &modelResult{name: name}
	for _, kind := range []string{"size", "bops"} {
		for _, p := range cfg.levels {
			res.budgets = append(res.budgets, budgetCase{kind, p})
		}
	}
	if res.float, err = evaluate(ctx, e, nil, nil, nil, test); err != nil {
		return nil, err
	}
	progress("%s: float accuracy %.4f on %d test images", name, res.float.accuracy(), test.Len())
	// The layers, their candidates and costs (no traces: they are per
	// seed) name the plans.
	calib1, err := calibSet(cfg, train, 1)
	if err != nil {
		return nil, err
	}
	base, err := plan.Analyze(ctx, &plan.Analysis{Engine: e, Data: calib1, Model: name, NoTraces: true, Candidates: cfg.candidates})
	if err != nil {
		return nil, err
	}
	res.layers = base.Table.Layers
	for i := range res.layers {
		p, k := res.layers[i].Candidates()
		res.precs = append(res.precs, p)
		res.keys = append(res.keys, k)
	}
	// The seeds run concurrently, each on its own engine (applying a plan
	// changes the engine's weights).
	res.seeds = make([]*seedResult, cfg.seeds)
	errs := make([]error, cfg.seeds)
	var wg sync.WaitGroup
	for k := range res.seeds {
		wg.Go(func() {
			es, err := nn.New(m, &nn.Options{BatchSize: cfg.batch})
			if err == nil {
				res.seeds[k], err = res.runSeed(ctx, cfg, es, train, test, k+1)
			}
			errs[k] = err
		})
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("seed %d: %w", k+1, err)
		}
	}
	// Report seed 1's traces with the layers.
	res.layers = res.seeds[0].tables[sensitivity.Hessian].Layers
	for _, u := range e.Units() {
		res.params += u.WeightSize
	}
	res.wall = time.Since(t0)
	return res, nil
}

// calibSet draws the seed's calibration images: cfg.calibN distinct
// training images chosen by a PCG stream of the seed.
func calibSet(cfg config, train data.Dataset, seed int) (*data.Memory, error) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xca11b))
	idx := rng.Perm(train.Len())[:cfg.calibN]
	ds, err := data.Rows(train, idx)
	if err != nil {
		return nil, err
	}
	return memory(ds)
}

func (r *modelResult) runSeed(ctx context.Context, cfg config, e *nn.Engine, train data.Dataset, test *data.Memory, seed int) (*seedResult, error) {
	calib, err := calibSet(cfg, train, seed)
	if err != nil {
		return nil, err
	}
	sr := &seedResult{seed: seed, tables: map[sensitivity.Criterion]*sensitivity.Table{}, all: map[string]*outcome{}, times: map[string]time.Duration{}}
	// One Hutchinson run gives both Hessian criteria (the same probes).
	t0 := time.Now()
	tAll := t0
	trace := hessian.Settings{Seed: uint64(seed), Tol: cfg.tol, MinProbes: min(10, cfg.maxProbes), MaxProbes: cfg.maxProbes, ProbeBatch: cfg.probeBatch}
	s, err := plan.Analyze(ctx, &plan.Analysis{Engine: e, Data: calib, Model: r.name, Method: plan.Hutchinson, Diag: true,
		Trace: &trace, Candidates: cfg.candidates})
	if err != nil {
		return nil, err
	}
	sr.times["hessian+diag"] = time.Since(t0)
	progress("%s seed %d: %d probes in %s", r.name, seed, s.Traces.Probes, time.Since(t0).Round(time.Second))
	sr.probes = s.Traces.Probes
	// The activation term of both Hessian criteria (eval.ActivationTerm,
	// as bitplan plan adds it unless --weight-only), with the same probe
	// settings but at most cfg.actProbes probes (each probes every
	// layer's input separately): set on the diag table before the hessian
	// table is cloned from it, so that both carry it.
	t0 = time.Now()
	actTrace := trace
	actTrace.MaxProbes, actTrace.MinProbes = cfg.actProbes, min(10, cfg.actProbes)
	act, err := eval.ActivationTerm(ctx, e, calib, s.Table, &eval.ActivationSettings{Trace: &actTrace})
	if err != nil {
		return nil, fmt.Errorf("activation term: %w", err)
	}
	sr.times["activation"] = time.Since(t0)
	sr.actProbes = act.Traces.Probes
	progress("%s seed %d: activation term, %d probes in %s", r.name, seed, act.Traces.Probes, sr.times["activation"].Round(time.Second))
	sr.tables[sensitivity.Diag] = s.Table
	hess := clone(s.Table)
	for i := range hess.Layers {
		hess.Layers[i].Scores, hess.Layers[i].ScoreStderr = nil, nil
	}
	hess.Criterion = ""
	sr.tables[sensitivity.Hessian] = hess
	for _, c := range []sensitivity.Criterion{sensitivity.Quadratic, sensitivity.Fisher, sensitivity.Taylor, sensitivity.Weight, sensitivity.Measured} {
		t0 := time.Now()
		t := clone(hess)
		if err := eval.Score(ctx, e, calib, t, c, nil); err != nil {
			return nil, fmt.Errorf("criterion %s: %w", c, err)
		}
		sr.tables[c] = t
		sr.times[string(c)] = time.Since(t0)
		progress("%s seed %d: %s in %s", r.name, seed, c, sr.times[string(c)].Round(time.Second))
	}
	progress("%s seed %d: criteria in %s", r.name, seed, time.Since(tAll).Round(time.Second))
	evalChoice := func(choice []int) (*outcome, error) {
		key := fmt.Sprint(choice)
		if o, ok := sr.all[key]; ok {
			return o, nil
		}
		o, err := evaluate(ctx, e, r.layers, r.precs, choice, test, calib)
		if err != nil {
			return nil, err
		}
		sr.all[key] = o
		return o, nil
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	for _, b := range r.budgets {
		spec, err := budget.Parse(kindOf(b.resource), strconv.FormatFloat(b.pct, 'g', -1, 64)+"%")
		if err != nil {
			return nil, err
		}
		plans := map[string]*outcome{}
		var limit float64
		for _, c := range criteria {
			p, err := plan.Solve(ctx, &plan.Request{Table: sr.tables[c], Resources: []plan.Resource{plan.SizeResource, plan.BOPSResource},
				Budgets: []plan.Budget{{Resource: b.resource, Spec: spec}}})
			if err != nil {
				return nil, err
			}
			if p.Status != "optimal" {
				return nil, fmt.Errorf("%s, criterion %s: ILP status %s", b, c, p.Status)
			}
			limit = *p.Usage[b.resource].Limit
			if plans[string(c)], err = evalChoice(r.choiceOf(p)); err != nil {
				return nil, err
			}
		}
		sr.limits = append(sr.limits, limit)
		if u := r.uniform(b.resource, limit); u != nil {
			if plans["uniform"], err = evalChoice(u); err != nil {
				return nil, err
			}
		}
		if plans["greedy"], err = evalChoice(r.greedy(hess, b.resource, limit)); err != nil {
			return nil, err
		}
		var rs []*outcome
		for k := 0; k < cfg.randomN; k++ {
			o, err := evalChoice(r.randomMaximal(rng, b.resource, limit))
			if err != nil {
				return nil, err
			}
			rs = append(rs, o)
		}
		plans["random"] = rs[0]
		sr.plans = append(sr.plans, plans)
		sr.randoms = append(sr.randoms, rs)
		progress("%s seed %d %s: hessian %.4f diag %.4f fisher %.4f measured %.4f uniform %s (%d plans so far)", r.name, seed, b,
			plans["hessian"].accuracy(), plans["diag"].accuracy(), plans["fisher"].accuracy(), plans["measured"].accuracy(), accS(plans["uniform"]), len(sr.all))
	}
	if seed <= cfg.ftSeeds {
		if err := r.fineTuneSeed(ctx, cfg, e, sr, train, test, calib); err != nil {
			return nil, err
		}
	}
	return sr, nil
}

// fineTuneSeed fine-tunes the plans of cfg.ftMethods at every budget
// (each distinct plan once, from the float model) and evaluates them: the
// plans run concurrently, GOMAXPROCS at a time, each on its own engine
// (the results do not depend on which engine or in what order).
func (r *modelResult) fineTuneSeed(ctx context.Context, cfg config, e *nn.Engine, sr *seedResult, train data.Dataset, test, calib *data.Memory) error {
	t0 := time.Now()
	rng := rand.New(rand.NewPCG(uint64(sr.seed), 0xf1e7))
	ds, err := data.Rows(train, rng.Perm(train.Len())[:cfg.ftN])
	if err != nil {
		return err
	}
	tune, err := memory(ds)
	if err != nil {
		return err
	}
	if err := r.chooseLR(ctx, cfg, e, sr, tune, calib); err != nil {
		return err
	}
	type job struct {
		key    string
		choice []int
		what   string // the first method and budget that chose it
	}
	var jobs []job
	seen := map[string]bool{}
	for b := range r.budgets {
		for _, m := range cfg.ftMethods {
			if p := sr.plans[b][m]; p != nil {
				if key := fmt.Sprint(p.choice); !seen[key] {
					seen[key] = true
					jobs = append(jobs, job{key, p.choice, fmt.Sprintf("%s at %s", m, r.budgets[b])})
				}
			}
		}
	}
	done := make([]*outcome, len(jobs))
	errs := make([]error, len(jobs))
	var next sync.Mutex
	k := 0
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		wg.Go(func() {
			ew, err := nn.New(e.Model(), &nn.Options{BatchSize: cfg.batch})
			for {
				next.Lock()
				i := k
				k++
				next.Unlock()
				if i >= len(jobs) {
					return
				}
				if err != nil {
					errs[i] = err
					continue
				}
				j := jobs[i]
				if done[i], errs[i] = r.fineTune(ctx, cfg, ew, j.choice, sr.ftLR, tune, test, calib, sr.seed); errs[i] == nil {
					progress("%s seed %d: %s fine-tuned %.4f → %.4f (%d of %d plans, %s)", r.name, sr.seed, j.what, sr.all[j.key].accuracy(), done[i].accuracy(), i+1, len(jobs), time.Since(t0).Round(time.Second))
				}
			}
		})
	}
	wg.Wait()
	sr.tunedAll = map[string]*outcome{}
	for i, j := range jobs {
		if errs[i] != nil {
			return fmt.Errorf("fine-tuning %s's plan: %w", j.what, errs[i])
		}
		sr.tunedAll[j.key] = done[i]
	}
	for b := range r.budgets {
		tuned := map[string]*outcome{}
		for _, m := range cfg.ftMethods {
			if p := sr.plans[b][m]; p != nil {
				tuned[m] = sr.tunedAll[fmt.Sprint(p.choice)]
			}
		}
		sr.tuned = append(sr.tuned, tuned)
	}
	sr.times["fine-tuning"] = time.Since(t0)
	return nil
}

// chooseLR sets sr.ftLR to the rate of cfg.ftLRs whose fine-tuning of
// the uniform W4A4 plan (W4 where a layer has no A4 candidate) ends with
// the lowest loss on the calibration images, quantized as the plan is
// (training images only: the test images choose nothing); the rates run
// concurrently, each on its own engine.
func (r *modelResult) chooseLR(ctx context.Context, cfg config, e *nn.Engine, sr *seedResult, tune, calib *data.Memory) error {
	choice := make([]int, len(r.layers))
	for i := range choice {
		choice[i] = slices.Index(r.precs[i], sensitivity.Precision{W: 4, A: 4})
		if choice[i] < 0 {
			choice[i] = slices.IndexFunc(r.precs[i], func(p sensitivity.Precision) bool { return p.W == 4 })
		}
		if choice[i] < 0 {
			return fmt.Errorf("layer %s has no 4-bit candidate to choose the fine-tuning rate on", r.layers[i].Name)
		}
	}
	sr.lrLoss = make([]float64, len(cfg.ftLRs))
	errs := make([]error, len(cfg.ftLRs))
	var wg sync.WaitGroup
	for k, lr := range cfg.ftLRs {
		wg.Go(func() {
			ew, err := nn.New(e.Model(), &nn.Options{BatchSize: cfg.batch})
			if err == nil {
				var o *outcome
				if o, err = r.fineTune(ctx, cfg, ew, choice, lr, tune, calib, calib, sr.seed); err == nil {
					sr.lrLoss[k] = o.meanLoss()
				}
			}
			errs[k] = err
		})
	}
	wg.Wait()
	best := -1
	for k, err := range errs {
		if err != nil {
			return fmt.Errorf("choosing the fine-tuning rate (%g): %w", cfg.ftLRs[k], err)
		}
		if best < 0 || sr.lrLoss[k] < sr.lrLoss[best] {
			best = k
		}
	}
	sr.ftLR = cfg.ftLRs[best]
	progress("%s seed %d: fine-tuning rate %g (calibration losses %v)", r.name, sr.seed, sr.ftLR, sr.lrLoss)
	return nil
}

// fineTune runs the quantization-aware fine-tuning of one plan from the
// engine's float θ (restored afterwards): the plan is applied by
// eval.Apply (its activation quantizers calibrated at its quantized
// weights, with their clipping ranges), the float weights are put back
// under those quantizers, and prune.FineTune takes its steps with the
// plan's weight quantizer as the straight-through Quantize and the
// engine's gradient quantized (nn.Engine.SetQuantizedGradient: the steps
// see the fake-quantized activations, with the clipped straight-through
// estimator); then the plan is applied again to the tuned weights, with
// the activation ranges the steps were taken under (the quantizers the
// weights were tuned for; recalibrating them at the tuned weights moves
// the grids the weights adapted to) and biases on the INT32 grid, and
// scored.
func (r *modelResult) fineTune(ctx context.Context, cfg config, e *nn.Engine, choice []int, lr float64, tune, test, calib *data.Memory, seed int) (*outcome, error) {
	theta0 := e.Theta()
	defer func() { _ = e.SetTheta(theta0) }() // θ has the engine's length
	a, err := eval.Apply(ctx, e, r.evalLayers(choice), calib, nil)
	if err != nil {
		return nil, err
	}
	q := r.weightQuantizer(e, a)
	if err := e.SetTheta(theta0); err != nil { // float weights (and biases), the quantizers kept
		a.Restore()
		return nil, err
	}
	e.SetQuantizedGradient(true)
	_, err = prune.FineTune(ctx, e, tune, &prune.FineTuneSettings{Steps: cfg.ftSteps, BatchSize: cfg.ftBatch, LR: lr, Seed: uint64(seed), Quantize: q})
	e.SetQuantizedGradient(false)
	tuned := e.Theta()
	a.Restore()
	if err != nil {
		return nil, err
	}
	if err := e.SetTheta(tuned); err != nil {
		return nil, err
	}
	ranges := map[string]eval.Range{}
	for _, al := range a.Layers {
		if al.ABits > 0 {
			ranges[al.Name] = al.Input
		}
	}
	return evaluateWith(ctx, e, r.layers, r.precs, choice, test, calib, &eval.Settings{Ranges: ranges})
}

// evalLayers returns the plan's layers at their weight and activation
// widths.
func (r *modelResult) evalLayers(choice []int) []eval.Layer {
	var ls []eval.Layer
	for i, c := range choice {
		p := r.precs[i][c]
		ls = append(ls, eval.Layer{Name: r.layers[i].Name, Bits: p.W, ABits: p.A})
	}
	return ls
}

// weightQuantizer returns the straight-through weight quantizer of an
// applied plan: θ with every layer's weights replaced by their quantized
// values at the plan's weight width (eval.Apply's quantizer and channel
// layout, the scales recomputed from the current weights), biases left
// in float.
func (r *modelResult) weightQuantizer(e *nn.Engine, a *eval.Applied) func(dst, theta []float64) {
	units := map[string]nn.UnitLayout{}
	for _, u := range e.Units() {
		units[u.Name] = u
	}
	type span struct {
		lo, hi int
		q      sensitivity.Quantizer
		lay    sensitivity.Layout
	}
	var spans []span
	for _, al := range a.Layers {
		u := units[al.Name]
		spans = append(spans, span{u.WeightOffset, u.WeightOffset + u.WeightSize, sensitivity.Quantizer{Bits: al.Bits}, al.Layout})
	}
	return func(dst, theta []float64) {
		copy(dst, theta)
		for _, s := range spans {
			// A non-finite weight leaves its span in float here; the
			// evaluation after fine-tuning quantizes the same weights
			// with eval.Apply, which reports it.
			_, _ = s.q.Quantize(dst[s.lo:s.hi], theta[s.lo:s.hi], s.lay)
		}
	}
}

func accS(o *outcome) string {
	if o == nil {
		return "-"
	}
	return strconv.FormatFloat(o.accuracy(), 'f', 4, 64)
}

func kindOf(resource string) budget.Kind {
	if resource == "bops" {
		return budget.BOPS
	}
	return budget.Size
}

func clone(t *sensitivity.Table) *sensitivity.Table {
	c := *t
	c.Layers = slices.Clone(t.Layers)
	return &c
}

// evaluate fake-quantizes the engine to the choice (nil: float), with
// activation ranges from calib, and scores every test image.
func evaluate(ctx context.Context, e *nn.Engine, layers []sensitivity.Layer, precs [][]sensitivity.Precision, choice []int, test *data.Memory, calib ...data.Dataset) (*outcome, error) {
	var c data.Dataset
	if len(calib) > 0 {
		c = calib[0]
	}
	return evaluateWith(ctx, e, layers, precs, choice, test, c, nil)
}

// evaluateWith is evaluate with eval.Apply's settings s (nil: defaults).
func evaluateWith(ctx context.Context, e *nn.Engine, layers []sensitivity.Layer, precs [][]sensitivity.Precision, choice []int, test *data.Memory, calib data.Dataset, s *eval.Settings) (*outcome, error) {
	if choice != nil {
		var ls []eval.Layer
		for i, c := range choice {
			p := precs[i][c]
			ls = append(ls, eval.Layer{Name: layers[i].Name, Bits: p.W, ABits: p.A})
		}
		a, err := eval.Apply(ctx, e, ls, calib, s)
		if err != nil {
			return nil, err
		}
		defer a.Restore()
	}
	n := test.Len()
	size := data.SampleSize(test)
	classes := e.Classes()
	o := &outcome{choice: slices.Clone(choice), correct: make([]bool, n), loss: make([]float64, n)}
	const chunk = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := 0
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			x := make([]float64, chunk*size)
			y := make([]int, chunk)
			for {
				mu.Lock()
				lo := next
				next += chunk
				mu.Unlock()
				if lo >= n || ctx.Err() != nil {
					return
				}
				k := min(chunk, n-lo)
				err := test.Read(lo, x[:k*size], y[:k])
				var logits []float64
				if err == nil {
					logits, err = e.Logits(x[:k*size], k)
				}
				if err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
				for j := 0; j < k; j++ {
					z := logits[j*classes : (j+1)*classes]
					best, mx := 0, z[0]
					for c, v := range z {
						if v > mx {
							best, mx = c, v
						}
					}
					var s float64
					for _, v := range z {
						s += math.Exp(v - mx)
					}
					o.correct[lo+j] = best == y[j]
					o.loss[lo+j] = mx + math.Log(s) - z[y[j]]
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return o, first
}

func (r *modelResult) choiceOf(p *plan.Plan) []int {
	choice := make([]int, len(p.Layers))
	for i, l := range p.Layers {
		choice[i] = slices.Index(r.keys[i], l.Choice)
	}
	return choice
}

// cost is the resource's cost of layer i at candidate c (plan's size and
// BOPS resources).
func (r *modelResult) cost(resource string, i, c int) float64 {
	res := plan.SizeResource
	if resource == "bops" {
		res = plan.BOPSResource
	}
	return res.Cost(&r.layers[i], r.keys[i][c], r.precs[i][c])
}

func (r *modelResult) total(resource string, choice []int) float64 {
	var s float64
	for i, c := range choice {
		s += r.cost(resource, i, c)
	}
	return s
}

// fits allows the rounding the ILP's rows allow.
func fits(used, limit float64) bool { return used <= limit*(1+1e-9) }

// wider reports whether candidate a is at least as wide as b in weights
// and activations and differs from it.
func wider(a, b sensitivity.Precision) bool { return a.W >= b.W && a.A >= b.A && a != b }

// uniform returns the uniform plan that spends the most of the budget
// (ties: more weight bits, then more activation bits), or nil when none
// fits.
func (r *modelResult) uniform(resource string, limit float64) []int {
	var best []int
	bestCost, bestW, bestA := -1.0, 0, 0
	for _, p := range r.precs[0] {
		choice := make([]int, len(r.layers))
		ok := true
		for i := range choice {
			choice[i] = slices.Index(r.precs[i], p)
			ok = ok && choice[i] >= 0
		}
		if !ok {
			continue
		}
		c := r.total(resource, choice)
		if fits(c, limit) && (c > bestCost || c == bestCost && (p.W > bestW || p.W == bestW && p.A > bestA)) {
			best, bestCost, bestW, bestA = choice, c, p.W, p.A
		}
	}
	return best
}

// ladder returns layer i's candidates from the costliest down for the
// resource, keeping at equal cost the one with more weight (then
// activation) bits: the steps the greedy plan goes down.
func (r *modelResult) ladder(resource string, i int) []int {
	idx := make([]int, len(r.precs[i]))
	for c := range idx {
		idx[c] = c
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ca, cb := r.cost(resource, i, idx[a]), r.cost(resource, i, idx[b])
		if ca != cb {
			return ca > cb
		}
		pa, pb := r.precs[i][idx[a]], r.precs[i][idx[b]]
		if pa.W != pb.W {
			return pa.W > pb.W
		}
		return pa.A > pb.A
	})
	var out []int
	for _, c := range idx {
		if len(out) > 0 && r.cost(resource, i, out[len(out)-1]) == r.cost(resource, i, c) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// greedy is the trace-ordered plan of HAWQ-V2 and NNCF's HAWQ precision
// initialiser: layers sorted by average Hessian trace, every layer starts
// at its widest candidate, and the least sensitive layer that can still
// step down its ladder does so until the plan fits; then the most
// sensitive layers step back up while the plan still fits (so the budget
// is spent).
func (r *modelResult) greedy(hess *sensitivity.Table, resource string, limit float64) []int {
	n := len(r.layers)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return hess.Layers[order[a]].AvgTrace < hess.Layers[order[b]].AvgTrace })
	steps := make([][]int, n)
	pos := make([]int, n)
	choice := make([]int, n)
	for i := range steps {
		steps[i] = r.ladder(resource, i)
		choice[i] = steps[i][0]
	}
	for !fits(r.total(resource, choice), limit) {
		moved := false
		for _, i := range order {
			if pos[i]+1 < len(steps[i]) {
				pos[i]++
				choice[i] = steps[i][pos[i]]
				moved = true
				break
			}
		}
		if !moved {
			break
		}
	}
	for k := n - 1; k >= 0; k-- {
		i := order[k]
		for pos[i] > 0 {
			choice[i] = steps[i][pos[i]-1]
			if !fits(r.total(resource, choice), limit) {
				choice[i] = steps[i][pos[i]]
				break
			}
			pos[i]--
		}
	}
	return choice
}

// randomMaximal draws a random mixed plan that fits and is maximal (no
// layer can take a wider candidate and still fit): a uniform random
// choice per layer, random layers moved to cheaper candidates until it
// fits, then random widenings while it fits. It is a random maximal plan,
// not a uniform draw from all of them.
func (r *modelResult) randomMaximal(rng *rand.Rand, resource string, limit float64) []int {
	n := len(r.layers)
	for try := 0; ; try++ {
		choice := make([]int, n)
		for i := range choice {
			choice[i] = rng.IntN(len(r.precs[i]))
		}
		for !fits(r.total(resource, choice), limit) {
			i := rng.IntN(n)
			var cheaper []int
			for c := range r.precs[i] {
				if r.cost(resource, i, c) < r.cost(resource, i, choice[i]) {
					cheaper = append(cheaper, c)
				}
			}
			if len(cheaper) > 0 {
				choice[i] = cheaper[rng.IntN(len(cheaper))]
			}
		}
		for changed := true; changed; {
			changed = false
			type move struct{ i, c int }
			var moves []move
			for i := range choice {
				for c, p := range r.precs[i] {
					if wider(p, r.precs[i][choice[i]]) {
						moves = append(moves, move{i, c})
					}
				}
			}
			rng.Shuffle(len(moves), func(a, b int) { moves[a], moves[b] = moves[b], moves[a] })
			for _, mv := range moves {
				old := choice[mv.i]
				if !wider(r.precs[mv.i][mv.c], r.precs[mv.i][old]) {
					continue
				}
				choice[mv.i] = mv.c
				if fits(r.total(resource, choice), limit) {
					changed = true
				} else {
					choice[mv.i] = old
				}
			}
		}
		mixed := false
		for i := range choice {
			mixed = mixed || r.precs[i][choice[i]] != r.precs[0][choice[0]]
		}
		if mixed || try == 20 {
			return choice
		}
	}
}
