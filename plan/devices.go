package plan

import (
	"errors"
	"math"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/profiles"
	"github.com/bitplan/bitplan/sensitivity"
)

// Device is a hardware profile whose latency and energy a plan reports and
// can budget; several devices give one ILP with a row per device and budget.
type Device struct {
	// Profile is the hardware profile.
	Profile *profiles.Profile
	// Options tunes its cost models (batch, per-channel scales, a measured
	// latency table); nil means defaults.
	Options *profiles.Options
}

// LatencyName and EnergyName return the resource names of a device's
// latency and energy: "latency@t4", "energy@t4".
func (d Device) LatencyName() string { return "latency@" + d.Profile.Name }

// EnergyName returns the resource name of the device's energy.
func (d Device) EnergyName() string { return "energy@" + d.Profile.Name }

// profileLayer converts a table layer to the cost model's input.
func profileLayer(l *sensitivity.Layer) profiles.Layer {
	r := func(v float64) int64 { return int64(math.Round(v)) }
	return profiles.Layer{Name: l.Name, Params: r(l.Params), MACs: r(l.MACs),
		InElems: r(l.InElems), OutElems: r(l.OutElems), OutChannels: r(l.OutChannels)}
}

// Resources returns the device's latency (ms, roofline or measured) and
// energy (J) resources. Candidates the device cannot run (no pair holding
// them, see profiles.Profile.Resolve) are unsupported and removed from the
// plan.
func (d Device) Resources() []Resource {
	supports := func(p sensitivity.Precision) bool {
		_, _, err := d.Profile.Resolve(profiles.Precision{W: p.W, A: p.A})
		return !errors.Is(err, profiles.ErrUnsupported)
	}
	cost := func(l *sensitivity.Layer, p sensitivity.Precision) (profiles.Cost, error) {
		if l.Kind == sensitivity.KindNonlinear {
			// Below 16 bits: integer-only (I-BERT); 16 and more: float.
			return d.Profile.NonlinearCost(l.Name, l.Function, int64(math.Round(l.InElems)), p.W < 16, d.Options)
		}
		return d.Profile.Cost(profileLayer(l), profiles.Precision{W: p.W, A: p.A}, d.Options)
	}
	return []Resource{
		{Name: d.LatencyName(), Kind: budget.Latency, Supports: supports,
			Cost: func(l *sensitivity.Layer, _ string, p sensitivity.Precision) float64 {
				c, err := cost(l, p)
				if err != nil {
					return math.NaN()
				}
				return c.Latency * 1e3
			}},
		{Name: d.EnergyName(), Kind: budget.Energy, Supports: supports,
			Cost: func(l *sensitivity.Layer, _ string, p sensitivity.Precision) float64 {
				c, err := cost(l, p)
				if err != nil {
					return math.NaN()
				}
				return c.Energy
			}},
	}
}

// check costs every layer of t at every candidate on the device and returns
// the cost model's warnings (fallbacks, removed candidates, weight-only
// layers, unused measured entries); the error names a measured table entry
// for an unknown layer.
func (d Device) check(t *sensitivity.Table) ([]string, error) {
	var layers []profiles.Layer
	seen := map[sensitivity.Precision]bool{}
	var cands []profiles.Precision
	for i := range t.Layers {
		if l := &t.Layers[i]; l.Kind == sensitivity.KindNonlinear {
			for _, integer := range []bool{true, false} {
				if _, err := d.Profile.NonlinearCost(l.Name, l.Function, int64(math.Round(l.InElems)), integer, d.Options); err != nil {
					return nil, err
				}
			}
			continue
		}
		layers = append(layers, profileLayer(&t.Layers[i]))
		ps, _ := t.Layers[i].Candidates()
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				cands = append(cands, profiles.Precision{W: p.W, A: p.A})
			}
		}
	}
	c, err := d.Profile.CostAll(layers, cands, d.Options)
	if err != nil {
		return nil, err
	}
	return c.Warnings, nil
}
