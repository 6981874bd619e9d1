package hessian

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// Strata is a stratified sampling design for the products of an operator
// over samples (Sampled, H = (1/N) Σ_n H_n): the samples are split into
// disjoint strata S_h of N_h samples, and every probe's product is
//
//	H_i = Σ_h (N_h/N) · H_{B_{h,i}},
//
// with B_{h,i} a uniformly random subset of Take[h] samples of S_h, drawn
// afresh for every probe (independently of the probe vector and of the
// other probes) and H_B the mean over B. E[H_{B_h}] = H_{S_h}, so E[H_i] =
// H and every probe stays unbiased for the full-data trace, whatever the
// strata; a stratum with Take[h] = N_h is whole in every product and adds
// no data noise. Rows are i.i.d., so the plain standard error applies (no
// epochs). When a few samples carry almost all of the curvature (a
// trained classifier's confident samples have almost none), a whole
// stratum of those and a small draw of the rest give about the variance
// of a full-data product at a fraction of its samples (NewStrata).
// A product costs one operator product per stratum (a forward pass each);
// Hutchinson computes a few probes at once (Settings.BatchSize), their
// whole strata's products in one batched product (one forward pass for
// all of them), with the same values as one product per probe.
type Strata struct {
	// Samples[h] lists stratum h's sample indices in increasing order;
	// the strata are disjoint and cover the operator's samples.
	Samples [][]int
	// Take[h] is the number of samples of stratum h in every product, in
	// [1, len(Samples[h])].
	Take []int
}

// Size returns Σ_h Take[h], the samples of one product.
func (s *Strata) Size() int {
	n := 0
	for _, t := range s.Take {
		n += t
	}
	return n
}

// valid checks s against an operator of n samples.
func (s *Strata) valid(n int) error {
	if len(s.Samples) == 0 || len(s.Take) != len(s.Samples) {
		return fmt.Errorf("hessian: strata: %d strata and %d draw sizes", len(s.Samples), len(s.Take))
	}
	seen := make([]bool, n)
	count := 0
	for h, idx := range s.Samples {
		if s.Take[h] < 1 || s.Take[h] > len(idx) {
			return fmt.Errorf("hessian: strata: stratum %d draws %d of its %d samples, want 1 to all", h, s.Take[h], len(idx))
		}
		for j, x := range idx {
			if x < 0 || x >= n || seen[x] || (j > 0 && idx[j-1] >= x) {
				return fmt.Errorf("hessian: strata: stratum %d: sample %d repeated, out of order or outside [0, %d)", h, x, n)
			}
			seen[x] = true
			count++
		}
	}
	if count != n {
		return fmt.Errorf("hessian: strata cover %d of the operator's %d samples", count, n)
	}
	return nil
}

// draw returns probe i's subsets B_{h,i} (seeded by seed and i): a
// stratum's own Samples when it is whole, else its draw.
func (s *Strata) draw(seed uint64, i int) [][]int {
	r := rand.New(rand.NewPCG(seed^0x57a7_a000, uint64(i)))
	out := make([][]int, len(s.Samples))
	for h, idx := range s.Samples {
		b := idx
		if t := s.Take[h]; t < len(idx) {
			b = make([]int, t)
			for j, p := range r.Perm(len(idx))[:t] {
				b[j] = idx[p]
			}
			sort.Ints(b)
		}
		out[h] = b
	}
	return out
}

// weights returns the strata's weights N_h/N for an operator of n samples.
func (s *Strata) weights(n int) []float64 {
	w := make([]float64, len(s.Samples))
	for h, idx := range s.Samples {
		w[h] = float64(len(idx)) / float64(n)
	}
	return w
}

// operator returns probe i's product H_i over op (seeded by seed and i).
func (s *Strata) operator(op Sampled, seed uint64, i int) (Operator, error) {
	sum := &weightedSum{dim: op.Dim(), blocks: op.Blocks(), w: s.weights(op.Samples())}
	for _, b := range s.draw(seed, i) {
		sub, err := op.Subset(b)
		if err != nil {
			return nil, err
		}
		sum.ops = append(sum.ops, sub)
	}
	return sum, nil
}

