// Package unionfind is a disjoint-set forest (union-find) whose sets are
// named by their smallest member, so the result of any sequence of unions
// does not depend on their order. Find uses path halving; with the
// smallest-root rule (not union by rank) the bound is O(log n) amortised per
// operation, ample for the ties and channel spaces bitplan joins.
package unionfind

// Sets partitions 0..Len()-1.
type Sets struct{ parent []int }

// New returns n singleton sets.
func New(n int) *Sets {
	s := &Sets{parent: make([]int, n)}
	for i := range s.parent {
		s.parent[i] = i
	}
	return s
}

// Len returns the number of elements.
func (s *Sets) Len() int { return len(s.parent) }

// Add appends a new singleton element and returns it.
func (s *Sets) Add() int {
	s.parent = append(s.parent, len(s.parent))
	return len(s.parent) - 1
}

// Find returns the smallest member of i's set.
func (s *Sets) Find(i int) int {
	p := s.parent
	for p[i] != i {
		p[i] = p[p[i]]
		i = p[i]
	}
	return i
}

// Union joins the sets of a and b and returns the root kept (the smaller)
// and the root absorbed; both are equal when a and b were already joined.
func (s *Sets) Union(a, b int) (kept, absorbed int) {
	ra, rb := s.Find(a), s.Find(b)
	if rb < ra {
		ra, rb = rb, ra
	}
	s.parent[rb] = ra
	return ra, rb
}

// Members returns the sets of at least minSize elements, each ascending, in
// order of their smallest member. It allocates only for those sets.
func (s *Sets) Members(minSize int) [][]int {
	size := make([]int32, len(s.parent))
	for i := range s.parent {
		size[s.Find(i)]++
	}
	slot := make(map[int]int)
	var out [][]int
	for i := range s.parent {
		r := s.Find(i)
		if int(size[r]) < minSize {
			continue
		}
		k, ok := slot[r]
		if !ok {
			k = len(out)
			slot[r] = k
			out = append(out, make([]int, 0, size[r]))
		}
		out[k] = append(out[k], i)
	}
	return out
}
