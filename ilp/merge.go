package ilp

import (
	"fmt"
	"sort"
	"strings"

	"github.com/bitplan/bitplan/internal/unionfind"
)

// Merge joins groups that must share a choice (HAWQ-V3 ties a residual
// block's first convolution to its downsample convolution). Each tie lists
// indices into groups; ties that overlap are joined transitively. A merged
// group takes the place of its lowest-index member; its Name is the member
// names joined with "+", Members lists the member layers (flattening members
// that were merged before), its choices follow the labels of the first member
// and its Values and Costs are the members' sums per label. Groups in no tie
// are returned unchanged. The input is not modified.
//
// Merge returns an error (wrapping ErrMalformed) when a tie index is out of
// range, when tied groups have different label sets or cost lengths, or when
// tied groups are pinned to different labels.
func Merge(groups []Group, ties [][]int) ([]Group, error) {
	sets := unionfind.New(len(groups))
	for t, tie := range ties {
		for _, i := range tie {
			if i < 0 || i >= len(groups) {
				return nil, malformed("tie %d: index %d out of range [0, %d)", t, i, len(groups))
			}
		}
		for _, i := range tie[min(1, len(tie)):] {
			sets.Union(tie[0], i)
		}
	}
	tied := sets.Members(2)
	if len(tied) == 0 {
		return append([]Group(nil), groups...), nil
	}
	at := make(map[int][]int, len(tied)) // root → members
	for _, ms := range tied {
		at[ms[0]] = ms
	}
	out := make([]Group, 0, len(groups))
	for i := range groups {
		if sets.Find(i) != i {
			continue
		}
		ms, ok := at[i]
		if !ok {
			out = append(out, groups[i])
			continue
		}
		g, err := mergeOne(groups, ms)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// mergeOne merges groups[ms...] (ms ascending, len ≥ 2).
func mergeOne(groups []Group, ms []int) (Group, error) {
	first := &groups[ms[0]]
	names := make([]string, len(ms))
	var layers []string
	pin, pinFrom := "", -1
	for j, i := range ms {
		gi := &groups[i]
		names[j] = gi.Name
		if len(gi.Members) > 0 {
			layers = append(layers, gi.Members...)
		} else {
			layers = append(layers, gi.Name)
		}
		if gi.Pin != "" {
			if pin != "" && pin != gi.Pin {
				return Group{}, malformed("tie of groups %d (%q) and %d (%q): conflicting pins %q and %q",
					pinFrom, groups[pinFrom].Name, i, gi.Name, pin, gi.Pin)
			}
			pin, pinFrom = gi.Pin, i
		}
	}
	labels := make([]string, len(first.Choices))
	index := make(map[string]int, len(first.Choices))
	for c, ch := range first.Choices {
		labels[c] = ch.Label
		index[ch.Label] = c
	}
	nr := -1
	if len(first.Choices) > 0 {
		nr = len(first.Choices[0].Costs)
	}
	vals := make([]ksum, len(labels))
	costs := make([][]ksum, len(labels))
	for c := range costs {
		costs[c] = make([]ksum, max(nr, 0))
	}
	for _, i := range ms {
		gi := &groups[i]
		if len(gi.Choices) != len(labels) || !sameLabels(gi, index) {
			return Group{}, malformed("tie of groups %d (%q) and %d (%q): label sets differ (%s vs %s)",
				ms[0], first.Name, i, gi.Name, labelList(first), labelList(gi))
		}
		for _, ch := range gi.Choices {
			if len(ch.Costs) != nr {
				return Group{}, malformed("tie of groups %d (%q) and %d (%q): choice %q has %d costs; want %d",
					ms[0], first.Name, i, gi.Name, ch.Label, len(ch.Costs), nr)
			}
			c := index[ch.Label]
			vals[c].add(ch.Value)
			for k, v := range ch.Costs {
				costs[c][k].add(v)
			}
		}
	}
	g := Group{Name: strings.Join(names, "+"), Members: layers, Pin: pin}
	g.Choices = make([]Choice, len(labels))
	for c, l := range labels {
		cs := make([]float64, max(nr, 0))
		for k := range cs {
			cs[k] = costs[c][k].sum()
		}
		g.Choices[c] = Choice{Label: l, Value: vals[c].sum(), Costs: cs}
	}
	return g, nil
}

func sameLabels(g *Group, index map[string]int) bool {
	seen := make(map[string]bool, len(g.Choices))
	for _, ch := range g.Choices {
		if _, ok := index[ch.Label]; !ok || seen[ch.Label] {
			return false
		}
		seen[ch.Label] = true
	}
	return true
}

func labelList(g *Group) string {
	ls := make([]string, len(g.Choices))
	for i, ch := range g.Choices {
		ls[i] = ch.Label
	}
	sort.Strings(ls)
	return "{" + strings.Join(ls, ",") + "}"
}

// Expand maps a solution of merged groups back to the layers of p: p holds
// one group per layer (the groups given to Merge), merged the groups that
// were solved (Merge's result, or any grouping whose Members, or Name when
// Members is nil, name groups of p) and choices the chosen index in every
// merged group (Solution.Choices). The result holds, for every group of p in
// order, the index of the choice whose label equals the merged choice's
// label, so p.Groups[i].Choices[r[i]].Label is layer i's label.
//
// Expand returns an error when lengths differ, a member names no group of p
// or names one twice, a layer lacks the chosen label, or a layer of p is
// covered by no merged group.
func (p *Problem) Expand(merged []Group, choices []int) ([]int, error) {
	if len(choices) != len(merged) {
		return nil, fmt.Errorf("ilp: expand: %d choices for %d merged groups", len(choices), len(merged))
	}
	byName := make(map[string]int, len(p.Groups))
	for i, g := range p.Groups {
		if _, dup := byName[g.Name]; dup {
			return nil, fmt.Errorf("ilp: expand: layer name %q used twice; names must be unique", g.Name)
		}
		byName[g.Name] = i
	}
	out := make([]int, len(p.Groups))
	for i := range out {
		out[i] = -1
	}
	for m, g := range merged {
		c := choices[m]
		if c < 0 || c >= len(g.Choices) {
			return nil, fmt.Errorf("ilp: expand: merged group %d (%q): choice %d out of range [0, %d)", m, g.Name, c, len(g.Choices))
		}
		label := g.Choices[c].Label
		layers := g.Members
		if len(layers) == 0 {
			layers = []string{g.Name}
		}
		for _, name := range layers {
			i, ok := byName[name]
			if !ok {
				return nil, fmt.Errorf("ilp: expand: merged group %d (%q): member %q names no layer", m, g.Name, name)
			}
			if out[i] >= 0 {
				return nil, fmt.Errorf("ilp: expand: layer %q is in two merged groups", name)
			}
			out[i] = -2
			for j, ch := range p.Groups[i].Choices {
				if ch.Label == label {
					out[i] = j
					break
				}
			}
			if out[i] < 0 {
				return nil, fmt.Errorf("ilp: expand: layer %q has no choice labelled %q", name, label)
			}
		}
	}
	for i, c := range out {
		if c < 0 {
			return nil, fmt.Errorf("ilp: expand: layer %q is in no merged group", p.Groups[i].Name)
		}
	}
	return out, nil
}
