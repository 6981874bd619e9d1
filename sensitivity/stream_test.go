package sensitivity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// randomTable draws a table using every field of the format, with strings
// that need escaping and numbers of every magnitude.
func randomTable(rng *rand.Rand, n int) *Table {
	num := func() float64 {
		switch rng.IntN(6) {
		case 0:
			return 0
		case 1:
			return float64(rng.IntN(1000000))
		case 2:
			return math.Exp(rng.NormFloat64() * 30) // 1e-13 … 1e13 and beyond
		case 3:
			return 1e-7 * rng.Float64()
		case 4:
			return 1e22 * rng.Float64()
		}
		return rng.Float64()
	}
	names := []string{"conv", "a<b>&c", "tab\there", "ünïcode", `quote"back\slash`, "line\u2028sep"}
	t := &Table{Model: names[rng.IntN(len(names))]}
	if rng.IntN(2) == 0 {
		t.Source, t.Notes, t.Criterion = "src", "n<o>tes", "diag"
	}
	keys := []string{"2", "4", "8", "w4a8", "16"}
	for i := 0; i < n; i++ {
		l := Layer{Name: fmt.Sprintf("%s%d", names[rng.IntN(len(names))], i), Params: num(), MACs: num(),
			AvgTrace: num() - num(), DeltaSq: map[string]float64{}}
		if rng.IntN(2) == 0 {
			l.AvgTraceStderr = num()
		}
		if rng.IntN(3) == 0 {
			v := num()
			l.Trace = &v
		}
		if rng.IntN(3) == 0 {
			x := rng.IntN(100)
			l.Index = &x
		}
		for _, k := range keys[:1+rng.IntN(len(keys))] {
			l.DeltaSq[k] = num()
		}
		if rng.IntN(2) == 0 {
			l.LatencyMS = map[string]float64{}
			for k := range l.DeltaSq {
				l.LatencyMS[k] = num()
			}
		}
		if rng.IntN(3) == 0 {
			l.Scores, l.ScoreStderr = map[string]float64{}, map[string]float64{}
			for k := range l.DeltaSq {
				l.Scores[k], l.ScoreStderr[k] = num()-num(), num()
			}
		}
		if rng.IntN(3) == 0 {
			l.ActAvgTrace, l.ActAvgTraceStderr, l.ActDeltaSq = num()-num(), num(), map[string]float64{}
			for k := range l.DeltaSq {
				l.ActDeltaSq[k] = num()
			}
		}
		if rng.IntN(3) == 0 {
			l.Tie = "t" + fmt.Sprint(rng.IntN(3))
		}
		if rng.IntN(4) == 0 {
			l.Pin = "2"
		}
		l.InElems, l.OutElems, l.OutChannels = num(), num(), num()
		l.InChannels, l.Kernel, l.Stride, l.InHW, l.OutHW = num(), num(), num(), num(), num()
		t.Layers = append(t.Layers, l)
	}
	if rng.IntN(2) == 0 {
		t.Ties = [][]int{{0, n - 1}, {}}
	}
	return t
}

// TestWriteJSONMatchesEncodingJSON: the streaming writer writes exactly the
// bytes of encoding/json's indenting encoder.
func TestWriteJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := 0; trial < 200; trial++ {
		tab := randomTable(rng, 1+rng.IntN(5))
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(tab); err != nil {
			t.Fatal(err)
		}
		if err := tab.WriteJSON(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("WriteJSON differs from encoding/json:\n got %s\nwant %s", got.Bytes(), want.Bytes())
		}
	}
	var buf bytes.Buffer
	bad := &Table{Layers: []Layer{{Name: "x", DeltaSq: map[string]float64{"4": math.NaN()}}}}
	if err := bad.WriteJSON(&buf); err == nil || !strings.Contains(err.Error(), `layers[0] ("x"): delta_sq["4"] is NaN`) {
		t.Errorf("NaN: error = %v", err)
	}
}

// TestReadMatchesEncodingJSON: the streaming reader decodes what
// encoding/json decodes, whatever the layout of the text.
func TestReadMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for trial := 0; trial < 200; trial++ {
		tab := randomTable(rng, 1+rng.IntN(5))
		var data []byte
		switch trial % 3 {
		case 0:
			data, _ = json.Marshal(tab)
		case 1:
			data, _ = json.MarshalIndent(tab, "", " ")
		default:
			data, _ = json.MarshalIndent(tab, "\r\n", "\t")
		}
		var want Table
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		got, _, err := Parse(data)
		if err != nil && !strings.Contains(err.Error(), "tie") && !strings.Contains(err.Error(), "pin") && !strings.Contains(err.Error(), "must be") {
			t.Fatalf("Parse: %v\n%s", err, data)
		}
		if err == nil && !reflect.DeepEqual(*got, want) {
			t.Fatalf("Parse differs from encoding/json:\n got %+v\nwant %+v", *got, want)
		}
	}
}

