package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/data/synthetic"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// dataFlags selects calibration or evaluation data.
type dataFlags struct {
	source         string
	inputs, labels string
	// loss is --loss (registerLoss; "" on commands without it: class).
	loss string
	// labelled is the loss setLoss made from per-sample labels or
	// targets (position, mse) and labelsPer their values per sample.
	labelled  nn.Loss
	labelsPer int
	// inputsOnly: the command runs the model forward only (quantize's
	// calibration): the engine scores no loss (nn.Unscored) and reads no
	// --labels whatever --loss says; a data set's own labels are read
	// and ignored.
	inputsOnly     bool
	samples        int
	batch, workers int
	memory         string
	precision      string
	pre            preFlags
	syn            synFlags
	stderr         io.Writer
}

// dataHelp describes the --data values.
const dataHelp = "mnist (the MNIST files shipped in the GoMNIST Go module), fashion-mnist (Debian's dataset-fashion-mnist), " +
	"idx:DIR[/PREFIX] (IDX files of the MNIST family), imagefolder:DIR (torchvision's ImageFolder layout, with --preprocess or --resize/--crop/--mean/--std), " +
	"npz:FILE (NumPy archive: arrays named as the model's inputs, and labels), " +
	"synthetic (data-free: inputs optimised to match the model's BatchNorm statistics, ZeroQ; see --synthetic-*)"

func (d *dataFlags) register(fs *flag.FlagSet, defSamples int, what string) {
	fs.StringVar(&d.source, "data", "", "`DATASET` for "+what+": "+dataHelp)
	fs.StringVar(&d.inputs, "inputs", "", "model inputs as NumPy `FILES` (N×…), with --labels: one file, or one per model input separated by commas (ids.npy,mask.npy), matched by name (file ids.npy → input ids) or else in order; integer inputs (token ids, masks) take integer arrays")
	fs.StringVar(&d.labels, "labels", "", "integer class labels as a NumPy `FILE` (N), with --inputs")
	fs.IntVar(&d.samples, "samples", defSamples, "use the first `N` samples (0: all)")
	fs.IntVar(&d.batch, "batch-size", 0, "samples per engine work chunk `N` (0: default 32; lowered to fit --memory)")
	fs.StringVar(&d.memory, "memory", "50%", "engine memory limit `SIZE` (e.g. 4GB, 2.5GiB, or a percentage of this machine's memory)")
	fs.IntVar(&d.workers, "workers", 0, "engine goroutines `N` (0: one per core)")
	fs.StringVar(&d.precision, "engine-precision", "auto", "engine arithmetic `P`: float32, float64 (the reference), or auto (float32 for models of at least 2^20 parameters, float64 below)")
	d.pre.register(fs)
	d.syn.register(fs)
}

// hasSplits reports whether --data names a dataset with training and test
// splits of its own (mnist, fashion-mnist, idx:).
func (d *dataFlags) hasSplits() bool {
	return d.source == "mnist" || d.source == "fashion-mnist" || strings.HasPrefix(d.source, "idx:")
}

// load returns the dataset: a split of MNIST, Fashion-MNIST or an IDX
// folder, an image folder, an .npz archive matched to the model's inputs,
// or the NumPy arrays; at most --samples of them.
func (d *dataFlags) load(split data.Split, e *nn.Engine) (data.Dataset, error) {
	return d.loadN(split, e, d.samples)
}

