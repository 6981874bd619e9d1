package sensitivity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/bitplan/bitplan/internal/jsonx"
	"github.com/bitplan/bitplan/internal/readfile"
	"github.com/bitplan/bitplan/internal/unionfind"
)

// Table is a sensitivity table: per layer, the Hessian trace and the
// quantization error of every candidate precision, plus optional measured
// costs. It is the input of `bitplan solve` and the output of
// `bitplan trace --format json`; its JSON form is the contract described in
// the project's design notes:
//
//	{"model": "resnet18",
//	 "layers": [{"name": "stage1.unit1.conv1", "params": 36864,
//	             "macs": 115605504, "avg_trace": 0.0686,
//	             "delta_sq": {"4": 6.743, "8": 0.0235},
//	             "latency_ms": {"4": 0.2109, "8": 0.3619}, "tie": "block2"}]}
//
// A table of another Criterion also names it ("criterion": "fisher") and
// gives every layer's Ω per candidate ("omega": {"4": …, "8": …}, and for
// diag "omega_stderr").
type Table struct {
	// Model names the model the table describes.
	Model string `json:"model,omitempty"`
	// Source and Notes document where the numbers come from.
	Source string `json:"source,omitempty"`
	Notes  string `json:"notes,omitempty"`
	// Criterion names the sensitivity criterion of the layers' Scores
	// (see Criterion); empty means HAWQ-V3's AvgTrace · DeltaSq.
	Criterion string `json:"criterion,omitempty"`
	// Ties lists groups of layer indices (positions in Layers) that must
	// share a precision, the form HAWQ's reference data uses; the per-layer
	// Tie field is the other way to say the same thing.
	Ties [][]int `json:"ties,omitempty"`
	// Layers lists the layers the planner decides.
	Layers []Layer `json:"layers"`
}

// Layer is one row of a sensitivity table.
type Layer struct {
	// Name identifies the layer (an ONNX node or weight name).
	Name string `json:"name"`
	// Params counts the layer's quantized parameters (weights).
	Params float64 `json:"params"`
	// MACs counts multiply-accumulates at batch 1.
	MACs float64 `json:"macs"`
	// AvgTrace is Tr(H_i)/Params, the HAWQ-V2/V3 sensitivity. It may be
	// negative: Hessians are indefinite.
	AvgTrace float64 `json:"avg_trace"`
	// AvgTraceStderr is the standard error of AvgTrace (0 for exact traces).
	AvgTraceStderr float64 `json:"avg_trace_stderr,omitempty"`
	// Trace is the block's total trace Tr(H_i), when known.
	Trace *float64 `json:"trace,omitempty"`
	// DeltaSq maps a candidate precision to ‖Q_b(W) − W‖²₂. Keys are a weight
	// bit width ("4", activations at the same width) or a pair ("w4a8").
	DeltaSq map[string]float64 `json:"delta_sq"`
	// LatencyMS maps candidates (keys as in DeltaSq) to measured latency in
	// milliseconds; optional.
	LatencyMS map[string]float64 `json:"latency_ms,omitempty"`
	// Scores, when present, maps every candidate (keys as in DeltaSq) to
	// its Ω under the table's Criterion, overriding AvgTrace · DeltaSq;
	// optional. Values may be negative (an indefinite Hessian's diagonal,
	// a loss that falls when a layer is quantized).
	Scores map[string]float64 `json:"omega,omitempty"`
	// ScoreStderr maps candidates to the standard error of Scores (a
	// stochastic criterion such as diag); optional.
	ScoreStderr map[string]float64 `json:"omega_stderr,omitempty"`
	// Tie names a group of layers that must share a precision; optional.
	Tie string `json:"tie,omitempty"`
	// Pin fixes the layer to one candidate (a key of DeltaSq); optional.
	Pin string `json:"pin,omitempty"`
	// InElems and OutElems count activation elements read and written per
	// sample; optional (cost models then count weights only).
	InElems  float64 `json:"in_elems,omitempty"`
	OutElems float64 `json:"out_elems,omitempty"`
	// OutChannels counts output channels (per-channel scale overhead);
	// optional.
	OutChannels float64 `json:"out_channels,omitempty"`

	// The remaining fields document a layer's shape (HAWQ's reference data
	// carries them); the planner does not use them.
	Index      *int    `json:"index,omitempty"`
	InChannels float64 `json:"in_channels,omitempty"`
	Kernel     float64 `json:"kernel,omitempty"`
	Stride     float64 `json:"stride,omitempty"`
	InHW       float64 `json:"in_hw,omitempty"`
	OutHW      float64 `json:"out_hw,omitempty"`

	// Kind says what the layer is when it is not a weight layer: KindAttention
	// for an activation × activation MatMul (Q·Kᵀ, P·V), whose candidate
	// "b" quantizes both of its inputs to b bits (16: float, not quantized),
	// Params 0; KindNonlinear for the GELU, Softmax and LayerNorm nodes of a
	// block computed integer-only (I-BERT, candidate "8") or in float
	// ("16"). Empty for a weight layer. Both carry their Ω in Scores.
	Kind string `json:"kind,omitempty"`
	// ActAvgTrace is Tr(H_a)/n_a for the layer's input activation a: the
	// trace of the Hessian of the loss with respect to the layer's input
	// as the layer reads it, per calibration sample (the mean over samples
	// of the per-sample Hessian's trace) over the n_a input elements of
	// one sample. With ActDeltaSq it adds the activation term to Ω;
	// optional (0: the weight term alone, HAWQ-V3's Ω).
	ActAvgTrace float64 `json:"act_avg_trace,omitempty"`
	// ActAvgTraceStderr is the standard error of ActAvgTrace.
	ActAvgTraceStderr float64 `json:"act_avg_trace_stderr,omitempty"`
	// ActDeltaSq maps candidates (keys as in DeltaSq) to E‖Q_A(a) − a‖²,
	// the mean over calibration samples of the squared error of the input
	// activation quantizer at the candidate's activation width A;
	// optional (a missing candidate has no activation term).
	ActDeltaSq map[string]float64 `json:"act_delta_sq,omitempty"`
	// Function names the non-linearity of a KindNonlinear layer ("gelu",
	// "softmax", "layernorm"; InElems counts its elements per sample), for
	// the per-element cost models; empty otherwise.
	Function string `json:"function,omitempty"`
}

