package profiles

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestBuiltinsLoadAndValidate(t *testing.T) {
	names := Names()
	for _, want := range []string{"a100", "h100", "orin", "sd888-cpu", "t4", "xeon8380"} {
		if !contains(names, want) {
			t.Errorf("built-in %q missing from %v", want, names)
		}
	}
	for _, n := range names {
		p, err := Builtin(n)
		if err != nil {
			t.Fatalf("Builtin(%q): %v", n, err)
		}
		if p.Name != n {
			t.Errorf("builtin/%s.json has name %q", n, p.Name)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if len(p.Warnings) > 0 {
			t.Errorf("%s: warnings %q", n, p.Warnings)
		}
		if p.Description == "" {
			t.Errorf("%s: no description", n)
		}
		// Every common precision runs natively or falls back to a wider pair.
		for _, q := range CommonPrecisions() {
			if _, _, err := p.Resolve(q); err != nil {
				t.Errorf("%s: %v", n, err)
			}
		}
	}
}

// TestBuiltinNumbersHaveSources walks each built-in file's raw JSON,
// independently of Parse, and checks that every number has a non-empty
// entry in "sources" under its path.
func TestBuiltinNumbersHaveSources(t *testing.T) {
	for _, n := range Names() {
		data, err := builtinFS.ReadFile("builtin/" + n + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		sources, _ := doc["sources"].(map[string]any)
		var paths []string
		var walk func(prefix string, v any)
		walk = func(prefix string, v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, x := range v {
					if prefix == "" && (k == "sources" || k == "notes") {
						continue
					}
					p := k
					if prefix != "" {
						p = prefix + "." + k
					}
					walk(p, x)
				}
			case float64:
				paths = append(paths, prefix)
			}
		}
		walk("", doc)
		sort.Strings(paths)
		if len(paths) < 7 {
			t.Errorf("%s: only %d numbers found: %v", n, len(paths), paths)
		}
		for _, p := range paths {
			s, _ := sources[p].(string)
			if strings.TrimSpace(s) == "" {
				t.Errorf("%s: %s has no source", n, p)
			}
		}
		for k := range sources {
			if !contains(paths, k) {
				t.Errorf("%s: sources[%q] names no number", n, k)
			}
		}
	}
}

func TestBuiltinFigures(t *testing.T) {
	// Spot checks against the datasheet figures quoted in the brief.
	for _, c := range []struct {
		name string
		q    Precision
		tops float64
	}{
		{"t4", W4A4, 260}, {"t4", W8A8, 130}, {"t4", W16A16, 65},
		{"a100", W4A4, 1248}, {"a100", W8A8, 624}, {"a100", W16A16, 312},
		{"h100", W8A8, 1979},
		{"orin", W8A8, 85},
		{"xeon8380", W8A8, 40 * 2.3e9 * 2 * 64 * 2 / 1e12},
		{"sd888-cpu", W8A8, (1*4*16*2.84e9 + 3*2*16*2.42e9) * 2 / 1e12},
	} {
		p, err := Builtin(c.name)
		if err != nil {
			t.Fatal(err)
		}
		s, ok := p.Spec(c.q)
		if !ok {
			t.Errorf("%s lacks %s", c.name, c.q)
			continue
		}
		if rel(s.PeakOps/1e12, c.tops) > 1e-9 {
			t.Errorf("%s %s: %g TOPS, want %g", c.name, c.q, s.PeakOps/1e12, c.tops)
		}
	}
	h, _ := Builtin("h100")
	if _, ok := h.Spec(W4A4); ok {
		t.Error("h100 lists w4a4; Hopper has no INT4 tensor cores")
	}
	for name, bw := range map[string]float64{"t4": 320e9, "a100": 2039e9, "h100": 3350e9, "orin": 204.8e9, "xeon8380": 8 * 3200e6 * 8} {
		p, _ := Builtin(name)
		if rel(p.Bandwidth, bw) > 1e-12 {
			t.Errorf("%s bandwidth %g, want %g", name, p.Bandwidth, bw)
		}
	}
}

func TestGolden(t *testing.T) {
	ps, err := All()
	if err != nil {
		t.Fatal(err)
	}
	var text, md bytes.Buffer
	if err := WriteList(&text, ps); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		text.WriteString("\n")
		if err := p.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		if md.Len() > 0 {
			md.WriteString("\n")
		}
		if err := p.WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
	}
	for file, got := range map[string][]byte{"builtin.txt.golden": text.Bytes(), "builtin.md.golden": md.Bytes()} {
		path := filepath.Join("testdata", file)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./profiles -run TestGolden -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs; first difference:\n%s\n(run with -update after checking)", path, firstDiff(string(want), string(got)))
		}
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n- " + x + "\n+ " + y
		}
	}
	return "(none)"
}

