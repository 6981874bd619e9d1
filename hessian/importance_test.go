package hessian

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// Draw includes every sample at its probability (within 4 binomial
// standard deviations over 20,000 draws), weights it by 1/π, always
// includes π = 1, and depends on the seed and the probe only.
func TestPoissonDraw(t *testing.T) {
	p := Poisson{Seed: 3, Pi: []float64{1, 0.5, 0.1, 0.02, 1, 0.7}}
	if err := p.Valid(); err != nil {
		t.Fatal(err)
	}
	if e := p.Expected(); math.Abs(e-3.32) > 1e-12 {
		t.Errorf("Expected = %v, want 3.32", e)
	}
	const draws = 20000
	count := make([]int, len(p.Pi))
	for i := range draws {
		idx, w := p.Draw(i)
		for j, s := range idx {
			count[s]++
			if w[j] != 1/p.Pi[s] {
				t.Fatalf("draw %d: sample %d weighted %v, want 1/π = %v", i, s, w[j], 1/p.Pi[s])
			}
			if j > 0 && idx[j-1] >= s {
				t.Fatalf("draw %d: samples %v not increasing", i, idx)
			}
		}
	}
	for s, x := range p.Pi {
		f := float64(count[s]) / draws
		if sd := math.Sqrt(x * (1 - x) / draws); math.Abs(f-x) > 4*sd+1e-12 {
			t.Errorf("sample %d drawn in %.4f of the probes, π = %v", s, f, x)
		}
	}
	a, _ := p.Draw(17)
	b, _ := p.Draw(17)
	c, _ := Poisson{Seed: 4, Pi: p.Pi}.Draw(17)
	if !equalInts(a, b) || (equalInts(a, c) && len(a) > 2) {
		t.Errorf("draw 17: %v, again %v, another seed %v", a, b, c)
	}
	for _, bad := range []Poisson{{}, {Pi: []float64{0.5, 0}}, {Pi: []float64{1.5}}, {Pi: []float64{math.NaN()}}} {
		if bad.Valid() == nil {
			t.Errorf("design %v accepted", bad.Pi)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ImportanceDesign keeps the few samples that carry the curvature at
// π = 1 and samples the rest lightly; it keeps all samples when their
// values have no probe noise to trade (subsampling could only add data
// noise) or when a pilot trace is 0.
func TestImportanceDesign(t *testing.T) {
	n := 100
	sp := SamplePilot{Second: make([][]float64, n), Trace: []float64{0, 0}, RowVar: []float64{0, 0}}
	for s := range sp.Second {
		m := 1e-4
		if s < 5 {
			m = 100 // five samples carry the curvature
		}
		sp.Second[s] = []float64{m, 2 * m}
		for k := range sp.Trace {
			sp.Trace[k] += math.Sqrt(m*float64(k+1)/2) / float64(n)
			sp.RowVar[k] += m * float64(k+1) / 2 / float64(n*n) // half of E[x²] is probe noise
		}
	}
	d, gain, ok := ImportanceDesign(1, sp, 1)
	if !ok || gain < 5 {
		t.Fatalf("concentrated curvature: design %v, gain %.2f; want one with a gain of at least 5", ok, gain)
	}
	if err := d.Valid(); err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 5; s++ {
		if d.Pi[s] < 0.99 {
			t.Errorf("heavy sample %d: π = %v, want (nearly) 1", s, d.Pi[s])
		}
	}
	if e := d.Expected(); e > 20 {
		t.Errorf("expected batch %.1f of %d samples: the light ones are not subsampled", e, n)
	}
	flat := SamplePilot{Second: make([][]float64, n), Trace: []float64{1}, RowVar: []float64{0}}
	for s := range flat.Second {
		flat.Second[s] = []float64{1}
	}
	if d, gain, ok := ImportanceDesign(1, flat, 1); ok || d.Expected() != float64(n) {
		t.Errorf("noise-free values: design %v (gain %.2f, expected batch %.1f), want all samples", ok, gain, d.Expected())
	}
	zero := sp
	zero.Trace = []float64{0, 1}
	if _, _, ok := ImportanceDesign(1, zero, 1); ok {
		t.Error("a zero pilot trace gave a design")
	}
}

// importanceCase is an activation-like estimate: N samples, each with
// its own small symmetric matrix per block (H is block diagonal over
// samples), probed independently per sample; a few samples carry almost
// all of the curvature. rows returns probe i's row over the samples idx
// with weights w (nil: all samples, weight 1) and records the per-sample
// values.
type importanceCase struct {
	n, dim int
	blocks []Block
	h      [][][]float64 // [sample][block] d×d row-major
	exact  []float64
}

func newImportanceCase(rng *rand.Rand) *importanceCase {
	c := &importanceCase{n: 48, dim: 5, blocks: []Block{{"a", 0, 5}, {"b", 5, 5}}}
	c.exact = make([]float64, len(c.blocks))
	for s := 0; s < c.n; s++ {
		scale := 0.01
		if s%12 == 0 {
			scale = 3 + float64(s)/12 // 4 heavy samples
		}
		var hs [][]float64
		for k := range c.blocks {
			m := make([]float64, c.dim*c.dim)
			// A rank-2 PSD part (the Gauss–Newton term) and a small
			// indefinite one: right-skewed probe values.
			for r := 0; r < 2; r++ {
				u := make([]float64, c.dim)
				for q := range u {
					u[q] = rng.NormFloat64()
				}
				for a := range u {
					for b := range u {
						m[a*c.dim+b] += scale * u[a] * u[b]
					}
				}
			}
			for a := 0; a < c.dim; a++ {
				for b := 0; b <= a; b++ {
					x := 0.1 * scale * rng.NormFloat64()
					m[a*c.dim+b] += x
					if a != b {
						m[b*c.dim+a] += x
					}
				}
				c.exact[k] += m[a*c.dim+a] / float64(c.n)
			}
			hs = append(hs, m)
		}
		c.h = append(c.h, hs)
	}
	return c
}

func (c *importanceCase) row(seed uint64, i int, idx []int, w []float64, record func(s int, x []float64)) []float64 {
	out := make([]float64, len(c.blocks))
	v := make([]float64, c.dim)
	each := func(j, s int) {
		xs := make([]float64, len(c.blocks))
		for k := range c.blocks {
			r := rand.New(rand.NewPCG(seed, uint64(i)<<32|uint64(s)<<8|uint64(k)))
			for q := range v {
				v[q] = float64(2*r.IntN(2) - 1)
			}
			var x float64
			for a := range v {
				for b := range v {
					x += v[a] * c.h[s][k][a*c.dim+b] * v[b]
				}
			}
			xs[k] = x
			wj := 1.0
			if w != nil {
				wj = w[j]
			}
			out[k] += wj * x / float64(c.n)
		}
		if record != nil {
			record(s, xs)
		}
	}
	if idx == nil {
		for s := 0; s < c.n; s++ {
			each(s, s)
		}
	} else {
		for j, s := range idx {
			each(j, s)
		}
	}
	return out
}

// estimate runs the importance-sampled estimate as eval.ActivationTerm
// does: a pilot of 4 full rows recording every sample's values, the
// design, then HutchinsonRowsFrom on Horvitz–Thompson rows.
func (c *importanceCase) estimate(t *testing.T, seed uint64, probes int) (*TraceResult, *Poisson) {
	t.Helper()
	ctx := context.Background()
	second := make([][]float64, c.n)
	for s := range second {
		second[s] = make([]float64, len(c.blocks))
	}
	const pilotN = 4
	pilot, _, err := HutchinsonRows(ctx, c.blocks, &Settings{Seed: seed, MinProbes: pilotN, MaxProbes: pilotN, Workers: 1}, func(_ context.Context, i int) ([]float64, error) {
		return c.row(seed, i, nil, nil, func(s int, x []float64) {
			for k, v := range x {
				second[s][k] += v * v / pilotN
			}
		}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sp := SamplePilot{Second: second, Trace: make([]float64, len(c.blocks)), RowVar: make([]float64, len(c.blocks))}
	for k, b := range pilot.Blocks {
		sp.Trace[k], sp.RowVar[k] = b.Trace, b.StdErr*b.StdErr*pilotN
	}
	d, _, ok := ImportanceDesign(seed, sp, 1)
	var design *Poisson
	if ok {
		design = &d
	}
	res, _, err := HutchinsonRowsFrom(ctx, c.blocks, &Settings{Seed: seed, MinProbes: probes, MaxProbes: probes, Workers: 1}, pilot, nil, func(_ context.Context, i int) ([]float64, error) {
		if design == nil {
			return c.row(seed, i, nil, nil, nil), nil
		}
		idx, w := design.Draw(i)
		return c.row(seed, i, idx, w, nil), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return res, design
}

// Importance-sampled rows after a pilot (the activation term's design)
// against the exact traces over 1,000 seeds: the mean estimate is within
// 4 standard errors of the exact trace on every block, the library's 95 %
// intervals cover it in 93–97 % of the runs, the design is used in most
// runs at under a third of the samples per probe, and its rows are no
// noisier per unit cost than full-data rows by a factor of 3 or more.
func TestImportanceUnbiasedCoverage(t *testing.T) {
	c := newImportanceCase(rand.New(rand.NewPCG(11, 12)))
	const seeds, probes = 1000, 20
	sum, sum2 := make([]float64, len(c.blocks)), make([]float64, len(c.blocks))
	covered := make([]int, len(c.blocks))
	used := 0
	var batch float64
	// Per block, the squared deviations from the exact trace of the
	// full-data rows (the pilot's) and of the design's rows.
	fullSq, htSq := make([]float64, len(c.blocks)), make([]float64, len(c.blocks))
	var nFull, nHT float64
	for seed := uint64(1); seed <= seeds; seed++ {
		res, d := c.estimate(t, seed, probes)
		if d != nil {
			used++
			batch += d.Expected()
			for i, r := range res.Samples {
				for k, x := range r {
					if i < 4 {
						fullSq[k] += (x - c.exact[k]) * (x - c.exact[k])
					} else {
						htSq[k] += (x - c.exact[k]) * (x - c.exact[k])
					}
				}
			}
			nFull, nHT = nFull+4, nHT+float64(len(res.Samples)-4)
		}
		for k, b := range res.Blocks {
			sum[k] += b.Trace
			sum2[k] += b.Trace * b.Trace
			if b.Lo <= c.exact[k] && c.exact[k] <= b.Hi {
				covered[k]++
			}
		}
	}
	if used < seeds*9/10 {
		t.Fatalf("the design was used in %d of %d runs", used, seeds)
	}
	batch /= float64(used)
	t.Logf("design in %d of %d runs, expected batch %.1f of %d samples", used, seeds, batch, c.n)
	if batch > float64(c.n)/3 {
		t.Errorf("expected batch %.1f of %d samples: the design saves little", batch, c.n)
	}
	for k := range c.blocks {
		gain := fullSq[k] / nFull * float64(c.n) / (htSq[k] / nHT * batch)
		t.Logf("block %d: variance × samples per probe %.1f× smaller on the design's rows", k, gain)
		if gain < 3 {
			t.Errorf("block %d: the design's rows gain only %.2f× in variance × cost", k, gain)
		}
		m := sum[k] / seeds
		sd := math.Sqrt(max(0, sum2[k]/seeds-m*m))
		cov := float64(covered[k]) / seeds
		t.Logf("block %d: exact %.5g, mean %.5g (z %.2f), coverage %.1f %%", k, c.exact[k], m, (m-c.exact[k])/(sd/math.Sqrt(seeds)), 100*cov)
		if math.Abs(m-c.exact[k]) > 4*sd/math.Sqrt(seeds) {
			t.Errorf("block %d: mean %.6g over %d seeds, exact %.6g (SD %.3g): biased", k, m, seeds, c.exact[k], sd)
		}
		if cov < 0.93 || cov > 0.97 {
			t.Errorf("block %d: 95 %% intervals covered the exact trace in %.1f %% of the runs, want 93–97 %%", k, 100*cov)
		}
	}
}
