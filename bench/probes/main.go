// Command probes measures the error of Hutchinson's per-layer traces
// against wall time, for full-data probes and for mini-batch probes of
// several sizes (hessian.Settings.ProbeBatch), on one model and
// calibration set. Every configuration runs for the same time budget
// through plan.Analyze (the path of bitplan trace and plan); the per-probe
// samples and the time each probe was accepted give, after n probes, each
// layer's estimate and standard error.
//
// The reference trace of a layer is its exact trace when given (-ref, the
// exact_block_traces of a testdata/ref meta.json, over weight blocks
// without bias), else the inverse-variance weighted mean of the final
// estimates of all configurations (all unbiased).
//
// Usage:
//
//	go run ./bench/probes -model M.onnx (-inputs X.npy -labels Y.npy | -mnist) [-samples 512]
//	    [-batches 0,16,32,64,128] [-seconds 90] [-seed 1] [-plot out.svg] [-ref meta.json] [-name NAME]
//
// It prints a Markdown table: per configuration the probes run, the worst
// layer's relative standard error at the end (relative to the reference,
// or for a layer with a near-zero trace to the floor of Hutchinson's
// stopping rule), the time that error would
// take at the rate measured (SE ∝ 1/√n), extrapolated to 10 % and 5 %, the
// speed-up against full-data probes, and the worst relative error against
// the reference.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "probes:", err)
		os.Exit(1)
	}
}

// config is one measured configuration.
type config struct {
	batch int
	times []time.Duration // accepted probe i at times[i]
	res   *hessian.TraceResult
}

func run(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("probes", flag.ContinueOnError)
	modelPath := fs.String("model", "", "ONNX `FILE`")
	inputs := fs.String("inputs", "", "calibration inputs `X.npy`")
	labels := fs.String("labels", "", "calibration labels `Y.npy`")
	mnist := fs.Bool("mnist", false, "calibrate on the MNIST training set")
	samples := fs.Int("samples", 512, "first `N` samples")
	batches := fs.String("batches", "0,16,32,64,128", "probe batch sizes `LIST` (0: all samples)")
	seconds := fs.Float64("seconds", 90, "time budget `S` of every configuration")
	seed := fs.Uint64("seed", 1, "probe `SEED`")
	plotPath := fs.String("plot", "", "write the worst relative standard error against time to `FILE` (.svg)")
	refPath := fs.String("ref", "", "exact traces: a testdata/ref meta.json `FILE`")
	name := fs.String("name", "", "model `NAME` in the table and plot")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := model.Load(*modelPath)
	if err != nil {
		return err
	}
	e, err := nn.New(m, nil)
	if err != nil {
		return err
	}
	var ds data.Dataset
	switch {
	case *mnist:
		ds, err = data.MNIST(data.Train, *samples)
	default:
		var mem *data.Memory
		mem, err = data.LoadNPY(*inputs, *labels)
		if err == nil {
			ds = mem.Subset(*samples)
		}
	}
	if err != nil {
		return err
	}
	if *name == "" {
		*name = strings.TrimSuffix(*modelPath, ".onnx")
	}
	var cfgs []*config
	for _, f := range strings.Split(*batches, ",") {
		b, err := strconv.Atoi(f)
		if err != nil || b < 0 {
			return fmt.Errorf("-batches: %q is not a batch size", f)
		}
		c := &config{batch: b}
		set := &hessian.Settings{Seed: *seed, Tol: 1e-9, MinProbes: 2, MaxProbes: 1 << 20, ProbeBatch: b,
			TimeBudget: time.Duration(*seconds * float64(time.Second)),
			Progress:   func(p hessian.Progress) { c.times = append(c.times, p.Elapsed) }}
		s, err := plan.Analyze(context.Background(), &plan.Analysis{Engine: e, Data: ds, Trace: set})
		if err != nil {
			return err
		}
		c.res = s.Traces
		cfgs = append(cfgs, c)
		fmt.Fprintf(os.Stderr, "batch %d: %d probes in %v\n", b, c.res.Probes, c.res.Elapsed.Round(time.Millisecond))
	}
	noBias := map[string]bool{}
	for _, u := range e.Units() {
		noBias[u.Name] = u.BiasSize == 0
	}
	ref, exact, err := reference(cfgs, *refPath, noBias)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s, %d calibration samples, %.0f s per configuration, reference: %s\n\n", *name, ds.Len(), *seconds, exact)
	fmt.Fprintln(w, "| probe batch | probes | s per probe | worst rel. SE | time to 10 % | time to 5 % | speed-up | worst rel. error vs reference |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|--:|")
	var base float64
	for i, c := range cfgs {
		n := c.res.Probes
		se := worstSE(c, n, ref)
		t := c.times[n-1].Seconds()
		// SE² · t is constant at a steady rate: time to a target SE.
		k := se * se * t
		if i == 0 {
			base = k
		}
		label := strconv.Itoa(c.batch)
		if c.batch == 0 || c.batch >= ds.Len() {
			label = "all"
		}
		fmt.Fprintf(w, "| %s | %d | %.3g | %.1f %% | %s | %s | %.2f× | %.1f %% |\n", label, n, t/float64(n), 100*se,
			dur(k/0.01), dur(k/0.0025), base/k, 100*worstErr(c, n, ref))
	}
	if *plotPath != "" {
		return plotSE(cfgs, ref, *plotPath, *name, ds.Len())
	}
	return nil
}

