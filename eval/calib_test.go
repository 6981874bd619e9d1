package eval

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bitplan/bitplan/data"
)

func TestHistogramQuantileMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	x := make([]float64, 50000)
	for i := range x {
		x[i] = math.Exp(r.NormFloat64()) // heavy right tail
	}
	h := &histogram{lo: 0, hi: slices.Max(x)}
	h.add(x[:20000])
	h.add(x[20000:])
	s := slices.Clone(x)
	slices.Sort(s)
	for _, p := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := s[int(math.Ceil(p*float64(len(s))))-1]
		got := h.quantile(p)
		// The histogram answers to within one bin.
		if math.Abs(got-want) > 1.0001*h.width() {
			t.Errorf("quantile %g: histogram %g, sorted %g (bin %g)", p, got, want, h.width())
		}
	}
}

func TestMSERangeNoWorseThanMinMax(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 1))
	x := make([]float64, 20000)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	x[0] = 12 // an outlier stretches min/max
	rg := Range{Min: slices.Min(x), Max: slices.Max(x)}
	h := &histogram{lo: rg.Min, hi: rg.Max}
	h.add(x)
	sqErr := func(rg Range, bits int) float64 {
		q, err := NewActQuantizer(bits, rg)
		if err != nil {
			t.Fatal(err)
		}
		y := slices.Clone(x)
		q.Quantize(y)
		var e float64
		for i := range x {
			e += (y[i] - x[i]) * (y[i] - x[i])
		}
		return e
	}
	for _, bits := range []int{4, 8} {
		m, err := h.mseRange(bits, rg)
		if err != nil {
			t.Fatal(err)
		}
		if m.Max >= rg.Max || m.Min < rg.Min {
			t.Errorf("%d bits: MSE range %v does not clip the outlier of %v", bits, m, rg)
		}
		if em, e0 := sqErr(m, bits), sqErr(rg, bits); em > e0 {
			t.Errorf("%d bits: MSE range %v has error %g > min/max %g", bits, m, em, e0)
		}
	}
}

func TestParseCalibration(t *testing.T) {
	for spec, want := range map[string]string{"": "minmax", "MinMax": "minmax", "mse": "mse",
		"percentile": "percentile:99.999", "percentile:99.9": "percentile:99.9"} {
		c, err := ParseCalibration(spec)
		if err != nil || c.String() != want {
			t.Errorf("ParseCalibration(%q) = %v, %v; want %s", spec, c, err, want)
		}
	}
	for _, bad := range []string{"entropy", "percentile:40", "percentile:x", "percentile:101"} {
		if _, err := ParseCalibration(bad); err == nil {
			t.Errorf("ParseCalibration(%q) succeeded", bad)
		}
	}
}

func TestCalibrateWithClipsInsideMinMax(t *testing.T) {
	e := lenet(t)
	calib := mnist(t, data.Train, 32)
	ctx := context.Background()
	mm, err := Calibrate(ctx, e, calib)
	if err != nil {
		t.Fatal(err)
	}
	bits := map[string]int{}
	for _, u := range e.Units() {
		bits[u.Name] = 4
	}
	for _, c := range []Calibration{{Method: Percentile, Percentile: 99}, {Method: MSE}} {
		rs, err := CalibrateWith(ctx, e, calib, c, bits)
		if err != nil {
			t.Fatal(err)
		}
		clipped := 0
		for name, r := range rs {
			if r.Min < mm[name].Min || r.Max > mm[name].Max || r.Max <= 0 {
				t.Errorf("%v: %s range %v not inside min/max %v", c, name, r, mm[name])
			}
			if r.Max < mm[name].Max {
				clipped++
			}
		}
		if clipped == 0 {
			t.Errorf("%v clipped no range: %v", c, rs)
		}
	}
}

func TestApplyRoundsBiasesToInt32Grid(t *testing.T) {
	e := lenet(t)
	calib := mnist(t, data.Train, 16)
	before := e.Theta()
	a, err := Apply(context.Background(), e, uniform(e, 8, 8), calib, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Restore()
	theta := e.Theta()
	units := e.Units()
	for i, al := range a.Layers {
		u := units[i]
		sx, _ := al.Act.Scale()
		moved := false
		for j := 0; j < u.BiasSize; j++ {
			s := float64(float32(sx) * float32(al.Scales[j]))
			b := theta[u.BiasOffset+j]
			if k := b / s; math.Abs(k-math.Round(k)) > 1e-6 {
				t.Fatalf("%s bias %d = %g is not on the grid of step %g", u.Name, j, b, s)
			}
			if d := math.Abs(b - before[u.BiasOffset+j]); d > s/2*(1+1e-9) {
				t.Fatalf("%s bias %d moved by %g > s/2 = %g", u.Name, j, d, s/2)
			}
			moved = moved || b != before[u.BiasOffset+j]
		}
		if !moved {
			t.Errorf("%s: no bias moved", u.Name)
		}
	}
	// FloatBias keeps them.
	a.Restore()
	a2, err := Apply(context.Background(), e, uniform(e, 8, 8), calib, &Settings{FloatBias: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Restore()
	th := e.Theta()
	for _, u := range units {
		for j := 0; j < u.BiasSize; j++ {
			if th[u.BiasOffset+j] != before[u.BiasOffset+j] {
				t.Fatalf("FloatBias: %s bias %d changed", u.Name, j)
			}
		}
	}
}
