package ilp

import (
	"context"
	"math"
	"testing"
	"time"
)

func TestDebugBench(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	p := benchProblem(500, 2, 5002)
	m := presolve(p, nil, false)
	st := &stopper{ctx: context.Background()}
	q := m.root
	rel := q.relax(nil, math.Inf(1), st)
	t.Logf("root bound %.12g exact %v lam %v", rel.bound, rel.exact, rel.lam)
	sr := newSearch(m, st, &Settings{RelGap: 1e-9, AbsGap: 1e-12}, false)
	sr.heuristic(q, rel.x, rel.lam)
	t.Logf("heur z %.12g gap %.3g tol %.3g", sr.z, sr.z-rel.bound, sr.tol())
	sol, _ := Solve(context.Background(), p, nil)
	t.Logf("opt %.12g scaled %.12g nodes %d", sol.Objective, (sol.Objective-m.valConst)/m.valScale, sol.Nodes)
	r := make([]float64, len(q.val))
	q.reduced(rel.lam, r)
	cnt := 0
	for _, x := range r {
		if x <= sr.z-rel.bound {
			cnt++
		}
	}
	t.Logf("core choices %d of %d, groups %d", cnt, len(r), q.ng())
}

func TestDebugCore(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	for _, n := range []int{500, 5000} {
		p := benchProblem(n, 2, uint64(n*10+2))
		m := presolve(p, nil, false)
		st := &stopper{ctx: context.Background()}
		q := m.root
		rel := q.relax(nil, math.Inf(1), st)
		sol, _ := Solve(context.Background(), p, nil)
		z := (sol.Objective - m.valConst) / m.valScale
		r := make([]float64, len(q.val))
		q.reduced(rel.lam, r)
		cnt, grp := 0, map[int]bool{}
		for g := 0; g < q.ng(); g++ {
			for j := q.start[g]; j < q.start[g+1]; j++ {
				if r[j] <= z-rel.bound && r[j] > 0 {
					cnt++
					grp[g] = true
				}
			}
		}
		t.Logf("n %d gap %.3g core nonzero choices %d groups %d; nodes %d time %v", n, z-rel.bound, cnt, len(grp), sol.Nodes, sol.Time)
	}
}

func TestDebugWarm(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	for _, n := range []int{500, 5000} {
		p := benchProblem(n, 2, uint64(n*10+2))
		sol, _ := Solve(context.Background(), p, nil)
		m := presolve(p, nil, false)
		q := m.root
		a := make([]int32, q.ng())
		for i := range a {
			for j := q.start[i]; j < q.start[i+1]; j++ {
				if int(q.cid[j]) == sol.Choices[q.gid[i]] {
					a[i] = j
				}
			}
		}
		st := &stopper{ctx: context.Background()}
		sr := newSearch(m, st, &Settings{RelGap: 1e-9, AbsGap: 1e-12}, false)
		sr.best, sr.z = a, q.value(a)
		sr.run()
		t.Logf("n %d warm nodes %d", n, st.nodes)
	}
}

func TestDebugPhases(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	dpTrace = func(g, s, k int) { t.Logf("  dp groups %d states %d", g, s) }
	defer func() { dpTrace = nil; dpLevelTrace = nil; growTrace = nil }()
	growTrace = func(size, core, groups int, gap, gain float64, complete bool) {
		t.Logf("  grow size %d core %d groups %d gap %.3g gain %.3g complete %v", size, core, groups, gap, gain, complete)
	}
	for _, rows := range []int{3} {
		for _, n := range []int{100000} {
			p := benchProblem(n, rows, uint64(n*10+rows))
			m := presolve(p, nil, false)
			st := &stopper{ctx: context.Background(), deadline: time.Now().Add(3 * time.Second)}
			sr := newSearch(m, st, &Settings{RelGap: 1e-9, AbsGap: 1e-12}, false)
			t0 := time.Now()
			sr.run()
			t.Logf("rows %d n %d: search %v nodes %d dp %d done %v gap %.3g z %.6g tol %.3g", rows, n, time.Since(t0), st.nodes, sr.dpStates, sr.done, sr.z-sr.bound, sr.z, sr.tol())
		}
	}
}

func TestDebugRelax(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	for _, rows := range []int{3} {
		for _, n := range []int{100000} {
			p := benchProblem(n, rows, uint64(n*10+rows))
			m := presolve(p, nil, false)
			st := &stopper{ctx: context.Background()}
			d := newDual(m.root)
			t0 := time.Now()
			rel := d.maximize(nil, math.Inf(1), st)
			t.Logf("rows %d n %d: relax %v cuts %d lam %v exact %v evals %d iters %d", rows, n, time.Since(t0), len(d.cuts), rel.lam, rel.exact, d.evals, d.m.iters)
		}
	}
}

func BenchmarkLagrange(b *testing.B) {
	p := benchProblem(5000, 2, 50002)
	m := presolve(p, nil, false)
	q := m.root
	a := make([]int32, q.ng())
	s := make([]float64, q.k)
	lam := []float64{0.0004, 0.0001}
	var va float64
	for b.Loop() {
		q.lagrange(lam, a, s, &va)
	}
}

func TestDebugHeur(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	for _, n := range []int{20000, 100000} {
		p := benchProblem(n, 3, uint64(n*10+3))
		m := presolve(p, nil, false)
		st := &stopper{ctx: context.Background()}
		q := m.root
		rel := q.relax(nil, math.Inf(1), st)
		a := q.round(rel.x)
		u := make([]float64, q.k)
		q.usage(a, u)
		parts := func(tag string) {
			r := make([]float64, len(q.val))
			q.reduced(rel.lam, r)
			sr := 0.0
			for _, j := range a {
				sr += r[j]
			}
			q.usage(a, u)
			sl := 0.0
			for k := range u {
				sl += rel.lam[k] * (q.lim[k] - u[k])
			}
			t.Logf("n %d %s: value-bound %.3g = Σr %.3g + λ·slack %.3g; slack %v lam %v", n, tag, q.value(a)-rel.bound, sr, sl, addLim(u, nil), rel.lam)
		}
		parts("round")
		q.repair(a, u)
		parts("repair")
		q.improve(a, u, rel.lam, 1<<30)
		parts("improve")
	}
}