func dur(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}

// stats returns block j's mean and standard error over the first n rows.
func stats(c *config, j, n int) (mean, se float64) {
	var s, ss float64
	for _, row := range c.res.Samples[:n] {
		s += row[j]
	}
	mean = s / float64(n)
	for _, row := range c.res.Samples[:n] {
		ss += (row[j] - mean) * (row[j] - mean)
	}
	return mean, math.Sqrt(ss / float64(n-1) / float64(n))
}

// scale is the denominator of layer j's relative errors: as in
// Hutchinson's stopping rule, |ref_j|, or for a layer with a near-zero
// trace 0.1·Size_j·Σ|ref|/ΣSize (hessian.Settings.NearZero).
func scale(c *config, j int, ref []float64) float64 {
	var sa, sz float64
	for i, b := range c.res.Blocks {
		sa += math.Abs(ref[i])
		sz += float64(b.Size)
	}
	return max(math.Abs(ref[j]), 0.1*float64(c.res.Blocks[j].Size)*sa/sz)
}

// worstSE is the largest relative standard error over layers after n
// probes.
func worstSE(c *config, n int, ref []float64) float64 {
	var w float64
	for j := range ref {
		_, se := stats(c, j, n)
		w = max(w, se/scale(c, j, ref))
	}
	return w
}

// worstErr is the largest relative error against the reference after n
// probes.
func worstErr(c *config, n int, ref []float64) float64 {
	var w float64
	for j := range ref {
		mean, _ := stats(c, j, n)
		w = max(w, math.Abs(mean-ref[j])/scale(c, j, ref))
	}
	return w
}

// reference returns every layer's reference trace and says what it is.
// Exact traces are used only for layers without bias (noBias), since the
// file's are over weight and bias.
func reference(cfgs []*config, refPath string, noBias map[string]bool) ([]float64, string, error) {
	blocks := cfgs[0].res.Blocks
	ref := make([]float64, len(blocks))
	var exact map[string]float64
	if refPath != "" {
		b, err := os.ReadFile(refPath)
		if err != nil {
			return nil, "", err
		}
		var meta struct {
			Exact map[string]float64 `json:"exact_block_traces"`
		}
		if err := json.Unmarshal(b, &meta); err != nil {
			return nil, "", fmt.Errorf("%s: %w", refPath, err)
		}
		exact = meta.Exact
	}
	nExact := 0
	for j, b := range blocks {
		if v, ok := exact[b.Name]; ok && noBias[b.Name] {
			ref[j] = v
			nExact++
			continue
		}
		var sw, swx float64
		for _, c := range cfgs {
			e := c.res.Blocks[j]
			wt := 1 / (e.StdErr * e.StdErr)
			sw += wt
			swx += wt * e.Trace
		}
		ref[j] = swx / sw
	}
	what := "the inverse-variance weighted mean of all configurations' final estimates"
	if nExact == len(blocks) {
		what = "exact traces (" + refPath + ")"
	} else if nExact > 0 {
		what = fmt.Sprintf("exact for %d of %d layers, else %s", nExact, len(blocks), what)
	}
	return ref, what, nil
}

// plotSE draws the worst relative standard error against seconds, log-log.
func plotSE(cfgs []*config, ref []float64, path, name string, n int) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: worst layer's relative standard error", name)
	p.X.Label.Text = "wall time (s)"
	p.Y.Label.Text = "relative standard error"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	for i, c := range cfgs {
		var pts plotter.XYs
		for k := 2; k <= c.res.Probes; k++ {
			pts = append(pts, plotter.XY{X: c.times[k-1].Seconds(), Y: worstSE(c, k, ref)})
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = plotColor(i)
		label := fmt.Sprintf("batch %d", c.batch)
		if c.batch == 0 || c.batch >= n {
			label = fmt.Sprintf("all %d samples", n)
		}
		p.Add(line)
		p.Legend.Add(label, line)
	}
	p.Legend.Top = true
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

// plotColor returns a distinct colour per configuration.
func plotColor(i int) color.Color {
	pal := []color.RGBA{{0, 0, 0, 255}, {214, 39, 40, 255}, {31, 119, 180, 255}, {44, 160, 44, 255}, {148, 103, 189, 255}, {255, 127, 14, 255}}
	return pal[i%len(pal)]
}
