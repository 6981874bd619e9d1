package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// TestEnginePrecisionFlag checks that --engine-precision float32 traces the
// same model as float64 within float32 rounding, and that a bad value names
// the flag.
func TestEnginePrecisionFlag(t *testing.T) {
	_, errOut, code := runCmd(t, "trace", lenet, "--data", "mnist", "--samples", "8", "--engine-precision", "half")
	if code == 0 || !strings.Contains(errOut, "flag --engine-precision") {
		t.Errorf("--engine-precision half: exit %d, stderr %q", code, errOut)
	}
	traces := map[string]map[string]float64{}
	for _, p := range []string{"float64", "float32"} {
		out, errOut, code := runCmd(t, "trace", lenet, "--data", "mnist", "--samples", "16", "--min-probes", "4", "--max-probes", "4", "--format", "json", "--engine-precision", p)
		if code != 0 {
			t.Fatalf("--engine-precision %s: exit %d, stderr %q", p, code, errOut)
		}
		var tab struct {
			Layers []struct {
				Name     string  `json:"name"`
				AvgTrace float64 `json:"avg_trace"`
			} `json:"layers"`
		}
		if err := json.Unmarshal([]byte(out), &tab); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		traces[p] = map[string]float64{}
		for _, l := range tab.Layers {
			traces[p][l.Name] = l.AvgTrace
		}
	}
	if len(traces["float64"]) == 0 {
		t.Fatal("no layers traced")
	}
	// The same four probes in both precisions: the estimates differ by
	// float32 rounding of the products (see nn's refTol32), within 1e-4.
	for name, want := range traces["float64"] {
		if got := traces["float32"][name]; math.Abs(got-want) > 1e-4*math.Abs(want) {
			t.Errorf("%s: float32 trace %.8g, float64 %.8g", name, got, want)
		}
	}
}
