package main

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/bitplan/bitplan/ilp"
)

// ilpCheck re-solves a budget with the project's exact solver, ilp.Solve,
// and returns its objective, for comparison with the enumeration.
func (e *enumerator) ilpCheck(row int, limit float64) (float64, error) {
	p := &ilp.Problem{Rows: []ilp.Row{{Name: rowNames[row], Limit: limit}}}
	for gi, members := range e.groups {
		g := ilp.Group{Name: "g" + strconv.Itoa(gi)}
		if len(members) > 1 {
			for _, i := range members {
				g.Members = append(g.Members, strconv.Itoa(i))
			}
		}
		for j, b := range bitsChoices {
			g.Choices = append(g.Choices, ilp.Choice{Label: strconv.Itoa(b), Value: e.gOmega[gi][j], Costs: []float64{e.gCost[row][gi][j]}})
		}
		p.Groups = append(p.Groups, g)
	}
	sol, err := ilp.Solve(context.Background(), p, nil)
	if err != nil {
		return 0, err
	}
	if sol.Status != ilp.Optimal {
		return 0, fmt.Errorf("ilp.Solve: status %s", sol.Status)
	}
	return sol.Objective, nil
}

// solverAgreement solves every budget of the report with ilp.Solve and
// returns the number of budgets and the largest relative difference from the
// enumerated optimum.
func (r *report) solverAgreement(e *enumerator) (n int, worst float64, err error) {
	check := func(row int, limit, want float64) error {
		got, err := e.ilpCheck(row, limit)
		if err != nil {
			return err
		}
		n++
		worst = math.Max(worst, math.Abs(got-want)/math.Abs(want))
		return nil
	}
	for _, s := range r.schemes {
		if err := check(s.row, s.limit, s.optimum); err != nil {
			return n, worst, err
		}
	}
	for i, s := range r.sweep {
		if err := check(rowMeasured, s.measLimit, s.measOmega); err != nil {
			return n, worst, err
		}
		if err := check(rowModel, e.frac(rowModel, s.frac), e.omega[s.modelPlan]); err != nil {
			return n, worst, err
		}
		f := r.fitSweep[i]
		if err := check(rowFitted, e.frac(rowFitted, f.frac), e.omega[f.modelPlan]); err != nil {
			return n, worst, err
		}
		if c := r.calib.sweep[i]; c.modelPlan >= 0 {
			if err := check(rowCalibrated, c.measLimit, e.omega[c.modelPlan]); err != nil {
				return n, worst, err
			}
		}
	}
	return n, worst, nil
}
