package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// TestMemoryFlag checks that a model too large for --memory is refused
// before any work with the memory it needs and the flag to change, and
// that a bad --memory value names the flag.
func TestMemoryFlag(t *testing.T) {
	// The need: two work areas of one sample (one worker and the partial
	// chunk), as the engine plans them.
	m, err := model.Load(lenet)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	one, err := e.WorkBytes(1)
	if err != nil {
		t.Fatal(err)
	}
	need := fmt.Sprintf("needs %.1f MB of engine memory at batch size 1", float64(2*one)/1e6)
	_, errOut, code := runCmd(t, "trace", lenet, "--data", "mnist", "--samples", "8", "--memory", "1MB")
	if code == 0 || !strings.Contains(errOut, need) || !strings.Contains(errOut, "raise --memory (now 1MB)") {
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
