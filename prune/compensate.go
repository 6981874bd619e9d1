package prune

import (
	"fmt"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/nn"
)

// Means holds, for every consumer unit of a group, the mean over the
// calibration data of each of its input features: per input channel for a
// Conv (over samples and positions), per input feature for a Gemm or
// MatMul (over samples and, on sequences, positions).
type Means map[string][]float64

// InputMeans measures the consumers' input means on ds (in chunks of 64
// samples; every input of a model of several), for mean-replacement
// compensation in ApplyCompensated: per channel (axis 1) for a Conv, per
// feature (the last axis, over samples and sequence positions) for a Gemm
// or MatMul.
func InputMeans(e *nn.Engine, ds data.Dataset, st *Structure) (Means, error) {
	m := st.Model
	want := map[string][]string{} // tensor → units reading it
	for _, g := range st.Groups {
		if !g.Prunable {
			continue
		}
		for _, name := range g.Consumers {
			u := m.Unit(name)
			in := m.Nodes[u.Node].Input(0)
			want[in] = append(want[in], name)
		}
	}
	sums := Means{}
	counts := map[string]float64{}
	inputs := [][]int{ds.SampleShape()}
	mi, multi := ds.(data.Inputs)
	if multi {
		inputs = mi.SampleShapes()
	}
	const chunk = 64
	for start := 0; start < ds.Len(); start += chunk {
		n := min(chunk, ds.Len()-start)
		xs := make([][]float64, len(inputs))
		for k, sh := range inputs {
			size := 1
			for _, d := range sh {
				size *= d
			}
			xs[k] = make([]float64, n*size)
		}
		var err error
		if multi {
			err = mi.ReadInputs(start, xs, make([]int, n))
		} else {
			err = ds.Read(start, xs[0], make([]int, n))
		}
		if err != nil {
			return nil, err
		}
		vals, err := e.IntermediatesInputs(xs, n)
		if err != nil {
			return nil, err
		}
		for tensor, units := range want {
			v, ok := vals[tensor]
			if !ok || len(v.Shape) < 2 {
				return nil, fmt.Errorf("prune: input %q of %v not available", tensor, units)
			}
			unit := units[0]
			// A Conv reads channels on axis 1, a Gemm or MatMul features
			// on the last axis (of a sequence: N×T×F).
			ax := len(v.Shape) - 1
			if m.Unit(unit).Op == "Conv" {
				ax = 1
			}
			c := v.Shape[ax]
			inner := 1
			for _, d := range v.Shape[ax+1:] {
				inner *= d
			}
			s := sums[unit]
			if s == nil {
				s = make([]float64, c)
				sums[unit] = s
			}
			for i, x := range v.Data {
				s[(i/inner)%c] += x
			}
			counts[unit] += float64(len(v.Data) / c)
		}
	}
	for unit, s := range sums {
		for i := range s {
			s[i] /= counts[unit]
		}
	}
	for _, units := range want {
		for _, u := range units[1:] {
			sums[u] = sums[units[0]]
		}
	}
	return sums, nil
}

// compensation returns, per initializer, the values to add before slicing
// so that every Gemm or MatMul consumer keeps the mean contribution of its
// removed input features (mean replacement): with μ_f the calibration mean
// of removed input f,
//
//	δ_o = Σ_f μ_f · W[o, f]
//
// is added to the consumer's bias (or subtracted from the running mean of a
// BatchNormalization after it), which keeps E[y_o] exactly for a linear
// layer. Conv consumers are not compensated: the mean a kernel tap sees
// differs from the channel's global mean at borders and with padding or
// strides (on MNIST's centred digits by a large factor), so it would need
// per-position means. Consumers left uncompensated are listed in the
// second result.
func compensation(st *Structure, keep [][]int, means Means) (map[string][]float64, []string) {
	m := st.Model
	add := map[string][]float64{}
	var skipped []string
	for gi, g := range st.Groups {
		if !g.Prunable || len(keep[gi]) == g.Channels {
			continue
		}
		kept := map[int]bool{}
		for _, c := range keep[gi] {
			kept[c] = true
		}
		for _, name := range g.Consumers {
			u := m.Unit(name)
			mu := means[name]
			w := m.Initializers[u.Weight]
			if u == nil || mu == nil || w == nil {
				skipped = append(skipped, name)
				continue
			}
			out := u.OutChannels
			delta := make([]float64, out)
			// A recurrent consumer's B is per gate row; g.parts(u) > 1: its
			// input features hold the channels several times (a
			// bidirectional layer's directions).
			switch {
			case u.Op == "Conv" || u.Op == "ConvTranspose" || nn.RecurrentGates(u.Op) > 0 || g.parts(u) > 1:
				// The global channel mean is not the mean a kernel tap
				// sees (borders, padding, strides): not compensated.
				skipped = append(skipped, name)
				continue
			default: // Gemm, MatMul: features f = c·inner + j
				feat := w.Len() / out
				inner := feat / g.Channels
				for o := 0; o < out; o++ {
					for f := 0; f < feat && f < len(mu); f++ {
						if kept[f/inner] {
							continue
						}
						wi := f*out + o // K×N
						if u.Op == "Gemm" && u.TransB {
							wi = o*feat + f
						}
						delta[o] += mu[f] * w.Float[wi]
					}
				}
			}
			switch {
			case u.Bias != "" && m.Initializers[u.Bias].Len() == out:
				acc(add, u.Bias, delta, 1)
			case u.BatchNorm >= 0:
				acc(add, m.Nodes[u.BatchNorm].Input(3), delta, -1)
			default:
				skipped = append(skipped, name)
			}
		}
	}
	return add, skipped
}

func acc(add map[string][]float64, name string, d []float64, sign float64) {
	a := add[name]
	if a == nil {
		a = make([]float64, len(d))
		add[name] = a
	}
	for i := range d {
		a[i] += sign * d[i]
	}
}
