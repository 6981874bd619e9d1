package profiles

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/bitplan/bitplan/internal/jsonx"
	"github.com/bitplan/bitplan/internal/readfile"
)

// Table holds measured per-layer latencies that override the roofline model
// (Options.Table). Read one with LoadTable, ParseTableCSV or ParseTableJSON.
//
// CSV form: a header naming the columns layer, precision and ms (any order,
// other columns ignored), then one row per measurement; lines starting with
// '#' are comments:
//
//	layer,precision,ms
//	stage1.unit1.conv1,w4a4,0.2109
//	stage1.unit1.conv1,w8a8,0.3619
//
// JSON form: an object with a "layers" array whose elements carry "name"
// and "latency_ms" (precision → milliseconds), other fields ignored, so a
// bitplan sensitivity table is itself a measured table:
//
//	{"layers": [{"name": "stage1.unit1.conv1",
//	             "latency_ms": {"w4a4": 0.2109, "8": 0.3619}}]}
//
// Precisions use ParsePrecision's forms ("8" is w8a8).
type Table struct {
	// Origin names the file in messages.
	Origin  string
	entries []TableEntry
	index   map[string]map[Precision]int
}

// TableEntry is one measurement.
type TableEntry struct {
	// Layer is the layer's name.
	Layer string
	// Precision is the measured precision.
	Precision Precision
	// MS is the latency in milliseconds.
	MS float64
	// Line is the line of the file it came from (1-based).
	Line int
}

// Entries returns the measurements in file order.
func (t *Table) Entries() []TableEntry { return append([]TableEntry(nil), t.entries...) }

// Lookup returns the measured milliseconds of layer at q.
func (t *Table) Lookup(layer string, q Precision) (ms float64, ok bool) {
	i, ok := t.index[layer][q]
	if !ok {
		return 0, false
	}
	return t.entries[i].MS, true
}

func (t *Table) add(e TableEntry) error {
	if t.index == nil {
		t.index = map[string]map[Precision]int{}
	}
	if e.Layer == "" {
		return fmt.Errorf("table %s line %d: empty layer name", t.Origin, e.Line)
	}
	if math.IsNaN(e.MS) || math.IsInf(e.MS, 0) || e.MS <= 0 {
		return fmt.Errorf("table %s line %d: layer %q %s: latency must be a finite number > 0 ms, got %g", t.Origin, e.Line, e.Layer, e.Precision, e.MS)
	}
	m := t.index[e.Layer]
	if m == nil {
		m = map[Precision]int{}
		t.index[e.Layer] = m
	}
	if j, dup := m[e.Precision]; dup {
		return fmt.Errorf("table %s line %d: layer %q %s measured twice (also line %d)", t.Origin, e.Line, e.Layer, e.Precision, t.entries[j].Line)
	}
	m[e.Precision] = len(t.entries)
	t.entries = append(t.entries, e)
	return nil
}

// LoadTable reads a measured table from a .csv or .json file.
func LoadTable(path string) (*Table, error) {
	data, err := readfile.Read(path, MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("table: %w", err)
	}
	origin := filepath.ToSlash(path)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return ParseTableCSV(bytes.NewReader(data), origin)
	case ".json":
		return ParseTableJSON(data, origin)
	}
	return nil, fmt.Errorf("table %s: unknown extension %q; want .csv or .json", origin, filepath.Ext(path))
}

// ParseTableCSV reads the CSV form (see Table). Errors name origin, the line
// and the offending value.
func ParseTableCSV(r io.Reader, origin string) (*Table, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	t := &Table{Origin: origin}
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("table %s: empty; want a header \"layer,precision,ms\"", origin)
	}
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", origin, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if _, dup := col[h]; dup && h != "" {
			return nil, fmt.Errorf("table %s line 1: column %q twice", origin, h)
		}
		col[h] = i
	}
	for _, need := range []string{"layer", "precision", "ms"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("table %s line 1: header %q lacks column %q; want \"layer,precision,ms\"", origin, strings.Join(header, ","), need)
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", origin, err)
		}
		line, _ := cr.FieldPos(0)
		get := func(name string) (string, error) {
			i := col[name]
			if i >= len(rec) {
				return "", fmt.Errorf("table %s line %d: %d fields, missing %q", origin, line, len(rec), name)
			}
			return strings.TrimSpace(rec[i]), nil
		}
		layer, err := get("layer")
		if err != nil {
			return nil, err
		}
		ps, err := get("precision")
		if err != nil {
			return nil, err
		}
		ms, err := get("ms")
		if err != nil {
			return nil, err
		}
		q, err := ParsePrecision(ps)
		if err != nil {
			return nil, fmt.Errorf("table %s line %d: %w", origin, line, err)
		}
		v, err := strconv.ParseFloat(ms, 64)
		if err != nil {
			return nil, fmt.Errorf("table %s line %d: ms %q is not a number", origin, line, ms)
		}
		if err := t.add(TableEntry{Layer: layer, Precision: q, MS: v, Line: line}); err != nil {
			return nil, err
		}
	}
	if len(t.entries) == 0 {
		return nil, fmt.Errorf("table %s: no measurements after the header", origin)
	}
	return t, nil
}

