package sensitivity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestReadHAWQReference(t *testing.T) {
	tab, warn, err := ReadFile("../testdata/hawq_resnet18.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Layers) != 19 {
		t.Fatalf("got %d layers, want 19", len(tab.Layers))
	}
	// The reference carries its nine schemes: the only unknown field.
	if len(warn) != 1 || !strings.Contains(warn[0], `"schemes"`) {
		t.Errorf("warnings = %q, want one about \"schemes\"", warn)
	}
	g := tab.TieGroups()
	want := [][]int{{4, 6}, {9, 11}, {14, 16}}
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("TieGroups = %v, want %v", g, want)
	}
	ps, ks := tab.Layers[0].Candidates()
	if len(ps) != 2 || ps[0] != (Precision{4, 4}) || ps[1] != (Precision{8, 8}) || ks[0] != "4" || ks[1] != "8" {
		t.Errorf("Candidates = %v %v", ps, ks)
	}
	if got := tab.Layers[0].Omega("4"); got != 0.06857826*6.743 {
		t.Errorf("Omega = %g", got)
	}
}

const good = `{"model": "m", "layers": [
 {"name": "a", "params": 10, "macs": 100, "avg_trace": 0.5, "delta_sq": {"4": 2, "8": 0.01}, "tie": "t"},
 {"name": "b", "params": 20, "macs": 200, "avg_trace": -0.1, "delta_sq": {"4": 3, "8": 0.02}, "tie": "t", "pin": "8"}
]}`

func TestParseWarnings(t *testing.T) {
	tab, warn, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(warn) != 1 || !strings.Contains(warn[0], "negative avg_trace") || !strings.Contains(warn[0], `"b"`) {
		t.Errorf("warnings = %q", warn)
	}
	if fmt.Sprint(tab.TieGroups()) != "[[0 1]]" {
		t.Errorf("tie groups = %v", tab.TieGroups())
	}
	_, warn, err = Parse([]byte(`{"layers": [{"name": "a", "params": 1, "avg_trace": 1, "delta_sq": {"4": 1}, "avg_trace_sterr": 0.1}], "modle": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(warn) != 2 || !strings.Contains(warn[0], `"modle"`) || !strings.Contains(warn[1], `"avg_trace_sterr"`) {
		t.Errorf("typo warnings = %q", warn)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"layers": [`, "unexpected end"},
		{"{\"layers\": [\n {\"name\": \"a\",, }]}", "line 2, column"},
		{`{"layers": []}`, "no layers"},
		{`{"layers": [{"params": 1, "delta_sq": {"4": 1}}]}`, `layers[0]: missing "name"`},
		{`{"layers": [{"name": "a", "params": -1, "delta_sq": {"4": 1}}]}`, `"params" must be a finite non-negative`},
		{`{"layers": [{"name": "a", "macs": -5, "delta_sq": {"4": 1}}]}`, `"macs" must be`},
		{`{"layers": [{"name": "a", "delta_sq": {"4": -1}}]}`, `delta_sq["4"] must be`},
		{`{"layers": [{"name": "a", "delta_sq": {}}]}`, "at least one candidate"},
		{`{"layers": [{"name": "a", "delta_sq": {"four": 1}}]}`, `precision "four"`},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1, "w4a4": 2}}]}`, "name the same precision"},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1, "8": 1}, "latency_ms": {"4": 1}}]}`, `latency_ms has no value for candidate "8"`},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1}, "latency_ms": {"4": 1, "2": 1}}]}`, `latency_ms["2"] names no candidate`},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1}, "pin": "8"}]}`, `pin "8" names no candidate`},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1}}, {"name": "a", "delta_sq": {"4": 1}}]}`, "already used"},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1}, "tie": "x"}, {"name": "b", "delta_sq": {"8": 1}, "tie": "x"}]}`, `tie between layers "a" and "b": their candidate precisions differ`},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1}}], "ties": [[0, 3]]}`, "ties[0]: layer index 3 out of range"},
		{`{"layers": [{"name": "a", "params": "ten", "delta_sq": {"4": 1}}]}`, `field "layers.params"`},
		{`{"layers": [{"name": "a", "params": 1e999, "delta_sq": {"4": 1}}]}`, "layers.params"},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1}}]} {}`, "unexpected data after"},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1, "8": 1}, "omega": {"4": 1}}]}`, `omega has no value for candidate "8"`},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1}}, {"name": "b", "delta_sq": {"4": 1}}, {"name": "c", "delta_sq": {"4": 1}, "omega": {"4": 1, "8": 2}}]}`, `omega["8"] names no candidate`},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1}, "omega": {"4": 1, "2": 3}}]}`, `omega["2"] names no candidate`},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1}, "omega": {"4": 1}, "omega_stderr": {"4": -1}}]}`, `omega_stderr["4"] must be a finite`},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1}, "act_delta_sq": {"4": -1}}]}`, `act_delta_sq["4"] must be a finite`},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1}}, {"name": "b", "delta_sq": {"4": 1}, "act_delta_sq": {"w4a8": 1}}]}`, `act_delta_sq["w4a8"] names no candidate`},
		{`{"layers": [{"name": "a", "delta_sq": {"4": 1}, "act_avg_trace_stderr": -2}]}`, `"act_avg_trace_stderr" must be a finite non-negative`},
	}
	for _, c := range cases {
		_, _, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%s)\n error = %v\n want it to mention %q", c.in, err, c.want)
		}
	}
}

