package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/bitplan/bitplan/profiles"
)

// hawqFile is the subset of testdata/hawq_resnet18.json used here.
type hawqFile struct {
	Source  string            `json:"source"`
	Ties    [][]int           `json:"ties"`
	Layers  []hawqLayer       `json:"layers"`
	Schemes map[string]scheme `json:"schemes"`
	Notes   string            `json:"notes"`
}

type hawqLayer struct {
	Name        string             `json:"name"`
	AvgTrace    float64            `json:"avg_trace"`
	DeltaSq     map[string]float64 `json:"delta_sq"`
	Params      int64              `json:"params"`
	MACs        int64              `json:"macs"`
	LatencyMS   map[string]float64 `json:"latency_ms"`
	InChannels  int64              `json:"in_channels"`
	OutChannels int64              `json:"out_channels"`
	Kernel      int64              `json:"kernel"`
	Stride      int64              `json:"stride"`
	InHW        int64              `json:"in_hw"`
	OutHW       int64              `json:"out_hw"`
}

type scheme struct {
	Limit     float64 `json:"limit"`
	Bits      []int   `json:"bits"`
	Objective float64 `json:"objective"`
	Status    string  `json:"status"`
}

func loadHAWQ(path string) (*hawqFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var h hawqFile
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(h.Layers) == 0 {
		return nil, fmt.Errorf("%s: no layers", path)
	}
	for i, l := range h.Layers {
		for _, b := range []int{4, 8} {
			k := strconv.Itoa(b)
			if _, ok := l.LatencyMS[k]; !ok {
				return nil, fmt.Errorf("%s: layers[%d] %q: no latency_ms[%q]", path, i, l.Name, k)
			}
			if _, ok := l.DeltaSq[k]; !ok {
				return nil, fmt.Errorf("%s: layers[%d] %q: no delta_sq[%q]", path, i, l.Name, k)
			}
		}
	}
	return &h, nil
}

// layers derives each layer's counts from its convolution shape and checks
// them against the params and MACs HAWQ lists:
//
//	params = in·out·k²,  MACs = params·out_hw²,
//	in_elems = in·in_hw², out_elems = out·out_hw²   (per sample).
func (h *hawqFile) layers() ([]profiles.Layer, error) {
	ls := make([]profiles.Layer, len(h.Layers))
	for i, l := range h.Layers {
		params := l.InChannels * l.OutChannels * l.Kernel * l.Kernel
		macs := params * l.OutHW * l.OutHW
		if params != l.Params || macs != l.MACs {
			return nil, fmt.Errorf("layer %q: shape gives params %d, MACs %d; file says %d, %d", l.Name, params, macs, l.Params, l.MACs)
		}
		if (l.InHW+l.Stride-1)/l.Stride != l.OutHW {
			return nil, fmt.Errorf("layer %q: in_hw %d / stride %d ≠ out_hw %d", l.Name, l.InHW, l.Stride, l.OutHW)
		}
		ls[i] = profiles.Layer{Name: l.Name, Params: params, MACs: macs,
			InElems: l.InChannels * l.InHW * l.InHW, OutElems: l.OutChannels * l.OutHW * l.OutHW, OutChannels: l.OutChannels}
	}
	return ls, nil
}

// groups returns the decision groups: tied layers share one precision.
func (h *hawqFile) groups() ([][]int, error) {
	n := len(h.Layers)
	owner := make([]int, n)
	for i := range owner {
		owner[i] = -1
	}
	var gs [][]int
	for _, t := range h.Ties {
		for _, i := range t {
			if i < 0 || i >= n || owner[i] >= 0 {
				return nil, fmt.Errorf("ties: bad or repeated layer index %d", i)
			}
			owner[i] = len(gs)
		}
		gs = append(gs, append([]int(nil), t...))
	}
	for i := 0; i < n; i++ {
		if owner[i] < 0 {
			owner[i] = len(gs)
			gs = append(gs, []int{i})
		}
	}
	// Order groups by first layer.
	for a := 1; a < len(gs); a++ {
		for b := a; b > 0 && gs[b][0] < gs[b-1][0]; b-- {
			gs[b], gs[b-1] = gs[b-1], gs[b]
		}
	}
	return gs, nil
}
