//go:build ort

package ort

import (
	"fmt"
	"time"

	ortgo "github.com/yalue/onnxruntime_go"
)

// TimeInputs loads model (with o's options, as Open does) and times it on
// feeds, one per graph input of a model of several inputs (token ids and
// an attention mask): warm runs untimed, then runs timed, summarised. The
// first graph output is fetched. The feeds' tensors are made once, before
// the timed runs, so that the figure is the model's run alone (NewFeed
// makes feeds from a dataset's float64 values).
func TimeInputs(model []byte, o *Options, feeds []Feed, warm, runs int) (Latency, error) {
	if !ortgo.IsInitialized() {
		return Latency{}, fmt.Errorf("ort: call Init first (%s)", Install)
	}
	if runs <= 0 || len(feeds) == 0 {
		return Latency{}, fmt.Errorf("ort: %d timed runs of %d inputs", runs, len(feeds))
	}
	_, out, err := modelIO(model)
	if err != nil {
		return Latency{}, err
	}
	names := make([]string, len(feeds))
	vals := make([]ortgo.Value, len(feeds))
	for i, f := range feeds {
		var v ortgo.Value
		switch {
		case f.Int != nil:
			v, err = ortgo.NewTensor(ortgo.Shape(f.Shape), f.Int)
		default:
			v, err = ortgo.NewTensor(ortgo.Shape(f.Shape), f.Float)
		}
		if err != nil {
			return Latency{}, fmt.Errorf("ort: input %q: %w", f.Name, err)
		}
		defer v.Destroy()
		names[i], vals[i] = f.Name, v
	}
	so, err := options(o, "")
	if err != nil {
		return Latency{}, err
	}
	defer so.Destroy()
	s, err := ortgo.NewDynamicAdvancedSessionWithONNXData(model, names, []string{out}, so)
	if err != nil {
		return Latency{}, fmt.Errorf("ort: ONNX Runtime rejects the model: %w", err)
	}
	defer s.Destroy()
	run := func() error {
		outs := []ortgo.Value{nil}
		if err := s.Run(vals, outs); err != nil {
			return fmt.Errorf("ort: run: %w", err)
		}
		outs[0].Destroy()
		return nil
	}
	for i := 0; i < warm; i++ {
		if err := run(); err != nil {
			return Latency{}, err
		}
	}
	ts := make([]time.Duration, runs)
	for i := range ts {
		t0 := time.Now()
		if err := run(); err != nil {
			return Latency{}, err
		}
		ts[i] = time.Since(t0)
	}
	batch := 0
	if len(feeds[0].Shape) > 0 {
		batch = int(feeds[0].Shape[0])
	}
	return summarize(ts, batch), nil
}
