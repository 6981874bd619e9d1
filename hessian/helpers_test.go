package hessian

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// Test matrices. All are built from seeded PCG streams.

// randOrth returns a d×d random orthogonal matrix (QR of a Gaussian matrix).
func randOrth(d int, rng *rand.Rand) *mat.Dense {
	g := mat.NewDense(d, d, nil)
	for i := range d {
		for j := range d {
			g.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q)
	return &q
}

// fromSpectrum returns Q diag(lam) Qᵀ for a random orthogonal Q.
func fromSpectrum(lam []float64, rng *rand.Rand) *mat.SymDense {
	d := len(lam)
	q := randOrth(d, rng)
	var ql, a mat.Dense
	ql.Apply(func(_, j int, v float64) float64 { return v * lam[j] }, q)
	a.Mul(&ql, q.T())
	out := mat.NewSymDense(d, nil)
	for i := range d {
		for j := i; j < d; j++ {
			out.SetSym(i, j, (a.At(i, j)+a.At(j, i))/2)
		}
	}
	return out
}

// indefiniteSpectrum: eigenvalues uniform on [−1, 2] (flat, indefinite).
func indefiniteSpectrum(d int, rng *rand.Rand) []float64 {
	lam := make([]float64, d)
	for i := range lam {
		lam[i] = -1 + 3*rng.Float64()
	}
	return lam
}

// lowRankSpectrum: ten dominant eigenvalues 50·0.7^i plus small indefinite
// noise eigenvalues N(0, 0.05²).
func lowRankSpectrum(d int, rng *rand.Rand) []float64 {
	lam := make([]float64, d)
	for i := range lam {
		if i < 10 {
			lam[i] = 50 * math.Pow(0.7, float64(i))
		} else {
			lam[i] = 0.05 * rng.NormFloat64()
		}
	}
	return lam
}

// diagDominant: diagonal uniform on [1, 3], off-diagonal N(0, 0.01²).
func diagDominant(d int, rng *rand.Rand) *mat.SymDense {
	a := mat.NewSymDense(d, nil)
	for i := range d {
		a.SetSym(i, i, 1+2*rng.Float64())
		for j := i + 1; j < d; j++ {
			a.SetSym(i, j, 0.01*rng.NormFloat64())
		}
	}
	return a
}

// exactLowRank returns a rank-r PSD-plus-negative matrix (eigenvalues
// ±(1..r), rest exactly zero), built as U diag Uᵀ with U orthonormal.
func exactLowRank(d, r int, rng *rand.Rand) *mat.SymDense {
	lam := make([]float64, d)
	for i := range r {
		lam[i] = float64(i + 1)
		if i%3 == 2 {
			lam[i] = -lam[i]
		}
	}
	return fromSpectrum(lam, rng)
}

// testBlocks leaves a gap [80, 90) outside every block.
func testBlocks() []Block {
	return []Block{{"a", 0, 30}, {"b", 30, 50}, {"c", 90, 30}}
}

const testDim = 120

type testMatrix struct {
	name string
	m    *mat.SymDense
}

func testMatrices() []testMatrix {
	rng := rand.New(rand.NewPCG(1, 1))
	return []testMatrix{
		{"indefinite", fromSpectrum(indefiniteSpectrum(testDim, rng), rng)},
		{"lowrank", fromSpectrum(lowRankSpectrum(testDim, rng), rng)},
		{"diagdominant", diagDominant(testDim, rng)},
	}
}

// blockTrace returns tr of m's diagonal block b.
func blockTrace(m mat.Symmetric, b Block) float64 {
	var s float64
	for i := b.Offset; i < b.End(); i++ {
		s += m.At(i, i)
	}
	return s
}

func wholeBlock(m mat.Symmetric) Block { return Block{"all", 0, m.SymmetricDim()} }

func newTestRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }
