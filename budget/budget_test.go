package budget

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		kind Kind
		in   string
		rel  bool
		want float64
	}{
		{Size, "6.5MB", false, 6.5e6},
		{Size, "6.5 MiB", false, 6.5 * (1 << 20)},
		{Size, "100", false, 100},
		{Size, "2kB", false, 2000},
		{Size, "50%", true, 0.5},
		{Size, "0%", true, 0},
		{Size, "150%", true, 1.5},
		{BOPS, "72G", false, 72e9},
		{BOPS, "72GBOPS", false, 72e9},
		{BOPS, "1.5e3 M", false, 1.5e9},
		{BOPS, "1000", false, 1000},
		{Latency, "2.8ms", false, 2.8},
		{Latency, "250us", false, 0.25},
		{Latency, "250µs", false, 0.25},
		{Latency, "1s", false, 1000},
		{Latency, "25 %", true, 0.25},
		{Energy, "3mJ", false, 3e-3},
		{Energy, "12 pJ", false, 12e-12},
		{Params, "30K", false, 30e3},
		{Params, "1.2m", false, 1.2e6},
		{Params, "25000", false, 25000},
		{Params, "50%", true, 0.5},
		{FLOPs, "2.4MFLOPs", false, 2.4e6},
		{FLOPs, "3 G", false, 3e9},
		{Size, "50%max", true, 0.5},
		{Size, "50 % Range", true, 0.5},
	}
	for _, c := range cases {
		s, err := Parse(c.kind, c.in)
		if err != nil {
			t.Errorf("Parse(%v, %q): %v", c.kind, c.in, err)
			continue
		}
		if s.Relative != c.rel || math.Abs(s.Value-c.want) > 1e-12*math.Abs(c.want) {
			t.Errorf("Parse(%v, %q) = %+v, want relative=%v value=%g", c.kind, c.in, s, c.rel, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		kind Kind
		in   string
		want string
	}{
		{Size, "", "empty value"},
		{Size, "6.5XB", `unknown unit "XB"`},
		{Latency, "2.8", "missing unit"},
		{Latency, "2.8MB", `unknown unit "MB"`},
		{Size, "-1MB", "must not be negative"},
		{Size, "-5%", "must not be negative"},
		{Size, "abc%", "not a finite number"},
		{BOPS, "NaN", "missing number"},
		{BOPS, "1e999G", "not a finite number"},
		{Energy, "ms", "missing number"},
		{Size, "6.5Mb", "lower-case b means bits"},
		{Size, "6.5mb", "lower-case b means bits"},
		{Size, "6.5mB", "lower-case m means milli"},
		{Size, "512kib", "lower-case b means bits"},
		{Size, "50%of", `"of" after %`},
		{Params, "30X", `unknown unit "X"`},
		{Params, "-3K", "must not be negative"},
		{FLOPs, "%max", "missing number"},
	}
	for _, c := range cases {
		_, err := Parse(c.kind, c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%v, %q) error = %v, want it to mention %q", c.kind, c.in, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), c.kind.String()) {
			t.Errorf("Parse(%v, %q) error %q does not name the resource", c.kind, c.in, err)
		}
	}
}

func TestResolve(t *testing.T) {
	s, _ := Parse(BOPS, "50%")
	if got := s.Resolve(34e9, 116e9); got != 75e9 {
		t.Errorf("Resolve = %g, want 75e9", got)
	}
	// One meaning of a bare P% per resource, both bases spelt out.
	cases := []struct {
		k    Kind
		text string
		want float64
	}{
		{Size, "50%", 60}, {Size, "50%range", 60}, {Size, "50%max", 50},
		{Latency, "25%", 40}, {Energy, "25%MAX", 25},
		{Params, "50%", 50}, {Params, "50%max", 50}, {Params, "50%range", 60},
		{FLOPs, "10%", 10}, {FLOPs, "10%range", 28},
	}
	for _, c := range cases {
		sp, err := Parse(c.k, c.text)
		if err != nil {
			t.Fatal(err)
		}
		if got := sp.Resolve(20, 100); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%v %q on [20, 100] = %g, want %g", c.k, c.text, got, c.want)
		}
		if sp.BaseGiven != strings.ContainsAny(c.text, "rRmM") {
			t.Errorf("%v %q: BaseGiven %v", c.k, c.text, sp.BaseGiven)
		}
	}
	a, _ := Parse(BOPS, "72G")
	if got := a.Resolve(34e9, 116e9); got != 72e9 {
		t.Errorf("absolute Resolve = %g, want 72e9", got)
	}
}

func TestFormat(t *testing.T) {
	cases := []struct {
		k    Kind
		v    float64
		want string
	}{
		{Size, 6.5e6, "6.5 MB"},
		{Size, 512, "512 B"},
		{BOPS, 72e9, "72 G"},
		{Latency, 2.8, "2.8 ms"},
		{Latency, 0.025, "25 µs"},
		{Energy, 3e-3, "3 mJ"},
		{Params, 61706, "61.71 K"},
		{FLOPs, 2.4e6, "2.4 M"},
	}
	for _, c := range cases {
		if got := Format(c.k, c.v); got != c.want {
			t.Errorf("Format(%v, %g) = %q, want %q", c.k, c.v, got, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"6.5MB", "50%", "72G", "2.8ms", "1e3uJ", "", "%", "-", "1e", "e5", "50%max", "30K", "2%range"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, k := range Kinds {
			sp, err := Parse(k, s)
			if err != nil {
				continue
			}
			if math.IsNaN(sp.Value) || math.IsInf(sp.Value, 0) || sp.Value < 0 {
				t.Fatalf("Parse(%v, %q) accepted a bad value %g", k, s, sp.Value)
			}
		}
	})
}

func ExampleParse() {
	s, err := Parse(Latency, "2.8ms")
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Value, Latency.Unit())
	r, _ := Parse(BOPS, "50%")
	fmt.Println(Format(BOPS, r.Resolve(34e9, 116e9)))
	// Output:
	// 2.8 ms
	// 75 G
}

// A bare percentage has one meaning per resource: HAWQ's range for size,
// bops, latency and energy, a fraction of the unpruned model for params and
// flops. The other base is spelt out.
func ExampleSpec_Resolve() {
	for _, b := range []struct {
		k    Kind
		text string
	}{{Size, "50%"}, {Size, "50%max"}, {Params, "50%"}, {Params, "50%range"}} {
		s, _ := Parse(b.k, b.text)
		// lo and hi: every unit at its lowest and at its highest choice.
		fmt.Printf("%s %s: %s\n", b.k, b.text, Format(b.k, s.Resolve(2e6, 8e6)))
	}
	// Output:
	// size 50%: 5 MB
	// size 50%max: 4 MB
	// params 50%: 4 M
	// params 50%range: 5 M
}
