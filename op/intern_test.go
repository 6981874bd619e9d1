package op

import (
	"runtime"
	"slices"
	"testing"
	"weak"
)

// TestInternIndex checks that kernels of equal shapes share one index map,
// that other shapes get their own, correct, map, and that a map no kernel
// holds is collected.
func TestInternIndex(t *testing.T) {
	a := newBcast([]int{7}, []int{3, 5, 7})
	b := newBcast([]int{7}, []int{3, 5, 7})
	if &a.idx[0] != &b.idx[0] {
		t.Error("equal broadcasts hold two maps")
	}
	c := newBcast([]int{5, 1}, []int{3, 5, 7})
	if &a.idx[0] == &c.idx[0] {
		t.Error("different broadcasts share a map")
	}
	for _, x := range []struct {
		got  bcast
		in   []int
		name string
	}{{a, []int{7}, "[7]"}, {c, []int{5, 1}, "[5 1]"}} {
		want := BroadcastIndex(x.in, []int{3, 5, 7})
		for k, q := range want {
			if x.got.at(k) != q {
				t.Fatalf("broadcast of %s: element %d reads %d, want %d", x.name, k, x.got.at(k), q)
			}
		}
	}
	v, ok := indexMaps.Load(indexKey("broadcast", []int{5, 1}, []int{3, 5, 7}))
	if !ok {
		t.Fatal("the map is not in the table")
	}
	p := v.(weak.Pointer[indexMap])
	keep := slices.Clone(c.idx)
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	c = bcast{}
	runtime.GC()
	runtime.GC()
	if p.Value() != nil {
		t.Error("a map no kernel holds was not collected")
	}
	d := newBcast([]int{5, 1}, []int{3, 5, 7})
	if !slices.Equal(d.idx, keep) {
		t.Error("the map built again differs")
	}
}
