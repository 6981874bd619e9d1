// Command coverage measures how often the confidence intervals of
// Hutchinson's per-layer traces cover the exact traces, over many seeds,
// on a real model: the experiment behind docs/probes.md's coverage table.
//
//  1. Samples: for every seed and probe batch (0: every probe over all
//     samples) one run of -run-probes probes of hessian.Hutchinson on the
//     weights' Hessian (hessian.Restrict over the units' weight blocks,
//     the operator plan.Analyze estimates on); the per-probe samples are
//     appended to -out (JSON lines), so an interrupted run resumes and a
//     finished one can be evaluated again with -no-sample.
//  2. Evaluation: every configuration (each fixed probe count, and
//     adaptive stopping at -tol for each -min-probes) is replayed through
//     hessian.Hutchinson itself on an operator that returns the recorded
//     samples (probe i of a seed is the same vector in every run of that
//     seed, so a run of n probes is the first n recorded ones), and each
//     run's interval is checked against the exact trace of the full-data
//     Hessian. Besides the library's interval it evaluates, on the same
//     samples, the plain Student-t interval, Hall's (1992) transformation
//     with the block's own skewness, and the bootstrap-t.
//
// The exact traces come from -exact FILE when it exists (JSON: layer name →
// trace), else from unit-vector products (one per weight: about 3 min for
// LeNet on 4 samples), then written to FILE; bench/coverage/
// lenet-mnist4-exact.json holds LeNet's on the first 4 MNIST training
// images.
//
// Usage (the docs/probes.md table):
//
//	go run ./bench/coverage -seeds 1000 -run-probes 40 -probes 10,30 -tol 1.5 \
//	    -exact bench/coverage/lenet-mnist4-exact.json -out /tmp/lenet4.jsonl
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "coverage:", err)
		os.Exit(1)
	}
}

// interval is a way of forming a confidence interval from a column of
// per-probe samples.
type interval struct {
	name string
	f    func(x []float64, conf float64, rng *rand.Rand) (lo, hi float64)
}

// record is one seed's run at one probe batch: the per-probe samples of
// every layer (rows of TraceResult.Samples), one JSON line of -samples.
type record struct {
	Seed  int         `json:"seed"`
	Batch int         `json:"batch"`
	Rows  [][]float64 `json:"rows"`
}

