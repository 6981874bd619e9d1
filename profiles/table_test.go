package profiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const csvTable = `# measured on a T4, batch 8
layer,precision,ms
conv,w4a4,0.21
conv, 8 ,0.36
fc,w8a8,0.05
`

func TestParseTableCSV(t *testing.T) {
	tb, err := ParseTableCSV(strings.NewReader(csvTable), "t.csv")
	if err != nil {
		t.Fatal(err)
	}
	if ms, ok := tb.Lookup("conv", W8A8); !ok || ms != 0.36 {
		t.Errorf("conv w8a8 = %g, %v", ms, ok)
	}
	if _, ok := tb.Lookup("conv", W4A8); ok {
		t.Error("conv w4a8 found")
	}
	es := tb.Entries()
	if len(es) != 3 || es[0].Line != 3 || es[2].Line != 5 {
		t.Errorf("entries %+v", es)
	}
	// Columns in another order, with an extra column.
	tb, err = ParseTableCSV(strings.NewReader("ms,device,layer,precision\n0.5,t4,conv,w4a4\n"), "o.csv")
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := tb.Lookup("conv", W4A4); ms != 0.5 {
		t.Errorf("reordered: %g", ms)
	}
}

func TestParseTableCSVErrors(t *testing.T) {
	for _, c := range []struct {
		name, data string
		want       []string
	}{
		{"empty", "", []string{"t.csv", "empty"}},
		{"no header col", "layer,bits,ms\nconv,8,1\n", []string{"t.csv line 1", `lacks column "precision"`}},
		{"bad precision", "layer,precision,ms\nconv,w8a8,1\nconv,w3x,2\n", []string{"t.csv line 3", `"w3x"`}},
		{"bad ms", "layer,precision,ms\nconv,w8a8,fast\n", []string{"t.csv line 2", `"fast"`}},
		{"negative ms", "layer,precision,ms\nconv,w8a8,-1\n", []string{"t.csv line 2", "> 0", "-1"}},
		{"nan ms", "layer,precision,ms\nconv,w8a8,NaN\n", []string{"t.csv line 2", "finite"}},
		{"duplicate", "layer,precision,ms\nconv,w8a8,1\nconv,8,2\n", []string{"t.csv line 3", "twice", "line 2"}},
		{"short row", "layer,precision,ms\nconv,w8a8\n", []string{"t.csv line 2", `missing "ms"`}},
		{"empty layer", "layer,precision,ms\n,w8a8,1\n", []string{"t.csv line 2", "empty layer"}},
		{"header only", "layer,precision,ms\n", []string{"t.csv", "no measurements"}},
		{"bad quote", "layer,precision,ms\n\"conv,w8a8,1\n", []string{"t.csv"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTableCSV(strings.NewReader(c.data), "t.csv")
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

const jsonTable = `{
  "model": "toy",
  "layers": [
    {"name": "conv", "params": 10,
     "latency_ms": {"4": 0.21, "w8a8": 0.36}},
    {"name": "fc", "latency_ms": {"int8": 0.05}},
    {"name": "nolat"}
  ]
}`

func TestParseTableJSON(t *testing.T) {
	tb, err := ParseTableJSON([]byte(jsonTable), "t.json")
	if err != nil {
		t.Fatal(err)
	}
	if ms, ok := tb.Lookup("conv", W4A4); !ok || ms != 0.21 {
		t.Errorf("conv w4a4 = %g, %v", ms, ok)
	}
	if ms, ok := tb.Lookup("fc", W8A8); !ok || ms != 0.05 {
		t.Errorf("fc w8a8 = %g, %v", ms, ok)
	}
	es := tb.Entries()
	if len(es) != 3 || es[0].Line != 4 || es[2].Line != 6 {
		t.Errorf("entries %+v", es)
	}
}

func TestParseTableJSONErrors(t *testing.T) {
	for _, c := range []struct {
		name, data string
		want       []string
	}{
		{"malformed", `{"layers": [`, []string{"t.json", "malformed JSON"}},
		{"array", `[1]`, []string{"t.json line 1", "JSON object"}},
		{"no layers", `{"model": "x"}`, []string{"t.json", `no "layers"`}},
		{"layers not array", `{"layers": {}}`, []string{"t.json line 1", "must be an array"}},
		{"bad precision", "{\"layers\": [\n{\"name\": \"a\", \"latency_ms\": {\"8\": 1}},\n{\"name\": \"b\", \"latency_ms\": {\"w9\": 1}}]}", []string{"t.json line 3", `layer "b"`, `"w9"`}},
		{"bad value", "{\"layers\": [{\"name\": \"a\", \"latency_ms\": {\"8\": \"x\"}}]}", []string{"t.json line 1", `latency_ms["8"]`, "number"}},
		{"no name", `{"layers": [{"latency_ms": {"8": 1}}]}`, []string{"t.json line 1", `missing "name"`}},
		{"element not object", `{"layers": [3]}`, []string{"t.json line 1", "layers[0]"}},
		{"zero", `{"layers": [{"name": "a", "latency_ms": {"8": 0}}]}`, []string{"t.json line 1", "> 0"}},
		{"duplicate", "{\"layers\": [{\"name\": \"a\", \"latency_ms\": {\"8\": 1}},\n{\"name\": \"a\", \"latency_ms\": {\"w8a8\": 1}}]}", []string{"t.json line 2", "twice", "line 1"}},
		{"no entries", `{"layers": [{"name": "a"}]}`, []string{"t.json", "no latency_ms"}},
		{"trailing", `{"layers": [{"name": "a", "latency_ms": {"8": 1}}]} {}`, []string{"t.json", "after the top-level"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTableJSON([]byte(c.data), "t.json")
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

func TestTableOverridesAndChecks(t *testing.T) {
	t4 := mustBuiltin(t, "t4")
	tb, err := ParseTableCSV(strings.NewReader(csvTable), "t.csv")
	if err != nil {
		t.Fatal(err)
	}
	fc := Layer{Name: "fc", Params: 100, MACs: 100, InElems: 10, OutElems: 10}
	c, err := t4.Cost(conv, W4A4, &Options{Table: tb})
	if err != nil {
		t.Fatal(err)
	}
	if c.Latency != 0.21e-3 || c.Bound != Measured {
		t.Errorf("measured latency %g %s", c.Latency, c.Bound)
	}
	near(t, "size stays modelled", c.Size, 18432)
	c, _ = t4.Cost(conv, W4A8, &Options{Table: tb})
	if c.Bound == Measured {
		t.Error("w4a8 is not in the table but was reported measured")
	}
	cs, err := t4.CostAll([]Layer{conv, fc}, []Precision{W4A4, W8A8}, &Options{Table: tb})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(cs.Warnings, ";"), "1 layer×precision pairs not measured") {
		t.Errorf("warnings %q", cs.Warnings)
	}
	// A table naming a layer the model lacks is an error naming file, line
	// and value.
	_, err = t4.CostAll([]Layer{conv}, []Precision{W4A4}, &Options{Table: tb})
	if err == nil || !strings.Contains(err.Error(), "t.csv line 5") || !strings.Contains(err.Error(), `layer "fc"`) {
		t.Errorf("unknown layer: %v", err)
	}
}

func TestLoadTable(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"m.csv": csvTable, "m.json": jsonTable, "m.txt": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"m.csv", "m.json"} {
		tb, err := LoadTable(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(tb.Origin, n) {
			t.Errorf("origin %q", tb.Origin)
		}
	}
	if _, err := LoadTable(filepath.Join(dir, "m.txt")); err == nil || !strings.Contains(err.Error(), ".txt") {
		t.Errorf("txt: %v", err)
	}
	// The project's HAWQ reference is itself a measured table (keys "4", "8").
	tb, err := LoadTable(filepath.Join("..", "testdata", "hawq_resnet18.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ms, ok := tb.Lookup("stage1.unit1.conv1", W8A8); !ok || ms != 0.36189111 {
		t.Errorf("hawq stage1.unit1.conv1 w8a8 = %g, %v", ms, ok)
	}
	if len(tb.Entries()) != 38 {
		t.Errorf("hawq entries %d, want 38", len(tb.Entries()))
	}
}

func FuzzParseTableCSV(f *testing.F) {
	f.Add(csvTable)
	f.Add("layer,precision,ms\n\"a,b\",w4a8,1e-3\n")
	f.Add("ms,layer,precision\n1,a,fp16\n")
	f.Fuzz(func(t *testing.T, data string) {
		tb, err := ParseTableCSV(strings.NewReader(data), "fuzz.csv")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.csv") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		checkTable(t, tb)
	})
}

func FuzzParseTableJSON(f *testing.F) {
	f.Add([]byte(jsonTable))
	f.Add([]byte(`{"layers": []}`))
	f.Add([]byte(`{"layers": [{"name": "x", "latency_ms": {"w4a4": 1}}], "layers": []}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := ParseTableJSON(data, "fuzz.json")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.json") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		checkTable(t, tb)
	})
}

func checkTable(t *testing.T, tb *Table) {
	es := tb.Entries()
	if len(es) == 0 {
		t.Fatal("accepted an empty table")
	}
	for _, e := range es {
		if !(e.MS > 0) || e.Layer == "" || !e.Precision.Valid() || e.Line < 1 {
			t.Fatalf("bad entry %+v", e)
		}
		if ms, ok := tb.Lookup(e.Layer, e.Precision); !ok || ms != e.MS {
			t.Fatalf("lookup of %+v = %g, %v", e, ms, ok)
		}
	}
}
