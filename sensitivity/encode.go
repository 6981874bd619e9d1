package sensitivity

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"

	"github.com/bitplan/bitplan/internal/jsonx"
)

// WriteJSON writes the table as indented JSON (two spaces), byte for byte
// what encoding/json's indenting encoder writes, but streamed layer by
// layer through a small buffer instead of built whole in memory first.
// A NaN or infinite number is an error naming the field, as encoding/json
// refuses them too.
func (t *Table) WriteJSON(w io.Writer) error {
	e := &encoder{w: bufio.NewWriterSize(w, 64<<10)}
	e.raw("{")
	first := true
	field := func(depth int, name string) {
		if !first {
			e.raw(",")
		}
		first = false
		e.nl(depth)
		e.str(name)
		e.raw(": ")
	}
	for _, f := range [...]struct{ name, v string }{{"model", t.Model}, {"source", t.Source}, {"notes", t.Notes}, {"criterion", t.Criterion}} {
		if f.v != "" {
			field(1, f.name)
			e.str(f.v)
		}
	}
	if len(t.Ties) > 0 {
		field(1, "ties")
		e.raw("[")
		for i, g := range t.Ties {
			if i > 0 {
				e.raw(",")
			}
			e.nl(2)
			if g == nil {
				e.raw("null")
				continue
			}
			e.raw("[")
			for j, x := range g {
				if j > 0 {
					e.raw(",")
				}
				e.nl(3)
				e.buf = strconv.AppendInt(e.buf, int64(x), 10)
			}
			if len(g) > 0 {
				e.nl(2)
			}
			e.raw("]")
		}
		e.nl(1)
		e.raw("]")
	}
	field(1, "layers")
	if t.Layers == nil {
		e.raw("null")
	} else {
		e.raw("[")
		for i := range t.Layers {
			if i > 0 {
				e.raw(",")
			}
			e.nl(2)
			e.layer(&t.Layers[i], i)
			if e.err != nil {
				return e.err
			}
		}
		if len(t.Layers) > 0 {
			e.nl(1)
		}
		e.raw("]")
	}
	e.nl(0)
	e.raw("}\n")
	e.flush()
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

// encoder appends JSON to buf and hands it to w in pieces.
type encoder struct {
	w   *bufio.Writer
	buf []byte
	err error
	// layer and index name the layer being written, for errors.
	cur   *Layer
	index int
}

func (e *encoder) raw(s string) { e.buf = append(e.buf, s...) }

func (e *encoder) nl(depth int) { e.buf = jsonx.AppendIndent(e.buf, depth) }

func (e *encoder) flush() {
	if e.err == nil {
		_, e.err = e.w.Write(e.buf)
	}
	e.buf = e.buf[:0]
}

func (e *encoder) str(s string) { e.buf = jsonx.AppendString(e.buf, s) }

// float appends f as encoding/json formats a float64; name (and key, for
// a map) name the field for the error a NaN or infinity gives.
func (e *encoder) float(name, key string, f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		if e.err == nil {
			if key != "" {
				name = fmt.Sprintf("%s[%q]", name, key)
			}
			e.err = fmt.Errorf("layers[%d] (%q): %s is %v, which JSON cannot hold", e.index, e.cur.Name, name, f)
		}
		return
	}
	e.buf = jsonx.AppendFloat(e.buf, f)
}

func (e *encoder) layer(l *Layer, i int) {
	e.cur, e.index = l, i
	e.raw("{")
	first := true
	field := func(name string) {
		if !first {
			e.raw(",")
		}
		first = false
		e.nl(3)
		e.str(name)
		e.raw(": ")
	}
	num := func(name string, v float64, omitZero bool) {
		if omitZero && v == 0 {
			return
		}
		field(name)
		e.float(name, "", v)
	}
	field("name")
	e.str(l.Name)
	num("params", l.Params, false)
	num("macs", l.MACs, false)
	num("avg_trace", l.AvgTrace, false)
	num("avg_trace_stderr", l.AvgTraceStderr, true)
	if l.Trace != nil {
		num("trace", *l.Trace, false)
	}
	field("delta_sq")
	e.floatMap("delta_sq", l.DeltaSq)
	if len(l.LatencyMS) > 0 {
		field("latency_ms")
		e.floatMap("latency_ms", l.LatencyMS)
	}
	if len(l.Scores) > 0 {
		field("omega")
		e.floatMap("omega", l.Scores)
	}
	if len(l.ScoreStderr) > 0 {
		field("omega_stderr")
		e.floatMap("omega_stderr", l.ScoreStderr)
	}
	if l.Tie != "" {
		field("tie")
		e.str(l.Tie)
	}
	if l.Pin != "" {
		field("pin")
		e.str(l.Pin)
	}
	if l.Kind != "" {
		field("kind")
		e.str(l.Kind)
	}
	if l.Function != "" {
		field("function")
		e.str(l.Function)
	}
	num("in_elems", l.InElems, true)
	num("out_elems", l.OutElems, true)
	num("out_channels", l.OutChannels, true)
	if l.Index != nil {
		field("index")
		e.buf = strconv.AppendInt(e.buf, int64(*l.Index), 10)
	}
	num("in_channels", l.InChannels, true)
	num("kernel", l.Kernel, true)
	num("stride", l.Stride, true)
	num("in_hw", l.InHW, true)
	num("out_hw", l.OutHW, true)
	num("act_avg_trace", l.ActAvgTrace, true)
	num("act_avg_trace_stderr", l.ActAvgTraceStderr, true)
	if len(l.ActDeltaSq) > 0 {
		field("act_delta_sq")
		e.floatMap("act_delta_sq", l.ActDeltaSq)
	}
	e.nl(2)
	e.raw("}")
	if len(e.buf) > 32<<10 {
		e.flush()
	}
}

func (e *encoder) floatMap(name string, m map[string]float64) {
	if m == nil {
		e.raw("null")
		return
	}
	if len(m) == 0 {
		e.raw("{}")
		return
	}
	var arr [16]string
	ks := arr[:0]
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	e.raw("{")
	for j, k := range ks {
		if j > 0 {
			e.raw(",")
		}
		e.nl(4)
		e.str(k)
		e.raw(": ")
		e.float(name, k, m[k])
	}
	e.nl(3)
	e.raw("}")
}
