package eval

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/nn"
)

// CalibMethod chooses how an activation's range is set from calibration
// data.
type CalibMethod int

const (
	// MinMax takes the smallest and largest value seen (the default).
	MinMax CalibMethod = iota
	// Percentile clips the range to the values at the Percentile-th (and,
	// for inputs with negative values, the (100 − Percentile)-th)
	// percentile of the calibration values.
	Percentile
	// MSE clips the min/max range by the factor α ∈ [0.2, 1] that
	// minimises the squared quantization error Σ (Q(x) − x)² over the
	// calibration values at the layer's activation width (Nagel et al.,
	// arXiv:2106.08295, §3.5, the rule sensitivity.Quantizer applies to
	// weights).
	MSE
)

// DefaultPercentile is the percentile of Percentile calibration when
// Calibration.Percentile is 0 (that of ONNX Runtime's percentile
// calibrator, 99.999).
const DefaultPercentile = 99.999

// histBins is the number of histogram bins of Percentile and MSE
// calibration over [min(lo, 0), max(hi, 0)] (ONNX Runtime's calibrators
// use 2048 too). Values are represented by their bin's centre, an error of
// at most half a bin, (hi − lo)/4096: far below an 8-bit step.
const histBins = 2048

// Calibration says how activation ranges are chosen. The zero value is
// min/max.
type Calibration struct {
	Method CalibMethod
	// Percentile is the percentile of Percentile, in (50, 100]; 0 means
	// DefaultPercentile.
	Percentile float64
}

// String names the calibration the way ParseCalibration reads it:
// "minmax", "percentile:99.999", "mse".
func (c Calibration) String() string {
	switch c.Method {
	case Percentile:
		return "percentile:" + strconv.FormatFloat(c.percentile(), 'g', -1, 64)
	case MSE:
		return "mse"
	}
	return "minmax"
}

func (c Calibration) percentile() float64 {
	if c.Percentile == 0 {
		return DefaultPercentile
	}
	return c.Percentile
}

// ParseCalibration reads a calibration spec: "minmax" (or ""),
// "percentile" or "percentile:P" with P in (50, 100], or "mse". The error
// names the spec and what was expected.
func ParseCalibration(spec string) (Calibration, error) {
	s := strings.ToLower(strings.TrimSpace(spec))
	switch {
	case s == "" || s == "minmax":
		return Calibration{}, nil
	case s == "mse":
		return Calibration{Method: MSE}, nil
	case s == "percentile":
		return Calibration{Method: Percentile}, nil
	case strings.HasPrefix(s, "percentile:"):
		p, err := strconv.ParseFloat(strings.TrimPrefix(s, "percentile:"), 64)
		if err != nil || !(p > 50 && p <= 100) {
			return Calibration{}, fmt.Errorf("calibration %q: want percentile:P with P in (50, 100], e.g. percentile:99.99", spec)
		}
		return Calibration{Method: Percentile, Percentile: p}, nil
	}
	return Calibration{}, fmt.Errorf("calibration %q: unknown method (want minmax, percentile[:P] or mse)", spec)
}

// histogram counts values in histBins equal bins over [lo, hi].
type histogram struct {
	mu     sync.Mutex
	lo, hi float64
	n      [histBins]float64
}

func (h *histogram) width() float64 { return (h.hi - h.lo) / histBins }

// add counts x (values outside [lo, hi] go to the end bins).
func (h *histogram) add(x []float64) {
	var local [histBins]float64
	w := h.width()
	for _, v := range x {
		i := 0
		if w > 0 {
			i = int((v - h.lo) / w)
		}
		i = max(0, min(histBins-1, i))
		local[i]++
	}
	h.mu.Lock()
	for i, c := range local {
		h.n[i] += c
	}
	h.mu.Unlock()
}

// quantile returns the value below which a fraction p of the counts lie
// (the upper edge of the bin where the cumulative count reaches p).
func (h *histogram) quantile(p float64) float64 {
	var total float64
	for _, c := range h.n {
		total += c
	}
	target, cum := p*total, 0.0
	for i, c := range h.n {
		cum += c
		if cum >= target {
			return h.lo + float64(i+1)*h.width()
		}
	}
	return h.hi
}

