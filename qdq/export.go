package qdq

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/sensitivity"
)

// Opset and IRVersion are the ONNX default-domain operator set and IR
// version of an exported model: opset 21 is the first with INT4/UINT4
// QuantizeLinear and DequantizeLinear (ONNX 1.16), IR 10 the first with
// the 4-bit types.
const (
	Opset     = 21
	IRVersion = 10
)

// MetadataKey is the metadata_props key under which Export records, as
// JSON (a Summary), what every layer was quantized to; MetadataNarrowed is
// present when some code range is narrower than its storage type and says
// which, in words.
const (
	MetadataKey      = "bitplan.qdq"
	MetadataNarrowed = "bitplan.narrowed_ranges"
)

// Config is one export: the float model, the engine built from it, the
// plan's layers and the data the activation ranges are calibrated on.
type Config struct {
	// Model is the serialized float model (the file the engine was built
	// from); it is not modified.
	Model []byte
	// Dir is the directory of the model file, against which the
	// locations of external data (tensors kept in side files) resolve:
	// Export reads them inline (model.ResolveExternal), so the QDQ model
	// refers to no file of the input. "" is fine for a self-contained
	// model; with external data it is an error naming the tensor.
	Dir string
	// Engine is the engine of Model; its weights are restored on return.
	Engine *nn.Engine
	// Layers are the precisions (eval.FromPlan turns a plan into them). A
	// layer with ABits 0 is weight-only: its input stays float.
	Layers []eval.Layer
	// Calib is the calibration set (nil when no layer has ABits > 0).
	Calib data.Dataset
	// Weights is the weight quantizer; it must be symmetric (runtimes
	// take weights with zero point 0). The zero value is HAWQ-V3's
	// symmetric per-channel min/max.
	Weights sensitivity.Quantizer
	// Calibration chooses the activation ranges.
	Calibration eval.Calibration
	// Dyadic records every requantization scale s_x·s_w[c]/s_y as a dyadic
	// number b/2^c in the metadata (see Dyadic and DyadicScales).
	Dyadic bool
	// FloatBias keeps Conv and Gemm biases in float even when the input is
	// quantized (by default they are stored in INT32).
	FloatBias bool
	// Plan names the plan in the metadata.
	Plan string
}

// Result is an exported QDQ model.
type Result struct {
	// Model is the QDQ model.
	Model *onnx.ModelProto
	// Summary says what every layer was quantized to (also in the model's
	// metadata under MetadataKey).
	Summary Summary
	// ExternalFiles are the input's external data files read inline
	// (none for a self-contained input): a writer that keeps the input's
	// layout (MarshalExternal) must not write over them.
	ExternalFiles []string
}

// Summary describes an export.
type Summary struct {
	Plan            string         `json:"plan,omitempty"`
	Opset           int            `json:"opset"`
	WeightQuantizer string         `json:"weight_quantizer"`
	Calibration     string         `json:"calibration"`
	Layers          []LayerSummary `json:"layers"`
	// Attention lists the quantized activation × activation MatMuls.
	Attention []AttentionSummary `json:"attention,omitempty"`
	// FloatNonlinear lists the plan's integer-only non-linearity layers
	// that the export keeps in float: ONNX has no integer GELU, Softmax or
	// LayerNorm that runtimes execute as I-BERT computes them, so the
	// exported model computes them in float (eval simulates them).
	FloatNonlinear []string `json:"float_nonlinear,omitempty"`
}

