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
// GridSample's mode names at 20, GroupNormalization's scale and bias
// shapes at 21).
var noUpgrade = map[string]int64{"DFT": 20, "GridSample": 20, "GroupNormalization": 21}

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
	for i, n := range g.Node {
		if n.Domain != "" && n.Domain != "ai.onnx" {
			continue
		}
		label := fmt.Sprintf("%s node %q (#%d)", n.OpType, n.Name, i)
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