func run(args []string, w, stderr io.Writer) error {
	fs := flag.NewFlagSet("coverage", flag.ContinueOnError)
	modelPath := fs.String("model", "testdata/models/lenet.onnx", "ONNX `FILE`")
	samples := fs.Int("samples", 4, "first `N` MNIST training images")
	seeds := fs.Int("seeds", 1000, "`RUNS` per configuration (seeds 0…RUNS−1)")
	batches := fs.String("batches", "0,2", "probe batch sizes `LIST` (0: all samples)")
	perRun := fs.Int("run-probes", 100, "probes `N` computed per seed and batch (the longest configuration)")
	probes := fs.String("probes", "10,30", "fixed probe counts `LIST`")
	tol := fs.Float64("tol", 1.5, "tolerance `TOL` of the adaptive runs (0: none)")
	minProbes := fs.String("min-probes", "0", "MinProbes `LIST` of the adaptive runs (0: the library's default)")
	exactPath := fs.String("exact", "", "exact traces `FILE` (JSON; computed and written when missing)")
	samplesPath := fs.String("out", "", "per-probe samples `FILE` (JSON lines; seeds already there are not recomputed)")
	noSample := fs.Bool("no-sample", false, "evaluate the seeds already in -out, compute none")
	maxProbes := fs.Int("max-probes", 0, "MaxProbes `N` of the adaptive runs (0: -run-probes)")
	boot := fs.Int("boot", 999, "bootstrap-t replicates `B` (at least 1)")
	planBudgets := fs.String("plan-budgets", "", "also replay plan --stop plan (plan.StableStop) at these size budgets `LIST` (e.g. 50%,70%,90%) and count stopped plans that differ from the exact traces' plan")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *boot < 1 {
		return fmt.Errorf("-boot %d: want at least 1 replicate", *boot)
	}
	ints := func(flagName, list string, least int) ([]int, error) {
		var out []int
		for _, f := range strings.Split(list, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < least {
				return nil, fmt.Errorf("-%s: %q is not a number ≥ %d", flagName, f, least)
			}
			out = append(out, n)
		}
		return out, nil
	}
	fixed, err := ints("probes", *probes, 2)
	if err != nil {
		return err
	}
	bs, err := ints("batches", *batches, 0)
	if err != nil {
		return err
	}
	mins, err := ints("min-probes", *minProbes, 0)
	if err != nil {
		return err
	}
	m, err := model.Load(*modelPath)
	if err != nil {
		return err
	}
	e, err := nn.New(m, &nn.Options{Workers: 1})
	if err != nil {
		return err
	}
	ds, err := data.MNIST(data.Train, *samples)
	if err != nil {
		return err
	}
	full, err := e.Operator(ds)
	if err != nil {
		return err
	}
	var blocks []hessian.Block
	for _, u := range e.Units() {
		blocks = append(blocks, hessian.Block{Name: u.Name, Offset: u.WeightOffset, Size: u.WeightSize})
	}
	ctx := context.Background()
	exact, err := exactTraces(ctx, full, blocks, *exactPath, stderr)
	if err != nil {
		return err
	}

	// 1. The per-probe samples: one run of -run-probes probes per seed and
	// batch on the weights' Hessian, as plan.Analyze runs it.
	recs := map[[2]int]record{}
	if *samplesPath != "" {
		if err := readRecords(*samplesPath, recs); err != nil {
			return err
		}
	}
	op, err := hessian.Restrict(full, blocks)
	if err != nil {
		return err
	}
	rblocks := op.Blocks() // contiguous from 0
	if !*noSample {
		var out *os.File
		if *samplesPath != "" {
			if out, err = os.OpenFile(*samplesPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err != nil {
				return err
			}
			defer out.Close()
		}
		start, done := time.Now(), 0
		for seed := range *seeds {
			for _, b := range bs {
				if r, ok := recs[[2]int{seed, b}]; ok && len(r.Rows) >= *perRun {
					continue
				}
				res, err := hessian.Hutchinson(ctx, op, &hessian.Settings{Seed: uint64(seed), ProbeBatch: b,
					Workers: runtime.GOMAXPROCS(0), MinProbes: *perRun, MaxProbes: *perRun})
				if err != nil {
					return err
				}
				r := record{Seed: seed, Batch: b, Rows: res.Samples}
				recs[[2]int{seed, b}] = r
				if out != nil {
					line, _ := json.Marshal(r)
					if _, err := out.Write(append(line, '\n')); err != nil {
						return err
					}
				}
				done++
			}
			if (seed+1)%25 == 0 {
				fmt.Fprintf(stderr, "coverage: seed %d/%d, %d runs computed in %v\n", seed+1, *seeds, done, time.Since(start).Round(time.Second))
			}
		}
	}

	// 2. Every configuration replayed on those samples through
	// hessian.Hutchinson itself (its stopping rule and intervals).
	methods := []interval{{iidName, nil}, {"t", tInterval}, {"hall-t", hallInterval},
		{"boot-t", func(x []float64, c float64, r *rand.Rand) (float64, float64) { return bootT(x, c, r, *boot) }}}
	type config struct {
		batch, n, min int // n 0: adaptive with MinProbes min
	}
	var cfgs []config
	for _, b := range bs {
		for _, n := range fixed {
			cfgs = append(cfgs, config{batch: b, n: n})
		}
		if *tol > 0 {
			for _, mp := range mins {
				cfgs = append(cfgs, config{batch: b, min: mp})
			}
		}
	}
	nl := len(blocks)
	cover := make([][][]int, len(cfgs)) // [config][method][layer]
	low, high := make([][]int, len(cfgs)), make([][]int, len(cfgs))
	used := make([][]int, len(cfgs))
	runs := make([]int, len(cfgs))
	for c := range cfgs {
		cover[c] = make([][]int, len(methods)+1)
		for k := range cover[c] {
			cover[c][k] = make([]int, nl)
		}
		low[c], high[c] = make([]int, len(methods)+1), make([]int, len(methods)+1)
	}
	pooled := make([][][]float64, len(bs)) // [batch][layer]: all samples
	for b := range pooled {
		pooled[b] = make([][]float64, nl)
	}
	for seed := range *seeds {
		for bi, b := range bs {
			r, ok := recs[[2]int{seed, b}]
			if !ok {
				continue
			}
			for _, row := range r.Rows {
				for j := range nl {
					pooled[bi][j] = append(pooled[bi][j], row[j])
				}
			}
		}
	}
	for c, cf := range cfgs {
		for seed := range *seeds {
			r, ok := recs[[2]int{seed, cf.batch}]
			if !ok {
				continue
			}
			limit := *perRun
			if *maxProbes > 0 {
				limit = *maxProbes
			}
			if limit > len(r.Rows) {
				return fmt.Errorf("seed %d: %d probes in -out, %d asked", seed, len(r.Rows), limit)
			}
			set := &hessian.Settings{Seed: uint64(seed), Workers: 1, Tol: *tol, MinProbes: cf.min, MaxProbes: limit}
			if cf.n > 0 {
				if cf.n > len(r.Rows) {
					return fmt.Errorf("%d probes asked, -out has %d per run", cf.n, len(r.Rows))
				}
				set.MinProbes, set.MaxProbes = cf.n, cf.n
			}
			rp := &replay{blocks: rblocks, rows: r.Rows[:limit], samples: ds.Len()}
			if cf.batch > 0 && cf.batch < ds.Len() {
				// The recorded run's schedule, so the library sees its
				// epochs (the replay ignores the batches' samples).
				set.ProbeBatch = cf.batch
			}
			res, err := hessian.Hutchinson(ctx, rp, set)
			if err != nil {
				return err
			}
			// The interval before epoch clustering: the same samples
			// summarised as i.i.d.
			flat := *res
			flat.Epoch = 0
			iid, err := flat.AtConfidence(res.Confidence)
			if err != nil {
				return err
			}
			runs[c]++
			used[c] = append(used[c], res.Probes)
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(c)))
			col := make([]float64, res.Probes)
			for j, est := range res.Blocks {
				for i, row := range res.Samples {
					col[i] = row[j]
				}
				for k := range len(methods) + 1 {
					lo, hi := est.Lo, est.Hi // the library's
					switch {
					case methods[max(k-1, 0)].name == iidName && k > 0:
						lo, hi = iid.Blocks[j].Lo, iid.Blocks[j].Hi
					case k > 0:
						lo, hi = methods[k-1].f(col, res.Confidence, rng)
					}
					switch {
					case exact[j] < lo:
						low[c][k]++
					case exact[j] > hi:
						high[c][k]++
					default:
						cover[c][k][j]++
					}
				}
			}
		}
	}

	fmt.Fprintf(w, "\n%s, %d MNIST training samples, exact traces of the weight blocks; coverage of 95 %% intervals (runs per row in the runs column)\n\n", *modelPath, ds.Len())
	head := "| probe batch | probes | interval | runs |"
	rule := "|--:|---|---|--:|"
	for _, b := range blocks {
		head += " " + b.Name + " |"
		rule += "--:|"
	}
	fmt.Fprintln(w, head+" misses below / above |")
	fmt.Fprintln(w, rule+"--:|")
	for c, cf := range cfgs {
		if runs[c] == 0 {
			continue
		}
		bl := strconv.Itoa(cf.batch)
		if cf.batch == 0 || cf.batch >= ds.Len() {
			bl = "all"
		}
		pl := strconv.Itoa(cf.n)
		if cf.n == 0 {
			u := slices.Clone(used[c])
			slices.Sort(u)
			mp := "default"
			if cf.min > 0 {
				mp = strconv.Itoa(cf.min)
			}
			pl = fmt.Sprintf("adaptive (tol %g, min %s: median %d, %d–%d)", *tol, mp, u[len(u)/2], u[0], u[len(u)-1])
		}
		for k := range len(methods) + 1 {
			name := "**library**"
			if k > 0 {
				name = methods[k-1].name
			}
			row := fmt.Sprintf("| %s | %s | %s | %d |", bl, pl, name, runs[c])
			for j := range nl {
				row += fmt.Sprintf(" %.1f %% |", 100*float64(cover[c][k][j])/float64(runs[c]))
			}
			fmt.Fprintf(w, "%s %d / %d |\n", row, low[c][k], high[c][k])
		}
	}
	if *planBudgets != "" {
		if err := planStops(ctx, w, e, ds, rblocks, exact, recs, bs, *seeds, *perRun, strings.Split(*planBudgets, ",")); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\nPer-probe samples (all runs pooled): per layer relative SD (SD/|exact|), skewness, excess kurtosis\n\n")
	fmt.Fprintln(w, "| probe batch | layer | samples | exact | mean | rel. SD | skewness | excess kurtosis |")
	fmt.Fprintln(w, "|--:|---|--:|--:|--:|--:|--:|--:|")
	for b, bb := range bs {
		for j, bl := range blocks {
			x := pooled[b][j]
			if len(x) < 2 {
				continue
			}
			mean, sd := stat.MeanStdDev(x, nil)
			fmt.Fprintf(w, "| %d | %s | %d | %.4g | %.4g | %.3g | %.2f | %.1f |\n", bb, bl.Name, len(x), exact[j], mean, sd/math.Abs(exact[j]),
				stat.Skew(x, nil), stat.ExKurtosis(x, nil))
		}
	}
	return nil
}

