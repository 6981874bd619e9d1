package unionfind

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestAgainstLabels checks Find, Union and Members against a brute-force
// relabelling partition on random unions.
func TestAgainstLabels(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(30)
		s := New(n)
		label := make([]int, n)
		for i := range label {
			label[i] = i
		}
		for k := rng.IntN(2 * n); k > 0; k-- {
			a, b := rng.IntN(n), rng.IntN(n)
			kept, absorbed := s.Union(a, b)
			la, lb := label[a], label[b]
			lo := min(la, lb)
			if kept != lo || absorbed != max(la, lb) {
				t.Fatalf("Union(%d, %d) = %d, %d; want %d, %d", a, b, kept, absorbed, lo, max(la, lb))
			}
			for i := range label {
				if label[i] == la || label[i] == lb {
					label[i] = lo
				}
			}
		}
		want := map[int][]int{}
		for i := range label {
			if s.Find(i) != label[i] {
				t.Fatalf("Find(%d) = %d, want %d", i, s.Find(i), label[i])
			}
			want[label[i]] = append(want[label[i]], i)
		}
		var exp [][]int
		for i := 0; i < n; i++ {
			if g := want[i]; len(g) >= 2 {
				exp = append(exp, g)
			}
		}
		if got := s.Members(2); fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Fatalf("Members(2) = %v, want %v", got, exp)
		}
	}
	s := New(0)
	if s.Add() != 0 || s.Add() != 1 || s.Len() != 2 || s.Find(1) != 1 {
		t.Fatal("Add")
	}
}
