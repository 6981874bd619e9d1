package main

import (
	"strings"
	"testing"
)

// TestMemoryFlag checks that a model too large for --memory is refused
// before any work with the memory it needs and the flag to change, and
// that a bad --memory value names the flag.
func TestMemoryFlag(t *testing.T) {
	_, errOut, code := runCmd(t, "trace", lenet, "--data", "mnist", "--samples", "8", "--memory", "1MB")
	if code == 0 || !strings.Contains(errOut, "needs 1.6 MB of engine memory at batch size 1") || !strings.Contains(errOut, "raise --memory (now 1MB)") {
		t.Errorf("--memory 1MB: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runCmd(t, "trace", lenet, "--data", "mnist", "--samples", "8", "--memory", "lots")
	if code == 0 || !strings.Contains(errOut, "flag --memory") {
		t.Errorf("--memory lots: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code = runCmd(t, "trace", lenet, "--data", "mnist", "--samples", "8", "--memory", "3MB", "--min-probes", "2", "--max-probes", "4"); code != 0 {
		t.Errorf("--memory 3MB: exit %d, stderr %q", code, errOut)
	}
}