// readRecords adds the records of a -out file (if it exists) to recs.
func readRecords(path string, recs map[[2]int]record) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			// A line cut short by an interrupted run: ignore the rest.
			fmt.Fprintf(os.Stderr, "coverage: %s:%d: %v (ignored)\n", path, i+1, err)
			continue
		}
		if old, ok := recs[[2]int{r.Seed, r.Batch}]; !ok || len(r.Rows) > len(old.Rows) {
			recs[[2]int{r.Seed, r.Batch}] = r
		}
	}
	return nil
}

// iidName names the library's interval with the i.i.d. standard error
// (before epoch clustering), computed from the same run.
const iidName = "library, i.i.d. SE"

// replay is an operator whose Hutchinson samples are given rows: called in
// probe order (one worker, one probe per call), it returns for probe i a
// vector whose block b part is v_b·rows[i][b]/Size_b, so that
// v_bᵀ(Hv)_b = rows[i][b] whatever v is. It is a hessian.Sampled over
// the recorded run's samples whose every subset is itself, so that a
// replay with ProbeBatch set reports the run's epochs.
type replay struct {
	blocks  []hessian.Block
	rows    [][]float64
	next    int
	samples int
}

func (r *replay) Samples() int                           { return r.samples }
func (r *replay) Subset([]int) (hessian.Operator, error) { return r, nil }