// ParseTableJSON reads the JSON form (see Table). Errors name origin, the
// line of the layer and the offending value.
func ParseTableJSON(data []byte, origin string) (*Table, error) {
	t := &Table{Origin: origin}
	if err := jsonx.Duplicates(data); err != nil {
		return nil, fmt.Errorf("table %s: %w", origin, err)
	}
	fail := func(off int64, format string, args ...any) (*Table, error) {
		line := jsonx.Position(data, off).Line
		return nil, fmt.Errorf("table %s line %d: %s", origin, line, fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", origin, jsonx.Error(data, err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fail(0, "want a JSON object with a \"layers\" array")
	}
	sawLayers := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", origin, jsonx.Error(data, err))
		}
		key, _ := tok.(string)
		if key != "layers" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("table %s: %w", origin, jsonx.Error(data, err))
			}
			continue
		}
		sawLayers = true
		off := dec.InputOffset()
		tok, err = dec.Token()
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", origin, jsonx.Error(data, err))
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return fail(off, "\"layers\" must be an array")
		}
		for i := 0; dec.More(); i++ {
			start := skipSpace(data, dec.InputOffset())
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, fmt.Errorf("table %s: %w", origin, jsonx.Error(data, err))
			}
			line := jsonx.Position(data, start).Line
			var el struct {
				Name      string                     `json:"name"`
				LatencyMS map[string]json.RawMessage `json:"latency_ms"`
			}
			if err := json.Unmarshal(raw, &el); err != nil {
				return fail(start, "layers[%d]: want an object with \"name\" and \"latency_ms\" (precision → ms): %v", i, err)
			}
			if el.Name == "" {
				return fail(start, "layers[%d]: missing \"name\"", i)
			}
			for _, k := range sortedKeys(el.LatencyMS) {
				q, err := ParsePrecision(k)
				if err != nil {
					return fail(start, "layer %q latency_ms: %v", el.Name, err)
				}
				var v float64
				if err := json.Unmarshal(el.LatencyMS[k], &v); err != nil {
					return fail(start, "layer %q latency_ms[%q]: want a number of ms, got %s", el.Name, k, clip(string(el.LatencyMS[k])))
				}
				if err := t.add(TableEntry{Layer: el.Name, Precision: q, MS: v, Line: line}); err != nil {
					return nil, err
				}
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("table %s: %w", origin, jsonx.Error(data, err))
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("table %s: %w", origin, jsonx.Error(data, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail(dec.InputOffset(), "data after the top-level object")
	}
	if !sawLayers {
		return nil, fmt.Errorf("table %s: no \"layers\" array", origin)
	}
	if len(t.entries) == 0 {
		return nil, fmt.Errorf("table %s: no latency_ms entries", origin)
	}
	return t, nil
}

func skipSpace(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',':
			off++
			continue
		}
		break
	}
	return off
}

// Check returns an error naming the file, line and value of every entry
// whose layer is not among layers.
func (t *Table) Check(layers []Layer) error {
	known := map[string]bool{}
	names := make([]string, 0, len(layers))
	for _, l := range layers {
		known[l.Name] = true
		names = append(names, l.Name)
	}
	var errs []error
	reported := map[string]bool{}
	for _, e := range t.entries {
		if !known[e.Layer] && !reported[e.Layer] {
			reported[e.Layer] = true
			errs = append(errs, fmt.Errorf("table %s line %d: layer %q is not a layer of the model (layers: %s)", t.Origin, e.Line, e.Layer, joinClip(names, 8)))
		}
	}
	return errors.Join(errs...)
}

// unused lists what the table has but the problem does not use, and where
// the roofline fills gaps.
func (t *Table) unused(layers []Layer, cands []Precision) []string {
	isCand := map[Precision]bool{}
	for _, q := range cands {
		isCand[q] = true
	}
	var extra []string
	seen := map[Precision]bool{}
	for _, e := range t.entries {
		if !isCand[e.Precision] && !seen[e.Precision] {
			seen[e.Precision] = true
			extra = append(extra, e.Precision.String())
		}
	}
	sort.Strings(extra)
	var out []string
	if len(extra) > 0 {
		out = append(out, fmt.Sprintf("table %s: measurements at %s not used (not candidates)", t.Origin, strings.Join(extra, ", ")))
	}
	missing := 0
	for _, l := range layers {
		for _, q := range cands {
			if _, ok := t.Lookup(l.Name, q); !ok {
				missing++
			}
		}
	}
	if missing > 0 {
		out = append(out, fmt.Sprintf("table %s: %d layer×precision pairs not measured; the roofline model fills them", t.Origin, missing))
	}
	return out
}