// loadN is load with n samples (0: all).
func (d *dataFlags) loadN(split data.Split, e *nn.Engine, n int) (data.Dataset, error) {
	if n < 0 {
		return nil, usageError{fmt.Errorf("flag --samples: must not be negative, got %d", n)}
	}
	if d.source != "" && (d.inputs != "" || d.labels != "") {
		return nil, usageError{fmt.Errorf("flags --data and --inputs/--labels: give one or the other")}
	}
	lk, err := d.lossKind()
	if err != nil {
		return nil, err
	}
	if d.inputsOnly {
		if d.source == "" && d.inputs == "" {
			return nil, usageError{fmt.Errorf("no data: give --inputs X.npy (the model's inputs; no labels needed) or --data mnist (or another --data)")}
		}
		if kind, arg, _ := strings.Cut(d.source, ":"); d.inputs != "" || (kind == "npz" && arg != "") {
			return d.loadUnlabelled(split, e, n)
		}
		lk = lossClass // a data set with labels of its own: read, not used
	}
	if lk != lossClass {
		if err := d.checkLossData(lk); err != nil {
			return nil, err
		}
		ds, err := d.loadUnlabelled(split, e, n)
		if err != nil {
			return nil, err
		}
		if err := d.setLoss(lk, e, ds); err != nil {
			return nil, err
		}
		return ds, nil
	}
	kind, arg, _ := strings.Cut(d.source, ":")
	if d.source != "synthetic" && d.syn.set() {
		return nil, usageError{fmt.Errorf("flags --synthetic-* go with --data synthetic")}
	}
	if kind != "imagefolder" && d.pre.set() {
		return nil, usageError{fmt.Errorf("flags --preprocess, --resize, --crop, --mean, --std, --layout, --grayscale and --shuffle go with --data imagefolder:DIR")}
	}
	if (kind == "idx" || kind == "imagefolder" || kind == "npz") && arg == "" {
		return nil, usageError{fmt.Errorf("flag --data %s: give a path, e.g. --data %s:%s", d.source, kind, map[string]string{"idx": "DIR", "imagefolder": "DIR", "npz": "FILE.npz"}[kind])}
	}
	var ds data.Dataset
	switch {
	case d.source == "mnist":
		return data.MNIST(split, n)
	case d.source == "fashion-mnist":
		ds, err = data.FashionMNIST(split)
	case kind == "idx":
		ds, err = data.OpenIDXDir(arg, split)
	case kind == "imagefolder":
		var p data.Preprocess
		if p, err = d.pre.preprocess(); err != nil {
			return nil, usageError{err}
		}
		var f *data.ImageFolder
		if f, err = data.OpenImageFolder(arg, p); err == nil {
			if d.pre.shuffle != 0 {
				f.Shuffle(d.pre.shuffle)
			}
			if len(f.Skipped) > 0 && d.stderr != nil {
				fmt.Fprintf(d.stderr, "bitplan: %s: skipped %d files without an image extension (as ImageFolder does), e.g. %s\n", arg, len(f.Skipped), f.Skipped[0])
			}
			ds = f
		}
	case kind == "npz":
		var z *data.NPZ
		if z, err = data.OpenNPZ(arg); err == nil {
			ds, err = z.Match(inputNames(e.Model()))
		}
	case d.source == "synthetic":
		return d.syn.generate(e, d.stderr)
	case d.source != "":
		return nil, usageError{fmt.Errorf("flag --data: unknown dataset %q (want %s; or --inputs X.npy --labels Y.npy)", d.source, dataHelp)}
	case d.inputs != "" && d.labels != "" && (strings.Contains(d.inputs, ",") || !singleFloatInput(e.Model())):
		ds, err = loadInputs(strings.Split(d.inputs, ","), d.labels, e.Model())
	case d.inputs != "" && d.labels != "":
		if ds, err = data.LoadNPY(d.inputs, d.labels); err == nil && e != nil {
			ds = data.Head(ds, n)
			return ds, d.checkNPY(ds, e)
		}
	case d.inputs != "" || d.labels != "":
		return nil, usageError{fmt.Errorf("flags --inputs and --labels: give both")}
	default:
		return nil, usageError{fmt.Errorf("no data: give --data mnist (or another --data) or --inputs X.npy --labels Y.npy")}
	}
	if err != nil {
		return nil, err
	}
	return data.Head(ds, n), nil
}

// checkNPY checks NumPy data against the model before any work, naming the
// file at fault: --inputs for an empty set or a wrong sample shape,
// --labels for a label outside the model's classes.
func (d *dataFlags) checkNPY(ds data.Dataset, e *nn.Engine) error {
	err := data.Check(ds, e.SampleShape(), e.Classes())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, data.ErrLabel):
		return fmt.Errorf("--labels %s: %w", d.labels, err)
	case ds.Len() == 0:
		return fmt.Errorf("--inputs %s and --labels %s: %w", d.inputs, d.labels, err)
	}
	return fmt.Errorf("--inputs %s: %w", d.inputs, err)
}

// synFlags are the flags of --data synthetic.
type synFlags struct {
	samples, steps int
	lr             float64
	prior          string
	seed           uint64
}

func (f *synFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.samples, "synthetic-samples", 64, "with --data synthetic: make `N` inputs (optimised in batches of 32)")
	fs.IntVar(&f.steps, "synthetic-steps", 500, "with --data synthetic: `N` Adam steps per batch")
	fs.Float64Var(&f.lr, "synthetic-lr", 0.1, "with --data synthetic: Adam's initial step `SIZE` (cosine decay to 1%)")
	fs.StringVar(&f.prior, "synthetic-prior", "0,1", "with --data synthetic: `MEAN,STD` of the inputs (ZeroQ's prior for normalised images; none: no prior)")
	fs.Uint64Var(&f.seed, "synthetic-seed", 1, "with --data synthetic: `SEED` of the initial noise")
}

