package main

import (
	"fmt"
	"strings"

	"github.com/bitplan/bitplan/plan"
)

// The --stop rules of bitplan plan.
const (
	stopPlan      = "plan"      // the tolerance, or a plan no trace in the joint box can change (plan.StableStop)
	stopTolerance = "tolerance" // the tolerance only
)

// stopOverhead is the fraction of the estimate's time --stop plan's checks
// may take (plan.StableStop.Overhead).
const stopOverhead = 0.2

// defaultStopConfidence is the joint confidence of --stop plan's box.
const defaultStopConfidence = 0.95

// stopByPlan reads --stop: whether plan-stability stopping applies to the
// analysis a. It needs Hutchinson's loop (--method hutchinson or auto) and
// the HAWQ-V3 criterion, whose Ω moves with the traces (and not
// --act-quadratic, whose Ω is fixed in scores once computed); by default it
// falls back to the tolerance otherwise, and asking for it explicitly is
// then a usage error.
func stopByPlan(rule string, given bool, a *plan.Analysis, quadratic bool) (bool, error) {
	switch strings.ToLower(rule) {
	case stopTolerance:
		return false, nil
	case stopPlan:
	default:
		return false, usageError{fmt.Errorf("flag --stop: unknown rule %q (want plan or tolerance)", rule)}
	}
	why := ""
	switch {
	case a.NoTraces || a.Diag:
		why = "its Ω does not come from the traces' intervals (--sensitivity hessian does)"
	case quadratic:
		why = "--act-quadratic puts Ω in scores computed after the weight traces (give --stop tolerance)"
	case a.Method != plan.Hutchinson && a.Method != plan.Auto:
		why = fmt.Sprintf("--method %s runs a fixed budget (hutchinson and auto stop adaptively)", a.Method)
	}
	if why == "" {
		return true, nil
	}
	if given {
		return false, usageError{fmt.Errorf("flag --stop plan: %s", why)}
	}
	return false, nil
}
