//go:build clp

package clp

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize/convex/lp"
)

// denseCSC converts a dense row-major matrix to CSC, dropping zeros.
func denseCSC(rows, cols int, a []float64) *CSC {
	m := &CSC{Rows: rows, Cols: cols, Start: make([]int, cols+1)}
	for j := 0; j < cols; j++ {
		for i := 0; i < rows; i++ {
			if v := a[i*cols+j]; v != 0 {
				m.Index = append(m.Index, i)
				m.Value = append(m.Value, v)
			}
		}
		m.Start[j+1] = len(m.Index)
	}
	return m
}

// TestModelKnownLP solves
//
//	min −x1 − 2 x2  s.t.  x1 + x2 ≤ 4,  x1 + 3 x2 ≤ 6,  x ≥ 0,
//
// whose optimum is −5 at (3, 1) with row duals (−1/2, −1/2), then lowers
// the bound of x1 to 2 and warm-starts (optimum −14/3 at (2, 4/3)).
func TestModelKnownLP(t *testing.T) {
	m := NewModel()
	defer m.Close()
	a := denseCSC(2, 2, []float64{1, 1, 1, 3})
	inf := math.Inf(1)
	if err := m.LoadProblem(a, nil, nil, []float64{-1, -2}, nil, []float64{4, 6}); err != nil {
		t.Fatal(err)
	}
	if m.NumRows() != 2 || m.NumCols() != 2 {
		t.Fatalf("shape %d×%d, want 2×2", m.NumRows(), m.NumCols())
	}
	if st := m.Dual(); st != LPOptimal {
		t.Fatalf("status %v", st)
	}
	const tol = 1e-9
	check := func(name string, got, want []float64) {
		t.Helper()
		if !floats.EqualApprox(got, want, tol) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := m.Objective(); math.Abs(got+5) > tol {
		t.Errorf("objective %v, want -5", got)
	}
	check("x", m.ColSolution(), []float64{3, 1})
	check("row activity", m.RowActivity(), []float64{4, 6})
	check("duals", m.RowPrice(), []float64{-0.5, -0.5})
	check("reduced costs", m.ReducedCost(), []float64{0, 0})
	basis := m.Basis()
	if len(basis) != 4 {
		t.Fatalf("basis has %d bytes, want 4", len(basis))
	}

	if err := m.SetColumnBounds(nil, []float64{2, inf}); err != nil {
		t.Fatal(err)
	}
	if st := m.Dual(); st != LPOptimal {
		t.Fatalf("warm status %v", st)
	}
	if got := m.Objective(); math.Abs(got+14.0/3) > tol {
		t.Errorf("warm objective %v, want -14/3", got)
	}
	check("warm x", m.ColSolution(), []float64{2, 4.0 / 3})
	check("warm duals", m.RowPrice(), []float64{0, -2.0 / 3})
	check("warm reduced costs", m.ReducedCost(), []float64{-1.0 / 3, 0})
	check("column upper", m.ColumnUpper(), []float64{2, math.MaxFloat64})

	// Back to the first basis and bounds: primal simplex is already optimal.
	if err := m.SetColumnBounds(nil, []float64{inf, inf}); err != nil {
		t.Fatal(err)
	}
	if err := m.SetBasis(basis); err != nil {
		t.Fatal(err)
	}
	if st := m.Primal(); st != LPOptimal || m.Iterations() != 0 {
		t.Errorf("primal from optimal basis: status %v after %d iterations, want optimal after 0", st, m.Iterations())
	}
	if got := m.Objective(); math.Abs(got+5) > tol {
		t.Errorf("objective %v, want -5", got)
	}

	// Infeasible: x1 + x2 ≥ 10 with x ≤ 1.
	if err := m.SetColumnBounds(nil, []float64{1, 1}); err != nil {
		t.Fatal(err)
	}
	if err := m.SetRowBounds([]float64{10, math.Inf(-1)}, nil); err != nil {
		t.Fatal(err)
	}
	if st := m.Dual(); st != LPPrimalInfeasible {
		t.Errorf("infeasible LP: status %v", st)
	}
	if st := m.InitialSolve(); st != LPPrimalInfeasible {
		t.Errorf("infeasible LP, initial solve: status %v", st)
	}
}

// TestModelUnbounded checks the dual infeasible status: min −x, x ≥ 0.
func TestModelUnbounded(t *testing.T) {
	m := NewModel()
	defer m.Close()
	a := denseCSC(1, 1, []float64{0})
	if err := m.LoadProblem(a, nil, nil, []float64{-1}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if st := m.Primal(); st != LPDualInfeasible {
		t.Errorf("status %v, want %v", st, LPDualInfeasible)
	}
}

// TestModelIterationLimit checks that an iteration limit stops the solve.
func TestModelIterationLimit(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	rows, cols := 30, 40
	a := make([]float64, rows*cols)
	for i := range a {
		a[i] = rng.Float64()
	}
	obj := make([]float64, cols)
	for j := range obj {
		obj[j] = -1 - rng.Float64()
	}
	ub := make([]float64, rows)
	for i := range ub {
		ub[i] = 1 + rng.Float64()
	}
	m := NewModel()
	defer m.Close()
	if err := m.LoadProblem(denseCSC(rows, cols, a), nil, nil, obj, nil, ub); err != nil {
		t.Fatal(err)
	}
	m.SetMaxIterations(1)
	if st := m.Primal(); st != LPStopped {
		t.Errorf("status %v after %d iterations, want %v", st, m.Iterations(), LPStopped)
	}
	m.SetMaxIterations(1 << 30)
	if st := m.Primal(); st != LPOptimal {
		t.Errorf("status %v after lifting the limit", st)
	}
	m.SetMaxSeconds(-1)
	if st := m.Dual(); st != LPOptimal {
		t.Errorf("dual status %v", st)
	}
}

// TestModelRandomAgainstGonum solves seeded random LPs
//
//	min cᵀx  s.t.  A x ≤ b,  0 ≤ x ≤ u
//
// with CLP and with gonum's simplex (standard form with slacks), compares
// the optima, and checks CLP's duals and reduced costs against the KKT
// conditions: complementary slackness and the sign of every multiplier.
func TestModelRandomAgainstGonum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	m := NewModel()
	defer m.Close()
	n := 300
	if testing.Short() {
		n = 50
	}
	for trial := 0; trial < n; trial++ {
		rows, cols := 1+rng.IntN(5), 1+rng.IntN(6)
		a := make([]float64, rows*cols)
		for i := range a {
			if rng.Float64() < 0.8 {
				a[i] = math.Round((rng.Float64()*4-1)*8) / 8
			}
		}
		b, c, u := make([]float64, rows), make([]float64, cols), make([]float64, cols)
		for i := range b {
			b[i] = 1 + rng.Float64()*3
		}
		for j := range c {
			c[j] = rng.Float64()*4 - 3
			u[j] = 0.5 + rng.Float64()*2
		}
		if err := m.LoadProblem(denseCSC(rows, cols, a), nil, u, c, nil, b); err != nil {
			t.Fatal(err)
		}
		if st := m.Dual(); st != LPOptimal {
			t.Fatalf("trial %d: status %v (x = 0 is feasible)", trial, st)
		}
		got := m.Objective()

		// Standard form: variables x, s (A x + s = b), t (x + t = u).
		nv := cols + rows + cols
		A := mat.NewDense(rows+cols, nv, nil)
		bb := make([]float64, rows+cols)
		cc := make([]float64, nv)
		copy(cc, c)
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				A.Set(i, j, a[i*cols+j])
			}
			A.Set(i, cols+i, 1)
			bb[i] = b[i]
		}
		for j := 0; j < cols; j++ {
			A.Set(rows+j, j, 1)
			A.Set(rows+j, cols+rows+j, 1)
			bb[rows+j] = u[j]
		}
		want, _, err := lp.Simplex(cc, A, bb, 0, nil)
		if err != nil {
			t.Fatalf("trial %d: gonum: %v", trial, err)
		}
		if math.Abs(got-want) > 1e-7*(1+math.Abs(want)) {
			t.Errorf("trial %d: CLP optimum %v, gonum %v", trial, got, want)
		}

		const tol = 1e-7
		x, y, d, ax := m.ColSolution(), m.RowPrice(), m.ReducedCost(), m.RowActivity()
		for i := 0; i < rows; i++ {
			if y[i] > tol || (b[i]-ax[i] > tol && y[i] < -tol) {
				t.Errorf("trial %d: row %d: dual %v with slack %v", trial, i, y[i], b[i]-ax[i])
			}
		}
		for j := 0; j < cols; j++ {
			dj := c[j]
			for i := 0; i < rows; i++ {
				dj -= a[i*cols+j] * y[i]
			}
			if math.Abs(dj-d[j]) > tol {
				t.Errorf("trial %d: reduced cost %d = %v, want c − Aᵀy = %v", trial, j, d[j], dj)
			}
			if (d[j] > tol && x[j] > tol) || (d[j] < -tol && x[j] < u[j]-tol) {
				t.Errorf("trial %d: column %d at %v in [0, %v] with reduced cost %v", trial, j, x[j], u[j], d[j])
			}
		}
	}
}

