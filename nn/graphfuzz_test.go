package nn_test

import (
	"context"
	"fmt"
	"math"
	"runtime/metrics"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/op"
)

// The graph fuzz target builds small random ONNX graphs from the registry's
// operators and runs each through import, the static check, forward,
// gradient and H·v under a memory limit. Errors are fine; a panic, a hang
// or an allocation far beyond the limit is a defect.

const (
	// fuzzMemory is the engine's memory limit (nn.Options.Memory).
	fuzzMemory = 16 << 20
	// fuzzAllocBound bounds the bytes one input may allocate in all: the
	// graphs are tiny, so anything near it means a size taken from an
	// attribute or a constant without a check against the limit.
	fuzzAllocBound = 1 << 30
	// fuzzMaxWork bounds the estimated arithmetic of a graph the fuzzer
	// runs (see workPerSample).
	fuzzMaxWork = 1e8
	// fuzzMaxNodes is the most random nodes in one graph.
	fuzzMaxNodes = 4
)

// byteSrc hands out the fuzzer's bytes; past the end it gives zeros, which
// select every default.
type byteSrc struct {
	b []byte
	i int
}

func (s *byteSrc) next() byte {
	if s.i >= len(s.b) {
		return 0
	}
	s.i++
	return s.b[s.i-1]
}

func (s *byteSrc) intn(n int) int { return int(s.next()) % n }

// mutateInt changes an integer attribute or shape operand value by the
// selector k (0: unchanged): off by one, zero, negative, and values large
// enough to ask for absurd tensors.
func mutateInt(v int64, k byte) int64 {
	switch k % 16 {
	case 1:
		return v + 1
	case 2:
		return v - 1
	case 3:
		return 0
	case 4:
		return -v
	case 5:
		return 100000
	case 6:
		return -100000
	case 7:
		return 1 << 40
	case 8:
		return math.MinInt64
	case 9:
		return v * 3
	}
	return v
}

// mutateShape returns shape, or by selector k a copy with dimension j
// changed (to 0, 1, one more or less, or a multiple), keeping it small
// enough to fill with values here.
func mutateShape(shape []int, k, j byte) []int {
	if k%4 != 3 || len(shape) == 0 {
		return shape
	}
	sh := append([]int(nil), shape...)
	d := int(j) % len(sh)
	switch (k >> 2) % 6 {
	case 0:
		sh[d] = 0
	case 1:
		sh[d] = 1
	case 2:
		sh[d]++
	case 3:
		sh[d] = max(sh[d]-1, 0)
	case 4:
		sh[d] *= 7
	case 5:
		sh = sh[:len(sh)-1]
	}
	if op.Numel(sh) > 1<<16 {
		return shape
	}
	return sh
}

// fuzzValues gives n deterministic values in [lo, hi].
func fuzzValues(n int, lo, hi float64, salt int) []float64 {
	if lo == 0 && hi == 0 {
		lo, hi = -1, 1
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = lo + (hi-lo)*(0.5+0.5*math.Sin(float64(7*i+3*salt+1)))
	}
	return v
}

// mutateAttr applies selector k to attribute p (nil: dropped), a proto
// made by attrProto whose Ints may be the registry's.
func mutateAttr(p *onnx.AttributeProto, k, j byte) *onnx.AttributeProto {
	if k == 0 {
		return p
	}
	if k%16 == 15 {
		return nil
	}
	p.Ints = append([]int64(nil), p.Ints...) // the registry's case keeps its own
	switch p.Type {
	case onnx.AttributeProto_INT:
		p.I = mutateInt(p.I, k)
	case onnx.AttributeProto_INTS:
		if len(p.Ints) > 0 {
			i := int(j) % len(p.Ints)
			p.Ints[i] = mutateInt(p.Ints[i], k)
		} else if k%16 == 10 {
			p.Ints = []int64{1}
		}
	case onnx.AttributeProto_FLOAT:
		p.F = float32(mutateInt(int64(p.F), k))
		if k%16 == 11 {
			p.F = float32(math.NaN())
		}
	}
	return p
}