// LayerSummary is one layer's quantization as stored in the model.
type LayerSummary struct {
	// Name is the unit's name and Node the ONNX node's name.
	Name string `json:"name"`
	Node string `json:"node,omitempty"`
	// Weight is the weight initializer's name (the integer tensor is
	// WeightCodes, its scale WeightScale, zero point WeightZeroPoint).
	Weight          string `json:"weight"`
	WeightCodes     string `json:"weight_codes"`
	WeightScale     string `json:"weight_scale"`
	WeightZeroPoint string `json:"weight_zero_point"`
	Bits            int    `json:"bits"`
	WeightType      string `json:"weight_type"`
	// WeightMin and WeightMax are the code range used (±(2^(b−1) − 1)).
	WeightMin int64 `json:"weight_min"`
	WeightMax int64 `json:"weight_max"`
	// Axis is the weight's output-channel axis, -1 for a per-tensor scale.
	Axis     int  `json:"axis"`
	Channels int  `json:"channels"`
	Narrowed bool `json:"narrowed,omitempty"`
	// BiasType is INT32 or FLOAT ("" without a bias).
	BiasType string `json:"bias_type,omitempty"`
	// ABits is the input's width (0: float input); the input tensor Input
	// is quantized with scale ActScale and zero point ActZeroPoint into
	// ActType codes [ActMin, ActMax].
	ABits        int     `json:"abits"`
	Input        string  `json:"input"`
	ActType      string  `json:"act_type,omitempty"`
	ActScale     float32 `json:"act_scale,omitempty"`
	ActZeroPoint int64   `json:"act_zero_point"`
	ActMin       int64   `json:"act_min"`
	ActMax       int64   `json:"act_max"`
	ActNarrowed  bool    `json:"act_narrowed,omitempty"`
	// RangeMin and RangeMax are the calibrated input range.
	RangeMin float64 `json:"range_min"`
	RangeMax float64 `json:"range_max"`
	// Dyadic holds the requantization multipliers when Config.Dyadic is
	// set and the layer's output reaches a quantized input.
	Dyadic *DyadicScales `json:"dyadic,omitempty"`

	scales []float64 // weight scales (float64, before float32 storage)
}

