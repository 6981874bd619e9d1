package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hawqWithShapes writes HAWQ's ResNet18 table with in_elems and out_elems
// derived from its shapes (a sensitivity table --layers reads) and a latency
// table of its even layers; it returns both paths.
func hawqWithShapes(t *testing.T) (sens, table string) {
	t.Helper()
	data, err := os.ReadFile(hawq)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("layer,precision,ms\n")
	for i, x := range h["layers"].([]any) {
		l := x.(map[string]any)
		n := func(k string) float64 { return l[k].(float64) }
		l["in_elems"] = n("in_channels") * n("in_hw") * n("in_hw")
		l["out_elems"] = n("out_channels") * n("out_hw") * n("out_hw")
		if i%2 == 0 {
			lat := l["latency_ms"].(map[string]any)
			fmt.Fprintf(&csv, "%s,w4a4,%v\n%s,w8a8,%v\n", l["name"], lat["4"], l["name"], lat["8"])
		}
	}
	delete(h, "schemes")
	dir := t.TempDir()
	sens, table = filepath.Join(dir, "sens.json"), filepath.Join(dir, "even.csv")
	b, _ := json.Marshal(h)
	if err := os.WriteFile(sens, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(table, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return sens, table
}

// TestProfilesFit: --fit writes a fitted profile that --profile reads, and
// reports the fit error; the calibrated plan under an absolute budget meets
// the measured limit.
func TestProfilesFit(t *testing.T) {
	sens, table := hawqWithShapes(t)
	out := filepath.Join(filepath.Dir(sens), "t4fit.json")
	_, errs, code := runCmd(t, "profiles", "t4", "--fit", table, "--layers", sens, "--batch", "8", "-o", out)
	if code != 0 || !strings.Contains(errs, "median |relative error| 90.6% before, 5.3% after") {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	desc, _, code := runCmd(t, "profiles", out)
	if code != 0 || !strings.Contains(desc, "memory efficiency") || !strings.Contains(desc, "overhead") {
		t.Fatalf("describe fitted: exit %d\n%s", code, desc)
	}
	plan, errs, code := runCmd(t, "solve", sens, "--batch", "8", "--profile", out, "--max-latency", "4.0267ms", "--format", "json")
	if code != 0 {
		t.Fatalf("solve: exit %d: %s", code, errs)
	}
	var r struct {
		Usage map[string]struct {
			Used float64 `json:"used"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(plan), &r); err != nil {
		t.Fatal(err)
	}
	// "latency" is the table's own measured latency of the plan.
	if m := r.Usage["latency"].Used; !(m > 3 && m <= 4.0267) {
		t.Errorf("calibrated plan's measured latency %g ms, want within the 4.0267 ms limit", m)
	}
}

func TestProfilesFitErrors(t *testing.T) {
	sens, table := hawqWithShapes(t)
	bad := filepath.Join(filepath.Dir(sens), "bad.csv")
	if err := os.WriteFile(bad, []byte("layer,precision,ms\nnosuch,w8a8,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"profiles", "t4", "--fit", table}, "--fit needs --layers"},
		{[]string{"profiles", "t4", "t4", "--fit", table, "--layers", sens}, "one NAME or FILE"},
		{[]string{"profiles", "t4", "--fit", bad, "--layers", sens}, `layer "nosuch" is not a layer of the model`},
		{[]string{"profiles", "t4", "--fit", table, "--layers", sens, "-o", table}, "refusing to overwrite it"},
		{[]string{"profiles", "t4", "-o", "x.json"}, "go with --fit"},
		{[]string{"profiles", "t4", "--fit", table, "--layers", sens, "--batch", "0"}, "--batch"},
	} {
		_, errs, code := runCmd(t, c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", c.args, code, errs, c.want)
		}
	}
}
