package main

import (
	"strings"
	"testing"
)

// TestPlanStopRule: by default bitplan plan stops the traces once the plan
// is stable within the joint box (and says so in the plan's source);
// --stop tolerance runs to the tolerance or the probe limit; the rule is
// refused where it cannot apply.
func TestPlanStopRule(t *testing.T) {
	args := []string{"plan", lenet, "--data", "mnist", "--samples", "32", "--profile", "t4", "--max-size", "50%", "--verify", "0", "--max-probes", "40", "--method", "hutchinson"}
	out, errs, code := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// With the activation term (the default) either the weight traces or
	// the activation traces after them stop on the plan.
	if !strings.Contains(out, "the plan is optimal for every trace vector in the box") || !strings.Contains(errs, "traces stopped after") {
		t.Fatalf("default --stop plan did not stop on the plan:\nstdout %s\nstderr %s", out, errs)
	}
	if _, errs, code := runCmd(t, append(args, "--weight-only")...); code != 0 || !strings.Contains(errs, "bitplan: traces stopped after") {
		t.Fatalf("--weight-only: the weight traces did not stop on the plan (exit %d):\n%s", code, errs)
	}
	tol, errs, code := runCmd(t, append(args, "--stop", "tolerance")...)
	if code != 0 {
		t.Fatalf("--stop tolerance: exit %d: %s", code, errs)
	}
	if strings.Contains(tol, "the plan is optimal for every trace vector") || !strings.Contains(tol, "40 probes") {
		t.Fatalf("--stop tolerance stopped on the plan or before the limit:\n%s", tol)
	}
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--stop", "soon"}, `flag --stop: unknown rule "soon"`},
		{[]string{"--stop", "plan", "--method", "hutch++"}, "flag --stop plan: --method hutch++ runs a fixed budget"},
		{[]string{"--stop", "plan", "--sensitivity", "weight"}, "flag --stop plan: its Ω does not come from the traces"},
	} {
		_, errs, code := runCmd(t, append(args, c.extra...)...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", c.extra, code, errs, c.want)
		}
	}
	// Not given, the rule falls back to the tolerance for such methods.
	if _, errs, code := runCmd(t, append(args, "--method", "hutch++", "--matvecs", "12")...); code != 0 {
		t.Errorf("--method hutch++ without --stop: exit %d: %s", code, errs)
	}
}