// Export applies c.Layers to c.Model as a QDQ model. It validates the
// layers against the engine (every layer a unit, widths storable), applies
// the plan with eval.Apply (the quantizers bitplan eval simulates),
// calibrates the activation ranges on c.Calib, and writes the codes and
// scales. Errors name the layer, node or tensor.
func Export(ctx context.Context, c *Config) (*Result, error) {
	if c == nil || c.Engine == nil || len(c.Model) == 0 {
		return nil, fmt.Errorf("qdq: Export needs the model bytes and its engine")
	}
	if c.Weights.Asymmetric {
		return nil, fmt.Errorf("qdq: asymmetric weights cannot be exported: runtimes (TensorRT, ONNX Runtime's integer kernels) take symmetric weights with zero point 0; plan with --quantizer symmetric")
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(c.Model, mp); err != nil || mp.Graph == nil {
		return nil, fmt.Errorf("qdq: the model is not an ONNX ModelProto: %v", err)
	}
	files, err := model.ResolveExternal(mp, c.Dir)
	if err != nil {
		return nil, fmt.Errorf("qdq: %w", err)
	}
	e := c.Engine
	units := map[string]nn.UnitLayout{}
	for _, u := range e.Units() {
		units[u.Name] = u
	}
	var layers []eval.Layer
	var floatNL []string
	for _, l := range c.Layers {
		if l.Kind == sensitivity.KindNonlinear {
			if l.Bits < eval.FloatBits {
				floatNL = append(floatNL, l.Name)
			}
			continue
		}
		layers = append(layers, l)
	}
	for _, l := range layers {
		if l.Kind == sensitivity.KindAttention {
			if l.Bits < eval.FloatBits {
				if _, err := ActType(l.Bits); err != nil {
					return nil, fmt.Errorf("qdq: attention layer %q: %w", l.Name, err)
				}
			}
			continue // checked by eval.Apply
		}
		if _, ok := units[l.Name]; !ok {
			return nil, fmt.Errorf("qdq: layer %q is not a quantizable layer of the model", l.Name)
		}
		if _, err := WeightType(l.Bits); err != nil {
			return nil, fmt.Errorf("qdq: layer %q: %w", l.Name, err)
		}
		if l.ABits != 0 {
			if _, err := ActType(l.ABits); err != nil {
				return nil, fmt.Errorf("qdq: layer %q: %w", l.Name, err)
			}
		}
	}
	if err := upgradeOpset(mp); err != nil {
		return nil, err
	}
	a, err := eval.Apply(ctx, e, layers, c.Calib, &eval.Settings{Weights: c.Weights, Calibration: c.Calibration, FloatBias: c.FloatBias})
	if err != nil {
		return nil, err
	}
	defer a.Restore()
	x := newExporter(mp, e)
	sum := Summary{Plan: c.Plan, Opset: Opset, WeightQuantizer: eval.DescribeQuantizer(c.Weights), Calibration: c.Calibration.String(),
		FloatNonlinear: floatNL}
	for _, al := range a.Layers {
		w, err := e.Weights(al.Name)
		if err != nil {
			return nil, err
		}
		ls, err := x.layer(units[al.Name], al, w, c.FloatBias)
		if err != nil {
			return nil, fmt.Errorf("qdq: layer %q: %w", al.Name, err)
		}
		sum.Layers = append(sum.Layers, ls)
	}
	for _, aa := range a.Attention {
		if aa.Bits == 0 {
			continue
		}
		as, err := x.attention(aa)
		if err != nil {
			return nil, fmt.Errorf("qdq: attention layer %q: %w", aa.Name, err)
		}
		sum.Attention = append(sum.Attention, as)
	}
	if c.Dyadic {
		if err := x.dyadic(sum.Layers); err != nil {
			return nil, err
		}
	}
	x.finish()
	if err := setMetadata(mp, &sum); err != nil {
		return nil, err
	}
	return &Result{Model: mp, Summary: sum, ExternalFiles: files}, nil
}

// Marshal serializes the QDQ model, every tensor inline.
func (r *Result) Marshal() ([]byte, error) {
	b, err := proto.Marshal(r.Model)
	if err != nil {
		return nil, fmt.Errorf("qdq: %w", err)
	}
	return b, nil
}

// ExternalMin is the smallest initializer (bytes of raw data) that
// MarshalExternal moves to the side file; smaller ones stay inline (the
// default size_threshold of onnx.save_model's external data).
const ExternalMin = 1024

// MarshalExternal serializes the QDQ model with its initializers of at
// least ExternalMin bytes in a side file, as ONNX's external data: each
// such tensor has data_location EXTERNAL and external_data location (the
// side file's name relative to the model's directory), offset and length
// into data, the side file's bytes. The model proto itself is not
// changed.
func (r *Result) MarshalExternal(location string) (model, data []byte, err error) {
	if location == "" || filepath.IsAbs(location) {
		return nil, nil, fmt.Errorf("qdq: external data location %q: want a file name relative to the model's directory", location)
	}
	type saved struct {
		t   *onnx.TensorProto
		raw []byte
	}
	var moved []saved
	defer func() {
		for _, m := range moved {
			m.t.RawData, m.t.ExternalData, m.t.DataLocation = m.raw, nil, onnx.TensorProto_DEFAULT
		}
	}()
	for _, t := range r.Model.Graph.Initializer {
		if len(t.RawData) < ExternalMin {
			continue
		}
		moved = append(moved, saved{t, t.RawData})
		t.ExternalData = []*onnx.StringStringEntryProto{{Key: "location", Value: location},
			{Key: "offset", Value: strconv.Itoa(len(data))}, {Key: "length", Value: strconv.Itoa(len(t.RawData))}}
		data = append(data, t.RawData...)
		t.RawData, t.DataLocation = nil, onnx.TensorProto_EXTERNAL
	}
	b, err := proto.Marshal(r.Model)
	if err != nil {
		return nil, nil, fmt.Errorf("qdq: %w", err)
	}
	return b, data, nil
}

// exporter edits a graph: it collects new nodes to insert before existing
// ones and new initializers, with fresh names.
type exporter struct {
	g      *onnx.GraphProto
	e      *nn.Engine
	names  map[string]bool
	before map[int][]*onnx.NodeProto // new nodes to place before node i
	inits  []*onnx.TensorProto
	drop   map[string]bool // initializers replaced by a DequantizeLinear
	// acts maps an activation quantizer (input name and parameters) to the
	// dequantized tensor's name, so that units reading the same tensor at
	// the same precision share one Q/DQ pair.
	acts map[string]string
	// producer maps a tensor to the index of its producing node.
	producer map[string]int
	// consumers maps a tensor to the indices of the nodes reading it.
	consumers map[string][]int
	// qin maps a quantized tensor's dequantized name to its scale, for the
	// dyadic requantization scales.
	qin map[string]float64
	// qsrc maps a tensor that feeds a QuantizeLinear to its scale.
	qsrc map[string]float64
}

func newExporter(mp *onnx.ModelProto, e *nn.Engine) *exporter {
	g := mp.Graph
	x := &exporter{g: g, e: e, names: map[string]bool{}, before: map[int][]*onnx.NodeProto{},
		drop: map[string]bool{}, acts: map[string]string{}, producer: map[string]int{},
		consumers: map[string][]int{}, qin: map[string]float64{}, qsrc: map[string]float64{}}
	for _, t := range g.Initializer {
		x.names[t.Name] = true
	}
	for _, v := range g.Input {
		x.names[v.Name] = true
	}
	for i, n := range g.Node {
		x.names[n.Name] = true
		for _, o := range n.Output {
			x.names[o] = true
			x.producer[o] = i
		}
		for _, in := range n.Input {
			x.consumers[in] = append(x.consumers[in], i)
		}
	}
	return x
}

// fresh returns a name not yet used in the graph, base or base_2, base_3….
func (x *exporter) fresh(base string) string {
	name := base
	for k := 2; x.names[name]; k++ {
		name = base + "_" + strconv.Itoa(k)
	}
	x.names[name] = true
	return name
}

// unitNode returns the index of the unit's node in the graph: the node of
// the unit's operator with the engine model's node outputs (the import may
// fold Identity and Constant nodes away, so indices can differ), reading
// the unit's weight initializer.
func (x *exporter) unitNode(name string) (int, error) {
	m := x.e.Model()
	u := m.Unit(name)
	if u == nil {
		return 0, fmt.Errorf("no unit named %q in the engine's model", name)
	}
	mn := m.Nodes[u.Node]
	for i, n := range x.g.Node {
		if n.OpType != mn.Op || len(n.Output) == 0 || len(mn.Outputs) == 0 || n.Output[0] != mn.Outputs[0] {
			continue
		}
		if u.WeightInput >= len(n.Input) || n.Input[u.WeightInput] != u.Weight {
			return 0, fmt.Errorf("%s reads its weight through %q, not the initializer %q; export needs the weight as an initializer input", mn.Label(), n.Input[min(u.WeightInput, len(n.Input)-1)], u.Weight)
		}
		return i, nil
	}
	return 0, fmt.Errorf("the engine's node %s is not in the model bytes (engine built from another file?)", mn.Label())
}

// dataInput returns the input slot of a unit's data operand (eval
// quantizes that one): Conv's X, the non-weight operand of Gemm or MatMul,
// an LSTM's X for its W; -1 for an LSTM's R, whose operand is the hidden
// state inside the node (model.Unit.DataInput).
func dataInput(u *model.Unit) int { return u.DataInput }

func attrInt(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INT, I: v}
}