// The kinds of a Layer that is not a weight layer (Layer.Kind).
const (
	KindAttention = "attention"
	KindNonlinear = "nonlinear"
)

// Precision is a candidate: weight and activation bit widths.
type Precision struct {
	W, A int
}

// String returns the canonical key: "8" when W == A, else "w4a8".
func (p Precision) String() string {
	if p.W == p.A {
		return strconv.Itoa(p.W)
	}
	return fmt.Sprintf("w%da%d", p.W, p.A)
}

// ParsePrecision parses a candidate key: "4" (W4A4), "w4a8", "W4A8" or
// "4/8". Bit widths must lie in 1..64.
func ParsePrecision(key string) (Precision, error) {
	// The common keys ("4", "16") without allocating.
	if n := len(key); n == 1 && key[0] >= '1' && key[0] <= '9' {
		w := int(key[0] - '0')
		return Precision{W: w, A: w}, nil
	} else if n == 2 && key[0] >= '1' && key[0] <= '6' && key[1] >= '0' && key[1] <= '9' {
		if w := int(key[0]-'0')*10 + int(key[1]-'0'); w <= 64 {
			return Precision{W: w, A: w}, nil
		}
	}
	k := strings.ToLower(strings.TrimSpace(key))
	var w, a int
	var err error
	switch {
	case strings.HasPrefix(k, "w") && strings.Contains(k, "a"):
		i := strings.Index(k, "a")
		w, err = strconv.Atoi(k[1:i])
		if err == nil {
			a, err = strconv.Atoi(k[i+1:])
		}
	case strings.Contains(k, "/"):
		i := strings.Index(k, "/")
		w, err = strconv.Atoi(k[:i])
		if err == nil {
			a, err = strconv.Atoi(k[i+1:])
		}
	default:
		w, err = strconv.Atoi(k)
		a = w
	}
	if err != nil {
		return Precision{}, fmt.Errorf("precision %q: want a bit width like \"4\" or a pair like \"w4a8\"", key)
	}
	if w < 1 || w > 64 || a < 1 || a > 64 {
		return Precision{}, fmt.Errorf("precision %q: bit widths must lie in 1..64", key)
	}
	return Precision{W: w, A: a}, nil
}

// Candidates returns the layer's candidate precisions sorted by weight then
// activation bits, with the keys they have in DeltaSq. The table must have
// been validated.
func (l *Layer) Candidates() ([]Precision, []string) {
	ps := make([]Precision, 0, len(l.DeltaSq))
	ks := make([]string, 0, len(l.DeltaSq))
	for k := range l.DeltaSq {
		p, err := ParsePrecision(k)
		if err != nil {
			continue
		}
		// Insertion sort: a layer has a handful of candidates.
		j := len(ps)
		ps, ks = append(ps, p), append(ks, k)
		for ; j > 0 && (ps[j-1].W > p.W || ps[j-1].W == p.W && ps[j-1].A > p.A); j-- {
			ps[j], ks[j] = ps[j-1], ks[j-1]
		}
		ps[j], ks[j] = p, k
	}
	return ps, ks
}

