package sensitivity

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"unsafe"

	"github.com/bitplan/bitplan/internal/jsonx"
)

// decoder reads a table from a stream with a jsonx.Scanner: one pass, no
// copy of the text, the table's own memory only (a million layers in about
// 0.8 GB where decoding the whole text with encoding/json took 2.2 GB).
// Keys match exactly (encoding/json also accepted "NAME" for "name" while
// the unknown-field check warned it was ignored); a key given twice in one
// object is an error.
type decoder struct {
	s *jsonx.Scanner
	// keys interns the candidate keys of delta_sq and latency_ms ("4",
	// "w4a8"): a table has a handful, repeated on every layer.
	keys map[string]string
	// last holds the keys of the last delta_sq, latency_ms, omega,
	// omega_stderr and act_delta_sq read, in order: the next layer's usually repeat them,
	// found without hashing.
	last [5][]string
	// keys[0] and keys[1] describe the current layer's delta_sq and
	// latency_ms: keysAbsent, keysSame (the keys of their last occurrence,
	// in order, and every value non-negative) or keysOther; prevKeys the
	// previous layer's. Two equal descriptions with delta_sq keysSame let
	// the validator skip the key checks.
	keysOf, prevKeys [2]uint8
	topWarn          []string
	layerWarn        []string
	// v validates each layer as soon as it is read (verr: its error).
	v    *validator
	verr error
	// size is the input's length when known (a file), 0 otherwise: after
	// the first layers it sizes the layer slice, so a million layers are
	// not copied through ever larger slices (about 0.7 GB of garbage).
	size int64
}

// Descriptions of a layer's candidate maps (decoder.keysOf).
const (
	keysAbsent uint8 = iota
	keysSame
	keysOther
)

// maxInterned bounds the interned candidate keys (a hostile table could
// give every layer new ones).
const maxInterned = 1024

// layerFields lists the JSON names of Layer's fields, in the order of the
// bits that record which a layer object has given.
var layerFields = [...]string{"name", "params", "macs", "avg_trace", "avg_trace_stderr", "trace",
	"delta_sq", "latency_ms", "omega", "omega_stderr", "tie", "pin", "in_elems", "out_elems", "out_channels",
	"index", "in_channels", "kernel", "stride", "in_hw", "out_hw", "kind",
	"act_avg_trace", "act_avg_trace_stderr", "act_delta_sq", "function"}

var topFields = [...]string{"model", "source", "notes", "criterion", "ties", "layers"}

func fieldIndex(names []string, key []byte) int {
	for i, n := range names {
		if n == string(key) {
			return i
		}
	}
	return -1
}

func (d *decoder) dup(key []byte, where string, pos jsonx.Pos) error {
	return fmt.Errorf("duplicate key %q in %s at %s", key, where, pos)
}

// typeErr is the error of a value of the wrong kind, worded as
// encoding/json's type errors were: field path, place, kind and Go type.
func (d *decoder) typeErr(field, want string) error {
	pos := d.s.Pos()
	kind, err := d.s.Kind()
	if err != nil {
		return err
	}
	return fmt.Errorf("field %q at %s: got JSON %s, want %s", field, pos, kind, want)
}

