package eval

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// TestOutputChannelScales checks that every unit's weight gets one scale
// per output channel along the right axis: a recurrent W or R
// (D×gates·H×…) one per gate row (axis 1), a ConvTranspose (C×M/g×k…)
// one per output channel (axis 1), a square K×N MatMul weight one per
// column (axis 1), a Conv one per filter (axis 0). They were once
// quantized per direction (one scale for all of an LSTM's W), per input
// channel (ConvTranspose) and per row (a square MatMul weight, which
// ONNX Runtime's MatMulIntegerToFloat then read as per-column scales:
// tiny_bert W8A8 loss 1.04826 in ONNX Runtime, 1.04996 simulated). Each
// scale is max|W_c|/(2^(b−1)−1), the symmetric min/max step of the slice.
func TestOutputChannelScales(t *testing.T) {
	ctx := context.Background()
	want := map[string]struct {
		op   string
		axis int
	}{
		"tiny_lstm/rnn/LSTM/W": {"LSTM", 1}, "tiny_lstm/rnn/LSTM/R": {"LSTM", 1},
		"tiny_gru/rnn/GRU/W": {"GRU", 1}, "tiny_gru/rnn/GRU/R": {"GRU", 1},
		"tiny_unet/up2/ConvTranspose": {"ConvTranspose", 1},
		"tiny_unet/out/Conv":          {"Conv", 0},
	}
	seen := map[string]bool{}
	square := 0
	for _, name := range []string{"tiny_lstm", "tiny_gru", "tiny_unet", "tiny_bert"} {
		m, err := model.Load(filepath.Join("..", "testdata", "zoo", name, "op13.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		var l nn.Loss
		if name == "tiny_unet" {
			l = nn.PositionLabels{Ignore: -100}
		}
		e, err := nn.New(m, &nn.Options{Loss: l})
		if err != nil {
			t.Fatal(err)
		}
		const bits = 4
		a, err := Apply(ctx, e, uniform(e, bits, 0), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		units := map[string]nn.UnitLayout{}
		for _, u := range e.Units() {
			units[u.Name] = u
		}
		for _, al := range a.Layers {
			u := units[al.Name]
			key := name + al.Name
			if w, ok := want[key]; ok {
				seen[key] = true
				if u.Op != w.op || al.Layout.Axis != w.axis {
					t.Errorf("%s: %s weight %v quantized along axis %d, want %d", key, u.Op, u.WeightShape, al.Layout.Axis, w.axis)
				}
			}
			if u.Op == "MatMul" && len(u.WeightShape) == 2 && u.WeightShape[0] == u.WeightShape[1] {
				square++
				if al.Layout.Axis != 1 {
					t.Errorf("%s%s: square weight %v quantized along axis %d, want its columns (1)", name, al.Name, u.WeightShape, al.Layout.Axis)
				}
			}
			// Each scale is its slice's max |w| over the levels.
			w0 := a.theta[u.WeightOffset : u.WeightOffset+u.WeightSize]
			sh, ax := al.Layout.Shape, al.Layout.Axis
			if len(al.Scales) != sh[ax] {
				t.Errorf("%s%s: %d scales for axis %d of %v", name, al.Name, len(al.Scales), ax, sh)
				continue
			}
			inner := 1
			for _, d := range sh[ax+1:] {
				inner *= d
			}
			peak := make([]float64, sh[ax])
			for i, v := range w0 {
				c := (i / inner) % sh[ax]
				peak[c] = math.Max(peak[c], math.Abs(v))
			}
			levels := math.Exp2(bits-1) - 1
			for c, s := range al.Scales {
				if math.Abs(s*levels-peak[c]) > 1e-12*math.Max(peak[c], 1) {
					t.Errorf("%s%s: channel %d scale %g, want max|w| %g / %g", name, al.Name, c, s, peak[c], levels)
					break
				}
			}
		}
		a.Restore()
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("no unit %s", k)
		}
	}
	if square == 0 {
		t.Error("tiny_bert has no square MatMul weight to check")
	}
}