// applyBatch sets dst[j] to the product of probe first+j (operator) with
// v[j], the same values as one operator product per probe: a whole
// stratum, the same subset in every probe, runs one batched product for
// all the vectors (sharing its value and adjoint passes), a drawn one a
// product per probe on its own draw; the strata's products are summed in
// the order of operator's.
func (s *Strata) applyBatch(ctx context.Context, op Sampled, seed uint64, first int, dst, v [][]float64) error {
	w := s.weights(op.Samples())
	draws := make([][][]int, len(v))
	for j := range v {
		draws[j] = s.draw(seed, first+j)
	}
	for j := range dst {
		clear(dst[j])
	}
	tmp := make([][]float64, len(v))
	for j := range tmp {
		tmp[j] = make([]float64, len(dst[j]))
	}
	for h := range s.Samples {
		if s.Take[h] == len(s.Samples[h]) {
			sub, err := op.Subset(s.Samples[h])
			if err != nil {
				return err
			}
			if err := applyBatch(ctx, sub, tmp, v); err != nil {
				return err
			}
		} else {
			for j := range v {
				sub, err := op.Subset(draws[j][h])
				if err != nil {
					return err
				}
				if err := apply(ctx, sub, tmp[j], v[j]); err != nil {
					return err
				}
			}
		}
		for j := range dst {
			for q, x := range tmp[j] {
				dst[j][q] += w[h] * x
			}
		}
	}
	return nil
}

// NewStrata returns two strata by the samples' scores (any measure of
// each sample's curvature, larger is more): the whole samples with the
// largest scores, always in every product, and the others, of which take
// are drawn per product. whole is capped so that at least take samples
// remain; with whole = 0 or take ≥ the others, the design is one whole
// stratum (every product over all samples).
func NewStrata(scores []float64, whole, take int) *Strata {
	n := len(scores)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	whole = max(0, min(whole, n-take))
	if whole == 0 || take <= 0 || take >= n-whole {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return &Strata{Samples: [][]int{all}, Take: []int{n}}
	}
	a, rest := slices.Clone(order[:whole]), slices.Clone(order[whole:])
	sort.Ints(a)
	sort.Ints(rest)
	return &Strata{Samples: [][]int{a, rest}, Take: []int{whole, take}}
}

// weightedSum is Σ_h w_h · ops_h.
type weightedSum struct {
	dim    int
	blocks []Block
	ops    []Operator
	w      []float64
}

func (o *weightedSum) Dim() int        { return o.dim }
func (o *weightedSum) Blocks() []Block { return o.blocks }

func (o *weightedSum) HVP(ctx context.Context, dst, v []float64) error {
	clear(dst)
	tmp := make([]float64, len(dst))
	for h, op := range o.ops {
		if err := op.HVP(ctx, tmp, v); err != nil {
			return err
		}
		for j, x := range tmp {
			dst[j] += o.w[h] * x
		}
	}
	return nil
}

// HVPBatch sets dst[j] = Σ_h w_h · ops_h·v[j], one batched product per
// stratum (the same values as HVP, summed in the same order).
func (o *weightedSum) HVPBatch(ctx context.Context, dst, v [][]float64) error {
	tmp := make([][]float64, len(v))
	for j := range dst {
		clear(dst[j])
		tmp[j] = make([]float64, len(dst[j]))
	}
	for h, op := range o.ops {
		if err := applyBatch(ctx, op, tmp, v); err != nil {
			return err
		}
		for j := range dst {
			for q, x := range tmp[j] {
				dst[j][q] += o.w[h] * x
			}
		}
	}
	return nil
}

// StrataByShare returns NewStrata(scores, whole, take) with whole the
// fewest samples of largest score whose squared scores hold at least
// share of the total (the scores' second moments, for importance scores
// such as SamplePilot.Scores), or nil when that takes more than half of
// the samples (the curvature is not concentrated enough to pay) or the
// scores are all 0.
func StrataByShare(scores []float64, share float64, take int) *Strata {
	n := len(scores)
	sq := make([]float64, n)
	var total float64
	for i, r := range scores {
		sq[i] = r * r
		total += sq[i]
	}
	if !(total > 0) || math.IsInf(total, 0) {
		return nil
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(sq)))
	whole, cum := 0, 0.0
	for whole < n && cum < share*total {
		cum += sq[whole]
		whole++
	}
	if 2*whole > n || whole+take > n {
		return nil
	}
	return NewStrata(scores, whole, take)
}
