package main

import (
	"flag"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/nn"
)

// The values of --loss.
const (
	lossClass    = "class"
	lossPosition = "position"
	lossMSE      = "mse"
	lossKL       = "kl"
)

// ignoreIndex is the label of positions --loss position does not score
// (PyTorch's CrossEntropyLoss default ignore_index).
const ignoreIndex = -100

const lossHelp = "objective `LOSS` whose Hessian scores the layers: " +
	"class (cross-entropy against one class label per sample, --labels N), " +
	"position (per-token or per-pixel cross-entropy, --labels N×positions integers, -100 ignored; output N×C×… or N×…×C), " +
	"mse (mean squared error against float targets shaped like the output, --labels), " +
	"kl (no labels: KL divergence from the float model's own predictions, whose Hessian is the Fisher/Gauss–Newton matrix)"

// registerLoss registers --loss on a command that computes or evaluates
// the loss.
func (d *dataFlags) registerLoss(fs *flag.FlagSet) {
	fs.StringVar(&d.loss, "loss", lossClass, lossHelp)
}

// lossKind returns --loss, checked.
func (d *dataFlags) lossKind() (string, error) {
	k := strings.ToLower(strings.TrimSpace(d.loss))
	switch k {
	case "":
		return lossClass, nil
	case lossClass, lossPosition, lossMSE, lossKL:
		return k, nil
	}
	return "", usageError{fmt.Errorf("flag --loss: unknown loss %q (want class, position, mse or kl)", d.loss)}
}

// initialLoss is the loss the engine is made with: the kind of --loss,
// its labels filled in by setLoss once the data are read. KL takes the
// model's parameters as loaded as its reference.
func initialLoss(kind string) nn.Loss {
	switch kind {
	case lossPosition:
		return nn.PositionLabels{Ignore: ignoreIndex}
	case lossMSE:
		return nn.MSE{}
	case lossKL:
		return nn.KL{}
	}
	return nil
}

// checkLossData refuses, before any data are read, a --loss that the
// chosen data cannot serve: position and mse need label arrays (--labels
// or an .npz archive's), kl takes none; a command that reads the inputs
// only (dataFlags.inputsOnly) needs no labels whatever the loss.
func (d *dataFlags) checkLossData(kind string) error {
	kindData, _, _ := strings.Cut(d.source, ":")
	if d.inputsOnly {
		return nil
	}
	switch kind {
	case lossKL:
		if d.labels != "" {
			return usageError{fmt.Errorf("flags --loss kl and --labels: KL compares the model with its own float predictions and takes no labels; drop --labels")}
		}
		if d.source == "" && d.inputs == "" {
			return usageError{fmt.Errorf("no data: give --inputs X.npy (no labels with --loss kl) or --data")}
		}
	case lossPosition, lossMSE:
		what := map[string]string{lossPosition: "per-position labels (N×positions integers)", lossMSE: "float targets shaped like the output"}[kind]
		if d.source != "" && kindData != "npz" {
			return usageError{fmt.Errorf("flags --loss %s and --data %s: the loss needs %s, which --data %s does not have; give --inputs X.npy --labels Y.npy or --data npz:FILE with a labels array", kind, d.source, what, d.source)}
		}
		if d.source == "" && (d.inputs == "" || d.labels == "") {
			return usageError{fmt.Errorf("flag --loss %s: give --inputs X.npy and --labels Y.npy (%s) or --data npz:FILE", kind, what)}
		}
	}
	return nil
}

// loadUnlabelled reads the data of a loss that takes no class labels:
// --inputs files or an .npz archive matched to the model's inputs, or
// (for kl) any --data set, whose class labels are then ignored.
func (d *dataFlags) loadUnlabelled(split data.Split, e *nn.Engine, n int) (data.Dataset, error) {
	kind, arg, _ := strings.Cut(d.source, ":")
	var ds data.Dataset
	var err error
	switch {
	case d.inputs != "":
		ds, err = loadInputs(strings.Split(d.inputs, ","), "", e.Model())
	case kind == "npz" && arg != "":
		var z *data.NPZ
		if z, err = data.OpenNPZ(arg); err == nil {
			ds, err = z.MatchUnlabelled(inputNames(e.Model()))
		}
	default:
		saved := d.loss
		d.loss = lossClass // the data set's own reader; its labels are not used
		ds, err = d.loadN(split, e, n)
		d.loss = saved
		return ds, err
	}
	if err != nil {
		return nil, err
	}
	return data.Head(ds, n), nil
}