// Omega returns the sensitivity of the layer at the candidate key: its
// Scores entry when the layer has Scores (another Criterion), else the
// HAWQ-V3 sensitivity plus, when the table has it, the activation term
//
//	Ω_i(b) = (Tr(H_i)/n_i) · ‖Q_b(W_i) − W_i‖²₂ + (Tr(H_a)/n_a) · E‖Q_b(a) − a‖²
//	       = AvgTrace · DeltaSq[b] + ActAvgTrace · ActDeltaSq[b]
//
// (both terms without the ½ of the second-order Taylor expansion, as
// HAWQ-V3 writes the first).
func (l *Layer) Omega(key string) float64 {
	if l.Scores != nil {
		return l.Scores[key]
	}
	return l.AvgTrace*l.DeltaSq[key] + l.ActAvgTrace*l.ActDeltaSq[key]
}

// MaxTableBytes bounds the size of a table file or stream: about eight
// times a million-layer table. A larger input (or one that never ends, such
// as /dev/zero) is refused with an error rather than read until memory runs
// out.
const MaxTableBytes = 4 << 30

// maxTableBytes is MaxTableBytes, lowered by tests.
var maxTableBytes int64 = MaxTableBytes

// ReadFile reads and validates a table from a JSON file. Warnings (unknown
// fields, negative traces) are returned separately; errors name the file and
// the place in it.
func ReadFile(path string) (*Table, []string, error) {
	return ReadFileContext(context.Background(), path)
}

// ReadFileContext is ReadFile stopping when ctx is done (the error then
// wraps ctx.Err()). The file is streamed, never held whole in memory.
func ReadFileContext(ctx context.Context, path string) (*Table, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var size int64
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		if size = st.Size(); size > maxTableBytes {
			return nil, nil, fmt.Errorf("%s: %d bytes, more than the %s a table may have", path, size, readfile.Size(maxTableBytes))
		}
	}
	t, warn, err := read(ctx, f, size)
	if err != nil {
		return nil, warn, fmt.Errorf("%s: %w", path, err)
	}
	return t, warn, nil
}

// Read reads and validates a table from r (see Parse).
func Read(r io.Reader) (*Table, []string, error) { return ReadContext(context.Background(), r) }

// ReadContext is Read stopping when ctx is done. It streams: memory goes
// to the table, not to its text.
func ReadContext(ctx context.Context, r io.Reader) (*Table, []string, error) { return read(ctx, r, 0) }

// read is ReadContext for an input of size bytes (0: unknown).
func read(ctx context.Context, r io.Reader, size int64) (*Table, []string, error) {
	d := &decoder{s: jsonx.NewScanner(ctx, r, maxTableBytes), keys: map[string]string{}, size: size,
		v: newValidator(0)}
	var t Table
	err := d.table(&t)
	if err == nil {
		err = d.s.End()
	}
	if d.verr != nil && err == d.verr {
		// A layer read well but invalid: the checks' usual result.
		return &t, append(append(d.topWarn, d.layerWarn...), d.v.warn...), err
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && d.s.Err() == ctxErr {
			return nil, nil, fmt.Errorf("reading stopped: %w", ctxErr)
		}
		return nil, nil, err
	}
	warn := append(d.topWarn, d.layerWarn...)
	if len(t.Layers) == 0 {
		return &t, warn, errors.New(`field "layers": the table has no layers`)
	}
	err = d.v.table(&t)
	return &t, append(warn, d.v.warn...), err
}

// Parse decodes and validates a JSON table. It returns warnings for unknown
// fields (so a typo does not pass silently) and for negative traces (legal:
// Hessians are indefinite), and an error naming the place for malformed
// input: bad JSON (with line and column), a key given twice in one object,
// a missing name or candidate set, negative or non-finite counts and
// errors, unknown precision keys, latency tables that miss a candidate,
// ties between layers with different candidate sets, pins naming no
// candidate.
func Parse(data []byte) (*Table, []string, error) {
	return read(context.Background(), bytes.NewReader(data), int64(len(data)))
}