func TestParsePrecision(t *testing.T) {
	for in, want := range map[string]Precision{"4": {4, 4}, "w4a8": {4, 8}, "W2A16": {2, 16}, "8/8": {8, 8}} {
		got, err := ParsePrecision(in)
		if err != nil || got != want {
			t.Errorf("ParsePrecision(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "w4", "wa8", "x"} {
		if _, err := ParsePrecision(in); err == nil {
			t.Errorf("ParsePrecision(%q) accepted", in)
		}
	}
	if s := (Precision{4, 8}).String(); s != "w4a8" {
		t.Errorf("String = %q", s)
	}
}

func TestRoundTrip(t *testing.T) {
	tab, _, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tab.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	tab2, _, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", tab.Layers) != fmt.Sprintf("%+v", tab2.Layers) {
		t.Errorf("round trip changed the table")
	}
}

// FuzzParse checks that the reader never panics, that what it accepts is
// a usable table, and that it accepts nothing encoding/json would read
// differently (keys differing only in case aside: encoding/json matches them
// to fields, the reader warns and ignores them).
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"layers": [{"name": "a", "delta_sq": {"4": 1}}], "ties": [[0, 0]]}`))
	f.Add([]byte(`{"layers": null}`))
	f.Add([]byte(`{"layers": [{"name": "a\u00e9\n", "delta_sq": {"4": 1e-7, "w4a8": 2E+3}, "index": -1, "trace": null}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, warn, err := Parse(data)
		if err != nil {
			return
		}
		for i := range tab.Layers {
			ps, ks := tab.Layers[i].Candidates()
			if len(ps) == 0 || len(ps) != len(ks) {
				t.Fatalf("valid table with layer %d without candidates", i)
			}
		}
		tab.TieGroups()
		var ref Table
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatalf("accepted what encoding/json refuses (%v): %q", err, data)
		}
		for _, w := range warn {
			if strings.Contains(w, "unknown field") {
				return
			}
		}
		if !reflect.DeepEqual(*tab, ref) {
			t.Fatalf("read %+v, encoding/json %+v", *tab, ref)
		}
	})
}

func ExampleParse() {
	tab, warnings, err := Parse([]byte(good))
	if err != nil {
		panic(err)
	}
	l := tab.Layers[0]
	fmt.Printf("%s: Ω(4) = %.2f, Ω(8) = %.3f\n", l.Name, l.Omega("4"), l.Omega("8"))
	fmt.Println(len(warnings), "warning")
	// Output:
	// a: Ω(4) = 1.00, Ω(8) = 0.005
	// 1 warning
}

func TestCriterionScores(t *testing.T) {
	tab, _, err := Parse([]byte(`{"criterion": "fisher", "layers": [{"name": "a", "avg_trace": 2, "delta_sq": {"4": 3, "8": 1}, "omega": {"4": -0.5, "8": 0.25}}, {"name": "b", "avg_trace": 2, "delta_sq": {"4": 3, "8": 1}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if tab.Criterion != "fisher" || tab.Layers[0].Omega("4") != -0.5 || tab.Layers[1].Omega("4") != 6 {
		t.Errorf("criterion %q, Ω %v and %v: want fisher, the score -0.5 and AvgTrace·Δ² = 6", tab.Criterion, tab.Layers[0].Omega("4"), tab.Layers[1].Omega("4"))
	}
	if err := tab.SetScores(Weight, []map[string]float64{{"4": 1, "8": 2}, {"4": 1}}, nil); err == nil {
		t.Error("SetScores accepted a layer without a score for candidate 8")
	}
	if err := tab.SetScores(Weight, []map[string]float64{{"4": 1, "8": 2}, {"4": 7, "8": 1}}, nil); err != nil || tab.Layers[1].Omega("4") != 7 || tab.Criterion != "weight" {
		t.Errorf("SetScores: %v, Ω %v, criterion %q", err, tab.Layers[1].Omega("4"), tab.Criterion)
	}
	for _, c := range Criteria {
		if got, err := ParseCriterion(strings.ToUpper(string(c))); err != nil || got != c {
			t.Errorf("ParseCriterion(%q) = %q, %v", c, got, err)
		}
	}
	if c, err := ParseCriterion(""); c != Hessian || err != nil {
		t.Errorf(`ParseCriterion("") = %q, %v, want hessian`, c, err)
	}
	if _, err := ParseCriterion("hawq"); err == nil || !strings.Contains(err.Error(), "diag, quadratic, fisher") {
		t.Errorf("ParseCriterion(hawq): %v", err)
	}
}

// The activation term adds Tr(H_a)/n_a · E‖Δa‖² to the weight term, only
// for the candidates it lists, and survives a round trip.
func TestActivationTerm(t *testing.T) {
	in := `{"layers": [{"name": "a", "avg_trace": 2, "delta_sq": {"4": 3, "w4a8": 3}, "act_avg_trace": 0.5, "act_avg_trace_stderr": 0.1, "act_delta_sq": {"4": 10, "w4a8": 0.25}}, {"name": "b", "avg_trace": 2, "delta_sq": {"4": 3, "w4a8": 3}}]}`
	tab, _, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	a, b := &tab.Layers[0], &tab.Layers[1]
	if a.Omega("4") != 11 || a.Omega("w4a8") != 6.125 || b.Omega("4") != 6 {
		t.Errorf("Ω = %v, %v (want 6 + 0.5·10 = 11 and 6 + 0.5·0.25 = 6.125), layer without the term %v (want 6)", a.Omega("4"), a.Omega("w4a8"), b.Omega("4"))
	}
	var buf bytes.Buffer
	if err := tab.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, _, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if l := back.Layers[0]; l.ActAvgTrace != 0.5 || l.ActAvgTraceStderr != 0.1 || l.ActDeltaSq["w4a8"] != 0.25 || l.Omega("4") != 11 {
		t.Errorf("after a round trip: %+v", l)
	}
}
