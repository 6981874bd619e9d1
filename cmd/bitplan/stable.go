package main

import (
	"fmt"
	"strings"

	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/hessian"
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

// actPilot is the activation pilot's probes under --stop plan once its
// first --min-probes show that importance sampling pays
// (eval.ActivationResult.Design): such a probe costs about a tenth of a
// full-data one (18 of 256 samples on the bundled LeNet), and a wider
// pilot's narrower box lets the weights certify the plan sooner. Measured
// on the bundled LeNet (CPU s at 50 % / 90 % size): pilot 10: 1.50 / 9.09
// (at 90 % the weights ran to the tolerance, 230 probes), 20: 1.69 /
// 9.19, 40: 1.97 / 5.14 (the weights stopped by the rule at 59), 80: 2.56
// / 4.91 (docs/probes.md).
const actPilot = 40

// Strata of the weight products after the activation pilot: the samples
// holding strataShare of the pilot's squared importance scores are whole
// in every product, strataTake of the others drawn per product
// (hessian.StrataByShare). On the bundled LeNet 17 of 256 samples are
// whole: a probe over 21 samples had the variance of one over all 256
// (docs/probes.md).
const (
	strataShare = 0.99
	strataTake  = 4
)

// stratify gives the analysis's weight probes stratified products
// (hessian.Settings.Strata) by the activation pilot's per-sample scores,
// when they are concentrated enough to pay, and then, unless
// --max-probes was given, the probe limit of the same cost as
// defaultFullProducts products over all n samples (the activation term
// keeps the limit it had).
func (t *traceFlags) stratify(a *plan.Analysis, act *eval.ActivationResult, n int) {
	if act == nil || act.SampleScores == nil {
		return
	}
	st := hessian.StrataByShare(act.SampleScores, strataShare, strataTake)
	if st == nil || (a.Trace.ProbeBatch > 0 && st.Size() > a.Trace.ProbeBatch) {
		// Not concentrated, or a product would take more samples than
		// the default mini-batches: on the 512-sample Fashion CNN the
		// strata took 200 samples per product and 73.4 s of CPU, batches
		// of 32 52.8 s (the same plan; docs/probes.md).
		return
	}
	a.Trace.Strata, a.Trace.ProbeBatch = st, 0
	if t.maxProbes == 0 {
		t.actMaxProbes = a.Trace.MaxProbes
		a.Trace.MaxProbes = max(t.minProbes, defaultFullProducts*n/st.Size())
	}
}
