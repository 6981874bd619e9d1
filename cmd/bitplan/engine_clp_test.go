//go:build clp

package main

import (
	"strings"
	"testing"
)

// TestSolveCLPEngine checks that the CLP engine gives the same plan as the
// default engine on the HAWQ reference.
func TestSolveCLPEngine(t *testing.T) {
	for _, b := range []string{"25%", "50%", "75%"} {
		def, errs, code := runCmd(t, "solve", hawq, "--max-bops", b, "--format", "csv")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		c, errs, code := runCmd(t, "solve", hawq, "--max-bops", b, "--format", "csv", "--engine", "clp")
		if code != 0 {
			t.Fatalf("clp: exit %d: %s", code, errs)
		}
		if def != c {
			t.Errorf("--max-bops %s: engines disagree:\n%s\n---\n%s", b, def, c)
		}
	}
	out, _, _ := runCmd(t, "solve", hawq, "--max-bops", "50%", "--engine", "clp")
	if !strings.Contains(out, "(clp)") {
		t.Errorf("report does not name the clp engine:\n%s", out)
	}
}