// layer quantizes one unit: its weight behind a DequantizeLinear, its
// bias (INT32 when the input is quantized), its data input through
// Q → DQ.
func (x *exporter) layer(u nn.UnitLayout, al eval.AppliedLayer, wq []float64, floatBias bool) (LayerSummary, error) {
	ni, err := x.unitNode(u.Name)
	if err != nil {
		return LayerSummary{}, err
	}
	node := x.g.Node[ni]
	mu := x.e.Model().Unit(u.Name)
	ls := LayerSummary{Name: u.Name, Node: node.Name, Weight: u.Weight, Bits: al.Bits, ABits: al.ABits, Axis: -1}
	// A shared weight (one unit over several nodes) has one
	// DequantizeLinear that every node reads; as in the engine's
	// simulation, the data input of the unit's first node is the one
	// quantized.
	if n, want := len(x.consumers[u.Weight]), max(1, len(mu.Nodes)); n != want {
		return ls, fmt.Errorf("weight %q is read by %d nodes, the unit has %d; a quantized weight must belong to one layer", u.Weight, n, want)
	}
	wt, _ := WeightType(al.Bits)
	n := int64(math.Exp2(float64(al.Bits-1))) - 1
	_, hi := wt.Range()
	ls.WeightType, ls.WeightMin, ls.WeightMax = wt.String(), -n, n
	// A type's own symmetric range is ±hi (INT8 ±127); fewer levels are
	// narrowed.
	ls.Narrowed = n < hi

	// Weight codes.
	scales := al.Scales
	lay := al.Layout
	outer, channels, inner := 1, 1, len(wq)
	if len(scales) > 1 {
		channels = lay.Shape[lay.Axis]
		for _, d := range lay.Shape[:lay.Axis] {
			outer *= d
		}
		inner = len(wq) / outer / channels
		ls.Axis = lay.Axis
	}
	ls.Channels = len(scales)
	codes := make([]int64, len(wq))
	s32 := make([]float32, len(scales))
	for i, s := range scales {
		s32[i] = float32(s)
		if s == 0 { // an all-zero channel: any positive scale
			s32[i] = 1
		}
	}
	for i, v := range wq {
		c := 0
		if len(scales) > 1 {
			c = (i / inner) % channels
		}
		if scales[c] == 0 {
			continue
		}
		k := math.RoundToEven(v / scales[c])
		if math.Abs(k*scales[c]-v) > 1e-9*scales[c] || k < float64(-n) || k > float64(n) {
			return ls, fmt.Errorf("weight %q element %d: %g is not on the %d-bit grid of step %g", u.Weight, i, v, al.Bits, scales[c])
		}
		codes[i] = int64(k)
	}
	ls.scales = slices.Clone(scales)
	dims := make([]int64, len(lay.Shape))
	for i, d := range lay.Shape {
		dims[i] = int64(d)
	}
	var sdims []int64
	if len(scales) > 1 {
		sdims = []int64{int64(len(scales))}
	}
	ls.WeightCodes = x.fresh(u.Weight + "_quantized")
	ls.WeightScale = x.fresh(u.Weight + "_scale")
	ls.WeightZeroPoint = x.fresh(u.Weight + "_zero_point")
	x.inits = append(x.inits, intTensor(ls.WeightCodes, wt, dims, codes),
		floatTensor(ls.WeightScale, sdims, s32),
		intTensor(ls.WeightZeroPoint, wt, sdims, make([]int64, len(scales))))
	dq := &onnx.NodeProto{Name: x.fresh(u.Weight + "_DequantizeLinear"), OpType: "DequantizeLinear",
		Input: []string{ls.WeightCodes, ls.WeightScale, ls.WeightZeroPoint}, Output: []string{u.Weight}}
	if ls.Axis >= 0 {
		dq.Attribute = []*onnx.AttributeProto{attrInt("axis", int64(ls.Axis))}
	}
	x.before[ni] = append(x.before[ni], dq)
	x.drop[u.Weight] = true

	// Data input.
	slot := dataInput(mu)
	if slot >= 0 {
		ls.Input = node.Input[slot]
	}
	var sx float32
	if al.ABits > 0 && slot >= 0 {
		name, s, err := x.quantizeInput(ni, slot, al)
		if err != nil {
			return ls, err
		}
		at, _ := ActType(al.ABits)
		sc, z := al.Act.Scale()
		_, thi := at.Range()
		ls.ActType, ls.ActScale, ls.ActZeroPoint = at.String(), s, int64(z)
		ls.ActMin, ls.ActMax = 0, int64(al.Act.Levels())
		ls.ActNarrowed = ls.ActMax < thi
		ls.RangeMin, ls.RangeMax = al.Input.Min, al.Input.Max
		node.Input[slot] = name
		x.qin[name] = sc
		sx = s
	}

	// Bias.
	if u.Bias != "" {
		ls.BiasType = Float.String()
		if al.ABits > 0 && !floatBias && (mu.Op == "Conv" || mu.Op == "Gemm") {
			ok := false
			if len(x.consumers[u.Bias]) == max(1, len(mu.Nodes)) {
				if ok, err = x.intBias(u, ni, sx, s32); err != nil {
					return ls, err
				}
			}
			if ok {
				ls.BiasType = Int32.String()
			} else {
				x.simulatedBias(u) // keep float, with the simulation's rounded values
			}
		}
	}
	return ls, nil
}