// Validate checks a table and returns warnings for legal oddities (negative
// traces). The error names the layer and field.
func (t *Table) Validate() ([]string, error) {
	if len(t.Layers) == 0 {
		return nil, errors.New(`field "layers": the table has no layers`)
	}
	v := newValidator(len(t.Layers))
	for i := range t.Layers {
		if err := v.layer(t, i, false); err != nil {
			return v.warn, err
		}
	}
	err := v.table(t)
	return v.warn, err
}

// validator checks a table layer by layer (the reader runs it on each
// layer as soon as it is read, while it is in cache) and then as a whole.
type validator struct {
	names map[string]int
	prec  []Precision // the parsed keys of one layer
	keys  []string
	warn  []string
}

func newValidator(n int) *validator { return &validator{names: make(map[string]int, n)} }

// layer checks t.Layers[i]. sameKeys reports that its delta_sq and
// latency_ms have the keys, in order, of t.Layers[i-1], which passed, and
// values that are all non-negative (the reader knows it as it reads): the
// checks of the candidate keys are then skipped.
func (c *validator) layer(t *Table, i int, sameKeys bool) error {
	l := &t.Layers[i]
	if l.Name == "" {
		return fmt.Errorf("layers[%d]: missing \"name\"", i)
	}
	// where names the layer in messages (made only for one).
	where := func() string { return fmt.Sprintf("layers[%d] (%q)", i, l.Name) }
	if j, dup := c.names[l.Name]; dup {
		return fmt.Errorf("%s: name already used by layers[%d]", where(), j)
	}
	c.names[l.Name] = i
	for _, f := range [...]struct {
		name string
		v    float64
	}{{"params", l.Params}, {"macs", l.MACs}, {"avg_trace_stderr", l.AvgTraceStderr},
		{"act_avg_trace_stderr", l.ActAvgTraceStderr}, {"in_elems", l.InElems}, {"out_elems", l.OutElems}, {"out_channels", l.OutChannels}} {
		if !finite(f.v) || f.v < 0 {
			return fmt.Errorf("%s: %q must be a finite non-negative number, got %v", where(), f.name, f.v)
		}
	}
	if !finite(l.AvgTrace) {
		return fmt.Errorf("%s: \"avg_trace\" must be finite, got %v", where(), l.AvgTrace)
	}
	if l.Kind != "" && l.Kind != KindAttention && l.Kind != KindNonlinear {
		return fmt.Errorf("%s: kind %q: want %q, %q or none (a weight layer)", where(), l.Kind, KindAttention, KindNonlinear)
	}
	if !finite(l.ActAvgTrace) {
		return fmt.Errorf("%s: \"act_avg_trace\" must be finite, got %v", where(), l.ActAvgTrace)
	}
	if l.AvgTrace < 0 {
		c.warn = append(c.warn, fmt.Sprintf("%s: negative avg_trace %g (the Hessian is indefinite here; its Ω favours lower precision)", where(), l.AvgTrace))
	}
	if sameKeys && l.Scores == nil && l.ScoreStderr == nil && l.ActDeltaSq == nil {
		if l.Pin != "" {
			if _, ok := l.DeltaSq[l.Pin]; !ok {
				return fmt.Errorf("%s: pin %q names no candidate of delta_sq", where(), l.Pin)
			}
		}
		return nil
	}
	if len(l.DeltaSq) == 0 {
		return fmt.Errorf("%s: \"delta_sq\" must list at least one candidate precision", where())
	}
	c.prec, c.keys = c.prec[:0], c.keys[:0]
	var seen map[Precision]string // for layers of many candidates
	if len(l.DeltaSq) > 16 {
		seen = make(map[Precision]string, len(l.DeltaSq))
	}
	for k, v := range l.DeltaSq {
		p, err := ParsePrecision(k)
		if err != nil {
			return fmt.Errorf("%s: delta_sq: %v", where(), err)
		}
		if seen != nil {
			if o, dup := seen[p]; dup {
				return fmt.Errorf("%s: delta_sq: keys %q and %q name the same precision", where(), o, k)
			}
			seen[p] = k
		} else {
			for j, q := range c.prec {
				if q == p {
					return fmt.Errorf("%s: delta_sq: keys %q and %q name the same precision", where(), c.keys[j], k)
				}
			}
			c.prec, c.keys = append(c.prec, p), append(c.keys, k)
		}
		if !finite(v) || v < 0 {
			return fmt.Errorf("%s: delta_sq[%q] must be a finite non-negative number, got %v", where(), k, v)
		}
	}
	if l.LatencyMS != nil {
		for k, v := range l.LatencyMS {
			if _, ok := l.DeltaSq[k]; !ok {
				return fmt.Errorf("%s: latency_ms[%q] names no candidate of delta_sq", where(), k)
			}
			if !finite(v) || v < 0 {
				return fmt.Errorf("%s: latency_ms[%q] must be a finite non-negative number, got %v", where(), k, v)
			}
		}
		if len(l.LatencyMS) != len(l.DeltaSq) {
			for k := range l.DeltaSq {
				if _, ok := l.LatencyMS[k]; !ok {
					return fmt.Errorf("%s: latency_ms has no value for candidate %q", where(), k)
				}
			}
		}
	}
	for _, f := range [...]struct {
		name string
		m    map[string]float64
	}{{"omega", l.Scores}, {"omega_stderr", l.ScoreStderr}, {"act_delta_sq", l.ActDeltaSq}} {
		if f.m == nil {
			continue
		}
		for k, v := range f.m {
			if _, ok := l.DeltaSq[k]; !ok {
				return fmt.Errorf("%s: %s[%q] names no candidate of delta_sq", where(), f.name, k)
			}
			if !finite(v) || (f.name != "omega" && v < 0) {
				return fmt.Errorf("%s: %s[%q] must be a finite number (non-negative for a standard error or a squared error), got %v", where(), f.name, k, v)
			}
		}
		if f.name == "omega" && len(f.m) != len(l.DeltaSq) {
			for k := range l.DeltaSq {
				if _, ok := f.m[k]; !ok {
					return fmt.Errorf("%s: omega has no value for candidate %q", where(), k)
				}
			}
		}
	}
	if l.Pin != "" {
		if _, ok := l.DeltaSq[l.Pin]; !ok {
			return fmt.Errorf("%s: pin %q names no candidate of delta_sq", where(), l.Pin)
		}
	}
	return nil
}

