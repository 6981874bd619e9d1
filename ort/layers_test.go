//go:build ort

package ort_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/ort"
	"github.com/bitplan/bitplan/qdq"
)

// codeFlipTol bounds the fraction of a layer's quantized input values that
// differ between ONNX Runtime and the simulation. A value can flip to the
// neighbouring code only when it lies within float32 rounding of a
// rounding boundary; on LeNet's 200 test images none does (with float
// biases in the simulation, 18 of conv2's 235,200 input values flipped and
// the flips compounded to 0.26 % of fc3's input: the INT32 bias rounding
// was the difference).
const codeFlipTol = 1e-3

// TestQuantizedInputsAgree compares, layer by layer, the dequantized
// input every quantized layer reads in ONNX Runtime with the simulation's
// quantized value of the same tensor: the per-layer account of where the
// two part, on LeNet's mixed plan and at W8A8.
func TestQuantizedInputsAgree(t *testing.T) {
	initORT(t)
	ctx := context.Background()
	calib := mnist(t, data.Train, 256)
	test := mnist(t, data.Test, 200)
	b, e := loadModel(t, "lenet")
	for _, pname := range []string{"mixed", "W8A8"} {
		layers := plans("lenet", e)[pname]
		checkInputs(t, ctx, pname, b, e, layers, calib, test)
	}
}

func checkInputs(t *testing.T, ctx context.Context, pname string, b []byte, e *nn.Engine, layers []eval.Layer, calib, test *data.Memory) {
	r, err := qdq.Export(ctx, &qdq.Config{Model: b, Engine: e, Layers: layers, Calib: calib})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := eval.Apply(ctx, e, layers, calib, nil)
	im, err := e.Intermediates(test.Inputs, test.Len())
	if err != nil {
		t.Fatal(err)
	}
	acts := map[string]eval.ActQuantizer{}
	for _, al := range a.Layers {
		for _, l := range r.Summary.Layers {
			if l.Name == al.Name {
				acts[l.Input] = al.Act
			}
		}
	}
	a.Restore()
	x := make([]float32, len(test.Inputs))
	for i, v := range test.Inputs {
		x[i] = float32(v)
	}
	for _, l := range r.Summary.Layers {
		if l.ABits > 0 {
			l.Input += "_dequantized"
		}
		mp := proto.Clone(r.Model).(*onnx.ModelProto)
		mp.Graph.Output = []*onnx.ValueInfoProto{{Name: l.Input, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{ElemType: 1}}}}}
		bb, _ := proto.Marshal(mp)
		s, err := ort.Open(bb, nil)
		if err != nil {
			t.Fatal(err)
		}
		z, err := s.Run(x, test.Len())
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		ref := im[strings.TrimSuffix(l.Input, "_dequantized")].Data
		var maxd float64
		flips := 0
		q := acts[strings.TrimSuffix(l.Input, "_dequantized")]
		sc, _ := q.Scale()
		for i := range ref {
			maxd = math.Max(maxd, math.Abs(ref[i]-float64(z[i])))
			if l.ABits > 0 {
				a1 := []float64{ref[i]}
				q.Quantize(a1)
				if math.Abs(a1[0]-float64(z[i])) > 1e-5 {
					flips++
				}
			}
		}
		if l.ABits == 0 {
			continue
		}
		t.Logf("lenet %s, %s input %s: %d values on a grid of step %.3g, %d differ (max |Δ| %.3g)", pname, l.Name, l.Input, len(ref), sc, flips, maxd)
		if frac := float64(flips) / float64(len(ref)); frac > codeFlipTol {
			t.Errorf("lenet %s, %s: %d of %d quantized inputs differ (%.2g > %g)", pname, l.Name, flips, len(ref), frac, codeFlipTol)
		}
	}
}