// TestDuplicateKeys: a key given twice is an error naming it and its place
// (encoding/json kept the last value silently).
func TestDuplicateKeys(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"model": "a", "layers": [{"name": "x", "delta_sq": {"4": 1}}], "model": "b"}`,
			`duplicate key "model" in the top-level object at line 1, column 65`},
		{"{\"layers\": [{\"name\": \"x\", \"delta_sq\": {\"4\": 1},\n \"params\": 1, \"params\": 2}]}",
			`duplicate key "params" in layers[0] at line 2, column 15`},
		{`{"layers": [{"name": "x", "delta_sq": {"4": 1, "8": 2, "4": 3}}]}`,
			`duplicate key "4" in layers[0].delta_sq at line 1, column 56`},
		{`{"layers": [{"name": "x", "delta_sq": {"4": 1}, "latency_ms": {"4": 1, "4": 1}}]}`,
			`duplicate key "4" in layers[0].latency_ms`},
		{`{"x": 1, "layers": [{"name": "x", "delta_sq": {"4": 1}}], "x": 2}`, `duplicate key "x" in the top-level object`},
		{`{"layers": [{"name": "x", "delta_sq": {"4": 1}, "y": 1, "y": 1}]}`, `duplicate key "y" in layers[0]`},
	} {
		_, _, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%s)\n error = %v\n want %q", c.in, err, c.want)
		}
	}
}

// TestKeysMatchExactly: "NAME" is not "name" (encoding/json matched it
// case-insensitively while the warning said it was ignored).
func TestKeysMatchExactly(t *testing.T) {
	tab, warn, err := Parse([]byte(`{"layers": [{"name": "a", "NAME": "b", "delta_sq": {"4": 1}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if tab.Layers[0].Name != "a" || len(warn) != 1 || !strings.Contains(warn[0], `unknown field "NAME" ignored`) {
		t.Errorf("name %q, warnings %q", tab.Layers[0].Name, warn)
	}
}

// TestReadBounded: an endless or oversized input fails fast with the bound
// in the message; a cancelled read stops with the context's error.
func TestReadBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err == nil {
		t0 := time.Now()
		_, _, err := ReadFile("/dev/zero")
		if err == nil || !strings.Contains(err.Error(), "/dev/zero") || !strings.Contains(err.Error(), "malformed JSON") {
			t.Errorf("/dev/zero: %v", err)
		}
		if d := time.Since(t0); d > time.Second {
			t.Errorf("/dev/zero took %v", d)
		}
	}
	defer func(m int64) { maxTableBytes = m }(maxTableBytes)
	maxTableBytes = 1000
	path := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(path, bytes.Repeat([]byte(" "), 2000), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "more than the 1000 bytes") {
		t.Errorf("file past the bound: %v", err)
	}
	r := strings.NewReader(`{"layers": [` + strings.Repeat(" ", 2000))
	if _, _, err := Read(r); err == nil || !strings.Contains(err.Error(), "larger than the 1000 bytes") {
		t.Errorf("stream past the bound: %v", err)
	}
	maxTableBytes = MaxTableBytes
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := ReadContext(ctx, strings.NewReader(good)); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("cancelled: %v", err)
	}
}

// TestFieldLists: the decoder's field names are the struct's JSON tags.
func TestFieldLists(t *testing.T) {
	for _, c := range []struct {
		v     any
		names []string
	}{{Table{}, topFields[:]}, {Layer{}, layerFields[:]}} {
		rt := reflect.TypeOf(c.v)
		var tags []string
		for i := 0; i < rt.NumField(); i++ {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			tags = append(tags, name)
		}
		if fmt.Sprint(tags) != fmt.Sprint(c.names) {
			t.Errorf("%T: tags %v, decoder knows %v", c.v, tags, c.names)
		}
	}
}

