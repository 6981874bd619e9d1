package prune

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/profiles"
)

// Resource is a budgeted quantity of a pruned model.
type Resource int

const (
	// Params counts the weights and biases of the units (Conv, Gemm,
	// MatMul); BatchNormalization vectors are not counted.
	Params Resource = iota
	// FLOPs counts 2·MACs of the units per sample (element-wise operators,
	// pooling and BatchNormalization are not counted).
	FLOPs
	// Size is the weight storage in bytes: Σ params·bits/8 (bits = 32 for
	// a float model in plain pruning).
	Size
	// Latency is the profile's per-layer latency model summed over the
	// units, in milliseconds.
	Latency
)

// String returns "params", "flops", "size" or "latency".
func (r Resource) String() string {
	switch r {
	case Params:
		return "params"
	case FLOPs:
		return "flops"
	case Size:
		return "size"
	case Latency:
		return "latency"
	}
	return fmt.Sprintf("Resource(%d)", int(r))
}

// Unit returns the unit of the resource's values: "", "FLOPs", "B", "ms".
func (r Resource) Unit() string {
	switch r {
	case FLOPs:
		return "FLOPs"
	case Size:
		return "B"
	case Latency:
		return "ms"
	}
	return ""
}

// Budget is a limit on one resource: an absolute value in the resource's
// unit, or a fraction of the unpruned model's value (at the highest
// candidate bit width for Size).
type Budget struct {
	Resource Resource
	// Relative reports a percentage; Value is then the fraction P/100.
	Relative bool
	// Value is the limit (canonical unit) or the fraction.
	Value float64
	// Text is the budget as written.
	Text string
}

// limit resolves the budget against the unpruned model's value.
func (b Budget) limit(dense float64) float64 {
	if b.Relative {
		return b.Value * dense
	}
	return b.Value
}

// countSuffix maps the count suffixes of params and FLOPs budgets.
var countSuffix = map[string]float64{"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}

// ParseBudget parses a budget: "P%" (a fraction of the unpruned model),
// or an absolute value — a count with an optional K, M, G or T suffix for
// params and FLOPs ("30K", "1.2M", "25000"), a size with a unit for Size
// ("120KB", "1.5MiB"), a time for Latency ("0.8ms", "300us"). Errors name
// the value and what was expected.
func ParseBudget(r Resource, text string) (Budget, error) {
	t := strings.TrimSpace(text)
	switch r {
	case Size, Latency:
		k := budget.Size
		if r == Latency {
			k = budget.Latency
		}
		s, err := budget.Parse(k, t)
		if err != nil {
			return Budget{}, err
		}
		return Budget{Resource: r, Relative: s.Relative, Value: s.Value, Text: text}, nil
	case Params, FLOPs:
	default:
		return Budget{}, fmt.Errorf("prune: unknown resource %d", int(r))
	}
	if t == "" {
		return Budget{}, fmt.Errorf("%s budget: empty value; want a count such as 30K or a percentage such as 50%%", r)
	}
	if strings.HasSuffix(t, "%") {
		v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(t, "%")), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return Budget{}, fmt.Errorf("%s budget %q: want a non-negative percentage such as 50%%", r, text)
		}
		return Budget{Resource: r, Relative: true, Value: v / 100, Text: text}, nil
	}
	low := strings.ToLower(t)
	if r == FLOPs {
		low = strings.TrimSpace(strings.TrimSuffix(low, "flops"))
	}
	i := len(low)
	for i > 0 && (low[i-1] < '0' || low[i-1] > '9') && low[i-1] != '.' {
		i--
	}
	num, suf := strings.TrimSpace(low[:i]), strings.TrimSpace(low[i:])
	f, ok := countSuffix[suf]
	if !ok {
		return Budget{}, fmt.Errorf("%s budget %q: unknown suffix %q; want none, K, M, G or T, or a percentage", r, text, suf)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return Budget{}, fmt.Errorf("%s budget %q: %q is not a non-negative number", r, text, num)
	}
	return Budget{Resource: r, Value: v * f, Text: text}, nil
}

