package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// dataFlags selects calibration or evaluation data.
type dataFlags struct {
	source         string
	inputs, labels string
	samples        int
	batch, workers int
}

func (d *dataFlags) register(fs *flag.FlagSet, defSamples int, what string) {
	fs.StringVar(&d.source, "data", "", "`DATASET` for "+what+": mnist (the MNIST files shipped in the GoMNIST Go module)")
	fs.StringVar(&d.inputs, "inputs", "", "model inputs as a NumPy `FILE` (N×… float32/float64), with --labels")
	fs.StringVar(&d.labels, "labels", "", "integer class labels as a NumPy `FILE` (N), with --inputs")
	fs.IntVar(&d.samples, "samples", defSamples, "use the first `N` samples (0: all)")
	fs.IntVar(&d.batch, "batch-size", 0, "samples per engine work chunk `N` (0: default 32)")
	fs.IntVar(&d.workers, "workers", 0, "engine goroutines `N` (0: one per core)")
}

// load returns the dataset: MNIST's split, or the NumPy arrays.
func (d *dataFlags) load(split data.Split) (data.Dataset, error) {
	if d.samples < 0 {
		return nil, usageError{fmt.Errorf("flag --samples: must not be negative, got %d", d.samples)}
	}
	switch {
	case d.source != "" && (d.inputs != "" || d.labels != ""):
		return nil, usageError{fmt.Errorf("flags --data and --inputs/--labels: give one or the other")}
	case d.source == "mnist":
		return data.MNIST(split, d.samples)
	case d.source != "":
		return nil, usageError{fmt.Errorf("flag --data: unknown dataset %q (want mnist, or --inputs X.npy --labels Y.npy)", d.source)}
	case d.inputs != "" && d.labels != "":
		m, err := data.LoadNPY(d.inputs, d.labels)
		if err != nil {
			return nil, err
		}
		if d.samples > 0 && d.samples < m.Len() {
			return m.Subset(d.samples), nil
		}
		return m, nil
	case d.inputs != "" || d.labels != "":
		return nil, usageError{fmt.Errorf("flags --inputs and --labels: give both")}
	}
	return nil, usageError{fmt.Errorf("no data: give --data mnist or --inputs X.npy --labels Y.npy")}
}

// loadEngine loads an ONNX model and prepares the engine.
func (d *dataFlags) loadEngine(path string) (*nn.Engine, error) {
	m, err := model.Load(path)
	if err != nil {
		return nil, err
	}
	return d.engine(m, path)
}

// engine prepares the engine for a loaded model (path names it in errors).
func (d *dataFlags) engine(m *model.Model, path string) (*nn.Engine, error) {
	if d.batch < 0 || d.workers < 0 {
		return nil, usageError{fmt.Errorf("flags --batch-size and --workers must not be negative")}
	}
	e, err := nn.New(m, &nn.Options{BatchSize: d.batch, Workers: d.workers})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

// modelName is the model's file name without extension.
func modelName(path string) string {
	return strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
}

// isTerminal reports whether w is a terminal (progress is shown only there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress prints a self-overwriting status line on a terminal.
type progress struct {
	w  io.Writer
	on bool
}

func newProgress(w io.Writer) *progress { return &progress{w: w, on: isTerminal(w)} }

func (p *progress) printf(format string, args ...any) {
	if p.on {
		fmt.Fprintf(p.w, "\r\033[K"+format, args...)
	}
}

func (p *progress) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// solveProgress returns an ilp.Settings.Progress that shows a long ILP
// search on w when it is a terminal (nil otherwise), and a function that
// clears the line.
func solveProgress(w io.Writer) (func(time.Duration, float64, float64), func()) {
	p := newProgress(w)
	if !p.on {
		return nil, func() {}
	}
	return func(el time.Duration, obj, bound float64) {
		if math.IsInf(obj, 1) {
			p.printf("solving the ILP: %s, no plan yet, bound %.6g", el.Round(time.Second), bound)
			return
		}
		gap := (obj - bound) / math.Max(math.Abs(obj), 1e-300)
		p.printf("solving the ILP: %s, best %.10g, bound %.10g, gap %.2g", el.Round(time.Second), obj, bound, gap)
	}, p.done
}
