package profiles

import (
	"errors"
	"fmt"
	"math"
)

// Layer is what the cost models need to know about one quantizable layer.
// Counts are per sample (batch 1), as the sensitivity table stores them.
type Layer struct {
	// Name identifies the layer (and keys measured tables).
	Name string `json:"name"`
	// Params is the number of weights.
	Params int64 `json:"params"`
	// MACs is the number of multiply-accumulates per sample.
	MACs int64 `json:"macs"`
	// InElems is the number of activation elements read per sample
	// (0 with OutElems = 0 means unknown: only weights are costed).
	InElems int64 `json:"in_elems,omitempty"`
	// OutElems is the number of activation elements written per sample.
	OutElems int64 `json:"out_elems,omitempty"`
	// OutChannels is the number of output channels, for per-channel scales.
	OutChannels int64 `json:"out_channels,omitempty"`
}

// WeightOnly reports whether the layer carries no activation sizes, so its
// memory traffic is costed from the weights alone.
func (l Layer) WeightOnly() bool { return l.InElems == 0 && l.OutElems == 0 }

// check returns an error naming the layer and the first negative count.
func (l Layer) check() error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"params", l.Params}, {"macs", l.MACs}, {"in_elems", l.InElems}, {"out_elems", l.OutElems}, {"out_channels", l.OutChannels}} {
		if f.v < 0 {
			return fmt.Errorf("layer %q: %s must be ≥ 0, got %d", l.Name, f.name, f.v)
		}
	}
	return nil
}

// Options tunes the cost models. A nil *Options means all defaults; the zero
// value of each field means its default.
type Options struct {
	// PerChannel adds one scale per output channel to the weights
	// (OutChannels × ScaleBytes bytes), as a per-channel quantizer stores
	// them; false (default) models a per-tensor scale and adds nothing.
	PerChannel bool
	// ScaleBytes is the size of one scale; 0 means 4 (fp32).
	ScaleBytes int
	// Batch is the number of samples per run; 0 means 1. MACs and
	// activation traffic scale with it, weights are read once.
	Batch int
	// Table holds measured latencies that replace the roofline where it has
	// an entry for the layer at the requested precision.
	Table *Table
}

func (o *Options) batch() float64 {
	if o == nil || o.Batch <= 0 {
		return 1
	}
	return float64(o.Batch)
}

func (o *Options) scaleBytes() float64 {
	if o == nil || !o.PerChannel {
		return 0
	}
	if o.ScaleBytes <= 0 {
		return 4
	}
	return float64(o.ScaleBytes)
}

// Bound names what limits a layer's latency.
type Bound string

// Latency bounds.
const (
	ComputeBound Bound = "compute"
	MemoryBound  Bound = "memory"
	Measured     Bound = "measured"
)

// Cost is the cost of one layer at one candidate precision on one profile.
// Time is in seconds, sizes in bytes, energy in joules.
type Cost struct {
	// Layer is the layer's name.
	Layer string `json:"layer"`
	// Requested is the candidate precision.
	Requested Precision `json:"requested"`
	// Used is the precision the device computes in (Requested, or the wider
	// pair it falls back to).
	Used Precision `json:"used"`
	// FellBack reports Used ≠ Requested.
	FellBack bool `json:"fell_back,omitempty"`
	// Size is the stored weight size: Params·W/8 (+ OutChannels·ScaleBytes
	// with per-channel scales).
	Size float64 `json:"size_bytes"`
	// BOPS is the bit operations per sample: MACs·W·A (HAWQ-V3).
	BOPS float64 `json:"bops"`
	// Compute is batch·MACs / (peak MAC/s of Used · efficiency).
	Compute float64 `json:"compute_s"`
	// Memory is Traffic / (bandwidth · memory efficiency).
	Memory float64 `json:"memory_s"`
	// Overhead is the fixed per-layer time of Used (the precision's own, or
	// the profile's).
	Overhead float64 `json:"overhead_s"`
	// Latency is max(Compute, Memory) + Overhead, or the measured value.
	Latency float64 `json:"latency_s"`
	// Bound tells which term set Latency: compute, memory or measured.
	Bound Bound `json:"bound"`
	// Traffic is the DRAM bytes moved per run: Size + batch·(InElems +
	// OutElems)·A/8.
	Traffic float64 `json:"traffic_bytes"`
	// Energy is batch·MACs·E_mac(Used) + Traffic·E_DRAM.
	Energy float64 `json:"energy_j"`
	// EnergyKnown is false when the profile lacks E_mac for Used or E_DRAM
	// (Energy then counts only the known part).
	EnergyKnown bool `json:"energy_known"`
	// Activation is the bytes of the layer's output activation, the largest
	// live tensor the layer adds: batch·OutElems·A/8.
	Activation float64 `json:"activation_bytes"`
	// Notes say what was assumed: fallbacks, weight-only traffic, a measured
	// latency.
	Notes []string `json:"notes,omitempty"`
}

