package prune

import (
	"context"
	"math"
	"testing"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/plan"
)

// vitRef is the reference written with the ViT by
// scripts/train_vit_fashion.py: 16 Fashion-MNIST test images, their labels
// and PyTorch's float64 logits.
const vitRef = "../testdata/models/fmnist_vit_ref.npz"

// vitTol bounds the engine's logits against PyTorch's float64 module (the
// engine computes with the float32 weights in float64 or float32).
const vitTol = 1e-4

// TestViTMatchesTorch: the ViT the head/row study prunes runs in the
// engine as in PyTorch.
func TestViTMatchesTorch(t *testing.T) {
	l := load(t, "fmnist_vit")
	x, want := refLogits(t, vitRef)
	got, err := l.e.Logits(x.Float, x.Shape[0])
	if err != nil {
		t.Fatal(err)
	}
	scale, diff := 0.0, 0.0
	for i := range want.Float {
		scale = max(scale, math.Abs(want.Float[i]))
		diff = max(diff, math.Abs(want.Float[i]-got[i]))
	}
	if len(got) != len(want.Float) || diff > vitTol*scale {
		t.Errorf("logits differ from PyTorch's by %.3g (scale %.3g)", diff, scale)
	}
}

// TestPruneViTHeads: on the ViT with its own reference images as
// calibration data, a parameter budget removes heads and FFN rows, the
// plan's counts are the written model's (Realize checks them), and the
// pruned model still runs.
func TestPruneViTHeads(t *testing.T) {
	l := load(t, "fmnist_vit")
	z, err := data.OpenNPZ(vitRef)
	if err != nil {
		t.Fatalf("committed reference missing: %v", err)
	}
	defer z.Close()
	ds, err := z.Match([]string{"input"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	im, err := Estimate(ctx, l.e, ds, &Settings{Probes: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, u := range l.m.Units {
		total += u.Params
	}
	b := plan.Budget{Spec: budget.Spec{Kind: budget.Params, Value: 0.6 * float64(total)}}
	p, err := Solve(ctx, &Request{Structure: l.st, Importance: im, Budgets: []plan.Budget{b}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Keep() == nil {
		t.Fatalf("status %s", p.Status)
	}
	heads := 0
	for _, g := range p.Pruning.Groups {
		if g.Prunable && g.Channels == 4 {
			heads += g.Kept
		}
	}
	if heads == 8 && *p.Usage["params"].Used > 0.6*float64(total) {
		t.Errorf("no head removed and over budget: %+v", p.Pruning.Groups)
	}
	if _, _, err := Realize(ctx, l.mp, l.st, p, &RealizeOptions{Test: ds, Original: l.e}); err != nil {
		t.Fatal(err)
	}
	if a := p.Pruning.Accuracy; a == nil || a.Samples != 16 {
		t.Errorf("accuracy %+v", a)
	}
}

// TestBertMatchesTorch: the BERT of the pruning study
// (scripts/train_bert_tokens.py) runs in the engine as in PyTorch, and
// its committed test set is the one the script reports (997 of 1,000).
func TestBertMatchesTorch(t *testing.T) {
	l := load(t, "bert_brackets")
	z, err := data.OpenNPZ("../testdata/models/bert_brackets_ref.npz")
	if err != nil {
		t.Fatalf("committed reference missing: %v", err)
	}
	defer z.Close()
	var xs [][]float64
	for _, name := range []string{"input_ids", "attention_mask"} {
		a, err := z.Array(name)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float64, a.Len())
		for i, v := range a.Int {
			x[i] = float64(v)
		}
		xs = append(xs, x)
	}
	want, err := z.Array("logits")
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.e.LogitsInputs(xs, 16)
	if err != nil {
		t.Fatal(err)
	}
	if d, s := maxDiff(want.Float, got); len(got) != len(want.Float) || d > vitTol*s {
		t.Errorf("logits differ from PyTorch's by %.3g (scale %.3g)", d, s)
	}
	test, err := data.OpenNPZ("../testdata/models/bert_brackets_test.npz")
	if err != nil {
		t.Fatalf("committed test set missing: %v", err)
	}
	defer test.Close()
	ds, err := test.Match([]string{"input_ids", "attention_mask"})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := l.e.Evaluate(t.Context(), ds)
	if err != nil {
		t.Fatal(err)
	}
	if c := int(math.Round(ev.Accuracy() * float64(ds.Len()))); ds.Len() != 1000 || c != 997 {
		t.Errorf("%d of %d test sequences right, PyTorch has 997 of 1000", c, ds.Len())
	}
}