const goodProfile = `{
  "name": "toy",
  "description": "toy device",
  "kind": "npu",
  "memory_bandwidth_gb_per_s": 100,
  "layer_overhead_us": 1,
  "efficiency": 0.5,
  "precisions": {"w8a8": {"peak_tops": 10}},
  "sources": {"memory_bandwidth_gb_per_s": "x", "layer_overhead_us": "x", "efficiency": "x", "precisions.w8a8.peak_tops": "x"}
}`

func TestParseGood(t *testing.T) {
	p, err := Parse([]byte(goodProfile), "toy.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) > 0 {
		t.Errorf("warnings: %q", p.Warnings)
	}
	s, _ := p.Spec(W8A8)
	if p.Bandwidth != 100e9 || p.Overhead != 1e-6 || s.PeakOps != 10e12 || s.PeakMACs() != 5e12 || s.Format != "int" || p.Kind != NPU {
		t.Errorf("parsed %+v %+v", p, s)
	}
}

func TestParseBad(t *testing.T) {
	edit := func(from, to string) string {
		if !strings.Contains(goodProfile, from) {
			t.Fatalf("test bug: %q not in profile", from)
		}
		return strings.Replace(goodProfile, from, to, 1)
	}
	for _, c := range []struct {
		name, data string
		want       []string // substrings of the error
	}{
		{"malformed", `{"name": "x",`, []string{"bad.json", "line 1", "malformed JSON"}},
		{"malformed line", "{\n\"name\": \"x\"\n\"kind\": 1}", []string{"line 3", "malformed JSON"}},
		{"not object", `[1,2]`, []string{"bad.json", "want"}},
		{"null", `null`, []string{"want a JSON object"}},
		{"wrong type", edit(`"efficiency": 0.5`, `"efficiency": "half"`), []string{"efficiency", "float64", "line 7"}},
		{"missing bandwidth", edit(`"memory_bandwidth_gb_per_s": 100,`, ``), []string{"memory_bandwidth_gb_per_s: missing"}},
		{"missing efficiency", edit(`"efficiency": 0.5,`, ``), []string{"efficiency: missing"}},
		{"missing overhead", edit(`"layer_overhead_us": 1,`, ``), []string{"layer_overhead_us: missing"}},
		{"missing peak", edit(`{"peak_tops": 10}`, `{}`), []string{"precisions.w8a8.peak_tops: missing"}},
		{"zero peak", edit(`"peak_tops": 10`, `"peak_tops": 0`), []string{"precisions.w8a8.peak_tops", "> 0", "got 0"}},
		{"negative peak", edit(`"peak_tops": 10`, `"peak_tops": -3`), []string{"precisions.w8a8.peak_tops", "got -3"}},
		{"zero bandwidth", edit(`"memory_bandwidth_gb_per_s": 100`, `"memory_bandwidth_gb_per_s": 0`), []string{"memory_bandwidth_gb_per_s", "> 0"}},
		{"negative overhead", edit(`"layer_overhead_us": 1`, `"layer_overhead_us": -1`), []string{"layer_overhead_us", "≥ 0", "-1"}},
		{"efficiency > 1", edit(`"efficiency": 0.5`, `"efficiency": 1.5`), []string{"efficiency", "(0, 1]", "1.5"}},
		{"unknown precision", edit(`"w8a8": {`, `"w8b8": {`), []string{"precisions.w8b8", "want wNaM"}},
		{"alias key", edit(`"w8a8": {`, `"int8": {`), []string{"precisions.int8", `"w8a8"`}},
		{"precision not object", edit(`{"peak_tops": 10}`, `10`), []string{"precisions.w8a8", "want an object"}},
		{"bad format", edit(`{"peak_tops": 10}`, `{"peak_tops": 10, "format": "bf"}`), []string{"format", `"bf"`}},
		{"no precisions", edit(`"precisions": {"w8a8": {"peak_tops": 10}},`, ``), []string{"precisions: missing"}},
		{"bad kind", edit(`"npu"`, `"tpu"`), []string{"kind", `"tpu"`, "gpu, cpu or npu"}},
		{"no name", edit(`"name": "toy",`, ``), []string{"name: missing"}},
		{"bad name", edit(`"toy"`, `"Toy Device"`), []string{"name", "Toy Device"}},
		{"negative energy", edit(`{"peak_tops": 10}`, `{"peak_tops": 10, "energy_pj_per_mac": -1}`), []string{"energy_pj_per_mac", "≥ 0"}},
		{"zero precision efficiency", edit(`{"peak_tops": 10}`, `{"peak_tops": 10, "efficiency": 0}`), []string{"precisions.w8a8.efficiency", "got 0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.data), "bad.json")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParseWarnings(t *testing.T) {
	data := strings.Replace(goodProfile, `"kind": "npu",`, `"kind": "npu", "colour": "green",`, 1)
	data = strings.Replace(data, `{"peak_tops": 10}`, `{"peak_tops": 10, "peak_top": 11, "energy_pj_per_mac": 0.3}`, 1)
	data = strings.Replace(data, `"efficiency": "x",`, `"efficiency": "x", "bogus": "y",`, 1)
	p, err := Parse([]byte(data), "warn.json")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(p.Warnings, "\n")
	for _, w := range []string{`unknown field "colour"`, `unknown field "precisions.w8a8.peak_top"`, `precisions.w8a8.energy_pj_per_mac has no entry in "sources"`, `sources["bogus"]`} {
		if !strings.Contains(joined, w) {
			t.Errorf("warnings %q lack %q", p.Warnings, w)
		}
	}
	if len(p.Warnings) != 4 {
		t.Errorf("got %d warnings, want 4: %q", len(p.Warnings), p.Warnings)
	}
}

func TestLoad(t *testing.T) {
	p, err := Load("t4")
	if err != nil || p.Name != "t4" || p.Origin != "builtin" {
		t.Fatalf("Load(t4) = %v, %v", p, err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "toy.json")
	if err := os.WriteFile(path, []byte(goodProfile), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err = Load(path)
	if err != nil || p.Name != "toy" || p.Origin != filepath.ToSlash(path) {
		t.Fatalf("Load(%s) = %v, %v", path, p, err)
	}
	_, err = Load("t5")
	if err == nil || !strings.Contains(err.Error(), `"t5"`) || !strings.Contains(err.Error(), "t4") {
		t.Errorf("Load(t5) error %v should name the value and list built-ins", err)
	}
	_, err = Load(filepath.Join(dir, "missing.json"))
	if err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("Load(missing) error %v", err)
	}
	if _, err := Builtin("../t4"); err == nil {
		t.Error("Builtin(../t4): no error")
	}
}

func TestValidateGoProfile(t *testing.T) {
	p := &Profile{Name: "x", Kind: GPU, Bandwidth: 1, Efficiency: 2,
		Precisions: []PrecisionSpec{{Precision: W8A8, Format: "int", PeakOps: 1}, {Precision: W8A8, Format: "int", PeakOps: 1}}}
	err := p.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"efficiency", "listed twice"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodProfile))
	for _, n := range Names() {
		data, _ := builtinFS.ReadFile("builtin/" + n + ".json")
		f.Add(data)
	}
	f.Add([]byte(`{"precisions": {"w4a4": {"peak_tops": 1e400}}}`))
	f.Add([]byte(`{"precisions": {"w4a4": null}}`))
	f.Add([]byte(`{"name": "x", "kind": "gpu", "memory_bandwidth_gb_per_s": 10, "layer_overhead_us": 1, "efficiency": 0.5, "memory_efficiency": 0.3, "precisions": {"w8a8": {"peak_tops": 1, "layer_overhead_us": 7}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.json")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.json") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse accepted a profile Validate rejects: %v", err)
		}
		var buf bytes.Buffer
		if err := p.WriteText(&buf); err != nil {
			t.Fatal(err)
		}
		l := Layer{Name: "l", Params: 10, MACs: 100, InElems: 5, OutElems: 5, OutChannels: 2}
		// MarshalFile writes what Parse reads back to the same costs.
		out, err := p.MarshalFile()
		if err != nil {
			t.Fatalf("MarshalFile: %v", err)
		}
		back, err := Parse(out, "back.json")
		if err != nil {
			t.Fatalf("Parse(MarshalFile): %v\n%s", err, out)
		}
		for _, q := range CommonPrecisions() {
			a, errA := p.Cost(l, q, nil)
			b, errB := back.Cost(l, q, nil)
			if (errA == nil) != (errB == nil) || errA == nil && math.Abs(a.Latency-b.Latency) > 1e-9*a.Latency {
				t.Fatalf("%s: round trip %v/%v, %g vs %g\n%s", q, errA, errB, a.Latency, b.Latency, out)
			}
		}
		for _, q := range CommonPrecisions() {
			c, err := p.Cost(l, q, nil)
			if errors.Is(err, ErrUnsupported) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if !(c.Latency > 0) {
				t.Fatalf("latency %g", c.Latency)
			}
		}
	})
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func rel(a, b float64) float64 {
	d := a - b
	if d < 0 {
		d = -d
	}
	if b < 0 {
		b = -b
	}
	if b == 0 {
		return d
	}
	return d / b
}

// TestDuplicateKeys: a key given twice in a profile or a JSON latency table
// is an error naming it and its place.
func TestDuplicateKeys(t *testing.T) {
	b, err := os.ReadFile("builtin/t4.json")
	if err != nil {
		t.Fatal(err)
	}
	dup := strings.Replace(string(b), "{", `{"name": "twice",`, 1)
	if _, err := Parse([]byte(dup), "dup.json"); err == nil || !strings.Contains(err.Error(), `profile dup.json: duplicate key "name" in the top-level object at line`) {
		t.Errorf("profile: %v", err)
	}
	_, err = ParseTableJSON([]byte(`{"layers": [{"name": "a", "latency_ms": {"8": 1, "8": 2}}]}`), "t.json")
	if err == nil || !strings.Contains(err.Error(), `duplicate key "8" in layers[0].latency_ms at line 1, column 50`) {
		t.Errorf("table: %v", err)
	}
}