// Cost returns the cost of layer l at precision q on this profile:
//
//	size     = Params·W/8 (+ OutChannels·ScaleBytes, per-channel option)
//	BOPS     = MACs·W·A                          (HAWQ-V3, arXiv:2011.10680)
//	compute  = B·MACs / (P_mac(used) · η)
//	memory   = (size + B·(InElems + OutElems)·A/8) / (BW · η_mem)
//	latency  = max(compute, memory) + overhead(used)   (roofline: Williams,
//	           Waterman, Patterson, CACM 52(4), 2009)
//	energy   = B·MACs·E_mac(used) + traffic·E_DRAM
//	act. mem = B·OutElems·A/8
//
// with B the batch, P_mac the dense peak MAC/s (ops/2), η the efficiency and
// "used" the precision Resolve picks. A measured Table entry for (layer, q)
// replaces the latency. The error wraps ErrUnsupported when the device has
// no pair holding q (the candidate should then be removed), and names the
// layer and field for a negative count. A nil o means default Options.
func (p *Profile) Cost(l Layer, q Precision, o *Options) (Cost, error) {
	if err := l.check(); err != nil {
		return Cost{}, err
	}
	if !q.Valid() {
		return Cost{}, fmt.Errorf("layer %q: precision %s: widths must be 1..64", l.Name, q)
	}
	spec, fell, err := p.Resolve(q)
	if err != nil {
		return Cost{}, fmt.Errorf("layer %q: %w", l.Name, err)
	}
	b := o.batch()
	c := Cost{Layer: l.Name, Requested: q, Used: spec.Precision, FellBack: fell}
	macs := float64(l.MACs)
	c.Size = float64(l.Params)*float64(q.W)/8 + float64(l.OutChannels)*o.scaleBytes()
	c.BOPS = macs * float64(q.W) * float64(q.A)
	c.Compute = b * macs / (spec.PeakMACs() * p.efficiency(spec))
	c.Activation = b * float64(l.OutElems) * float64(q.A) / 8
	c.Traffic = c.Size + b*float64(l.InElems)*float64(q.A)/8 + c.Activation
	c.Memory = c.Traffic / p.bandwidth()
	c.Overhead = p.overhead(spec)
	c.Latency = math.Max(c.Compute, c.Memory) + c.Overhead
	c.Bound = ComputeBound
	if c.Memory > c.Compute {
		c.Bound = MemoryBound
	}
	c.Energy = b*macs*spec.EnergyPerMAC + c.Traffic*p.DRAMEnergy
	c.EnergyKnown = spec.EnergyPerMAC > 0 && p.DRAMEnergy > 0
	if fell {
		c.Notes = append(c.Notes, fmt.Sprintf("%s runs as %s on %s", q, spec.Precision, p.Name))
	}
	if l.WeightOnly() {
		c.Notes = append(c.Notes, "weight-only: no in_elems/out_elems, memory time counts weights only")
	}
	if !c.EnergyKnown {
		c.Notes = append(c.Notes, "energy incomplete: profile lacks energy_pj_per_mac or dram_energy_pj_per_byte")
	}
	if o != nil && o.Table != nil {
		if ms, ok := o.Table.Lookup(l.Name, q); ok {
			c.Latency = ms * 1e-3
			c.Bound = Measured
			c.Notes = append(c.Notes, "latency measured ("+o.Table.Origin+")")
		}
	}
	return c, nil
}

// Costing is the cost of every layer at every candidate the device can run.
type Costing struct {
	// Candidates are the precisions kept, in the order given.
	Candidates []Precision
	// Removed are the candidates the device cannot run (ErrUnsupported).
	Removed []Precision
	// Costs[i][j] is layer i at Candidates[j].
	Costs [][]Cost
	// Warnings are notes worth showing once: fallbacks, removed
	// candidates, weight-only layers, table entries not used.
	Warnings []string
}

// CostAll costs every layer at every candidate. Candidates the device cannot
// run are removed and reported; if none remains the error wraps
// ErrUnsupported. When o.Table is set it is first checked against the layers
// (Table.Check): a table naming an unknown layer is an error naming the file,
// line and value.
func (p *Profile) CostAll(layers []Layer, cands []Precision, o *Options) (*Costing, error) {
	if o != nil && o.Table != nil {
		if err := o.Table.Check(layers); err != nil {
			return nil, err
		}
	}
	out := &Costing{}
	for _, q := range cands {
		spec, fell, err := p.Resolve(q)
		switch {
		case errors.Is(err, ErrUnsupported):
			out.Removed = append(out.Removed, q)
			out.Warnings = append(out.Warnings, fmt.Sprintf("candidate %s removed: %s has no pair holding it", q, p.Name))
			continue
		case err != nil:
			return nil, err
		}
		if fell {
			out.Warnings = append(out.Warnings, fmt.Sprintf("candidate %s runs as %s on %s", q, spec.Precision, p.Name))
		}
		out.Candidates = append(out.Candidates, q)
	}
	if len(out.Candidates) == 0 {
		return nil, fmt.Errorf("profile %s: %w: none of the candidates can run (device has %s)", p.Name, ErrUnsupported, p.precisionList())
	}
	var weightOnly []string
	for _, l := range layers {
		row := make([]Cost, len(out.Candidates))
		for j, q := range out.Candidates {
			c, err := p.Cost(l, q, o)
			if err != nil {
				return nil, err
			}
			row[j] = c
		}
		if l.WeightOnly() {
			weightOnly = append(weightOnly, l.Name)
		}
		out.Costs = append(out.Costs, row)
	}
	if len(weightOnly) > 0 {
		out.Warnings = append(out.Warnings, fmt.Sprintf("%d layer(s) without in_elems/out_elems are costed from weights only: %s", len(weightOnly), joinClip(weightOnly, 5)))
	}
	if o != nil && o.Table != nil {
		out.Warnings = append(out.Warnings, o.Table.unused(layers, out.Candidates)...)
	}
	return out, nil
}

func joinClip(s []string, n int) string {
	if len(s) <= n {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%v and %d more", s[:n], len(s)-n)
}
