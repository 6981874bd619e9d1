package plan

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/bitplan/bitplan/budget"
)

// Point is one point of a Pareto sweep.
type Point struct {
	// Fraction is the swept budget as a fraction of the range (HAWQ's P/100).
	Fraction float64 `json:"fraction"`
	// Limit is the swept budget in the resource's unit.
	Limit float64 `json:"limit"`
	// Plan is the optimal plan at that budget (Status may be infeasible when
	// other budgets conflict).
	Plan *Plan `json:"plan"`
}

// Frontier is the result of sweeping one budget.
type Frontier struct {
	// Resource is the swept resource.
	Resource string `json:"resource"`
	// Unit is its unit.
	Unit string `json:"unit"`
	// Points are in increasing budget order.
	Points []Point `json:"points"`
	kind   budget.Kind
}

// ErrUnknownResource is the error of a sweep over a resource the request
// does not have (wrapped with the names it does have).
var ErrUnknownResource = errors.New("no such resource")

// Sweep solves req once per fraction f of the swept resource's range (the
// budget on it is set to f in HAWQ's convention, replacing any budget the
// request has on it; the other budgets stay), giving the trade-off between Ω
// and that resource with the shadow price of the budget at each point.
// Fractions are used in the order given.
func Sweep(ctx context.Context, req *Request, resource string, fractions []float64) (*Frontier, error) {
	if len(fractions) == 0 {
		return nil, fmt.Errorf("plan: sweep of %q needs at least one point", resource)
	}
	var kind budget.Kind
	found := false
	rs := req.Resources
	if rs == nil {
		rs = DefaultResources(req.Table)
	}
	for _, d := range req.Devices {
		rs = append(rs, d.Resources()...)
	}
	for _, r := range rs {
		if r.Name == resource {
			kind, found = r.Kind, true
		}
	}
	if !found {
		return nil, fmt.Errorf("plan: sweep: %w: %q (have %s)", ErrUnknownResource, resource, names(rs))
	}
	f := &Frontier{Resource: resource, Unit: kind.Unit(), kind: kind}
	for _, fr := range fractions {
		if !(fr >= 0) || math.IsInf(fr, 0) {
			return nil, fmt.Errorf("plan: sweep: fraction %v is not a finite non-negative number", fr)
		}
		sub := *req
		sub.Budgets = nil
		for _, b := range req.Budgets {
			if b.Resource != resource {
				sub.Budgets = append(sub.Budgets, b)
			}
		}
		spec := budget.Spec{Kind: kind, Relative: true, Value: fr, Text: fmt.Sprintf("%g%%", fr*100)}
		sub.Budgets = append(sub.Budgets, Budget{Resource: resource, Spec: spec})
		p, err := Solve(ctx, &sub)
		if err != nil {
			return nil, err
		}
		f.Points = append(f.Points, Point{Fraction: fr, Limit: *p.Usage[resource].Limit, Plan: p})
	}
	return f, nil
}

// Fractions returns n evenly spaced fractions from lo to hi inclusive.
func Fractions(lo, hi float64, n int) []float64 {
	if n <= 1 {
		return []float64{hi}
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = lo + (hi-lo)*float64(i)/float64(n-1)
	}
	return out
}