func (r *replay) Dim() int {
	b := r.blocks[len(r.blocks)-1]
	return b.Offset + b.Size
}
func (r *replay) Blocks() []hessian.Block { return r.blocks }
func (r *replay) HVP(_ context.Context, dst, v []float64) error {
	if r.next >= len(r.rows) {
		return fmt.Errorf("replay: probe %d asked, %d recorded", r.next, len(r.rows))
	}
	row := r.rows[r.next]
	r.next++
	for j, b := range r.blocks {
		for i := b.Offset; i < b.End(); i++ {
			dst[i] = v[i] * row[j] / float64(b.Size)
		}
	}
	return nil
}

// tInterval is mean ± t_{n−1}·SE.
func tInterval(x []float64, conf float64, _ *rand.Rand) (float64, float64) {
	n := float64(len(x))
	mean, sd := stat.MeanStdDev(x, nil)
	h := tq(conf, len(x)-1) * sd / math.Sqrt(n)
	return mean - h, mean + h
}

func tq(conf float64, nu int) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(nu)}.Quantile((1 + conf) / 2)
}

// hallInterval inverts Hall's (1992) transformation of the studentised
// mean, g(T) = T + γ/(6√n) + γT²/(3√n) + γ²T³/(27n), which removes the
// first-order effect of the skewness γ (estimated from the sample).
func hallInterval(x []float64, conf float64, _ *rand.Rand) (float64, float64) {
	n := float64(len(x))
	mean, sd := stat.MeanStdDev(x, nil)
	if sd == 0 {
		return mean, mean
	}
	var m3 float64
	for _, v := range x {
		d := v - mean
		m3 += d * d * d
	}
	m3 /= n
	g := m3 / (sd * sd * sd)
	q := tq(conf, len(x)-1)
	se := sd / math.Sqrt(n)
	a := g / (3 * math.Sqrt(n))
	inv := func(y float64) float64 { // g⁻¹(y)
		y -= g / (6 * math.Sqrt(n))
		if math.Abs(a) < 1e-12 {
			return y
		}
		return (math.Cbrt(1+3*a*y) - 1) / a
	}
	return mean - se*inv(q), mean - se*inv(-q)
}