func (d *decoder) table(t *Table) error {
	s := d.s
	c, err := s.Peek()
	if err != nil {
		return err
	}
	if c == 'n' {
		_, err := s.Null()
		return err
	}
	if c != '{' {
		return d.typeErr("(top level)", "sensitivity.Table")
	}
	s.Begin('{')
	var seen uint32
	var unknown []string
	for i := 0; ; i++ {
		key, pos, ok, err := s.Key(i)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		f := fieldIndex(topFields[:], key)
		if f < 0 {
			for _, u := range unknown {
				if u == string(key) {
					return d.dup(key, "the top-level object", pos)
				}
			}
			unknown = append(unknown, string(key))
			if err := s.Skip(); err != nil {
				return err
			}
			continue
		}
		if seen&(1<<f) != 0 {
			return d.dup(key, "the top-level object", pos)
		}
		seen |= 1 << f
		switch f {
		case 0:
			t.Model, err = d.str("model")
		case 1:
			t.Source, err = d.str("source")
		case 2:
			t.Notes, err = d.str("notes")
		case 3:
			t.Criterion, err = d.str("criterion")
		case 4:
			t.Ties, err = d.ties()
		case 5:
			err = d.layers(t)
		}
		if err != nil {
			return err
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		d.topWarn = append(d.topWarn, fmt.Sprintf("unknown field %q ignored", k))
	}
	return nil
}

func (d *decoder) layers(t *Table) error {
	s := d.s
	if null, err := s.Null(); null || err != nil {
		t.Layers = nil
		return err
	}
	if c, _ := s.Peek(); c != '[' {
		return d.typeErr("layers", "[]sensitivity.Layer")
	}
	s.Begin('[')
	start := s.Offset()
	for i := 0; ; i++ {
		more, err := s.Next(i)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		if t.Layers == nil {
			t.Layers = make([]Layer, 0, 64)
		}
		if i == estimateAfter && d.size > 0 {
			t.Layers = d.reserve(t.Layers, start)
		}
		t.Layers = append(t.Layers, Layer{})
		d.prevKeys, d.keysOf = d.keysOf, [2]uint8{}
		if err := d.layer(&t.Layers[i], i); err != nil {
			return err
		}
		same := i > 0 && d.keysOf == d.prevKeys && d.keysOf[0] == keysSame && d.keysOf[1] != keysOther
		if err := d.v.layer(t, i, same); err != nil {
			d.verr = err
			return err
		}
	}
	if t.Layers == nil {
		t.Layers = []Layer{}
	}
	return nil
}

// estimateAfter is the number of layers read before the slice is sized
// from the bytes they took.
const estimateAfter = 1024

// reserve returns ls with room for the layers the rest of the input holds
// if they are as long as those read since offset start (10 % more, for
// variation; a slice that proves short grows as usual).
func (d *decoder) reserve(ls []Layer, start int64) []Layer {
	per := float64(d.s.Offset()-start) / float64(len(ls))
	if per < 1 {
		return ls
	}
	n := int(1.1*float64(d.size-start)/per) + 16
	if n <= cap(ls) {
		return ls
	}
	if d.v != nil {
		names := make(map[string]int, n)
		for k, i := range d.v.names {
			names[k] = i
		}
		d.v.names = names
	}
	return append(make([]Layer, 0, n), ls...)
}

func (d *decoder) layer(l *Layer, idx int) error {
	s := d.s
	if null, err := s.Null(); null || err != nil {
		return err
	}
	if c, _ := s.Peek(); c != '{' {
		return d.typeErr("layers", "sensitivity.Layer")
	}
	s.Begin('{')
	var seen uint32
	var unknown []string
	for i := 0; ; i++ {
		key, pos, ok, err := s.Key(i)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		f := fieldIndex(layerFields[:], key)
		if f < 0 {
			for _, u := range unknown {
				if u == string(key) {
					return d.dup(key, fmt.Sprintf("layers[%d]", idx), pos)
				}
			}
			unknown = append(unknown, string(key))
			if err := s.Skip(); err != nil {
				return err
			}
			continue
		}
		if seen&(1<<f) != 0 {
			return d.dup(key, fmt.Sprintf("layers[%d]", idx), pos)
		}
		seen |= 1 << f
		switch f {
		case 0:
			l.Name, err = d.str("layers.name")
		case 1:
			l.Params, err = d.float("layers.params")
		case 2:
			l.MACs, err = d.float("layers.macs")
		case 3:
			l.AvgTrace, err = d.float("layers.avg_trace")
		case 4:
			l.AvgTraceStderr, err = d.float("layers.avg_trace_stderr")
		case 5:
			var null bool
			if null, err = s.Null(); !null && err == nil {
				var v float64
				v, err = d.float("layers.trace")
				l.Trace = &v
			}
		case 6:
			l.DeltaSq, d.keysOf[0], err = d.floatMap("layers.delta_sq", idx, &d.last[0])
		case 7:
			l.LatencyMS, d.keysOf[1], err = d.floatMap("layers.latency_ms", idx, &d.last[1])
		case 8:
			l.Scores, _, err = d.floatMap("layers.omega", idx, &d.last[2])
		case 9:
			l.ScoreStderr, _, err = d.floatMap("layers.omega_stderr", idx, &d.last[3])

		case 10:
			l.Tie, err = d.str("layers.tie")
		case 11:
			l.Pin, err = d.str("layers.pin")
		case 12:
			l.InElems, err = d.float("layers.in_elems")
		case 13:
			l.OutElems, err = d.float("layers.out_elems")
		case 14:
			l.OutChannels, err = d.float("layers.out_channels")
		case 15:
			var null bool
			if null, err = s.Null(); !null && err == nil {
				var v int
				v, err = d.int("layers.index")
				l.Index = &v
			}
		case 16:
			l.InChannels, err = d.float("layers.in_channels")
		case 17:
			l.Kernel, err = d.float("layers.kernel")
		case 18:
			l.Stride, err = d.float("layers.stride")
		case 19:
			l.InHW, err = d.float("layers.in_hw")
		case 20:
			l.OutHW, err = d.float("layers.out_hw")
		case 21:
			l.Kind, err = d.str("layers.kind")
		case 22:
			l.ActAvgTrace, err = d.float("layers.act_avg_trace")
		case 23:
			l.ActAvgTraceStderr, err = d.float("layers.act_avg_trace_stderr")
		case 24:
			l.ActDeltaSq, _, err = d.floatMap("layers.act_delta_sq", idx, &d.last[4])
		case 25:
			l.Function, err = d.str("layers.function")
		}
		if err != nil {
			return err
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		for _, k := range unknown {
			d.layerWarn = append(d.layerWarn, fmt.Sprintf("layers[%d] (%q): unknown field %q ignored", idx, l.Name, k))
		}
	}
	return nil
}

// str reads a string (null leaves it empty).
func (d *decoder) str(field string) (string, error) {
	c, err := d.s.Peek()
	if err != nil {
		return "", err
	}
	switch c {
	case '"':
		b, err := d.s.String()
		return string(b), err
	case 'n':
		_, err := d.s.Null()
		return "", err
	}
	return "", d.typeErr(field, "string")
}

// float reads a number (null leaves it 0). A number out of float64's range
// is a type error, as in encoding/json.
func (d *decoder) float(field string) (float64, error) {
	c, err := d.s.Peek()
	if err != nil {
		return 0, err
	}
	if c == 'n' {
		_, err := d.s.Null()
		return 0, err
	}
	if c != '-' && (c < '0' || c > '9') {
		return 0, d.typeErr(field, "float64")
	}
	v, b, ok, err := d.s.Float()
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("field %q at %s: got JSON number %s, want float64", field, d.s.PosBefore(len(b)), b)
	}
	return v, nil
}

// int reads an integer (null leaves it 0).
func (d *decoder) int(field string) (int, error) {
	c, err := d.s.Peek()
	if err != nil {
		return 0, err
	}
	if c == 'n' {
		_, err := d.s.Null()
		return 0, err
	}
	if c != '-' && (c < '0' || c > '9') {
		return 0, d.typeErr(field, "int")
	}
	pos := d.s.Pos()
	b, err := d.s.Number()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(unsafe.String(&b[0], len(b)), 10, 0)
	if err != nil {
		return 0, fmt.Errorf("field %q at %s: got JSON number %s, want int", field, pos, b)
	}
	return int(v), nil
}

// floatMap reads an object of numbers (null: a nil map); a key given twice
// is an error. It also describes the object (keysAbsent, keysSame,
// keysOther): keysSame when its keys are *last, in order, and no value is
// negative. *last becomes its keys.
func (d *decoder) floatMap(field string, idx int, last *[]string) (map[string]float64, uint8, error) {
	s := d.s
	if null, err := s.Null(); null || err != nil {
		return nil, keysAbsent, err
	}
	if c, _ := s.Peek(); c != '{' {
		return nil, keysAbsent, d.typeErr(field, "map[string]float64")
	}
	s.Begin('{')
	// A hint of the last object's size: the map is made once, at its size.
	m := make(map[string]float64, len(*last))
	n0, hits, clean := len(*last), 0, true
	for i := 0; ; i++ {
		kb, pos, ok, err := s.Key(i)
		if err != nil {
			return nil, keysAbsent, err
		}
		if !ok {
			desc := keysOther
			if i == n0 && hits == i && clean {
				desc = keysSame
			}
			if i < len(*last) {
				*last = (*last)[:i]
			}
			return m, desc, nil
		}
		var k string
		if i < len(*last) && (*last)[i] == string(kb) {
			k = (*last)[i]
			hits++
		} else {
			var interned bool
			if k, interned = d.keys[string(kb)]; !interned {
				k = string(kb)
				if len(d.keys) < maxInterned {
					d.keys[k] = k
				}
			}
			if i < len(*last) {
				(*last)[i] = k
			} else if i < maxInterned {
				*last = append(*last, k)
			}
		}
		v, err := d.float(field)
		if err != nil {
			return nil, keysAbsent, err
		}
		clean = clean && v >= 0
		n := len(m)
		m[k] = v
		if len(m) == n {
			return nil, keysAbsent, d.dup([]byte(k), fmt.Sprintf("layers[%d].%s", idx, field[len("layers."):]), pos)
		}
	}
}

// ties reads [][]int.
func (d *decoder) ties() ([][]int, error) {
	s := d.s
	if null, err := s.Null(); null || err != nil {
		return nil, err
	}
	if c, _ := s.Peek(); c != '[' {
		return nil, d.typeErr("ties", "[][]int")
	}
	s.Begin('[')
	out := [][]int{}
	for i := 0; ; i++ {
		more, err := s.Next(i)
		if err != nil {
			return nil, err
		}
		if !more {
			return out, nil
		}
		if null, err := s.Null(); err != nil {
			return nil, err
		} else if null {
			out = append(out, nil)
			continue
		}
		if c, _ := s.Peek(); c != '[' {
			return nil, d.typeErr("ties", "[]int")
		}
		s.Begin('[')
		g := []int{}
		for j := 0; ; j++ {
			more, err := s.Next(j)
			if err != nil {
				return nil, err
			}
			if !more {
				break
			}
			v, err := d.int("ties")
			if err != nil {
				return nil, err
			}
			g = append(g, v)
		}
		out = append(out, g)
	}
}

// finite reports whether v is neither NaN nor infinite.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
