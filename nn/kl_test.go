package nn_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// klRound bounds the rounding of a diagonal Hessian element that is zero
// in exact arithmetic (a dead ReLU's weights): products of order one
// summed over 64 samples in float64.
const klRound = 1e-13

// klSamples is the number of MNIST test images of TestKLTrainedModelPSD.
const klSamples = 32

// TestKLTrainedModelPSD runs --loss kl's objective on the trained LeNet of
// testdata/models over 32 MNIST test images, with no labels: at the float
// weights the Hessian is the Gauss–Newton (Fisher) matrix, so every
// diagonal element — and so every layer's trace — is non-negative. It
// checks 24 diagonal elements e_jᵀHe_j of every unit (spread over the
// unit), the exact trace of conv1 (156 parameters, one product each), and
// vᵀHv ≥ 0 for ±1 probes over all parameters, and logs the labelled
// (class) loss's exact conv1 trace beside it.
func TestKLTrainedModelPSD(t *testing.T) {
	m, err := model.Load(filepath.Join("..", "testdata", "models", "lenet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.MNIST(data.Test, klSamples)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{BatchSize: klSamples, Loss: nn.KL{}})
	if err != nil {
		t.Fatal(err)
	}
	class, err := nn.New(m, &nn.Options{BatchSize: klSamples})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	op, err := e.Operator(ds)
	if err != nil {
		t.Fatal(err)
	}
	const per = 24
	for _, u := range e.Units() {
		vs, hv := make([][]float64, per), make([][]float64, per)
		idx := make([]int, per)
		for j := range vs {
			idx[j] = u.Offset + (j*u.Size)/per
			vs[j], hv[j] = make([]float64, e.Dim()), make([]float64, e.Dim())
			vs[j][idx[j]] = 1
		}
		if err := op.HVPBatch(ctx, hv, vs); err != nil {
			t.Fatal(err)
		}
		for j, i := range idx {
			if d := hv[j][i]; d < -klRound {
				t.Errorf("%s: KL Hessian diagonal element %d is %g < 0", u.Name, i-u.Offset, d)
			}
		}
		if u.Size > 200 {
			continue
		}
		b := hessian.Block{Name: u.Name, Offset: u.Offset, Size: u.Size}
		tr, err := e.BlockTrace(ctx, ds, b, 160)
		if err != nil {
			t.Fatal(err)
		}
		if tr < 0 {
			t.Errorf("%s: exact KL trace %g < 0", u.Name, tr)
		}
		ctr, err := class.BlockTrace(ctx, ds, b, 160)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: exact trace %.6g with --loss kl, %.6g with the labels (%d parameters)", u.Name, tr, ctr, u.Size)
	}
	for k := 0; k < 4; k++ {
		v := make([]float64, e.Dim())
		for i := range v {
			v[i] = float64(1 - 2*((i*7919+k*104729)>>3&1))
		}
		hv := make([]float64, e.Dim())
		if err := op.HVP(ctx, hv, v); err != nil {
			t.Fatal(err)
		}
		vhv := 0.0
		for i := range v {
			vhv += v[i] * hv[i]
		}
		if vhv < -klRound*math.Sqrt(float64(e.Dim())) {
			t.Errorf("probe %d: vᵀHv = %g < 0", k, vhv)
		}
	}
}
