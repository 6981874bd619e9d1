package ilp

import "testing"

func BenchmarkPresolve(b *testing.B) {
	p := benchProblem(5000, 2, 50002)
	for b.Loop() {
		presolve(p, nil, false)
	}
}

func BenchmarkValidate(b *testing.B) {
	p := benchProblem(5000, 2, 50002)
	for b.Loop() {
		p.Validate()
	}
}
