package hessian

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
)

// TestCheckRule: Settings.Check is called in probe order from MinProbes
// on with the estimate so far, summarised as a final result of that many
// probes would be; its reason stops the run, its error aborts it.
func TestCheckRule(t *testing.T) {
	ctx := context.Background()
	m := testMatrices()[0].m
	op := Dense(m, testBlocks())
	base := Settings{Seed: 3, MinProbes: 5, MaxProbes: 40, Tol: 1e-9, Workers: 3}
	var seen []int
	s := base
	s.Check = func(res *TraceResult) (string, error) {
		seen = append(seen, res.Probes)
		if len(res.Samples) != res.Probes || len(res.Blocks) != 3 || res.Blocks[0].StdErr == 0 {
			t.Fatalf("check at %d probes: %d samples, %d blocks, SE %v", res.Probes, len(res.Samples), len(res.Blocks), res.Blocks[0].StdErr)
		}
		if res.Probes == 12 {
			return "enough", nil
		}
		return "", nil
	}
	got, err := Hutchinson(ctx, op, &s)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stop != "enough" || got.Probes != 12 || got.Converged {
		t.Fatalf("stop %q after %d probes (converged %v), want the rule's stop after 12", got.Stop, got.Probes, got.Converged)
	}
	for i, n := range seen {
		if n != 5+i {
			t.Fatalf("checks at %v probes, want 5, 6, …, 12", seen)
		}
	}
	// The stopped run equals a fixed run of 12 probes, interval included.
	fixed := base
	fixed.MinProbes, fixed.MaxProbes = 12, 12
	want, err := Hutchinson(ctx, op, &fixed)
	if err != nil {
		t.Fatal(err)
	}
	for j := range want.Blocks {
		if g, w := got.Blocks[j], want.Blocks[j]; g.Trace != w.Trace || g.Lo != w.Lo || g.Hi != w.Hi {
			t.Fatalf("block %d: stopped %+v, fixed %+v", j, g, w)
		}
	}
	bad := base
	bad.Check = func(*TraceResult) (string, error) { return "", errors.New("no plan") }
	if _, err := Hutchinson(ctx, op, &bad); err == nil || !strings.Contains(err.Error(), "no plan") {
		t.Fatalf("the rule's error was not returned: %v", err)
	}
}

// TestCheckRuleAuto: Auto asks the rule after its pilot, so a rule that
// is satisfied there costs no sketch.
func TestCheckRuleAuto(t *testing.T) {
	ctx := context.Background()
	op := Dense(testMatrices()[1].m, testBlocks())
	s := Settings{Seed: 3, Tol: 1e-6, MaxProbes: 200}
	calls := 0
	s.Check = func(res *TraceResult) (string, error) {
		calls++
		return "enough", nil
	}
	res, err := Auto(ctx, op, &s)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stop != "enough" || res.Probes != defaultPilot || res.Matvecs != defaultPilot || calls != 1 || res.Pilot == nil || res.Pilot.Sketched {
		t.Fatalf("stop %q, %d probes, %d products, %d calls, pilot %+v: want the pilot's %d probes only", res.Stop, res.Probes, res.Matvecs, calls, res.Pilot, defaultPilot)
	}
	// Without a rule the same settings sketch (the low-rank spectrum).
	s.Check = nil
	if res, err = Auto(ctx, op, &s); err != nil || !res.Pilot.Sketched {
		t.Fatalf("without a rule: %v, pilot %+v", err, res.Pilot)
	}
}

// TestAtConfidence: a copy at another level widens or narrows the
// intervals around the same estimates and leaves the original alone.
func TestAtConfidence(t *testing.T) {
	op := Dense(testMatrices()[0].m, testBlocks())
	res, err := Hutchinson(context.Background(), op, &Settings{Seed: 1, MinProbes: 20, MaxProbes: 20})
	if err != nil {
		t.Fatal(err)
	}
	hi, err := res.AtConfidence(0.99)
	if err != nil {
		t.Fatal(err)
	}
	if res.Confidence != 0.95 || hi.Confidence != 0.99 {
		t.Fatalf("confidence %v and %v", res.Confidence, hi.Confidence)
	}
	for j, b := range res.Blocks {
		w := hi.Blocks[j]
		if w.Trace != b.Trace || w.StdErr != b.StdErr || !(w.Lo < b.Lo && w.Hi > b.Hi) || w.Name != b.Name {
			t.Fatalf("block %d: 95 %% %+v, 99 %% %+v", j, b, w)
		}
	}
	back, err := hi.AtConfidence(0.95)
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(back.Blocks[1].Lo - res.Blocks[1].Lo); d > 1e-12 {
		t.Fatalf("back at 95 %%: lower end differs by %g", d)
	}
	if _, err := res.AtConfidence(1); err == nil {
		t.Fatal("confidence 1 accepted")
	}
}
