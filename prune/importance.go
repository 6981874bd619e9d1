package prune

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/sensitivity"
)

// Sign says how a negative channel trace estimate enters the importance.
// The Hessian of a trained network is indefinite, and a channel's trace
// estimate can also be negative by sampling error when it is near zero.
type Sign int

const (
	// Abs uses |Tr(H_cc)| (the default): strong curvature of either sign
	// means the loss reacts strongly to the channel; the quadratic model's
	// prediction that removing a negative-curvature channel lowers the loss
	// is not trusted away from a minimum.
	Abs Sign = iota
	// Clamp uses max(Tr(H_cc), 0): negative curvature counts as none, so
	// such channels are pruned first.
	Clamp
	// Signed uses the estimate as it is; the ILP may then gain Ω by
	// removing a channel.
	Signed
)

// String returns "abs", "clamp" or "signed".
func (s Sign) String() string {
	switch s {
	case Abs:
		return "abs"
	case Clamp:
		return "clamp"
	case Signed:
		return "signed"
	}
	return fmt.Sprintf("Sign(%d)", int(s))
}

// ParseSign parses "abs", "clamp" or "signed".
func ParseSign(s string) (Sign, error) {
	for _, v := range []Sign{Abs, Clamp, Signed} {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("prune: sign policy %q, want abs, clamp or signed", s)
}

func (s Sign) apply(t float64) float64 {
	switch s {
	case Clamp:
		return math.Max(t, 0)
	case Signed:
		return t
	}
	return math.Abs(t)
}

// ChannelStats holds the per-output-channel statistics of one unit. A
// channel's block is its weights followed by its bias element (when the
// bias has one entry per channel), in the engine's θ.
type ChannelStats struct {
	// Unit is the unit's name.
	Unit string
	// Trace[c] estimates Tr(H_cc), the trace of the Hessian's diagonal
	// block of channel c, and StdErr[c] is its standard error (0 when
	// exact).
	Trace, StdErr []float64
	// Size[c] is the block's size n_c.
	Size []int
	// SqNorm[c] is ‖W_c‖², the squared norm of the block.
	SqNorm []float64
	// L1[c] is Σ|w| over the channel's weights (the magnitude criterion of
	// Li et al., "Pruning filters for efficient ConvNets", ICLR 2017).
	L1 []float64
	// DeltaSq[b][c] is ‖Q_b(W_c) − W_c‖² of the channel's weights under a
	// symmetric min/max quantizer at b bits with one range per channel
	// (HAWQ-V3's default), filled by AddDeltaSq.
	DeltaSq map[int][]float64
	// WeightSize[c] is the number of weights of channel c (bias excluded).
	WeightSize []int

	weights [][]float64
}

// Importance holds the channel statistics of every unit and the sign
// policy used to turn them into HAP importances.
type Importance struct {
	// Units holds one entry per unit in model.Units order.
	Units []ChannelStats
	// Sign is the sign policy of HAP importances.
	Sign Sign
	// Method names the trace estimator ("hutchinson" or "exact").
	Method string
	// Probes is the number of Hutchinson probes (0 for exact traces).
	Probes int
	// Samples is the number of calibration samples the Hessian averages.
	Samples int
}

// Settings configures Estimate. The zero value (or nil) means defaults.
type Settings struct {
	// Probes is the number of Rademacher probes (default 32).
	Probes int
	// Seed selects the probes (default 0).
	Seed uint64
	// Sign is the sign policy of the importances (default Abs).
	Sign Sign
	// Progress, if not nil, is called after every probe.
	Progress func(probe, total int)
	// ProbeBatch, if positive and below the samples, gives every probe its
	// own random mini-batch of that many samples (hessian.Settings.
	// ProbeBatch: unbiased for the full-data channel traces, the standard
	// errors include the data noise); 0 means every probe over all samples.
	ProbeBatch int
}

// Estimate computes the per-channel Hessian traces of every unit on the
// calibration data ds with Hutchinson's estimator over the engine's
// per-channel operator (one product per probe gives every channel's sample;
// Hutchinson 1990, Avron and Toledo 2011), with their standard errors, and
// the channels' norms. From them HAP's channel importance (Yu et al.,
// "Hessian-Aware Pruning and Optimal Neural Implant", arXiv:2101.08940,
// eq. 6) is
//
//	I_c = Tr(H_cc)/n_c · ‖W_c‖²
//
// the second-order estimate of the loss increase ½ΔwᵀHΔw of setting the
// channel's parameters to zero, with H_cc replaced by its average
// eigenvalue. See Sign for negative estimates.
func Estimate(ctx context.Context, e *nn.Engine, ds data.Dataset, s *Settings) (*Importance, error) {
	var set Settings
	if s != nil {
		set = *s
	}
	if set.Probes == 0 {
		set.Probes = 32
	}
	if set.Probes < 2 {
		return nil, fmt.Errorf("prune: Settings.Probes = %d, want at least 2 (for a standard error)", set.Probes)
	}
	op, err := e.ChannelOperator(ds)
	if err != nil {
		return nil, err
	}
	hs := &hessian.Settings{Seed: set.Seed, MinProbes: set.Probes, MaxProbes: set.Probes, Workers: 1, BatchSize: 4, ProbeBatch: set.ProbeBatch}
	if set.ProbeBatch > 0 && set.ProbeBatch < ds.Len() {
		hs.Workers = runtime.GOMAXPROCS(0) // one engine chunk per probe: parallel probes
	}
	if set.Progress != nil {
		hs.Progress = func(p hessian.Progress) { set.Progress(p.Probes, set.Probes) }
	}
	res, err := hessian.Hutchinson(ctx, op, hs)
	if err != nil {
		return nil, fmt.Errorf("prune: channel traces: %w", err)
	}
	im, err := FromTraces(e, op.Blocks(), res.Blocks)
	if err != nil {
		return nil, err
	}
	im.Sign, im.Method, im.Probes, im.Samples = set.Sign, res.Method, res.Probes, ds.Len()
	return im, nil
}

// FromTraces builds the channel statistics from per-channel trace estimates
// est, one per block of the engine's ChannelOperator (blocks named
// "<unit>/<channel>", as returned by its Blocks method), e.g. exact traces
// from hessian.Exact.
func FromTraces(e *nn.Engine, blocks []hessian.Block, est []hessian.Estimate) (*Importance, error) {
	if len(blocks) != len(est) {
		return nil, fmt.Errorf("prune: %d estimates for %d channel blocks", len(est), len(blocks))
	}
	byName := make(map[string]hessian.Estimate, len(blocks))
	for i, b := range blocks {
		byName[b.Name] = est[i]
	}
	theta := e.Theta()
	im := &Importance{Method: "exact"}
	for _, u := range e.Units() {
		cs := ChannelStats{Unit: u.Name, DeltaSq: map[int][]float64{}}
		chans := u.OutputChannelIndices()
		per := u.WeightSize / len(chans)
		for c, idx := range chans {
			es, ok := byName[fmt.Sprintf("%s/%d", u.Name, c)]
			if !ok {
				return nil, fmt.Errorf("prune: no trace estimate for channel %d of unit %q", c, u.Name)
			}
			if es.Size != len(idx) && es.Size != 0 {
				return nil, fmt.Errorf("prune: channel %d of unit %q: estimate over %d parameters, the channel has %d", c, u.Name, es.Size, len(idx))
			}
			if es.StdErr != 0 {
				im.Method = "hutchinson"
			}
			var sq, l1 float64
			w := make([]float64, 0, per)
			for j, i := range idx {
				sq += theta[i] * theta[i]
				if j < per {
					l1 += math.Abs(theta[i])
					w = append(w, theta[i])
				}
			}
			cs.Trace = append(cs.Trace, es.Trace)
			cs.StdErr = append(cs.StdErr, es.StdErr)
			cs.Size = append(cs.Size, len(idx))
			cs.SqNorm = append(cs.SqNorm, sq)
			cs.L1 = append(cs.L1, l1)
			cs.WeightSize = append(cs.WeightSize, per)
			cs.weights = append(cs.weights, w)
		}
		im.Units = append(im.Units, cs)
	}
	return im, nil
}

// Channel returns HAP's importance of channel c of unit i (index in
// model.Units) and its standard error, Sign applied:
//
//	I_c = s(Tr(H_cc))/n_c · ‖W_c‖²,   SE(I_c) = SE(Tr(H_cc))/n_c · ‖W_c‖²
func (im *Importance) Channel(i, c int) (value, stderr float64) {
	u := &im.Units[i]
	f := u.SqNorm[c] / float64(u.Size[c])
	return im.Sign.apply(u.Trace[c]) * f, u.StdErr[c] * f
}

// AddDeltaSq fills DeltaSq for the given bit widths (symmetric per-channel
// min/max quantizer).
func (im *Importance) AddDeltaSq(bits []int) error {
	for i := range im.Units {
		u := &im.Units[i]
		if u.DeltaSq == nil {
			u.DeltaSq = map[int][]float64{}
		}
		for _, b := range bits {
			if _, ok := u.DeltaSq[b]; ok {
				continue
			}
			q := sensitivity.Quantizer{Bits: b, PerTensor: true}
			d := make([]float64, len(u.weights))
			for c, w := range u.weights {
				v, err := q.DeltaSq(w, sensitivity.Layout{Shape: []int{len(w)}})
				if err != nil {
					return fmt.Errorf("prune: unit %s channel %d at %d bits: %w", u.Unit, c, b, err)
				}
				d[c] = v
			}
			u.DeltaSq[b] = d
		}
	}
	return nil
}

// Criterion ranks channels for removal.
type Criterion int

const (
	// HAP ranks by Tr(H_cc)/n_c · ‖W_c‖² (Importance.Channel).
	HAP Criterion = iota
	// L1 ranks by the channel weights' L1 norm.
	L1
)

// GroupScores returns the score of every channel of group g under the
// criterion: the sum over the group's member units (sources and depthwise
// pass-throughs), since removing channel c removes it from all of them. The
// second slice holds the standard errors (zero for L1), combined assuming
// independence.
func GroupScores(st *Structure, im *Importance, g *Group, crit Criterion) (score, stderr []float64) {
	score = make([]float64, g.Channels)
	stderr = make([]float64, g.Channels)
	for _, name := range g.Members() {
		i := unitIndex(st, name)
		if i < 0 || i >= len(im.Units) || len(im.Units[i].Trace) != g.Channels {
			continue
		}
		for c := 0; c < g.Channels; c++ {
			if crit == L1 {
				score[c] += im.Units[i].L1[c]
				continue
			}
			v, se := im.Channel(i, c)
			score[c] += v
			stderr[c] += se * se
		}
	}
	for c := range stderr {
		stderr[c] = math.Sqrt(stderr[c])
	}
	return score, stderr
}

func unitIndex(st *Structure, name string) int {
	for i, r := range st.Roles {
		if r.Unit == name {
			return i
		}
	}
	return -1
}

// coarsened returns im with the statistics of every unit whose group
// channels are blocks of its output channels (the heads of q, k and v; a
// hidden unit of both directions of a bidirectional recurrent layer whose
// directions are tied) summed over each block: Tr(H_hh) of a head's block is the sum of its
// output channels' traces (the diagonal blocks of a principal block), and
// its size, ‖W‖² and L1 norm are sums too, so the head's HAP importance
// Tr(H_hh)/n_h·‖W_h‖² is exact from the same probes. Standard errors are
// combined as if the channels' estimates were independent. im itself is
// not changed; it is returned as is when no unit needs it.
func coarsened(st *Structure, im *Importance) (*Importance, error) {
	var out *Importance
	for i, r := range st.Roles {
		if r.Out < 0 {
			continue
		}
		u := &im.Units[i]
		h := st.Groups[r.Out].Channels
		if len(u.Trace) == h {
			continue
		}
		if h == 0 || len(u.Trace)%h != 0 {
			return nil, fmt.Errorf("prune: unit %q has %d channel statistics, its group %d channels", u.Unit, len(u.Trace), h)
		}
		if out == nil {
			c := *im
			c.Units = slices.Clone(im.Units)
			out = &c
		}
		// Channel c of the unit belongs to group channel (c mod n/P)/k: P
		// parts (the thirds of a fused q/k/v projection) of h blocks of k.
		// A bidirectional recurrent unit's statistics are per direction
		// (d·H + k): with its directions tied, unit k of the group is
		// channel k of each of the D parts.
		pp := st.Groups[r.Out].parts(&st.Model.Units[i])
		if su := &st.Model.Units[i]; nn.RecurrentGates(su.Op) > 0 && len(su.WeightShape) == 3 {
			pp = su.WeightShape[0]
		}
		if len(u.Trace)%(h*pp) != 0 {
			return nil, fmt.Errorf("prune: unit %q has %d channel statistics, its group %d channels in %d parts", u.Unit, len(u.Trace), h, pp)
		}
		k := len(u.Trace) / h / pp
		cs := ChannelStats{Unit: u.Unit, DeltaSq: map[int][]float64{}}
		for g := 0; g < h; g++ {
			var tr, v, sq, l1 float64
			var n, ws int
			var w []float64
			for q := 0; q < pp; q++ {
				for c := q*h*k + g*k; c < q*h*k+(g+1)*k; c++ {
					tr += u.Trace[c]
					v += u.StdErr[c] * u.StdErr[c]
					n += u.Size[c]
					sq += u.SqNorm[c]
					l1 += u.L1[c]
					ws += u.WeightSize[c]
					w = append(w, u.weights[c]...)
				}
			}
			cs.Trace = append(cs.Trace, tr)
			cs.StdErr = append(cs.StdErr, math.Sqrt(v))
			cs.Size = append(cs.Size, n)
			cs.SqNorm = append(cs.SqNorm, sq)
			cs.L1 = append(cs.L1, l1)
			cs.WeightSize = append(cs.WeightSize, ws)
			cs.weights = append(cs.weights, w)
		}
		out.Units[i] = cs
	}
	if out == nil {
		return im, nil
	}
	return out, nil
}