// TestModelBadInput checks that malformed data return errors, not crashes.
func TestModelBadInput(t *testing.T) {
	m := NewModel()
	defer m.Close()
	good := denseCSC(2, 2, []float64{1, 1, 1, 3})
	for _, tc := range []struct {
		name string
		a    *CSC
		obj  []float64
		ru   []float64
	}{
		{"row index out of range", &CSC{Rows: 1, Cols: 1, Start: []int{0, 1}, Index: []int{1}, Value: []float64{1}}, nil, nil},
		{"negative row index", &CSC{Rows: 1, Cols: 1, Start: []int{0, 1}, Index: []int{-1}, Value: []float64{1}}, nil, nil},
		{"short start", &CSC{Rows: 1, Cols: 2, Start: []int{0, 1}, Index: []int{0}, Value: []float64{1}}, nil, nil},
		{"decreasing start", &CSC{Rows: 1, Cols: 2, Start: []int{0, 1, 0}, Index: []int{0}, Value: []float64{1}}, nil, nil},
		{"NaN entry", &CSC{Rows: 1, Cols: 1, Start: []int{0, 1}, Index: []int{0}, Value: []float64{math.NaN()}}, nil, nil},
		{"index/value mismatch", &CSC{Rows: 1, Cols: 1, Start: []int{0, 1}, Index: []int{0}, Value: nil}, nil, nil},
		{"objective length", good, []float64{1}, nil},
		{"infinite objective", good, []float64{1, math.Inf(1)}, nil},
		{"row bound length", good, nil, []float64{1, 2, 3}},
	} {
		if err := m.LoadProblem(tc.a, nil, nil, tc.obj, nil, tc.ru); err == nil {
			t.Errorf("%s: no error", tc.name)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
	if err := m.LoadProblem(good, nil, nil, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.SetColumnBounds([]float64{0}, nil); err == nil {
		t.Error("short column bounds: no error")
	}
	if err := m.SetBasis([]byte{1}); err == nil {
		t.Error("short basis: no error")
	}
}

// TestModelCloseTwice checks Close is idempotent and use after Close panics.
func TestModelCloseTwice(t *testing.T) {
	m := NewModel()
	m.Close()
	m.Close()
	defer func() {
		if recover() == nil {
			t.Error("use after Close did not panic")
		}
	}()
	m.NumRows()
}

// TestModelMemory creates, solves and frees many models, half by Close and
// half through the runtime cleanup; run it under -race or watch RSS to
// check that C memory is released.
func TestModelMemory(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	a := denseCSC(2, 2, []float64{1, 1, 1, 3})
	before := liveModels.Load()
	for i := 0; i < n; i++ {
		m := NewModel()
		if err := m.LoadProblem(a, nil, nil, []float64{-1, -2}, nil, []float64{4, 6}); err != nil {
			t.Fatal(err)
		}
		if st := m.Dual(); st != LPOptimal {
			t.Fatal(st)
		}
		if i%2 == 0 {
			m.Close()
		}
	}
	// The cleanups of the unclosed half run after garbage collection.
	for try := 0; try < 100 && liveModels.Load() > before; try++ {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if n := liveModels.Load() - before; n != 0 {
		t.Errorf("%d C models still alive after GC", n)
	}
}

func TestVersion(t *testing.T) {
	if v := Version(); v == "" {
		t.Error("empty version")
	} else {
		t.Logf("CLP %s", v)
	}
}

// FuzzLoadProblem feeds arbitrary sparse matrices and bounds to
// LoadProblem: malformed ones must return an error (never reach CLP), and
// well-formed ones must load and solve without crashing.
func FuzzLoadProblem(f *testing.F) {
	f.Add(2, 2, []byte{0, 2, 4}, []byte{0, 1, 0, 1}, 1.0, 4.0)
	f.Add(1, 1, []byte{0, 1}, []byte{1}, -1.0, 0.0)
	f.Add(0, 0, []byte{0}, []byte{}, 0.0, 0.0)
	f.Fuzz(func(t *testing.T, rows, cols int, start, index []byte, v, ub float64) {
		if rows > 50 || cols > 50 || len(index) > 500 {
			return
		}
		a := &CSC{Rows: rows, Cols: cols}
		for _, s := range start {
			a.Start = append(a.Start, int(s))
		}
		for i, x := range index {
			a.Index = append(a.Index, int(x)-1)
			a.Value = append(a.Value, v+float64(i))
		}
		m := NewModel()
		defer m.Close()
		var ru []float64
		if rows >= 0 && rows <= 50 {
			ru = make([]float64, rows)
			for i := range ru {
				ru[i] = ub
			}
		}
		if err := m.LoadProblem(a, nil, nil, nil, nil, ru); err != nil {
			return
		}
		if m.NumRows() != rows || m.NumCols() != cols {
			t.Fatalf("loaded %d×%d, want %d×%d", m.NumRows(), m.NumCols(), rows, cols)
		}
		m.SetMaxIterations(1000)
		m.Dual()
	})
}
