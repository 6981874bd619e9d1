package hessian

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Distribution selects the law of the random probe vectors. Every choice has
// E[v vᵀ] = I, so vᵀHv is an unbiased estimate of tr(H).
type Distribution int

const (
	// Rademacher probes have independent ±1 entries. For symmetric H the
	// single-probe variance is 2·Σ_{i≠j} H_ij², the smallest among
	// isotropic i.i.d. probes (Hutchinson 1990).
	Rademacher Distribution = iota
	// Gaussian probes have independent standard normal entries; the
	// single-probe variance is 2·‖H‖_F² (Avron and Toledo 2011).
	Gaussian
	// Sphere probes are uniform on the sphere of radius √Dim; the
	// single-probe variance is 2(Dim·‖H‖_F² − tr(H)²)/(Dim+2).
	Sphere
)

// String returns the distribution's name.
func (p Distribution) String() string {
	switch p {
	case Rademacher:
		return "rademacher"
	case Gaussian:
		return "gaussian"
	case Sphere:
		return "sphere"
	}
	return fmt.Sprintf("Distribution(%d)", int(p))
}

func (p Distribution) valid() error {
	if p < Rademacher || p > Sphere {
		return fmt.Errorf("hessian: unknown probe distribution %d, want Rademacher, Gaussian or Sphere", int(p))
	}
	return nil
}

// probeStream separates the probe streams used by the different estimators
// so that, for one seed, Hutchinson's probes and a sketch's test matrix are
// unrelated.
type probeStream uint64

const (
	streamHutchinson probeStream = iota << 56
	streamSketch
	streamLanczos
	streamBatch // the mini-batch permutations of BatchSchedule
)

// fillProbe writes probe number i of the given stream into v. The vector
// depends only on (seed, stream, i, distribution, len(v)), never on which
// goroutine draws it or in which order.
func fillProbe(v []float64, dist Distribution, seed uint64, stream probeStream, i int) {
	r := rand.New(rand.NewPCG(seed, uint64(stream)|uint64(i)))
	switch dist {
	case Rademacher:
		var bits uint64
		for j := range v {
			if j%64 == 0 {
				bits = r.Uint64()
			}
			if bits&1 == 1 {
				v[j] = 1
			} else {
				v[j] = -1
			}
			bits >>= 1
		}
	case Gaussian, Sphere:
		var ss float64
		for j := range v {
			v[j] = r.NormFloat64()
			ss += v[j] * v[j]
		}
		if dist == Sphere && ss > 0 {
			s := math.Sqrt(float64(len(v)) / ss)
			for j := range v {
				v[j] *= s
			}
		}
	}
}