// setLoss gives the engine its loss for the loaded data: per-position
// labels or MSE targets read from --labels or the archive's labels array,
// checked against the model's output before any work. kl and class need
// nothing more.
func (d *dataFlags) setLoss(kind string, e *nn.Engine, ds data.Dataset) error {
	if kind != lossPosition && kind != lossMSE {
		return nil
	}
	var a *data.Array
	var src string
	var err error
	if d.labels != "" {
		src = "--labels " + d.labels
		a, err = data.LoadNPYArray(d.labels)
	} else {
		_, arg, _ := strings.Cut(d.source, ":")
		var z *data.NPZ
		if z, err = data.OpenNPZ(arg); err != nil {
			return err
		}
		defer z.Close()
		name := ""
		for _, c := range data.LabelNames {
			if slices.Contains(z.Names(), c) {
				name = c
				break
			}
		}
		if name == "" {
			return fmt.Errorf("--data %s: --loss %s needs an array named one of %s (the archive has %s)", d.source, kind, strings.Join(data.LabelNames, ", "), strings.Join(z.Names(), ", "))
		}
		src = fmt.Sprintf("--data %s (array %q)", d.source, name)
		a, err = z.Array(name)
	}
	if err != nil {
		return err
	}
	out := e.OutputShape()
	if len(a.Shape) < 1 || a.Shape[0] < ds.Len() {
		return fmt.Errorf("%s: shape %v, want the %d samples' labels first", src, a.Shape, ds.Len())
	}
	per := a.Shape[1:]
	var l nn.Loss
	switch kind {
	case lossPosition:
		if a.Int == nil {
			return fmt.Errorf("%s: dtype %s; per-position labels are integer class indices (−100: ignored)", src, a.DType)
		}
		axis := 0
		switch {
		case len(out) >= 2 && slices.Equal(per, out[1:]):
		case len(out) >= 2 && slices.Equal(per, out[:len(out)-1]):
			axis = -1
		default:
			return fmt.Errorf("%s: labels of shape %v per sample do not fit the model's output %v per sample: want %v (classes on axis 1, N×C×…) or %v (classes last, N×…×C)",
				src, per, out, tail(out, 1), head(out))
		}
		labels := make([]int, len(a.Int))
		for i, v := range a.Int {
			if v < math.MinInt32 || v > math.MaxInt32 {
				return fmt.Errorf("%s: label %d is %d, not a class index", src, i, v)
			}
			labels[i] = int(v)
		}
		l = nn.PositionLabels{Labels: labels, ClassAxis: axis, Ignore: ignoreIndex}
	case lossMSE:
		if a.Float == nil {
			return fmt.Errorf("%s: dtype %s; MSE targets are floating-point values", src, a.DType)
		}
		if !slices.Equal(per, out) {
			return fmt.Errorf("%s: targets of shape %v per sample, the model's output is %v per sample", src, per, out)
		}
		l = nn.MSE{Targets: a.Float}
	}
	if err := e.SetLoss(l); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if _, err := l.Prepare(out, ds); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	d.labelled, d.labelsPer = l, 1
	for _, v := range per {
		d.labelsPer *= v
	}
	return nil
}

// heldOutLoss returns the loss of setLoss for the samples from off on
// (plan --verify's held-out window): its labels or targets start at
// sample off. nil when the loss carries none (class, kl: the engine's own
// loss serves every window).
func (d *dataFlags) heldOutLoss(off int) nn.Loss {
	switch l := d.labelled.(type) {
	case nn.PositionLabels:
		l.Labels = l.Labels[off*d.labelsPer:]
		return l
	case nn.MSE:
		l.Targets = l.Targets[off*d.labelsPer:]
		return l
	}
	return nil
}

func tail(s []int, from int) []int {
	if len(s) < from {
		return nil
	}
	return s[from:]
}

func head(s []int) []int {
	if len(s) == 0 {
		return nil
	}
	return s[:len(s)-1]
}