func (f *synFlags) set() bool {
	return f.samples != 64 || f.steps != 500 || f.lr != 0.1 || f.prior != "0,1" || f.seed != 1
}

// generate makes the synthetic dataset, showing progress on stderr.
func (f *synFlags) generate(e *nn.Engine, stderr io.Writer) (data.Dataset, error) {
	if f.samples <= 0 || f.steps <= 0 || !(f.lr > 0) {
		return nil, usageError{fmt.Errorf("flags --synthetic-samples %d, --synthetic-steps %d, --synthetic-lr %g: want positive values", f.samples, f.steps, f.lr)}
	}
	s := &synthetic.Settings{Samples: f.samples, Steps: f.steps, LR: f.lr, Seed: f.seed}
	if f.prior == "none" {
		s.NoPrior = true
	} else {
		v, err := parseFloats(f.prior)
		if err != nil || len(v) != 2 {
			return nil, usageError{fmt.Errorf("flag --synthetic-prior %q: want MEAN,STD or none", f.prior)}
		}
		s.InputMean, s.InputStd = v[:1], v[1:]
	}
	if stderr == nil {
		stderr = io.Discard
	}
	pr := newProgress(stderr)
	s.Progress = func(b, nb, st, ns int, loss float64) {
		pr.printf("synthetic data: batch %d of %d, step %d of %d, BatchNorm statistics loss %.4g", b, nb, st, ns, loss)
	}
	ds, rep, err := synthetic.Generate(context.Background(), e, s)
	pr.done()
	if err != nil {
		return nil, err
	}
	for i := range rep.Start {
		fmt.Fprintf(stderr, "bitplan: synthetic batch %d: BatchNorm statistics loss %.4g → %.4g over %d nodes\n", i+1, rep.Start[i], rep.End[i], rep.BatchNorms)
	}
	return ds, nil
}

// singleFloatInput reports whether m has one floating-point input (or m is
// nil), the case data.LoadNPY reads.
func singleFloatInput(m *model.Model) bool {
	return m == nil || (len(m.Inputs) == 1 && !m.Inputs[0].Type.IsInt())
}

// loadInputs reads one .npy file per model input and matches them to m's
// inputs by name or order, checking dtypes and sample shapes.
func loadInputs(files []string, labels string, m *model.Model) (data.Dataset, error) {
	a, err := data.LoadNPYInputs(files, labels)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return a, nil
	}
	specs := make([]data.InputSpec, len(m.Inputs))
	for i, in := range m.Inputs {
		specs[i] = data.InputSpec{Name: in.Name, Integer: in.Type.IsInt(), Type: in.Type.String()}
		if in.Shape != nil {
			specs[i].Shape = in.Shape[1:]
		}
	}
	if err := a.MatchInputs(specs); err != nil {
		return nil, fmt.Errorf("flag --inputs: %w", err)
	}
	return a, nil
}

// inputNames returns the model's graph input names.
func inputNames(m *model.Model) []string {
	var n []string
	for _, in := range m.Inputs {
		n = append(n, in.Name)
	}
	return n
}

// preFlags are the image preprocessing flags of --data imagefolder:DIR.
type preFlags struct {
	preset, resize, crop, mean, std, layout string
	gray                                    bool
	shuffle                                 uint64
}

func (p *preFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.preset, "preprocess", "", "image preprocessing `PRESET`: imagenet (torchvision's evaluation transform: Resize(256) bilinear antialiased, CenterCrop(224), ImageNet mean/std); other flags override its parts")
	fs.StringVar(&p.resize, "resize", "", "resize images: `N` makes the shorter side N (torchvision's Resize(N)), HxW an exact size")
	fs.StringVar(&p.crop, "crop", "", "center-crop images to `N`×N or HxW (zero padding where smaller)")
	fs.StringVar(&p.mean, "mean", "", "subtract per-channel `MEAN`s (comma-separated, e.g. 0.485,0.456,0.406) after scaling to [0, 1]")
	fs.StringVar(&p.std, "std", "", "divide by per-channel `STD`s (comma-separated) after --mean")
	fs.StringVar(&p.layout, "layout", "", "image sample `LAYOUT`: NCHW (default) or NHWC")
	fs.BoolVar(&p.gray, "grayscale", false, "convert images to one channel (Pillow's L) instead of RGB")
	fs.Uint64Var(&p.shuffle, "shuffle", 0, "shuffle the image folder's files with `SEED` before taking --samples (0: ImageFolder's class-sorted order, whose first samples are all of the first class)")
}

func (p *preFlags) set() bool {
	return p.preset != "" || p.resize != "" || p.crop != "" || p.mean != "" || p.std != "" || p.layout != "" || p.gray || p.shuffle != 0
}