// formatValue formats a resource value for reports.
func formatValue(r Resource, v float64) string {
	switch r {
	case Size:
		return budget.Format(budget.Size, v)
	case Latency:
		return budget.Format(budget.Latency, v)
	case FLOPs:
		return budget.Format(budget.BOPS, v)
	}
	return budget.Format(budget.BOPS, v)
}

// Counts are a unit's costs at batch size 1.
type Counts struct {
	// Params is weights plus bias elements.
	Params int64 `json:"params"`
	// MACs is the multiply-accumulates per sample.
	MACs int64 `json:"macs"`
	// InElems and OutElems are the activation elements read and written.
	InElems  int64 `json:"in_elems"`
	OutElems int64 `json:"out_elems"`
}

// unitCost scales one unit's counts with the channels kept.
type unitCost struct {
	name            string
	weight, bias    int64
	biasPerChannel  bool
	macs, inE, outE int64
	co, ci          int // output channels; input channels of its In group (1 without)
	out, in         int // group indices or −1
	dw              bool
}

func newUnitCosts(st *Structure) []unitCost {
	m := st.Model
	uc := make([]unitCost, len(m.Units))
	for i, u := range m.Units {
		r := st.Roles[i]
		c := unitCost{name: u.Name, macs: u.MACs, inE: u.InElems, outE: u.OutElems, co: u.OutChannels, ci: 1,
			out: r.Out, in: r.In, dw: r.Depthwise}
		c.weight = int64(m.Initializers[u.Weight].Len())
		if u.Bias != "" {
			c.bias = int64(m.Initializers[u.Bias].Len())
			c.biasPerChannel = c.bias == int64(u.OutChannels)
		}
		if r.In >= 0 && !r.Depthwise {
			c.ci = st.Groups[r.In].Channels
		}
		uc[i] = c
	}
	return uc
}

// counts returns the unit's counts with ko output and ki input channels
// kept (ki is ignored for depthwise units, whose input channels are their
// output channels, and for units without an In group). All counts of Conv,
// Gemm and MatMul are bilinear in (ko, ki), and the divisions are exact for
// consistent shapes.
func (c *unitCost) counts(ko, ki int) Counts {
	co, k := int64(c.co), int64(ko)
	var n Counts
	if c.dw {
		n.Params = c.weight / co * k
		n.MACs = c.macs / co * k
		n.InElems = c.inE / co * k
		n.OutElems = c.outE / co * k
	} else {
		ci, j := int64(c.ci), int64(ki)
		if c.in < 0 {
			ci, j = 1, 1
		}
		n.Params = c.weight / co / ci * k * j
		n.MACs = c.macs / (co * ci) * k * j
		n.InElems = c.inE / ci * j
		n.OutElems = c.outE / co * k
	}
	if c.biasPerChannel {
		n.Params += k
	} else {
		n.Params += c.bias
	}
	return n
}

// row is one resource row of the planning problem.
type row struct {
	res    Resource
	name   string
	prof   *profiles.Profile
	opts   *profiles.Options
	abits  int // activation bits of the latency model (0: same as weights)
	limit  float64
	dense  float64
	budget string
}

// value returns the row's cost of a unit with counts n at weight width
// bits.
func (r *row) value(uc *unitCost, n Counts, ko, bits int) (float64, error) {
	switch r.res {
	case Params:
		return float64(n.Params), nil
	case FLOPs:
		return 2 * float64(n.MACs), nil
	case Size:
		return float64(n.Params) * float64(bits) / 8, nil
	case Latency:
		a := r.abits
		if a == 0 {
			a = bits
		}
		c, err := r.prof.Cost(profiles.Layer{Name: uc.name, Params: n.Params, MACs: n.MACs, InElems: n.InElems,
			OutElems: n.OutElems, OutChannels: int64(ko)}, profiles.Precision{W: bits, A: a}, r.opts)
		if err != nil {
			return 0, err
		}
		return c.Latency * 1e3, nil
	}
	return 0, fmt.Errorf("prune: unknown resource %v", r.res)
}