// attrValue returns an attribute's value for a description.
func attrValue(a *onnx.AttributeProto) any {
	switch a.Type {
	case onnx.AttributeProto_INT:
		return a.I
	case onnx.AttributeProto_INTS:
		return a.Ints
	case onnx.AttributeProto_FLOAT:
		return a.F
	case onnx.AttributeProto_STRING:
		return string(a.S)
	}
	return a.Type
}

// fuzzGraph builds an ONNX model from the fuzzer's bytes: up to
// fuzzMaxNodes operators drawn from the registry, each taking a case of
// its conformance table as a template (attributes, operand shapes,
// constant operands), with attributes and shape operands mutated by the
// bytes, wired to earlier tensors; usually followed by a head (Flatten,
// ReduceSum, Gemm) so that the graph has a quantizable unit and
// batch×classes logits. It also returns a description for failures.
func fuzzGraph(in []byte) ([]byte, string) {
	s := &byteSrc{b: in}
	defs := op.Defs()
	b0 := s.next()
	nodes := 1 + int(b0)%fuzzMaxNodes
	head := (b0>>2)&1 == 0
	opsets := []int64{0, 13, 18, 21}
	opset := opsets[(b0>>3)%4]
	type pick struct {
		d *op.Def
		c op.Case
	}
	picks := make([]pick, nodes)
	for i := range picks {
		d := defs[s.intn(len(defs))]
		picks[i] = pick{d, d.Cases[s.intn(len(d.Cases))]}
	}
	if opset == 0 {
		opset = picks[0].c.Opset
		if opset == 0 {
			opset = 17
		}
	}
	g := mt.New("fuzz", opset)
	desc := fmt.Sprintf("opset %d", opset)

	// The graph input takes the shape of the first node's first
	// differentiable operand, its leading dimension the batch.
	xShape := []int{-1}
	for _, ci := range picks[0].c.Inputs {
		if !ci.Absent && ci.Const == nil && ci.Ints == nil {
			if len(ci.Shape) > 1 {
				xShape = append(xShape, ci.Shape[1:]...)
			}
			break
		}
	}
	if len(xShape) > 1 {
		xShape = append(xShape[:1], mutateShape(xShape[1:], s.next(), s.next())...)
	}
	g.Input("x", xShape...)
	desc += fmt.Sprintf(", x %v", xShape)
	tensors := []string{"x"}
	inits := 0
	init := func() string {
		inits++
		return fmt.Sprintf("c%d", inits)
	}
	for i, p := range picks {
		pickT := func() string { return tensors[len(tensors)-1-s.intn(len(tensors))] }
		var ins []string
		data := false
		for j, ci := range p.c.Inputs {
			switch {
			case ci.Absent:
				ins = append(ins, "")
			case ci.Ints != nil:
				v := append([]int64(nil), ci.Ints...)
				if k := s.next(); k != 0 && len(v) > 0 {
					idx := int(s.next()) % len(v)
					v[idx] = mutateInt(v[idx], k)
				}
				name := init()
				g.Int64(name, ci.Shape, v)
				ins = append(ins, name)
			case ci.Const != nil:
				v := append([]float64(nil), ci.Const...)
				if k := s.next(); k != 0 && len(v) > 0 {
					v[int(s.next())%len(v)] = []float64{0, -1, 1e30, math.Inf(1), math.NaN(), 0.5, -3, 7}[k%8]
				}
				name := init()
				g.Float(name, ci.Shape, v)
				ins = append(ins, name)
			case !data:
				data = true
				ins = append(ins, pickT())
			default:
				if s.next()%4 == 3 {
					ins = append(ins, pickT())
					continue
				}
				name := init()
				sh := mutateShape(ci.Shape, s.next(), s.next())
				g.Float(name, sh, fuzzValues(op.Numel(sh), ci.Lo, ci.Hi, i*8+j))
				ins = append(ins, name)
			}
		}
		var attrs []*onnx.AttributeProto
		for _, a := range p.c.Attrs {
			if pa := mutateAttr(attrProto(a), s.next(), s.next()); pa != nil {
				attrs = append(attrs, pa)
			}
		}
		nout := max(p.c.Outputs, 1)
		var outs []string
		for j := 0; j < nout; j++ {
			outs = append(outs, fmt.Sprintf("t%d_%d", i, j))
		}
		g.Node(p.d.Type, fmt.Sprintf("n%d", i), ins, outs, attrs...)
		desc += fmt.Sprintf("; %s %v -> %v (case %q", p.d.Type, ins, outs, p.c.Name)
		for _, a := range attrs {
			desc += fmt.Sprintf(", %s=%v", a.Name, attrValue(a))
		}
		desc += ")"
		tensors = append(tensors, outs...)
	}
	last := tensors[len(tensors)-1]
	if head {
		// Flatten → ReduceSum over the features → Gemm to 3 classes: valid
		// after any tensor with a batch dimension.
		g.Node("Flatten", "hf", []string{last}, []string{"hf"})
		if opset >= 13 {
			g.Int64("hax", []int{1}, []int64{1})
			g.Node("ReduceSum", "hr", []string{"hf", "hax"}, []string{"hr"}, mt.Int("keepdims", 1))
		} else {
			g.Node("ReduceSum", "hr", []string{"hf"}, []string{"hr"}, mt.Ints("axes", 1), mt.Int("keepdims", 1))
		}
		g.Float("hw", []int{3, 1}, []float64{0.5, -0.25, 0.125}).Float("hb", []int{3}, []float64{0.1, 0, -0.1})
		g.Node("Gemm", "hg", []string{"hr", "hw", "hb"}, []string{"logits"}, mt.Int("transB", 1))
		last = "logits"
		desc += "; head"
	}
	g.Output(last)
	return g.Bytes(), desc
}

