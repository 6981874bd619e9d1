package nn

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/op"
)

// Opset range the importer and the engine accept (ONNX default domain).
const (
	MinOpset = 11
	MaxOpset = 21
)

// Problem is one operator or construct of a graph the engine cannot run.
type Problem struct {
	// Node is the node's label (op, name, index), "" for a graph-level
	// construct (inputs, outputs, opset).
	Node string
	// Op is the node's operator type ("" for graph-level problems).
	Op string
	// Reason says what is wrong and what is supported instead.
	Reason string
}

// UnsupportedError lists every problem Check found in one graph.
type UnsupportedError struct {
	Problems []Problem
}

// maxListed bounds the nodes Error names per kind of problem.
const maxListed = 8

// Error lists the problems, one line per kind (graph-level constructs
// first, then per operator and reason with the nodes it occurs at, at most
// maxListed named), then the supported operators once.
func (e *UnsupportedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "nn: the graph has %d unsupported operators or constructs:", len(e.Problems))
	var kinds []string
	nodes := make(map[string][]string)
	for _, p := range e.Problems {
		if p.Node == "" {
			b.WriteString("\n  " + p.Reason)
			continue
		}
		if _, ok := nodes[p.Reason]; !ok {
			kinds = append(kinds, p.Reason)
		}
		nodes[p.Reason] = append(nodes[p.Reason], p.Node)
	}
	for _, k := range kinds {
		ns := nodes[k]
		if len(ns) == 1 {
			fmt.Fprintf(&b, "\n  %s: %s", ns[0], k)
			continue
		}
		more := ""
		if len(ns) > maxListed {
			more = fmt.Sprintf(" and %d more", len(ns)-maxListed)
			ns = ns[:maxListed]
		}
		fmt.Fprintf(&b, "\n  %s, at %d nodes: %s%s", k, len(nodes[k]), strings.Join(ns, ", "), more)
	}
	fmt.Fprintf(&b, "\n  (supported operators: %s; opsets %d–%d)", op.Executable(), MinOpset, MaxOpset)
	return b.String()
}

// Ops returns the distinct operators of the problems, sorted.
func (e *UnsupportedError) Ops() []string {
	var ops []string
	for _, p := range e.Problems {
		if p.Op != "" && !slices.Contains(ops, p.Op) {
			ops = append(ops, p.Op)
		}
	}
	slices.Sort(ops)
	return ops
}

// Check is the static check of a whole graph before any long computation:
// it specialises m to batch size 1 (folding the shape arithmetic, see
// model.Specialize) and reports, all at once, every node the engine cannot
// execute — an operator without a kernel, a shape-only operator applied to
// computed data, a foreign domain — and every unsupported construct: an
// opset outside MinOpset–MaxOpset, an input of unknown rank or with a
// symbolic dimension other than the batch, output shapes that could not be
// inferred. Several inputs and integer inputs (token ids, masks) are
// supported. Check does not judge the output against a loss (any output
// suits some loss: per-position labels, MSE); New checks it against
// Options.Loss. It returns nil or an *UnsupportedError. New runs it first.
func Check(m *model.Model) error { return check(m, nil) }

// classLogits reports whether loss l scores batch×classes logits.
func classLogits(l Loss) bool {
	switch l.(type) {
	case ClassLabels, KL:
		return true
	}
	return false
}

// check is Check for a model trained with loss l (nil: any loss): the
// output must be batch×classes logits only for losses that score class
// logits.
func check(m *model.Model, l Loss) error {
	var ps []Problem
	graph := func(format string, args ...any) {
		ps = append(ps, Problem{Reason: fmt.Sprintf(format, args...)})
	}
	if m.Opset != 0 && (m.Opset < MinOpset || m.Opset > MaxOpset) {
		graph("opset %d is not supported (want %d–%d; re-export with opset_version=17)", m.Opset, MinOpset, MaxOpset)
	}
	in := make(map[string][]int, len(m.Inputs))
	for _, v := range m.Inputs {
		s := slices.Clone(v.Shape)
		for d := range s {
			if s[d] < 0 {
				s[d] = 1
			}
		}
		in[v.Name] = s
	}
	if len(m.Inputs) == 0 {
		graph("the graph has no data inputs")
	}
	for _, v := range m.Inputs {
		if v.Type != model.Undefined && !v.Type.IsFloat() && !v.Type.IsInt() {
			graph("input %q has element type %v; the engine takes floating-point and integer inputs", v.Name, v.Type)
		}
		if v.Shape == nil {
			graph("input %q has unknown rank; want batch×sample dimensions", v.Name)
		}
		for d := 1; d < len(v.Shape); d++ {
			if v.Shape[d] < 0 {
				graph("input %q has shape %v: dimension %d is symbolic, only the batch dimension may be", v.Name, v.Shape, d)
			}
		}
	}
	s, err := m.Specialize(in)
	if err != nil {
		graph("shape inference failed: %v", err)
		return &UnsupportedError{Problems: ps}
	}
	// Only nodes the first output depends on run.
	live := map[string]bool{s.Outputs[0].Name: true}
	need := make([]bool, len(s.Nodes))
	for i := len(s.Nodes) - 1; i >= 0; i-- {
		n := s.Nodes[i]
		for _, o := range n.Outputs {
			need[i] = need[i] || live[o]
		}
		if need[i] {
			for _, x := range n.Inputs {
				live[x] = true
			}
		}
	}
	for i, n := range s.Nodes {
		if !need[i] {
			continue
		}
		p := Problem{Node: n.Label(), Op: n.Op}
		def := op.Lookup(n.Op, m.Opset)
		hasKernel := def != nil && def.Exec != nil
		switch {
		case !op.IsDefault(n.Domain):
			p.Op = n.Domain + "." + n.Op
			p.Reason = fmt.Sprintf("operator domain %q is not supported (only the default ONNX domain)", n.Domain)
		case !hasKernel && def != nil && def.Fold:
			p.Reason = fmt.Sprintf("%s is supported only on constants and shapes, not on computed data", n.Op)
		case !hasKernel:
			p.Reason = fmt.Sprintf("operator %s is not supported by the engine", n.Op)
		default:
			for _, o := range n.Outputs {
				if _, ok := s.Shapes.Dims[o]; o != "" && live[o] && !ok {
					p.Reason = fmt.Sprintf("the shape of output %q could not be inferred", o)
					break
				}
			}
		}
		if p.Reason != "" {
			ps = append(ps, p)
		}
	}
	if o := s.Shapes.Dims[s.Outputs[0].Name]; o != nil && len(o) != 2 && classLogits(l) {
		graph("output %q has shape %v at batch 1; %s takes batch×classes logits (per-position labels or MSE take other outputs: Options.Loss)", s.Outputs[0].Name, o, lossName(l))
	}
	if len(ps) == 0 {
		return nil
	}
	return &UnsupportedError{Problems: ps}
}
