package hessian

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Sampled is implemented by operators that are the mean of per-sample
// operators over a data set of N samples,
//
//	H = (1/N) Σ_{n<N} H_n,
//
// such as the Hessian of a mean loss over calibration data, and that can
// form the same mean over a subset of the samples. Hutchinson uses it for
// mini-batch probes (Settings.ProbeBatch).
type Sampled interface {
	Operator
	// Samples returns N (at least 1).
	Samples() int
	// Subset returns H_S = (1/|S|) Σ_{n∈S} H_n for the distinct sample
	// indices idx, given in increasing order within [0, N). The result has
	// the same Dim and Blocks as the receiver; its products must be safe
	// for concurrent calls, and several subsets may be in use at once.
	Subset(idx []int) (Operator, error)
}

// BatchSchedule is the sequence of mini-batches drawn by Hutchinson's
// mini-batch probes: probe i of a run with seed Seed over Samples = N
// samples in batches of Size = b (1 ≤ b < N) uses
//
//	K = ⌊N/b⌋ batches per epoch, epoch e = ⌊i/K⌋, slot k = i mod K,
//	π_e = a uniformly random permutation of {0, …, N−1} (seeded by Seed and e),
//	batch(i) = {π_e[k·b], …, π_e[k·b + b − 1]}   (returned in increasing order).
//
// Within an epoch the batches are disjoint (sampling without replacement);
// the N − K·b samples left at the end of π_e sit that epoch out. Every
// batch is, on its own, a uniformly random b-subset of the samples, so
// E[H_batch] = H and a probe vᵀH_batch v is an unbiased estimate of tr(H),
// the full-data trace. Epochs are independent of each other and of the
// probe vectors. The permutation comes from a PCG stream separate from the
// probe streams; other implementations of this contract (the Python
// package) draw the same law, not the same bits.
type BatchSchedule struct {
	Seed    uint64
	Samples int
	Size    int
}

// PerEpoch returns K = ⌊Samples/Size⌋, the number of disjoint batches of
// one epoch.
func (s BatchSchedule) PerEpoch() int { return s.Samples / s.Size }

// valid reports a schedule that cannot be drawn.
func (s BatchSchedule) valid() error {
	if s.Samples < 1 || s.Size < 1 || s.Size > s.Samples {
		return fmt.Errorf("hessian: mini-batches of %d from %d samples, want 1 ≤ size ≤ samples", s.Size, s.Samples)
	}
	return nil
}

// Permutation returns π_e, the sample order of epoch e.
func (s BatchSchedule) Permutation(e int) []int {
	r := rand.New(rand.NewPCG(s.Seed, uint64(streamBatch)|uint64(e)))
	return r.Perm(s.Samples)
}

// Batch returns the sorted sample indices of probe i's mini-batch. It
// draws the epoch's whole permutation; use a batcher to draw each epoch
// once.
func (s BatchSchedule) Batch(i int) []int {
	var b batcher
	return b.batch(s, i)
}

// batcher caches the permutation of the last epoch drawn (one per
// goroutine).
type batcher struct {
	epoch int
	perm  []int
}

func (b *batcher) batch(s BatchSchedule, i int) []int {
	k := s.PerEpoch()
	e, slot := i/k, i%k
	if b.perm == nil || b.epoch != e {
		b.perm, b.epoch = s.Permutation(e), e
	}
	idx := slices.Clone(b.perm[slot*s.Size : (slot+1)*s.Size])
	slices.Sort(idx)
	return idx
}
