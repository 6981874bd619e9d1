package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/internal/table"
	"github.com/bitplan/bitplan/ort"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/profiles"
	"github.com/bitplan/bitplan/qdq"
)

// runMeasure times every unit of a model alone in ONNX Runtime at each
// candidate precision (a latency table for --latency-table), then the
// whole model at each uniform precision and under given plans, predicted
// (Σ of the table) against measured.
func runMeasure(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("measure", "MODEL.onnx --runtime ort [--bits LIST] [--data mnist] [--plan PLAN.json]... [-o TABLE.csv]", stdout)
	runtime := fs.String("runtime", "ort", "`RUNTIME` to measure in: ort (ONNX Runtime, builds with -tags ort)")
	ortLib := fs.String("ort-lib", "", "ONNX Runtime shared library `FILE` (default $"+ort.LibraryEnv+")")
	bits := fs.String("bits", "fp32,w8a8,w4a8,w4a4,w4a32", "precisions to time, comma-separated `LIST` (w4a32: INT4 weights, float inputs)")
	var df dataFlags
	df.register(fs, 64, "calibrating the whole-model QDQ exports (MNIST: the training set)")
	var plans multiString
	fs.Var(&plans, "plan", "also measure the whole model under this plan `FILE` (repeatable) and compare with the table's prediction")
	warm := fs.Int("warmup", latencyWarmup, "untimed runs `N` before timing")
	runs := fs.Int("runs", latencyRuns, "timed runs `N` of every model (the median is reported)")
	threads := fs.Int("threads", 1, "ONNX Runtime intra-op threads `N`")
	output := fs.String("o", "", "write the latency table (CSV layer,precision,ms) to `FILE`")
	format := fs.String("format", "table", "output `FORMAT` of the report: table or markdown")
	arg, f, help, err := parseOne(fs, args, "ONNX model", format)
	if help || err != nil {
		return err
	}
	if *runtime != "ort" {
		return usageError{fmt.Errorf("flag --runtime: unknown runtime %q (want ort)", *runtime)}
	}
	if f != table.Text && f != table.Markdown {
		return usageError{fmt.Errorf("flag --format: measure writes table or markdown (the CSV table goes to -o)")}
	}
	precs, err := profiles.ParsePrecisions(*bits)
	if err != nil {
		return usageError{fmt.Errorf("flag --bits: %v", err)}
	}
	if *runs < 1 || *warm < 0 || *threads < 1 {
		return usageError{fmt.Errorf("flags --runs, --warmup, --threads: want runs ≥ 1, warmup ≥ 0, threads ≥ 1")}
	}
	inputs := append([]string{arg, df.inputs, df.labels}, plans...)
	if *output != "" {
		for _, in := range inputs {
			if in != "" && sameFile(*output, in) {
				return usageError{fmt.Errorf("flag -o: %s is an input file; refusing to overwrite it", *output)}
			}
		}
	}
	var ps []*plan.Plan
	for _, path := range plans {
		p, warnings, err := plan.ReadFile(path)
		warn(stderr, warnings)
		if err != nil {
			return err
		}
		ps = append(ps, p)
	}
	if err := ort.Init(*ortLib); err != nil {
		return err
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return err
	}
	e, err := df.loadEngine(arg)
	if err != nil {
		return err
	}
	m := e.Model()
	opts := &ort.Options{Threads: *threads}
	timeModel := func(mb []byte, shape []int) (float64, error) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		r := rand.New(rand.NewPCG(1, 1))
		x := make([]float32, n)
		for i := range x {
			x[i] = r.Float32()
		}
		s, err := ort.Open(mb, opts)
		if err != nil {
			return 0, err
		}
		defer s.Close()
		l, err := s.Time(x, shape[0], *warm, *runs)
		if err != nil {
			return 0, err
		}
		return ms(l.Median), nil
	}
	// The fixed cost of one call (tensor set-up, dispatch), timed on an
	// Identity of one value, is not a layer's: the whole model pays it
	// once. Copying the layer's input and output stays in its figure.
	call, err := timeModel(ort.IdentityModel([]int{1}), []int{1})
	if err != nil {
		return err
	}
	pr := newProgress(stderr)
	units := e.Units()
	tab := map[string]map[profiles.Precision]float64{}
	var csv [][]string
	for _, u := range units {
		tab[u.Name] = map[profiles.Precision]float64{}
		mu := m.Unit(u.Name)
		in := m.Nodes[mu.Node].Inputs[0]
		if mu.Op != "Conv" {
			in = m.Nodes[mu.Node].Inputs[1-mu.WeightInput]
		}
		shape := append([]int{1}, m.Shapes.Dims[in][1:]...)
		for _, p := range precs {
			pr.printf("measure: %s at %s", u.Name, p)
			ub, err := qdq.UnitModel(m, u.Name, p.W, p.A, 1)
			if err != nil {
				return err
			}
			t, err := timeModel(ub, shape)
			if err != nil {
				return fmt.Errorf("unit %q at %s: %w", u.Name, p, err)
			}
			t = math.Max(t-call, minLayerMS)
			tab[u.Name][p] = t
			csv = append(csv, []string{u.Name, p.String(), strconv.FormatFloat(t, 'g', 6, 64)})
		}
	}
	sample := append([]int{1}, e.SampleShape()...)
	var calib data.Dataset
	needCalib := len(ps) > 0
	for _, p := range precs {
		needCalib = needCalib || p.A < qdq.FloatBits
	}
	if needCalib {
		if calib, err = df.load(data.Train, e); err != nil {
			return err
		}
	}
	type whole struct {
		name            string
		predicted, meas float64
	}
	var wholes []whole
	measureLayers := func(name string, layers []eval.Layer, pred float64) error {
		pr.printf("measure: whole model, %s", name)
		mb := b
		if layers != nil {
			r, err := qdq.Export(ctx, &qdq.Config{Model: b, Engine: e, Layers: layers, Calib: calib})
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if mb, err = r.Marshal(); err != nil {
				return err
			}
		}
		t, err := timeModel(mb, sample)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		wholes = append(wholes, whole{name, pred, t})
		return nil
	}
	for _, p := range precs {
		var layers []eval.Layer
		pred := 0.0
		for _, u := range units {
			pred += tab[u.Name][p]
			if p.W < qdq.FloatBits {
				ab := p.A
				if ab >= qdq.FloatBits {
					ab = 0
				}
				layers = append(layers, eval.Layer{Name: u.Name, Bits: p.W, ABits: ab})
			}
		}
		if err := measureLayers("uniform "+p.String(), layers, pred); err != nil {
			return err
		}
	}
	for i, p := range ps {
		layers, err := eval.FromPlan(p, e)
		if err != nil {
			return fmt.Errorf("%s: %w", plans[i], err)
		}
		pred := 0.0
		for _, l := range layers {
			t, ok := tab[l.Name][profiles.Precision{W: l.Bits, A: l.ABits}]
			if !ok {
				pred = math.NaN()
				fmt.Fprintf(stderr, "bitplan: %s: %s at w%da%d is not in the timed precisions (--bits); no prediction\n", plans[i], l.Name, l.Bits, l.ABits)
				break
			}
			pred += t
		}
		if err := measureLayers("plan "+filepath.Base(plans[i]), layers, pred); err != nil {
			return err
		}
	}
	pr.done()
	if *output != "" {
		err := writeOutput("o", *output, inputs, func(w io.Writer) error {
			fmt.Fprintf(w, "# bitplan measure %s: ONNX Runtime %s, %d thread(s), batch 1, median of %d runs\n", filepath.Base(arg), ort.Version(), *threads, *runs)
			fmt.Fprintln(w, "layer,precision,ms")
			for _, r := range csv {
				fmt.Fprintf(w, "%s,%s,%s\n", r[0], r[1], r[2])
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	md := f == table.Markdown
	fmt.Fprintf(stdout, "bitplan measure: %s in ONNX Runtime %s, %d thread(s), batch 1, median of %d runs (ms)\n", modelName(arg), ort.Version(), *threads, *runs)
	if md {
		fmt.Fprintln(stdout)
	}
	hdr := []any{"layer"}
	for _, p := range precs {
		hdr = append(hdr, p.String())
	}
	t := table.New(stdout, md, len(hdr))
	t.Header(hdr...)
	for _, u := range units {
		row := []any{u.Name}
		for _, p := range precs {
			row = append(row, g4ms(tab[u.Name][p]))
		}
		if err := t.Append(row...); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "per-layer figures exclude the fixed cost of one call (%s ms, an Identity of one value); the whole model pays it once\n", g4ms(call))
	if md {
		fmt.Fprintln(stdout)
	}
	t = table.New(stdout, md, 4)
	t.Header("whole model", "Σ units (predicted)", "measured", "error")
	for _, w := range wholes {
		errPct := "-"
		if !math.IsNaN(w.predicted) {
			errPct = fmt.Sprintf("%+.1f %%", 100*(w.predicted-w.meas)/w.meas)
		}
		if err := t.Append(w.name, g4ms(w.predicted), g4ms(w.meas), errPct); err != nil {
			return err
		}
	}
	return t.Render()
}

// minLayerMS is the least latency a layer is given after the call
// overhead is subtracted (a latency table needs positive entries).
const minLayerMS = 1e-4

func g4ms(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// multiString is a repeatable string flag.
type multiString []string

func (m *multiString) String() string { return fmt.Sprint(*m) }

func (m *multiString) Set(s string) error {
	*m = append(*m, s)
	return nil
}
