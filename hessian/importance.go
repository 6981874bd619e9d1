package hessian

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Poisson is a Poisson sampling design over N samples with inclusion
// probabilities Pi (Hájek 1964): probe i includes sample s independently
// of the others with probability Pi[s] and weights it by 1/Pi[s], the
// Horvitz–Thompson (1952) estimator of a sum over all samples. For a mean
// over samples of independent per-sample probe values x_s,
//
//	X = (1/N) Σ_{s ∈ B_i} x_s / π_s,   E[X] = (1/N) Σ_s E[x_s],
//	Var X = Var X_full + (1/N²) Σ_s E[x_s²] (1/π_s − 1),
//
// where X_full is the same probe over all samples: unbiased for every
// design with all π_s > 0, and as precise as X_full at a fraction of the
// samples when the few samples that carry E[x_s²] have π_s = 1. This is
// the design of activation-Hessian probes, whose per-sample blocks are
// probed independently (eval.ActivationTerm); a parameter-space probe
// shares one vector across samples, so its sum needs per-sample weights
// in the loss, which the Operator interface does not have.
type Poisson struct {
	// Seed selects the draws: the batch of probe i depends only on Seed,
	// i and Pi.
	Seed uint64
	// Pi holds the inclusion probabilities, each in (0, 1].
	Pi []float64
}

// Valid reports a design that cannot be drawn.
func (p Poisson) Valid() error {
	if len(p.Pi) == 0 {
		return fmt.Errorf("hessian: a Poisson design over no samples")
	}
	for s, x := range p.Pi {
		if !(x > 0 && x <= 1) {
			return fmt.Errorf("hessian: Poisson design: sample %d has inclusion probability %v, want (0, 1]", s, x)
		}
	}
	return nil
}

// Expected returns Σ_s π_s, the expected number of samples of a batch.
func (p Poisson) Expected() float64 {
	var e float64
	for _, x := range p.Pi {
		e += x
	}
	return e
}

// Draw returns probe i's batch, the included samples in increasing
// order, and their weights 1/π_s. The batch may be empty (its estimate
// is then 0, a valid Horvitz–Thompson value).
func (p Poisson) Draw(i int) (idx []int, weight []float64) {
	r := rand.New(rand.NewPCG(p.Seed^0x9015_5011, uint64(i)))
	for s, x := range p.Pi {
		if x >= 1 || r.Float64() < x {
			idx = append(idx, s)
			weight = append(weight, 1/x)
		}
	}
	return idx, weight
}

// SamplePilot is what a pilot of full-data probes tells about the
// per-sample values of every block: with probe rows X_k = (1/N) Σ_s
// x_{s,k} over the N samples and K blocks,
type SamplePilot struct {
	// Second[s][k] is the pilot's mean of x_{s,k}², an estimate of
	// E[x_{s,k}²];
	Second [][]float64
	// Trace[k] is the pilot's estimate of E[X_k], the block's trace;
	// RowVar[k] its sample variance of the full-data rows X_k.
	Trace, RowVar []float64
}

// Scores returns every sample's importance score r_s = √(Σ_k
// Second[s][k]/Trace[k]²), its root mean square value relative to every
// block's trace (ImportanceDesign), or nil when a block's trace is 0 or
// a value is not finite.
func (p SamplePilot) Scores() []float64 {
	score := make([]float64, len(p.Second))
	for s, row := range p.Second {
		if len(row) != len(p.Trace) {
			return nil
		}
		for k, m := range row {
			if p.Trace[k] == 0 || math.IsNaN(m) || math.IsInf(m, 0) {
				return nil
			}
			score[s] += m / (p.Trace[k] * p.Trace[k])
		}
		score[s] = math.Sqrt(score[s])
	}
	return score
}

// importanceFloor is the smallest importance score of a sample, as a
// fraction of the mean score: a sample whose pilot values happened to be
// near zero keeps an inclusion probability of at least this fraction of
// the average one, so no weight 1/π_s is extreme.
const importanceFloor = 0.05

// importanceGain is the predicted gain in variance × cost below which
// ImportanceDesign keeps all samples: a design that predicts less than
// this is not worth the noise in its prediction.
const importanceGain = 1.5

// ImportanceDesign chooses a Poisson design for the probes after a pilot:
// π_s = min(1, c·max(r_s, importanceFloor·r̄)) with the importance score
// r_s = √(Σ_k Second[s][k]/Trace[k]²) (which minimises Σ_k Var X_k /
// Trace_k² at a given expected batch size, every block counting
// relatively), and c chosen, over expected batch sizes b from N down to
// 1, to minimise the predicted Σ_k Var X_k/Trace_k² × (b + overhead)
// (overhead: a product's fixed cost in samples), Var X_k from the
// formula of Poisson. It returns the design, the predicted gain in
// variance × cost over full-data probes, and ok = false (the design of
// all samples) when that gain is below 1.5 or a block's pilot trace is 0.
func ImportanceDesign(seed uint64, p SamplePilot, overhead float64) (d Poisson, gain float64, ok bool) {
	n := len(p.Second)
	d = Poisson{Seed: seed, Pi: make([]float64, n)}
	for s := range d.Pi {
		d.Pi[s] = 1
	}
	if n < 2 || len(p.Trace) == 0 || len(p.RowVar) != len(p.Trace) {
		return d, 1, false
	}
	score := p.Scores()
	if score == nil {
		return d, 1, false
	}
	var mean float64
	for _, r := range score {
		mean += r / float64(n)
	}
	if !(mean > 0) {
		return d, 1, false
	}
	for s := range score {
		score[s] = max(score[s], importanceFloor*mean)
	}
	// The predicted Σ_k Var X_k / Trace_k² at inclusion probabilities pi.
	relVar := func(pi []float64) float64 {
		var v float64
		for k, t := range p.Trace {
			extra := 0.0
			for s, x := range pi {
				extra += p.Second[s][k] * (1/x - 1)
			}
			v += (p.RowVar[k] + extra/float64(n*n)) / (t * t)
		}
		return v
	}
	full := relVar(d.Pi) * (float64(n) + overhead)
	if !(full > 0) {
		return d, 1, false
	}
	best, bestCost := d.Pi, full
	pi := make([]float64, n)
	for b := float64(n) * 0.9; b >= 1; b *= 0.9 {
		// c with Σ_s min(1, c·score_s) = b, by bisection (the sum is
		// increasing in c).
		lo, hi := 0.0, 1/importanceFloor/mean
		for range 60 {
			c := (lo + hi) / 2
			var sum float64
			for _, r := range score {
				sum += min(1, c*r)
			}
			if sum > b {
				hi = c
			} else {
				lo = c
			}
		}
		for s, r := range score {
			pi[s] = min(1, hi*r)
		}
		if cost := relVar(pi) * (b + overhead); cost < bestCost {
			best, bestCost = append([]float64(nil), pi...), cost
		}
	}
	gain = full / bestCost
	if gain < importanceGain {
		return d, gain, false
	}
	d.Pi = best
	return d, gain, true
}
