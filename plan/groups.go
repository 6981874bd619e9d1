package plan

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/bitplan/bitplan/internal/unionfind"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/sensitivity"
)

// Grouping says which units must share one precision. A group is one ILP
// decision whose Ω and costs are its members' sums (ilp.Merge); the
// sensitivity table records it as the members' tie, so plan, solve, the
// QDQ export and the table agree on it.
//
// The automatic groups (unless NoAuto) come from the graph:
//
//   - siblings: MatMul and Gemm units that read the same activation — the
//     q, k and v projections of an attention layer, the gate and up
//     projections of a gated FFN (what TensorRT-LLM fuses into one GEMM,
//     and ModelOpt therefore quantizes alike);
//   - tied weights: units whose weights are equal or transposes of each
//     other (a language model's output projection tied to its embedding,
//     exported as two initializers). A weight read by several nodes is
//     already one unit (model.Unit.Nodes).
//
// Convolutions that read one input (a residual block's first convolution
// and its downsample, tied by HAWQ-V3) are not grouped automatically: give
// a Pattern.
type Grouping struct {
	// NoAuto turns the automatic groups off.
	NoAuto bool
	// Patterns group units by name: the units a pattern matches whose
	// matches are equal once the text of every parenthesised
	// subexpression is cut out share a precision. So
	// `layers\.\d+\.attn\.(q|k|v)_proj` groups q, k and v per layer, and
	// `blocks\.\d+` every unit of a block.
	Patterns []*regexp.Regexp
}

// UnitGroup is one group of units that share a precision.
type UnitGroup struct {
	// Name is the group's tie name.
	Name string
	// Units are the member unit names, in model order.
	Units []string
	// Reason says why: "shared input T", "tied weights" or "--group P".
	Reason string
}

// ParseGroups compiles --group values: each a regular expression, or
// "none" for no automatic groups. Errors name the pattern.
func ParseGroups(values []string) (*Grouping, error) {
	g := &Grouping{}
	for _, v := range values {
		if v == "none" {
			g.NoAuto = true
			continue
		}
		re, err := regexp.Compile(v)
		if err != nil {
			return nil, fmt.Errorf("group %q: %v", v, err)
		}
		g.Patterns = append(g.Patterns, re)
	}
	return g, nil
}

// FindGroups returns the groups of m's units (nil g: the automatic ones).
// Overlapping groups are joined.
func FindGroups(m *model.Model, g *Grouping) []UnitGroup {
	if g == nil {
		g = &Grouping{}
	}
	names := make([]string, len(m.Units))
	for i, u := range m.Units {
		names[i] = u.Name
	}
	var raw []rawGroup
	if !g.NoAuto {
		raw = append(raw, siblings(m)...)
		raw = append(raw, tiedWeights(m)...)
	}
	raw = append(raw, byPatterns(names, g.Patterns)...)
	return joinGroups(names, raw)
}

// rawGroup is a group before overlapping ones are joined.
type rawGroup struct {
	name, reason string
	units        []int
}

// siblings groups the MatMul and Gemm units that read one activation.
func siblings(m *model.Model) []rawGroup {
	byInput := map[string][]int{}
	var order []string
	for i, u := range m.Units {
		if (u.Op != "MatMul" && u.Op != "Gemm") || u.DataInput < 0 {
			continue
		}
		n := m.Nodes[u.Node]
		in := n.Input(u.DataInput)
		if in == "" || m.Initializers[in] != nil {
			continue
		}
		if byInput[in] == nil {
			order = append(order, in)
		}
		byInput[in] = append(byInput[in], i)
	}
	var out []rawGroup
	for _, in := range order {
		if us := byInput[in]; len(us) > 1 {
			out = append(out, rawGroup{name: "input:" + in, reason: "shared input " + in, units: us})
		}
	}
	return out
}

// tiedWeights groups units whose weights are equal or transposed copies.
// Candidates are found by an order-independent hash of the values' bits,
// then compared exactly.
func tiedWeights(m *model.Model) []rawGroup {
	type key struct {
		n    int
		hash uint64
	}
	byKey := map[key][]int{}
	var keys []key
	vals := make([][]float64, len(m.Units))
	for i, u := range m.Units {
		w := m.Initializers[u.Weight]
		if w == nil || w.Len() < 2 {
			continue
		}
		vals[i] = w.Values()
		var h uint64
		for _, v := range vals[i] {
			h += splitmix(math.Float64bits(v + 0)) // +0: −0 and 0 hash alike
		}
		k := key{len(vals[i]), h}
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	var out []rawGroup
	for _, k := range keys {
		us := byKey[k]
		for a := 0; a < len(us); a++ {
			var g []int
			for b := a + 1; b < len(us); b++ {
				if sameWeight(m, us[a], us[b], vals) {
					g = append(g, us[b])
				}
			}
			if g != nil {
				out = append(out, rawGroup{name: "tied:" + m.Units[us[a]].Weight, reason: "tied weights", units: append([]int{us[a]}, g...)})
			}
		}
	}
	return out
}

// splitmix is SplitMix64's finaliser: a well-spread hash of one value.
func splitmix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// sameWeight reports whether units a and b have equal weights, or 2-D
// weights that are each other's transpose.
func sameWeight(m *model.Model, a, b int, vals [][]float64) bool {
	va, vb := vals[a], vals[b]
	sa, sb := m.Initializers[m.Units[a].Weight].Shape, m.Initializers[m.Units[b].Weight].Shape
	if slices.Equal(sa, sb) && slices.Equal(va, vb) {
		return true
	}
	if len(sa) != 2 || len(sb) != 2 || sa[0] != sb[1] || sa[1] != sb[0] {
		return false
	}
	r, c := sa[0], sa[1]
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			if va[i*c+j] != vb[j*r+i] {
				return false
			}
		}
	}
	return true
}