// quantizeInput inserts Clip (when the width is narrower than the type) →
// QuantizeLinear → DequantizeLinear before node ni on its input slot, or
// reuses an identical pair, and returns the dequantized tensor's name and
// the stored scale.
func (x *exporter) quantizeInput(ni, slot int, al eval.AppliedLayer) (string, float32, error) {
	in := x.g.Node[ni].Input[slot]
	q := al.Act
	s, z := q.Scale()
	L := q.Levels()
	at, _ := ActType(al.ABits)
	_, thi := at.Range()
	scale := float32(s)
	clipLo, clipHi := float32(-z*s), float32((L-z)*s)
	if s == 0 { // range [0, 0]: every value maps to 0
		scale, z, clipLo, clipHi = 1, 0, 0, 0
	}
	if !(scale > 0) || math.IsInf(float64(scale), 0) {
		return "", 0, fmt.Errorf("input %q: scale %g of range [%g, %g] is not a positive float32", in, s, q.Lo, q.Hi)
	}
	key := fmt.Sprintf("%s|%d|%v|%v", in, al.ABits, q.Lo, q.Hi)
	if name, ok := x.acts[key]; ok {
		return name, scale, nil
	}
	src := in
	var nodes []*onnx.NodeProto
	if int64(L) < thi || s == 0 {
		lo, hi := x.fresh(in+"_clip_min"), x.fresh(in+"_clip_max")
		x.inits = append(x.inits, floatTensor(lo, nil, []float32{clipLo}), floatTensor(hi, nil, []float32{clipHi}))
		src = x.fresh(in + "_clipped")
		nodes = append(nodes, &onnx.NodeProto{Name: x.fresh(in + "_Clip"), OpType: "Clip", Input: []string{in, lo, hi}, Output: []string{src}})
	}
	sName, zName := x.fresh(in+"_scale"), x.fresh(in+"_zero_point")
	qName, dqName := x.fresh(in+"_quantized"), x.fresh(in+"_dequantized")
	x.inits = append(x.inits, floatTensor(sName, nil, []float32{scale}), intTensor(zName, at, nil, []int64{int64(z)}))
	nodes = append(nodes,
		&onnx.NodeProto{Name: x.fresh(in + "_QuantizeLinear"), OpType: "QuantizeLinear", Input: []string{src, sName, zName}, Output: []string{qName}},
		&onnx.NodeProto{Name: x.fresh(in + "_DequantizeLinear"), OpType: "DequantizeLinear", Input: []string{qName, sName, zName}, Output: []string{dqName}})
	x.before[ni] = append(x.before[ni], nodes...)
	x.acts[key] = dqName
	x.qsrc[in] = s
	return dqName, scale, nil
}

