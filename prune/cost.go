package prune

import (
	"fmt"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/profiles"
)

// Resources lists the kinds of budget a pruning plan takes (package
// budget's vocabulary): params and FLOPs count the units (Conv, ConvTranspose, Gemm,
// MatMul, a recurrent node's W and R; BatchNormalization vectors, element-wise operators and pooling
// are not counted), FLOPs also attention's activation × activation
// MatMuls (Q·Kᵀ, P·V: scaled with the heads kept, fixed when not mapped to
// a prunable head group; not counted in bops and latency), size is Σ params·bits/8 (bits = 32 for a float model
// in plain pruning), bops Σ MACs·b_w·b_a, latency the profile's per-layer
// model summed over the units in milliseconds.
var Resources = []budget.Kind{budget.Params, budget.FLOPs, budget.Size, budget.BOPS, budget.Latency}

// Counts are a unit's costs at batch size 1.
type Counts struct {
	// Params is weights plus bias elements.
	Params int64 `json:"params"`
	// MACs is the multiply-accumulates per sample.
	MACs int64 `json:"macs"`
	// InElems and OutElems are the activation elements read and written.
	InElems  int64 `json:"in_elems"`
	OutElems int64 `json:"out_elems"`
}

// unitCost scales one unit's counts with the channels kept.
type unitCost struct {
	name            string
	weight, bias    int64
	biasPerChannel  bool
	macs, inE, outE int64
	co, ci          int // output channels; input channels of its In group (1 without)
	out, in         int // group indices or −1
	dw              bool
}

func newUnitCosts(st *Structure) []unitCost {
	m := st.Model
	uc := make([]unitCost, len(m.Units))
	for i, u := range m.Units {
		r := st.Roles[i]
		c := unitCost{name: u.Name, macs: u.MACs, inE: u.InElems, outE: u.OutElems, co: unitOutChannels(&u), ci: 1,
			out: r.Out, in: r.In, dw: r.Depthwise}
		if r.Out >= 0 {
			// A group's channel may be a block of output channels (an
			// attention head of q, k or v): count in the group's channels.
			c.co = st.Groups[r.Out].Channels
		}
		c.weight = int64(m.Initializers[u.Weight].Len())
		if u.Bias != "" {
			c.bias = int64(m.Initializers[u.Bias].Len())
			// A recurrent B (D×2·gates·H) holds 2·gates entries per hidden
			// unit and direction.
			c.biasPerChannel = c.bias == int64(unitOutChannels(&u)) || nn.RecurrentGates(u.Op) > 0
		}
		if r.In >= 0 && !r.Depthwise {
			c.ci = st.Groups[r.In].Channels
		}
		uc[i] = c
	}
	return uc
}

// counts returns the unit's counts with ko output and ki input channels
// kept (ki is ignored for depthwise units, whose input channels are their
// output channels, and for units without an In group). All counts of Conv,
// Gemm and MatMul are bilinear in (ko, ki), and the divisions are exact for
// consistent shapes (and, for a group with Directions D, counts that are
// multiples of D).
func (c *unitCost) counts(ko, ki int) Counts {
	co, k := int64(c.co), int64(ko)
	var n Counts
	if c.dw {
		n.Params = c.weight / co * k
		n.MACs = c.macs / co * k
		n.InElems = c.inE / co * k
		n.OutElems = c.outE / co * k
	} else {
		ci, j := int64(c.ci), int64(ki)
		if c.in < 0 {
			ci, j = 1, 1
		}
		// weight/co is a multiple of ci, so the divisions are exact (a
		// bidirectional recurrent R with per-direction channels, D·gates·H²
		// weights over co = ci = D·H channels, keeps k = D·n of them:
		// gates·H·k/(D·H)·k = D·gates·n²).
		n.Params = c.weight / co * k / ci * j
		n.MACs = c.macs / co * k / ci * j
		n.InElems = c.inE / ci * j
		n.OutElems = c.outE / co * k
	}
	if c.biasPerChannel {
		n.Params += c.bias / co * k
	} else {
		n.Params += c.bias
	}
	return n
}

// actCost is an activation × activation MatMul (attention's Q·Kᵀ or
// P·V, model.ActMatMul): no weight, so no unit, but its MACs count in the
// FLOPs row. When its output carries the heads of a prunable group (Analyze
// maps heads through Q·Kᵀ and P·V, so removing a head removes its H·T·T·d
// share) its MACs scale with the heads kept; otherwise (no group, a group
// left intact) they are fixed.
type actCost struct {
	name  string
	macs  int64
	heads int // the group's channels (its heads)
	group int // group index, or −1: fixed
}

func newActCosts(st *Structure) []actCost {
	owner := map[string]int{}
	for _, g := range st.Groups {
		for _, t := range g.Tensors {
			owner[t] = g.Index
		}
	}
	var ac []actCost
	for _, a := range st.Model.ActMatMuls() {
		c := actCost{name: a.Name, macs: a.MACs, group: -1}
		if g, ok := owner[st.Model.Nodes[a.Node].Outputs[0]]; ok && st.Groups[g].Prunable && st.Groups[g].Channels > 0 {
			c.group, c.heads = g, st.Groups[g].Channels
		}
		ac = append(ac, c)
	}
	return ac
}

// macsAt returns the product's MACs with k heads of its group kept
// (ignored when fixed).
func (a *actCost) macsAt(k int) int64 {
	if a.group < 0 {
		return a.macs
	}
	return a.macs / int64(a.heads) * int64(k)
}

// row is one resource row of the planning problem.
type row struct {
	res   budget.Kind
	name  string
	prof  *profiles.Profile
	opts  *profiles.Options
	abits int // activation bits of the latency model (0: same as weights)
	limit float64
	dense float64
	least float64
	spec  budget.Spec
}

// value returns the row's cost of a unit with counts n at weight width
// bits.
func (r *row) value(uc *unitCost, n Counts, ko, bits int) (float64, error) {
	switch r.res {
	case budget.Params:
		return float64(n.Params), nil
	case budget.FLOPs:
		return 2 * float64(n.MACs), nil
	case budget.Size:
		return float64(n.Params) * float64(bits) / 8, nil
	case budget.BOPS:
		a := r.abits
		if a == 0 {
			a = bits
		}
		return float64(n.MACs) * float64(bits) * float64(a), nil
	case budget.Latency:
		a := r.abits
		if a == 0 {
			a = bits
		}
		c, err := r.prof.Cost(profiles.Layer{Name: uc.name, Params: n.Params, MACs: n.MACs, InElems: n.InElems,
			OutElems: n.OutElems, OutChannels: int64(ko)}, profiles.Precision{W: bits, A: a}, r.opts)
		if err != nil {
			return 0, err
		}
		return c.Latency * 1e3, nil
	}
	return 0, fmt.Errorf("prune: unknown resource %v", r.res)
}