// bootT is the bootstrap-t (studentised bootstrap) interval with b
// replicates: [x̄ − q_{hi}·SE, x̄ − q_{lo}·SE] with q the quantiles of
// T* = (x̄* − x̄)/SE*.
func bootT(x []float64, conf float64, rng *rand.Rand, b int) (float64, float64) {
	n := len(x)
	mean, sd := stat.MeanStdDev(x, nil)
	se := sd / math.Sqrt(float64(n))
	ts := make([]float64, 0, b)
	xs := make([]float64, n)
	for range b {
		for i := range xs {
			xs[i] = x[rng.IntN(n)]
		}
		m, s := stat.MeanStdDev(xs, nil)
		if s == 0 {
			// A resample of one repeated value: T* is ±∞ (or 0/0).
			switch {
			case m > mean:
				ts = append(ts, math.Inf(1))
			case m < mean:
				ts = append(ts, math.Inf(-1))
			default:
				ts = append(ts, 0)
			}
			continue
		}
		ts = append(ts, (m-mean)/(s/math.Sqrt(float64(n))))
	}
	slices.Sort(ts)
	alpha := (1 - conf) / 2
	// The order statistics of the quantiles, within the b replicates
	// (with fewer than 1/α replicates the extremes).
	qlo := ts[min(max(int(math.Floor(alpha*float64(b+1)))-1, 0), b-1)]
	qhi := ts[min(max(int(math.Ceil((1-alpha)*float64(b+1)))-1, 0), b-1)]
	return mean - qhi*se, mean - qlo*se
}