// intBias replaces a per-channel (or scalar) float bias by INT32 codes
// round(b/(s_x·s_w[c])) behind a DequantizeLinear with that scale. It
// keeps the float bias (false) when a code would overflow INT32.
func (x *exporter) intBias(u nn.UnitLayout, ni int, sx float32, sw []float32) (bool, error) {
	var bt *onnx.TensorProto
	for _, t := range x.g.Initializer {
		if t.Name == u.Bias {
			bt = t
		}
	}
	if bt == nil {
		return false, nil // a bias from a Constant node: keep it
	}
	b := x.e.Theta()[u.BiasOffset : u.BiasOffset+u.BiasSize]
	if len(sw) > 1 && len(b) != len(sw) {
		return false, nil
	}
	scales := make([]float32, len(b))
	codes := make([]int64, len(b))
	for i, v := range b {
		s := sx * sw[0]
		if len(sw) > 1 {
			s = sx * sw[i]
		}
		if !(s > 0) {
			return false, nil
		}
		k := math.RoundToEven(v / float64(s))
		if math.Abs(k) > math.MaxInt32 {
			return false, nil
		}
		scales[i], codes[i] = s, int64(k)
	}
	dims := slices.Clone(bt.Dims)
	codesName, sName, zName := x.fresh(u.Bias+"_quantized"), x.fresh(u.Bias+"_scale"), x.fresh(u.Bias+"_zero_point")
	sdims := []int64{int64(len(b))}
	x.inits = append(x.inits, intTensor(codesName, Int32, dims, codes), floatTensor(sName, sdims, scales),
		intTensor(zName, Int32, sdims, make([]int64, len(b))))
	dq := &onnx.NodeProto{Name: x.fresh(u.Bias + "_DequantizeLinear"), OpType: "DequantizeLinear",
		Input: []string{codesName, sName, zName}, Output: []string{u.Bias}, Attribute: []*onnx.AttributeProto{attrInt("axis", 0)}}
	x.before[ni] = append(x.before[ni], dq)
	x.drop[u.Bias] = true
	return true, nil
}