// byPatterns groups names by each pattern's match with its submatches cut
// out.
func byPatterns(names []string, pats []*regexp.Regexp) []rawGroup {
	var out []rawGroup
	for _, re := range pats {
		byKey := map[string][]int{}
		var keys []string
		for i, n := range names {
			loc := re.FindStringSubmatchIndex(n)
			if loc == nil {
				continue
			}
			var k strings.Builder
			at := loc[0]
			for s := 2; s+1 < len(loc); s += 2 {
				if loc[s] < 0 || loc[s] < at {
					continue // unmatched, or nested in one cut already
				}
				k.WriteString(n[at:loc[s]])
				k.WriteString("()")
				at = loc[s+1]
			}
			k.WriteString(n[at:loc[1]])
			if byKey[k.String()] == nil {
				keys = append(keys, k.String())
			}
			byKey[k.String()] = append(byKey[k.String()], i)
		}
		for _, k := range keys {
			if us := byKey[k]; len(us) > 1 {
				out = append(out, rawGroup{name: "group:" + k, reason: "--group " + re.String(), units: us})
			}
		}
	}
	return out
}

// joinGroups joins overlapping groups; the joined group takes the name of
// its first raw group and every reason.
func joinGroups(names []string, raw []rawGroup) []UnitGroup {
	sets := unionfind.New(len(names))
	for _, g := range raw {
		for _, u := range g.units[1:] {
			sets.Union(g.units[0], u)
		}
	}
	first := map[int]int{} // root → first raw group
	reasons := map[int][]string{}
	for j, g := range raw {
		r := sets.Find(g.units[0])
		if _, ok := first[r]; !ok {
			first[r] = j
		}
		if !slices.Contains(reasons[r], g.reason) {
			reasons[r] = append(reasons[r], g.reason)
		}
	}
	var out []UnitGroup
	for _, ms := range sets.Members(2) {
		r := ms[0]
		g := UnitGroup{Name: raw[first[r]].name, Reason: strings.Join(reasons[r], "; ")}
		for _, i := range ms {
			g.Units = append(g.Units, names[i])
		}
		out = append(out, g)
	}
	return out
}

// GroupTable applies groups to a table: the members of a group share a
// precision (their tie). A member's existing tie is kept and joined with
// the group. Patterns (Grouping.Patterns) can group a table's layers by
// name without the model. Members the table lacks are skipped.
func GroupTable(t *sensitivity.Table, groups []UnitGroup, g *Grouping) {
	idx := map[string]int{}
	names := make([]string, len(t.Layers))
	for i, l := range t.Layers {
		idx[l.Name] = i
		names[i] = l.Name
	}
	all := slices.Clone(groups)
	if g != nil {
		all = append(all, joinGroups(names, byPatterns(names, g.Patterns))...)
	}
	used := map[string]bool{}
	for _, l := range t.Layers {
		if l.Tie != "" {
			used[l.Tie] = true
		}
	}
	for _, gr := range all {
		var ms []int
		tied := false
		for _, u := range gr.Units {
			i, ok := idx[u]
			if !ok {
				continue
			}
			ms = append(ms, i)
			tied = tied || t.Layers[i].Tie != ""
		}
		if len(ms) < 2 {
			continue
		}
		if tied || used[gr.Name] {
			t.Ties = append(t.Ties, ms)
			continue
		}
		used[gr.Name] = true
		for _, i := range ms {
			t.Layers[i].Tie = gr.Name
		}
	}
}

// CheckGroups returns an error naming the first group whose members the
// plan gives different weight or activation widths (a hand-edited plan, or
// one solved without the groups); members the plan lacks are ignored.
func (p *Plan) CheckGroups(groups []UnitGroup) error {
	at := map[string]*Layer{}
	for i := range p.Layers {
		at[p.Layers[i].Name] = &p.Layers[i]
	}
	for _, g := range groups {
		var first *Layer
		for _, u := range g.Units {
			l := at[u]
			if l == nil {
				continue
			}
			if first == nil {
				first = l
				continue
			}
			if l.Bits != first.Bits || l.ABits != first.ABits {
				return fmt.Errorf("group %s (%s) must share one precision, but the plan gives %s w%da%d and %s w%da%d",
					g.Name, g.Reason, first.Name, first.Bits, first.ABits, l.Name, l.Bits, l.ABits)
			}
		}
	}
	return nil
}