// workPerSample estimates the arithmetic of one sample's forward pass:
// every node's output elements times its window (pooling kernel_shape,
// a Conv weight's taps per output, the inner dimension of a MatMul or
// Gemm). Memory is bounded by the engine's limit, arithmetic is not: a
// model that asks for 10¹⁰ window taps is valid and slow, so the fuzzer
// imports and plans it but does not run it.
func workPerSample(t *testing.T, e *nn.Engine) float64 {
	m := e.Model()
	sh, err := m.InferShapes(map[string][]int{m.Inputs[0].Name: append([]int{1}, e.SampleShape()...)})
	if err != nil {
		t.Fatalf("the engine was made but shapes at batch 1 fail: %v", err)
	}
	var total float64
	for _, n := range m.Nodes {
		if len(n.Outputs) == 0 {
			continue
		}
		out, ok := sh.Dims[n.Outputs[0]]
		if !ok {
			continue
		}
		in := func(i int) []int {
			if i < len(n.Inputs) {
				return sh.Dims[n.Inputs[i]]
			}
			return nil
		}
		w := 1.0
		if k, err := n.AttrInts("kernel_shape", nil); err == nil {
			for _, d := range k {
				w *= math.Abs(float64(d))
			}
		}
		switch x := in(0); n.Op {
		case "Conv":
			if wt := in(1); len(wt) > 0 {
				w = float64(op.Numel(wt)) / float64(max(1, wt[0]))
			}
		case "MatMul":
			if len(x) > 0 {
				w = float64(x[len(x)-1])
			}
		case "Gemm":
			for _, d := range x {
				w = max(w, float64(d))
			}
		}
		total += float64(op.Numel(out)) * max(w, 1)
	}
	return total
}

