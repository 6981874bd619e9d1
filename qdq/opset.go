package qdq

import (
	"fmt"

	"github.com/advancedclimatesystems/gonnx/onnx"
)

// minSourceOpset is the oldest default-domain opset Export upgrades: from
// 13 on, Squeeze, Unsqueeze, ReduceSum and Split take their axes as inputs
// as at opset 21.
const minSourceOpset = 13

// axesToInput lists the operators that took axes as an attribute before
// opset 18 and as an input from 18 on.
var axesToInput = map[string]bool{"ReduceMean": true, "ReduceMax": true, "ReduceMin": true, "ReduceProd": true,
	"ReduceL1": true, "ReduceL2": true, "ReduceLogSum": true, "ReduceLogSumExp": true, "ReduceSumSquare": true}

// noUpgrade lists operators whose meaning changed between opsets 13 and 21
// in ways Export does not rewrite (DFT's axis became an input at 20,
// GridSample's mode names at 20). GroupNormalization's scale and bias,
// per group at opsets 18 to 20, are per channel from 21: its node is
// rewritten (groupNormTo21).
var noUpgrade = map[string]int64{"DFT": 20, "GridSample": 20}

// upgradeOpset moves the default-domain opset to Opset and the IR version
// to at least IRVersion, rewriting the operators whose form changed on the
// way (Reduce* axes attribute → input at opset 18). It refuses models
// older than opset 13, already quantized models and operators it cannot
// rewrite, naming the node.
func upgradeOpset(mp *onnx.ModelProto) error {
	var def *onnx.OperatorSetIdProto
	for _, op := range mp.OpsetImport {
		if op != nil && (op.Domain == "" || op.Domain == "ai.onnx") {
			def = op
		}
	}
	if def == nil {
		return fmt.Errorf("qdq: the model imports no default-domain opset")
	}
	from := def.Version
	if from < minSourceOpset {
		return fmt.Errorf("qdq: the model has opset %d; export needs opset %d or newer (convert it first, e.g. onnx.version_converter.convert_version(model, 17))", from, minSourceOpset)
	}
	if from > Opset {
		return fmt.Errorf("qdq: the model has opset %d, newer than the export's %d", from, Opset)
	}
	g := mp.Graph
	names := map[string]bool{}
	for _, t := range g.Initializer {
		names[t.Name] = true
	}
	for _, n := range g.Node {
		for _, o := range n.Output {
			names[o] = true
		}
	}
	var rewritten []*onnx.NodeProto
	defer func() {
		if rewritten != nil {
			g.Node = rewritten
		}
	}()
	for i, n := range g.Node {
		if n.Domain != "" && n.Domain != "ai.onnx" {
			rewritten = append(rewritten, n)
			continue
		}
		label := fmt.Sprintf("%s node %q (#%d)", n.OpType, n.Name, i)
		if n.OpType == "GroupNormalization" && from < 21 {
			nodes, err := groupNormTo21(n, i, names)
			if err != nil {
				return fmt.Errorf("qdq: %s: %w", label, err)
			}
			rewritten = append(rewritten, nodes...)
			continue
		}
		rewritten = append(rewritten, n)
		switch {
		case n.OpType == "QuantizeLinear" || n.OpType == "DequantizeLinear" || n.OpType == "QLinearConv" || n.OpType == "QLinearMatMul":
			return fmt.Errorf("qdq: %s: the model is already quantized", label)
		case noUpgrade[n.OpType] > from:
			return fmt.Errorf("qdq: %s: the operator changed at opset %d and the export cannot rewrite it from opset %d", label, noUpgrade[n.OpType], from)
		case axesToInput[n.OpType] && from < 18:
			var keep []*onnx.AttributeProto
			var axes []int64
			has := false
			for _, a := range n.Attribute {
				if a.Name == "axes" {
					axes, has = a.Ints, true
					continue
				}
				keep = append(keep, a)
			}
			n.Attribute = keep
			if !has {
				continue
			}
			name := n.Name + "_axes"
			if n.Name == "" {
				name = fmt.Sprintf("node%d_axes", i)
			}
			for k := 2; names[name]; k++ {
				name = fmt.Sprintf("%s_axes_%d", n.Name, k)
			}
			names[name] = true
			g.Initializer = append(g.Initializer, intTensor(name, Int64, []int64{int64(len(axes))}, axes))
			n.Input = append(n.Input[:1:1], name)
		}
	}
	def.Domain, def.Version = "", Opset
	if mp.IrVersion < IRVersion {
		mp.IrVersion = IRVersion
	}
	return nil
}

// groupNormTo21 rewrites a GroupNormalization of opsets 18 to 20 (scale and
// bias per group) as the nodes torch.onnx exports for GroupNorm, valid at
// opset 21 without knowing the channel count:
//
//	Reshape(x, [0, G, −1]) → InstanceNormalization(·, scale, bias, ε) → Reshape(·, Shape(x)),
//
// InstanceNormalization standardizing each of the G groups over its
// channels and positions and applying the group's scale and bias.
func groupNormTo21(n *onnx.NodeProto, i int, names map[string]bool) ([]*onnx.NodeProto, error) {
	if len(n.Input) != 3 || len(n.Output) != 1 {
		return nil, fmt.Errorf("want inputs X, scale, bias and one output")
	}
	var g int64
	eps := float32(1e-5)
	for _, a := range n.Attribute {
		switch a.Name {
		case "num_groups":
			g = a.I
		case "epsilon":
			eps = a.F
		}
	}
	if g < 1 {
		return nil, fmt.Errorf("num_groups is %d, want a positive count", g)
	}
	base := n.Name
	if base == "" {
		base = fmt.Sprintf("node%d", i)
	}
	fresh := func(suffix string) string {
		name := base + "_" + suffix
		for k := 2; names[name]; k++ {
			name = fmt.Sprintf("%s_%s_%d", base, suffix, k)
		}
		names[name] = true
		return name
	}
	gshape, xs, xg, yg := fresh("group_shape"), fresh("shape"), fresh("grouped"), fresh("normalized")
	x, y := n.Input[0], n.Output[0]
	return []*onnx.NodeProto{
		{OpType: "Constant", Name: gshape, Output: []string{gshape}, Attribute: []*onnx.AttributeProto{
			{Name: "value", Type: onnx.AttributeProto_TENSOR, T: intTensor(gshape, Int64, []int64{3}, []int64{0, g, -1})}}},
		{OpType: "Shape", Name: xs, Input: []string{x}, Output: []string{xs}},
		{OpType: "Reshape", Name: xg, Input: []string{x, gshape}, Output: []string{xg}},
		{OpType: "InstanceNormalization", Name: n.Name, Input: []string{xg, n.Input[1], n.Input[2]}, Output: []string{yg},
			Attribute: []*onnx.AttributeProto{{Name: "epsilon", Type: onnx.AttributeProto_FLOAT, F: eps}}},
		{OpType: "Reshape", Name: yg, Input: []string{yg, xs}, Output: []string{y}},
	}, nil
}