// mseRange returns the range [α·r.Min, α·r.Max] (α on the grid of
// sensitivity.Quantizer's MSE clipping) whose bits-wide quantizer has the
// least squared error over the histogram's bin centres.
func (h *histogram) mseRange(bits int, r Range) (Range, error) {
	const grid, low = 80, 0.2
	centres := make([]float64, histBins)
	w := h.width()
	for i := range centres {
		centres[i] = h.lo + (float64(i)+0.5)*w
	}
	q := make([]float64, histBins)
	best, bestErr := r, math.Inf(1)
	for g := grid - 1; g >= 0; g-- {
		a := low + (1-low)*float64(g)/float64(grid-1)
		cand := Range{Min: a * r.Min, Max: a * r.Max}
		aq, err := NewActQuantizer(bits, cand)
		if err != nil {
			return Range{}, err
		}
		copy(q, centres)
		aq.Quantize(q)
		var e float64
		for i, c := range h.n {
			d := q[i] - centres[i]
			e += c * d * d
		}
		if e < bestErr {
			best, bestErr = cand, e
		}
	}
	return best, nil
}

// CalibrateWith returns every unit's input range over ds chosen by c:
// min/max (Calibrate), or clipped by percentile or MSE from a histogram
// of a second pass. bits gives the activation width of the units MSE
// needs (a unit missing from bits keeps its min/max range under MSE). Like
// Calibrate it runs at the engine's current weights and removes the
// engine's input quantizers.
func CalibrateWith(ctx context.Context, e *nn.Engine, ds data.Dataset, c Calibration, bits map[string]int) (map[string]Range, error) {
	ranges, err := Calibrate(ctx, e, ds)
	if err != nil || c.Method == MinMax {
		return ranges, err
	}
	if c.Method == Percentile {
		if p := c.percentile(); !(p > 50 && p <= 100) {
			return nil, fmt.Errorf("eval: percentile %g out of range (50, 100]", p)
		}
	} else if c.Method != MSE {
		return nil, fmt.Errorf("eval: unknown calibration method %d", c.Method)
	}
	units := e.Units()
	hist := make([]*histogram, len(units))
	e.ClearInputQuantizers()
	defer e.ClearInputQuantizers()
	for i, u := range units {
		if !u.HasInput {
			continue
		}
		r := ranges[u.Name]
		h := &histogram{lo: math.Min(r.Min, 0), hi: math.Max(r.Max, 0)}
		hist[i] = h
		if err := e.SetInputQuantizer(u.Name, h.add); err != nil {
			return nil, err
		}
	}
	if _, err := e.Evaluate(ctx, ds); err != nil {
		return nil, fmt.Errorf("eval: calibration histogram: %w", err)
	}
	for i, u := range units {
		h, r := hist[i], ranges[u.Name]
		if h == nil {
			continue
		}
		switch c.Method {
		case Percentile:
			p := c.percentile() / 100
			nr := Range{Min: r.Min, Max: math.Min(r.Max, h.quantile(p))}
			if r.Min < 0 {
				nr.Min = math.Max(r.Min, h.quantile(1-p))
			}
			nr.Min, nr.Max = math.Min(nr.Min, nr.Max), math.Max(nr.Min, nr.Max)
			ranges[u.Name] = nr
		case MSE:
			b, ok := bits[u.Name]
			if !ok {
				continue
			}
			nr, err := h.mseRange(b, r)
			if err != nil {
				return nil, fmt.Errorf("eval: layer %q: %w", u.Name, err)
			}
			ranges[u.Name] = nr
		}
	}
	return ranges, nil
}

// describeCalibration is the report's text for the activation quantizer.
func describeCalibration(c Calibration) string {
	var how string
	switch c.Method {
	case Percentile:
		how = fmt.Sprintf("range clipped at the %g-th percentile", c.percentile())
	case MSE:
		how = "min/max range clipped to the least squared error at the layer's width"
	default:
		how = "min/max"
	}
	return "per-tensor " + how + " over the calibration set; unsigned [0, max] when the input is non-negative, else asymmetric"
}
