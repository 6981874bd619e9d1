package profiles

import (
	"math"
	"strings"
	"testing"
)

// TestNonlinearCost checks NonlinearCost on the T4 by hand: one million
// GELU elements integer-only take 10 ALU ops each (4.07 T op/s: 2.457 µs)
// and move 5 B each (320 GB/s: 15.625 µs, the bound); energy 7·0.1 + 3·3.1
// = 10 pJ per element plus 5 MB at 162.5 pJ/B; in float 33 ops (8.108 µs)
// and 8 B (25 µs), 14·0.9 + 19·3.7 = 82.9 pJ plus 8 MB. The fitted profile
// file keeps the ALUs, and a profile without them is an error naming it.
func TestNonlinearCost(t *testing.T) {
	p, err := Builtin("t4")
	if err != nil {
		t.Fatal(err)
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9*math.Abs(want) {
			t.Errorf("%s = %g, want %g", what, got, want)
		}
	}
	for _, c := range []struct {
		integer                   bool
		compute, memory, energyPJ float64
	}{{true, 1e6 * 10 / 4.07e12, 5e6 / 320e9, 1e6*10 + 5e6*162.5}, {false, 1e6 * 33 / 4.07e12, 8e6 / 320e9, 1e6*82.9 + 8e6*162.5}} {
		got, err := p.NonlinearCost("l", "gelu", 1e6, c.integer, nil)
		if err != nil {
			t.Fatal(err)
		}
		near("compute", got.Compute, c.compute)
		near("memory", got.Memory, c.memory)
		near("latency", got.Latency, math.Max(c.compute, c.memory))
		near("energy", got.Energy, c.energyPJ*1e-12)
		if got.Bound != MemoryBound || !got.EnergyKnown {
			t.Errorf("integer %v: bound %s, energy known %v", c.integer, got.Bound, got.EnergyKnown)
		}
	}
	b, err := p.MarshalFile()
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(b, "fitted")
	if err != nil || q.ALU[ALUInt] != p.ALU[ALUInt] || q.ALU[ALUFloat] != p.ALU[ALUFloat] {
		t.Errorf("round trip: %v, %+v", err, q.ALU)
	}
	p.ALU = nil
	if _, err := p.NonlinearCost("l", "gelu", 1, true, nil); err == nil || !strings.Contains(err.Error(), `profile t4 has no "int32" entry in "alu"`) {
		t.Errorf("no ALU: %v", err)
	}
	if _, err := Parse([]byte(strings.Replace(string(b), `"int32"`, `"int64"`, 1)), "x"); err == nil || !strings.Contains(err.Error(), "alu.int64") {
		t.Errorf("bad ALU key: %v", err)
	}
}