// allocated returns the bytes the process has allocated so far.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// runGraph imports and runs one model; it returns how far it got.
func runGraph(t *testing.T, b []byte) string {
	m, err := model.Decode(b)
	if err != nil {
		return "import: " + err.Error()
	}
	if err := nn.Check(m); err != nil {
		return "check: " + err.Error()
	}
	e, err := nn.New(m, &nn.Options{Workers: 1, BatchSize: 2, Memory: fuzzMemory})
	if err != nil {
		return "new: " + err.Error()
	}
	if c := workPerSample(t, e); c > fuzzMaxWork {
		return fmt.Sprintf("not run: about %.3g multiply-adds or window taps per sample", c)
	}
	n := 3
	classes := e.Classes()
	if classes <= 0 {
		t.Fatalf("engine made with %d classes", classes)
	}
	per := op.Numel(e.SampleShape())
	if per > fuzzMemory {
		t.Fatalf("engine made for samples of %d values under a %d-byte limit", per, fuzzMemory)
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = i % classes
	}
	ds, err := data.NewMemory(fuzzValues(n*per, -1, 1, 5), labels, e.SampleShape())
	if err != nil {
		return "data: " + err.Error()
	}
	ctx := context.Background()
	if _, err := e.Evaluate(ctx, ds); err != nil {
		return "evaluate: " + err.Error()
	}
	g := make([]float64, e.Dim())
	if _, err := e.Gradient(ctx, ds, g); err != nil {
		return "gradient: " + err.Error()
	}
	v := fuzzValues(e.Dim(), -1, 1, 9)
	hv := [][]float64{make([]float64, e.Dim())}
	if err := e.HVP(ctx, ds, hv, [][]float64{v}); err != nil {
		return "hvp: " + err.Error()
	}
	return "ran"
}

func fuzzGraphCase(t *testing.T, in []byte) string {
	b, desc := fuzzGraph(in)
	t.Log(desc)
	a0 := allocated()
	var res string
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v\ngraph: %s", r, desc)
			}
		}()
		res = runGraph(t, b)
	}()
	t.Log(res)
	if a := allocated() - a0; a > fuzzAllocBound {
		t.Fatalf("allocated %d bytes (limit %d for the engine)\ngraph: %s\nresult: %s", a, fuzzMemory, desc, res)
	}
	return res
}

// graphSeeds are the seed inputs: every operator of the registry with every
// case of its table as the first node, with the head; the same without
// mutations past the case's own; and a few chains.
func graphSeeds() [][]byte {
	var seeds [][]byte
	for i, d := range op.Defs() {
		for j := range d.Cases {
			seeds = append(seeds, []byte{0, byte(i), byte(j)})
		}
	}
	seeds = append(seeds,
		[]byte{1, 0, 0, 1, 0},
		[]byte{3, 1, 0, 2, 0, 3, 0, 4, 0},
		[]byte{4, 5, 0},
	)
	return seeds
}

// TestGraphSeeds runs the fuzz target's seeds and checks that most of them
// get through H·v, so that the fuzzer starts from graphs that run.
func TestGraphSeeds(t *testing.T) {
	ran, total := 0, 0
	var failed []string
	for i, d := range op.Defs() {
		for j := range d.Cases {
			total++
			res := fuzzGraphCase(t, []byte{0, byte(i), byte(j)})
			if res == "ran" {
				ran++
			} else if d.Exec != nil {
				failed = append(failed, fmt.Sprintf("%s case %d: %s", d.Type, j, res))
			}
		}
	}
	t.Logf("%d of %d seed graphs ran forward, gradient and H·v", ran, total)
	if 2*ran < total {
		for _, f := range failed {
			t.Log(f)
		}
		t.Errorf("only %d of %d seed graphs ran: the generator no longer makes graphs the engine runs", ran, total)
	}
}

func FuzzGraph(f *testing.F) {
	for _, s := range graphSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzGraphCase(t, in)
	})
}