// table runs the checks across layers: tie names and lists, tied layers'
// candidates and pins.
func (c *validator) table(t *Table) error {
	// A tie name given to one layer ties nothing: likely a typo.
	tieUse := map[string]int{}
	for i := range t.Layers {
		if tie := t.Layers[i].Tie; tie != "" {
			if _, seen := tieUse[tie]; seen {
				tieUse[tie] = -1
			} else {
				tieUse[tie] = i
			}
		}
	}
	for i := range t.Layers {
		if tie := t.Layers[i].Tie; tie != "" && tieUse[tie] == i {
			c.warn = append(c.warn, fmt.Sprintf("layers[%d] (%q): tie %q names no other layer, so it ties nothing (a typo?)", i, t.Layers[i].Name, tie))
		}
	}
	for gi, g := range t.Ties {
		if len(g) < 2 {
			return fmt.Errorf("ties[%d]: a tie needs at least two layer indices, got %v", gi, g)
		}
		for _, i := range g {
			if i < 0 || i >= len(t.Layers) {
				return fmt.Errorf("ties[%d]: layer index %d out of range [0, %d)", gi, i, len(t.Layers))
			}
		}
	}
	for _, g := range t.TieGroups() {
		a := &t.Layers[g[0]]
		for _, i := range g[1:] {
			b := &t.Layers[i]
			if !sameKeys(a.DeltaSq, b.DeltaSq) {
				return fmt.Errorf("tie between layers %q and %q: their candidate precisions differ (%s vs %s)",
					a.Name, b.Name, keyList(a.DeltaSq), keyList(b.DeltaSq))
			}
			if a.Pin != "" && b.Pin != "" && a.Pin != b.Pin {
				return fmt.Errorf("tie between layers %q and %q: conflicting pins %q and %q", a.Name, b.Name, a.Pin, b.Pin)
			}
		}
	}
	return nil
}

// TieGroups returns the sets of layer indices that must share a precision,
// from both the per-layer Tie names and the table's Ties lists (merged when
// they overlap), each sorted, in order of their first layer.
func (t *Table) TieGroups() [][]int {
	sets := unionfind.New(len(t.Layers))
	byTie := map[string]int{}
	for i, l := range t.Layers {
		if l.Tie == "" {
			continue
		}
		if j, ok := byTie[l.Tie]; ok {
			sets.Union(i, j)
		} else {
			byTie[l.Tie] = i
		}
	}
	n := len(t.Layers)
	for _, g := range t.Ties {
		if len(g) == 0 || g[0] < 0 || g[0] >= n {
			continue
		}
		for _, i := range g[1:] {
			if i >= 0 && i < n {
				sets.Union(g[0], i)
			}
		}
	}
	return sets.Members(2)
}

func sameKeys(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

func keyList(m map[string]float64) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return "{" + strings.Join(ks, ", ") + "}"
}