// exactTraces reads the exact weight-block traces from path, or computes
// them from unit vectors and writes them there.
func exactTraces(ctx context.Context, op hessian.Operator, blocks []hessian.Block, path string, stderr io.Writer) ([]float64, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err == nil {
			var m map[string]float64
			if err := json.Unmarshal(b, &m); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			out := make([]float64, len(blocks))
			for j, bl := range blocks {
				t, ok := m[bl.Name]
				if !ok {
					return nil, fmt.Errorf("%s: no trace for layer %s", path, bl.Name)
				}
				out[j] = t
			}
			return out, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	start := time.Now()
	out := make([]float64, len(blocks))
	m := map[string]float64{}
	for j, b := range blocks {
		d, err := hessian.ExactDiagonal(ctx, op, b, 0)
		if err != nil {
			return nil, err
		}
		for _, v := range d {
			out[j] += v
		}
		m[b.Name] = out[j]
		fmt.Fprintf(stderr, "coverage: exact trace of %s = %.10g (%v)\n", b.Name, out[j], time.Since(start).Round(time.Second))
	}
	if path != "" {
		b, _ := json.MarshalIndent(m, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// planStops replays bitplan plan's --stop plan rule (plan.StableStop with
// its default 95 % joint box, checking after every probe) on the recorded
// samples at each size budget, with the tolerance out of reach so that
// only the rule or the probe limit stops, and compares the stopped plan
// with the plan of the exact traces.
func planStops(ctx context.Context, w io.Writer, e *nn.Engine, ds data.Dataset, rblocks []hessian.Block, exact []float64,
	recs map[[2]int]record, bs []int, seeds, limit int, budgets []string) error {
	s, err := plan.Analyze(ctx, &plan.Analysis{Engine: e, Data: ds, NoTraces: true})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nplan --stop plan replayed (candidates 4 and 8, size budget, rule checked after every probe from 10, at most %d probes): stopped plans that differ from the exact traces' plan\n\n", limit)
	fmt.Fprintln(w, "| probe batch | size budget | exact traces' plan | runs | stopped by the rule | probes at the stop (median, range) | stopped plans ≠ exact plan | plans at the limit ≠ exact plan |")
	fmt.Fprintln(w, "|--:|--:|---|--:|--:|---|--:|--:|")
	for _, bt := range budgets {
		spec, err := budget.Parse(budget.Size, strings.TrimSpace(bt))
		if err != nil {
			return err
		}
		req := plan.Request{Budgets: []plan.Budget{{Resource: "size", Spec: spec}}}
		t := *s.Table
		t.Layers = slices.Clone(s.Table.Layers)
		for i := range t.Layers {
			t.Layers[i].AvgTrace = exact[i] / t.Layers[i].Params
		}
		ref := req
		ref.Table = &t
		want, err := plan.Solve(ctx, &ref)
		if err != nil {
			return err
		}
		wantKey := planKey(want)
		for _, b := range bs {
			var runs, stopped, wrong, wrongLimit int
			var at []int
			for seed := range seeds {
				r, ok := recs[[2]int{seed, b}]
				if !ok || len(r.Rows) < limit {
					continue
				}
				rule := &plan.StableStop{Table: s.Table, Request: req}
				set := &hessian.Settings{Seed: uint64(seed), Workers: 1, Tol: 1e-12, MaxProbes: limit, Check: rule.Rule(ctx)}
				if b > 0 && b < ds.Len() {
					set.ProbeBatch = b
				}
				res, err := hessian.Hutchinson(ctx, &replay{blocks: rblocks, rows: r.Rows[:limit], samples: ds.Len()}, set)
				if err != nil {
					return err
				}
				tt := *s.Table
				tt.Layers = slices.Clone(s.Table.Layers)
				for i := range tt.Layers {
					tt.Layers[i].AvgTrace = res.Blocks[i].Trace / tt.Layers[i].Params
				}
				got := req
				got.Table = &tt
				p, err := plan.Solve(ctx, &got)
				if err != nil {
					return err
				}
				runs++
				differs := planKey(p) != wantKey
				if res.Stop == plan.StopPlanStable {
					stopped++
					at = append(at, res.Probes)
					if differs {
						wrong++
					}
				} else if differs {
					wrongLimit++
				}
			}
			if runs == 0 {
				continue
			}
			slices.Sort(at)
			med := "-"
			if len(at) > 0 {
				med = fmt.Sprintf("%d (%d–%d)", at[len(at)/2], at[0], at[len(at)-1])
			}
			bl := strconv.Itoa(b)
			if b == 0 || b >= ds.Len() {
				bl = "all"
			}
			frac := func(k, n int) string {
				if n == 0 {
					return "-"
				}
				return fmt.Sprintf("%d of %d (%.1f %%)", k, n, 100*float64(k)/float64(n))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %s | %s | %s |\n", bl, bt, wantKey, runs, frac(stopped, runs), med, frac(wrong, stopped), frac(wrongLimit, runs-stopped))
		}
	}
	return nil
}

// planKey is a plan's choices, "8/8/4/8/8".
func planKey(p *plan.Plan) string {
	var ks []string
	for _, l := range p.Layers {
		ks = append(ks, l.Choice)
	}
	return strings.Join(ks, "/")
}
