package prune_test

import (
	"context"
	"fmt"
	"log"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/prune"
)

// Analyze finds the channel groups of a model: the residual Add of rescnn
// ties conv2 and the 1×1 downsample into one group, which also carries the
// depthwise convolution's channels.
func ExampleAnalyze() {
	m, err := model.Load("../testdata/models/rescnn.onnx")
	if err != nil {
		log.Fatal(err)
	}
	st, err := prune.Analyze(m)
	if err != nil {
		log.Fatal(err)
	}
	for _, g := range st.Groups {
		fmt.Printf("%-22s %2d channels, through %v, consumers %v, prunable %v\n", g.Name, g.Channels, g.Through, g.Consumers, g.Prunable)
	}
	// Output:
	// /stem/Conv             16 channels, through [], consumers [/conv1/Conv /down/Conv], prunable true
	// /conv1/Conv            32 channels, through [], consumers [/conv2/Conv], prunable true
	// /conv2/Conv+/down/Conv 32 channels, through [/dw/Conv], consumers [/pw/Conv], prunable true
	// /pw/Conv               64 channels, through [], consumers [/fc/Gemm], prunable true
	// /fc/Gemm               10 channels, through [], consumers [], prunable false
}

// Solve plans lenet at half its parameters. The importances here come from
// an assumed unit curvature (every channel trace equal to its size, so the
// importance is ‖W_c‖²); Estimate measures them on calibration data.
func ExampleSolve() {
	m, err := model.Load("../testdata/models/lenet.onnx")
	if err != nil {
		log.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		log.Fatal(err)
	}
	st, err := prune.Analyze(m)
	if err != nil {
		log.Fatal(err)
	}
	var blocks []hessian.Block
	var est []hessian.Estimate
	for _, u := range e.Units() {
		for c, idx := range u.OutputChannelIndices() {
			b := hessian.Block{Name: fmt.Sprintf("%s/%d", u.Name, c), Size: len(idx)}
			blocks = append(blocks, b)
			est = append(est, hessian.Estimate{Name: b.Name, Size: b.Size, Trace: float64(b.Size)})
		}
	}
	im, err := prune.FromTraces(e, blocks, est)
	if err != nil {
		log.Fatal(err)
	}
	// A bare percentage of params is a fraction of the unpruned model.
	half, err := budget.Parse(budget.Params, "50%")
	if err != nil {
		log.Fatal(err)
	}
	p, err := prune.Solve(context.Background(), &prune.Request{Structure: st, Importance: im, Budgets: []plan.Budget{{Spec: half}}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Status)
	for _, g := range p.Pruning.Groups {
		fmt.Printf("%-12s keeps %3d of %3d\n", g.Name, g.Kept, g.Channels)
	}
	// Output:
	// optimal
	// /conv1/Conv  keeps   6 of   6
	// /conv2/Conv  keeps   6 of  16
	// /fc1/Gemm    keeps 120 of 120
	// /fc2/Gemm    keeps  84 of  84
	// /fc3/Gemm    keeps  10 of  10
}
