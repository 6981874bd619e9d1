package synthetic

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestStatLossGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, c, inner = 3, 2, 5
	x := make([]float64, n*c*inner)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	mean, vr := []float64{0.3, -1}, []float64{2, 0.5}
	g := make([]float64, len(x))
	statLoss(x, g, n, mean, vr, 1e-5)
	for i := range x {
		const h = 1e-6
		xp, xm := append([]float64(nil), x...), append([]float64(nil), x...)
		xp[i] += h
		xm[i] -= h
		fd := (statLoss(xp, make([]float64, len(x)), n, mean, vr, 1e-5) - statLoss(xm, make([]float64, len(x)), n, mean, vr, 1e-5)) / (2 * h)
		if math.Abs(fd-g[i]) > 1e-7*math.Max(1, math.Abs(fd)) {
			t.Errorf("element %d: gradient %g, finite difference %g", i, g[i], fd)
		}
	}
}