// simulatedBias overwrites a float bias initializer with the engine's
// bias, which eval.Apply rounded to the INT32 grid: a bias that cannot be
// stored as INT32 (read by other nodes too) keeps the simulated values.
func (x *exporter) simulatedBias(u nn.UnitLayout) {
	for _, t := range x.g.Initializer {
		if t.Name == u.Bias && Type(t.DataType) == Float {
			b := x.e.Theta()[u.BiasOffset : u.BiasOffset+u.BiasSize]
			nt := floatTensor(t.Name, t.Dims, f32(b))
			t.RawData, t.FloatData = nt.RawData, nil
		}
	}
}

// finish writes the collected nodes and initializers into the graph.
func (x *exporter) finish() {
	g := x.g
	var nodes []*onnx.NodeProto
	for i, n := range g.Node {
		nodes = append(nodes, x.before[i]...)
		nodes = append(nodes, n)
	}
	g.Node = nodes
	var inits []*onnx.TensorProto
	for _, t := range g.Initializer {
		if !x.drop[t.Name] {
			inits = append(inits, t)
		}
	}
	g.Initializer = append(inits, x.inits...)
	var ins []*onnx.ValueInfoProto
	for _, v := range g.Input { // IR < 4 lists initializers as inputs too
		if !x.drop[v.Name] {
			ins = append(ins, v)
		}
	}
	g.Input = ins
}

// setMetadata records the summary (and the narrowed ranges in words).
func setMetadata(mp *onnx.ModelProto, s *Summary) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("qdq: %w", err)
	}
	var props []*onnx.StringStringEntryProto
	for _, p := range mp.MetadataProps {
		if p.Key != MetadataKey && p.Key != MetadataNarrowed {
			props = append(props, p)
		}
	}
	props = append(props, &onnx.StringStringEntryProto{Key: MetadataKey, Value: string(b)})
	var narrowed string
	for _, l := range s.Layers {
		if l.Narrowed {
			narrowed += fmt.Sprintf("%s: %d-bit weight codes [%d, %d] stored in %s; ", l.Weight, l.Bits, l.WeightMin, l.WeightMax, l.WeightType)
		}
		if l.ActNarrowed {
			narrowed += fmt.Sprintf("%s: %d-bit activation codes [%d, %d] stored in %s after a Clip; ", l.Input, l.ABits, l.ActMin, l.ActMax, l.ActType)
		}
	}
	if narrowed != "" {
		props = append(props, &onnx.StringStringEntryProto{Key: MetadataNarrowed, Value: narrowed[:len(narrowed)-2]})
	}
	mp.MetadataProps = props
	return nil
}