func benchTable(n int) []byte {
	tab := randomTable(rand.New(rand.NewPCG(3, 3)), n)
	tab.Ties = nil
	for i := range tab.Layers {
		tab.Layers[i].Tie, tab.Layers[i].Pin = "", ""
	}
	var buf bytes.Buffer
	if err := tab.WriteJSON(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func benchmarkRead(b *testing.B, n int) {
	data := benchTable(n)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead parses tables of 500, 5,000 and 50,000 layers (every
// field present); bench/parse.sh times a million layers as a process.
func BenchmarkReadSmall(b *testing.B)  { benchmarkRead(b, 500) }
func BenchmarkReadMedium(b *testing.B) { benchmarkRead(b, 5000) }
func BenchmarkReadLarge(b *testing.B)  { benchmarkRead(b, 50000) }

func BenchmarkWriteMedium(b *testing.B) {
	tab, _, err := Parse(benchTable(5000))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := tab.WriteJSON(&bytes.Buffer{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTieUsedOnce: a tie name on a single layer ties nothing and warns
// (it was accepted silently).
func TestTieUsedOnce(t *testing.T) {
	_, warn, err := Parse([]byte(`{"layers": [{"name": "a", "delta_sq": {"4": 1}, "tie": "blk"},
		{"name": "b", "delta_sq": {"4": 1}, "tie": "bkl"}, {"name": "c", "delta_sq": {"4": 1}, "tie": "blk"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(warn) != 1 || !strings.Contains(warn[0], `layers[1] ("b"): tie "bkl" names no other layer`) {
		t.Errorf("warnings %q", warn)
	}
}

// TestSameKeysFastPath checks the reader's shortcut for layers whose
// candidate keys repeat the previous layer's: on tables where most layers
// repeat them and a few break one rule (a negative value, a pin or
// latency key naming no candidate, a missing latency value, keys
// reordered, two keys of one precision), the reader gives the error and
// warnings that Validate gives on the same table decoded by encoding/json
// (which checks every layer in full).
func TestSameKeysFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	keySets := [][]string{{"4", "8"}, {"8", "4"}, {"2", "4", "8"}, {"4", "w4a4"}}
	for trial := 0; trial < 400; trial++ {
		n := 2 + rng.IntN(6)
		keys := keySets[rng.IntN(2)]
		lat := rng.IntN(2) == 0
		var b strings.Builder
		b.WriteString(`{"layers": [`)
		for i := 0; i < n; i++ {
			ks, lks := keys, keys
			pin := ""
			neg, negLat := -1, -1
			if rng.IntN(4) == 0 {
				switch rng.IntN(7) {
				case 0:
					neg = rng.IntN(len(ks))
				case 1:
					negLat = rng.IntN(len(ks))
				case 2:
					pin = "3"
				case 3:
					lks = append(slices.Clone(ks), "2")
				case 4:
					lks = ks[:1]
				case 5:
					ks = keySets[rng.IntN(len(keySets))]
					lks = ks
				case 6:
					lat = !lat
				}
			} else if rng.IntN(3) == 0 {
				pin = ks[0]
			}
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, `{"name": "l%d", "params": 10, "avg_trace": 1, "delta_sq": {`, i)
			for j, k := range ks {
				v := 1.5
				if j == neg {
					v = -1
				}
				fmt.Fprintf(&b, `%s%q: %g`, map[bool]string{true: ", "}[j > 0], k, v)
			}
			b.WriteString("}")
			if lat {
				b.WriteString(`, "latency_ms": {`)
				for j, k := range lks {
					v := 0.5
					if j == negLat {
						v = -0.5
					}
					fmt.Fprintf(&b, `%s%q: %g`, map[bool]string{true: ", "}[j > 0], k, v)
				}
				b.WriteString("}")
			}
			if pin != "" {
				fmt.Fprintf(&b, `, "pin": %q`, pin)
			}
			b.WriteString("}")
		}
		b.WriteString("]}")
		in := b.String()
		_, warn, err := Parse([]byte(in))
		var ref Table
		if jerr := json.Unmarshal([]byte(in), &ref); jerr != nil {
			t.Fatal(jerr)
		}
		rwarn, rerr := ref.Validate()
		// Which of two keys of one precision comes first follows map order.
		norm := func(err error) string {
			s := fmt.Sprint(err)
			if i := strings.Index(s, "delta_sq: keys "); i >= 0 && strings.HasSuffix(s, "name the same precision") {
				return s[:i] + "two keys of one precision"
			}
			return s
		}
		if norm(err) != norm(rerr) || (err == nil && !slices.Equal(warn, rwarn)) {
			t.Fatalf("table %s\n reader: %v %q\n Validate: %v %q", in, err, warn, rerr, rwarn)
		}
	}
}
