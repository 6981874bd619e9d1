package ilp

import (
	"errors"
	"fmt"
	"math"
)

// ErrMalformed is wrapped by every error that Solve, BruteForce, WriteMPS
// and WriteLP return for a problem that is not well formed (no groups, a
// group without choices, duplicate labels, a Costs slice of the wrong length,
// a NaN or infinite value or cost, a NaN limit, a Pin naming no choice).
var ErrMalformed = errors.New("ilp: malformed problem")

// FeasTol is the relative feasibility tolerance of every row: an assignment
// meets row k when
//
//	Σ_g Cost_k(g, c_g) ≤ Limit_k + FeasTol · M_k,   M_k = Σ_g max_c |Cost_k(g, c)|,
//
// so that a budget equal to the exact cost of a plan is met in spite of
// rounding in the sums. Solve and BruteForce use the same rule.
const FeasTol = 1e-10

// malformed builds an error wrapping ErrMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// groupRef names group g in error messages.
func groupRef(p *Problem, g int) string {
	return fmt.Sprintf("group %d (%q)", g, p.Groups[g].Name)
}

// Validate reports the first defect of p as an error wrapping ErrMalformed,
// or nil when p is well formed. An infeasible budget is not a defect.
func (p *Problem) Validate() error {
	if p == nil {
		return malformed("nil problem")
	}
	if len(p.Groups) == 0 {
		return malformed("no groups; want at least one")
	}
	for k, r := range p.Rows {
		if math.IsNaN(r.Limit) {
			return malformed("row %d (%q): limit is NaN; want a number or +Inf", k, r.Name)
		}
	}
	nr := len(p.Rows)
	for g := range p.Groups {
		gr := &p.Groups[g]
		if len(gr.Choices) == 0 {
			return malformed("%s has no choices; want at least one", groupRef(p, g))
		}
		// Labels compared pairwise in a small group (the usual handful of
		// choices), through a map in a large one.
		var seen map[string]int
		if len(gr.Choices) > smallGroup {
			seen = make(map[string]int, len(gr.Choices))
		}
		for c := range gr.Choices {
			ch := &gr.Choices[c]
			prev, dup := -1, false
			if seen != nil {
				prev, dup = seen[ch.Label]
				seen[ch.Label] = c
			} else {
				for d := 0; d < c && !dup; d++ {
					prev, dup = d, gr.Choices[d].Label == ch.Label
				}
			}
			if dup {
				return malformed("%s: choices %d and %d share the label %q; labels must be unique", groupRef(p, g), prev, c, ch.Label)
			}
			if math.IsNaN(ch.Value) || math.IsInf(ch.Value, 0) {
				return malformed("%s choice %q: value is %v; want a finite number", groupRef(p, g), ch.Label, ch.Value)
			}
			if len(ch.Costs) != nr {
				return malformed("%s choice %q: %d costs; want one per row (%d)", groupRef(p, g), ch.Label, len(ch.Costs), nr)
			}
			for k, v := range ch.Costs {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return malformed("%s choice %q: cost for row %d (%q) is %v; want a finite number", groupRef(p, g), ch.Label, k, p.Rows[k].Name, v)
				}
			}
		}
		if gr.Pin != "" && pinIndex(gr) < 0 {
			return malformed("%s: pin %q names no choice", groupRef(p, g), gr.Pin)
		}
	}
	return nil
}

// smallGroup is the most choices whose labels Validate compares pairwise.
const smallGroup = 16

// pinIndex returns the index of the pinned choice of g, or -1.
func pinIndex(g *Group) int {
	if g.Pin == "" {
		return -1
	}
	for c := range g.Choices {
		if g.Choices[c].Label == g.Pin {
			return c
		}
	}
	return -1
}

// ksum is a Neumaier compensated sum (Neumaier 1974, "Rundungsfehleranalyse
// einiger Verfahren zur Summation endlicher Summen"), used wherever a
// reported objective or usage is summed over many groups.
type ksum struct{ s, c float64 }

func (k *ksum) add(x float64) {
	t := k.s + x
	if math.Abs(k.s) >= math.Abs(x) {
		k.c += (k.s - t) + x
	} else {
		k.c += (x - t) + k.s
	}
	k.s = t
}

func (k *ksum) sum() float64 { return k.s + k.c }

// rowMagnitude returns M_k = Σ_g max_c |Cost_k(g, c)| for every row.
func rowMagnitude(p *Problem) []float64 {
	m := make([]float64, len(p.Rows))
	for k := range p.Rows {
		var s ksum
		for g := range p.Groups {
			mx := 0.0
			for _, ch := range p.Groups[g].Choices {
				mx = math.Max(mx, math.Abs(ch.Costs[k]))
			}
			s.add(mx)
		}
		m[k] = s.sum()
	}
	return m
}

// evaluate recomputes objective and usage of an assignment exactly
// (compensated sums over the original data).
func evaluate(p *Problem, choices []int) (obj float64, usage []float64) {
	var o ksum
	us := make([]ksum, len(p.Rows))
	for g, c := range choices {
		ch := &p.Groups[g].Choices[c]
		o.add(ch.Value)
		for k := range us {
			us[k].add(ch.Costs[k])
		}
	}
	usage = make([]float64, len(p.Rows))
	for k := range us {
		usage[k] = us[k].sum()
	}
	return o.sum(), usage
}

// meets reports whether usage u of row k meets its limit under FeasTol.
func meets(limit, u, mag float64) bool {
	if math.IsInf(limit, 1) {
		return true
	}
	return u <= limit+FeasTol*mag
}