// preprocess returns the preset with the other flags applied over it.
func (p *preFlags) preprocess() (data.Preprocess, error) {
	var out data.Preprocess
	switch p.preset {
	case "":
	case "imagenet":
		out = data.ImageNet
	default:
		return out, fmt.Errorf("flag --preprocess: unknown preset %q (want imagenet)", p.preset)
	}
	var err error
	if p.resize != "" {
		if out.Resize, err = parseHW(p.resize, true); err != nil {
			return out, fmt.Errorf("flag --resize: %v", err)
		}
	}
	if p.crop != "" {
		if out.Crop, err = parseHW(p.crop, false); err != nil {
			return out, fmt.Errorf("flag --crop: %v", err)
		}
	}
	if p.mean != "" {
		if out.Mean, err = parseFloats(p.mean); err != nil {
			return out, fmt.Errorf("flag --mean: %v", err)
		}
	}
	if p.std != "" {
		if out.Std, err = parseFloats(p.std); err != nil {
			return out, fmt.Errorf("flag --std: %v", err)
		}
	}
	if p.layout != "" {
		out.Layout = data.Layout(strings.ToUpper(p.layout))
	}
	out.Gray = out.Gray || p.gray
	if err := out.Check(); err != nil {
		return out, fmt.Errorf("image preprocessing: %v", err)
	}
	return out, nil
}

// parseHW parses N or HxW. With short, N means the shorter side ([N 0]);
// otherwise N means N×N.
func parseHW(s string, short bool) ([2]int, error) {
	hs, ws, two := strings.Cut(strings.ToLower(s), "x")
	h, err := strconv.Atoi(strings.TrimSpace(hs))
	if err != nil || h <= 0 {
		return [2]int{}, fmt.Errorf("%q: want a positive size N or HxW", s)
	}
	if !two {
		if short {
			return [2]int{h, 0}, nil
		}
		return [2]int{h, h}, nil
	}
	w, err := strconv.Atoi(strings.TrimSpace(ws))
	if err != nil || w <= 0 {
		return [2]int{}, fmt.Errorf("%q: want a positive size N or HxW", s)
	}
	return [2]int{h, w}, nil
}

// parseFloats parses comma-separated finite numbers.
func parseFloats(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%q: want comma-separated numbers", s)
		}
		out = append(out, v)
	}
	return out, nil
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
	lim, err := d.memoryLimit()
	if err != nil {
		return nil, err
	}
	prec, err := d.enginePrecision()
	if err != nil {
		return nil, err
	}
	batch := d.batch
	if batch == 0 {
		batch = 32
	}
	lk, err := d.lossKind()
	if err != nil {
		return nil, err
	}
	if err := d.checkLossData(lk); err != nil {
		return nil, err
	}
	loss := initialLoss(lk)
	if d.inputsOnly {
		loss = nn.Unscored{}
	}
	e, err := nn.New(m, &nn.Options{BatchSize: batch, Workers: d.workers, Memory: lim, Precision: prec, Loss: loss})
	var me *nn.MemoryError
	if errors.As(err, &me) {
		return nil, fmt.Errorf("%s: %w; raise --memory (now %s) or run on a machine with more memory", path, err, d.memory)
	}
	if err != nil && strings.Contains(err.Error(), "batch×classes") {
		return nil, fmt.Errorf("%s: %w\n  (with --loss %s; for per-token or per-pixel outputs give --loss position, for regression --loss mse)", path, err, lk)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

// enginePrecision resolves --engine-precision (named apart from prune's
// --precision, the weight/activation widths of its cost model).
func (d *dataFlags) enginePrecision() (nn.Precision, error) {
	p, err := nn.ParsePrecision(d.precision)
	if err != nil {
		return 0, usageError{fmt.Errorf("flag --engine-precision: %v", err)}
	}
	return p, nil
}

// memoryLimit resolves --memory to bytes: a size, or a percentage of the
// machine's memory (MemTotal of /proc/meminfo; no limit where it cannot be
// read).
func (d *dataFlags) memoryLimit() (int64, error) {
	spec, err := budget.Parse(budget.Size, d.memory)
	if err != nil {
		return 0, usageError{fmt.Errorf("flag --memory: %v", err)}
	}
	if !spec.Relative {
		if spec.Value < 1 {
			return 0, usageError{fmt.Errorf("flag --memory: %q is below one byte", d.memory)}
		}
		return int64(spec.Value), nil
	}
	total := machineMemory()
	if total == 0 {
		return 0, nil
	}
	return int64(spec.Resolve(0, float64(total))), nil
}

// machineMemory returns MemTotal in bytes, or 0 when unknown.
func machineMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
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
