//go:build clp

package clp

/*
#cgo pkg-config: clp
#include <stdlib.h>
#include <coin/Clp_C_Interface.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// liveModels counts C models not yet freed (for the memory tests).
var liveModels atomic.Int64

// LPStatus is CLP's primary problem status (ClpModel::status).
type LPStatus int

const (
	// LPOptimal means the LP was solved to optimality (CLP status 0).
	LPOptimal LPStatus = 0
	// LPPrimalInfeasible means no point satisfies the constraints (1).
	LPPrimalInfeasible LPStatus = 1
	// LPDualInfeasible means the LP is unbounded (2).
	LPDualInfeasible LPStatus = 2
	// LPStopped means an iteration or time limit stopped the solve (3).
	LPStopped LPStatus = 3
	// LPError means CLP stopped on numerical or other errors (4).
	LPError LPStatus = 4
)

// String returns a short name of the status.
func (s LPStatus) String() string {
	switch s {
	case LPOptimal:
		return "optimal"
	case LPPrimalInfeasible:
		return "primal infeasible"
	case LPDualInfeasible:
		return "dual infeasible"
	case LPStopped:
		return "stopped on limit"
	case LPError:
		return "stopped on errors"
	}
	return fmt.Sprintf("status %d", int(s))
}

// Inf is +Inf, CLP's infinite bound (math.Inf(1); ±Inf bounds are passed
// to CLP as ±DBL_MAX).
var Inf = math.Inf(1)

// Version returns the version string of the linked CLP library.
func Version() string { return C.GoString(C.Clp_Version()) }

// CSC is a sparse matrix in compressed sparse column form: the entries of
// column j are Value[Start[j]:Start[j+1]] in rows Index[Start[j]:Start[j+1]].
type CSC struct {
	// Rows and Cols are the matrix dimensions.
	Rows, Cols int
	// Start has Cols+1 non-decreasing offsets into Index and Value, with
	// Start[0] = 0 and Start[Cols] = len(Index).
	Start []int
	// Index holds the row index (0 ≤ i < Rows) of every entry.
	Index []int
	// Value holds the value of every entry; it must be finite.
	Value []float64
}

// Validate reports the first structural error of a, naming the field and
// value at fault.
func (a *CSC) Validate() error {
	if a.Rows < 0 || a.Cols < 0 {
		return fmt.Errorf("clp: matrix dimensions %d×%d: want non-negative", a.Rows, a.Cols)
	}
	if a.Rows > math.MaxInt32 || a.Cols > math.MaxInt32 || len(a.Index) > math.MaxInt32 {
		return fmt.Errorf("clp: matrix %d×%d with %d entries: too large for CLP's 32-bit indices", a.Rows, a.Cols, len(a.Index))
	}
	if len(a.Start) != a.Cols+1 {
		return fmt.Errorf("clp: matrix Start has length %d: want Cols+1 = %d", len(a.Start), a.Cols+1)
	}
	if len(a.Index) != len(a.Value) {
		return fmt.Errorf("clp: matrix Index has length %d but Value %d: want equal", len(a.Index), len(a.Value))
	}
	if a.Start[0] != 0 || a.Start[a.Cols] != len(a.Index) {
		return fmt.Errorf("clp: matrix Start[0] = %d, Start[%d] = %d: want 0 and len(Index) = %d", a.Start[0], a.Cols, a.Start[a.Cols], len(a.Index))
	}
	for j := 0; j < a.Cols; j++ {
		if a.Start[j+1] < a.Start[j] {
			return fmt.Errorf("clp: matrix Start[%d] = %d < Start[%d] = %d: want non-decreasing", j+1, a.Start[j+1], j, a.Start[j])
		}
	}
	for e, i := range a.Index {
		if i < 0 || i >= a.Rows {
			return fmt.Errorf("clp: matrix Index[%d] = %d: want a row in [0, %d)", e, i, a.Rows)
		}
		if v := a.Value[e]; math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("clp: matrix Value[%d] = %v: want a finite number", e, v)
		}
	}
	return nil
}

// Model is one CLP simplex model (ClpSimplex). Create it with NewModel and
// release its C memory with Close; a runtime cleanup frees it too if the
// Model becomes unreachable, but relying on that keeps C memory alive for an
// unpredictable time.
//
// A Model is not safe for concurrent use; use one Model per goroutine.
// Calling any method other than Close after Close panics.
type Model struct {
	p       unsafe.Pointer
	cleanup runtime.Cleanup
	rows    int
	cols    int
}

// NewModel returns an empty model with CLP's log output switched off.
func NewModel() *Model {
	p := C.Clp_newModel()
	if p == nil {
		panic("clp: Clp_newModel returned NULL")
	}
	C.Clp_setLogLevel(p, 0)
	liveModels.Add(1)
	m := &Model{p: p}
	m.cleanup = runtime.AddCleanup(m, func(p unsafe.Pointer) {
		C.Clp_deleteModel(p)
		liveModels.Add(-1)
	}, p)
	return m
}

// Close frees the C model. It is safe to call Close more than once.
func (m *Model) Close() {
	if m.p == nil {
		return
	}
	m.cleanup.Stop()
	C.Clp_deleteModel(m.p)
	liveModels.Add(-1)
	m.p = nil
}

// ptr returns the C model, panicking after Close.
func (m *Model) ptr() unsafe.Pointer {
	if m.p == nil {
		panic("clp: use of closed Model")
	}
	return m.p
}

// cDoubles copies s into C memory; free the result with C.free. A nil or
// empty s gives NULL, which CLP reads as "use the default".
func cDoubles(s []float64) *C.double {
	if len(s) == 0 {
		return nil
	}
	p := (*C.double)(C.malloc(C.size_t(len(s)) * C.size_t(unsafe.Sizeof(C.double(0)))))
	copy(unsafe.Slice(p, len(s)), unsafe.Slice((*C.double)(unsafe.Pointer(&s[0])), len(s)))
	return p
}

// cBounds is cDoubles for bounds: ±Inf becomes ±DBL_MAX, CLP's infinity.
func cBounds(s []float64) *C.double {
	p := cDoubles(s)
	if p != nil {
		d := unsafe.Slice(p, len(s))
		for i, v := range s {
			if math.IsInf(v, 0) {
				d[i] = C.double(math.Copysign(math.MaxFloat64, v))
			}
		}
	}
	return p
}

// cInts copies s into C int memory; free the result with C.free.
func cInts(s []int) *C.int {
	n := max(len(s), 1)
	p := (*C.int)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(C.int(0)))))
	d := unsafe.Slice(p, n)
	for i, v := range s {
		d[i] = C.int(v)
	}
	return p
}

// cFree frees C memory from cDoubles or cInts; nil is a no-op.
func cFree[T any](p *T) {
	if p != nil {
		C.free(unsafe.Pointer(p))
	}
}

// goDoubles copies n doubles from C memory; a NULL p gives nil.
func goDoubles(p *C.double, n int) []float64 {
	if p == nil || n == 0 {
		return nil
	}
	out := make([]float64, n)
	for i, v := range unsafe.Slice(p, n) {
		out[i] = float64(v)
	}
	return out
}

// checkLen returns an error unless s is nil or has length n.
func checkLen(name string, s []float64, n int) error {
	if s != nil && len(s) != n {
		return fmt.Errorf("clp: %s has length %d: want %d", name, len(s), n)
	}
	for i, v := range s {
		if math.IsNaN(v) {
			return fmt.Errorf("clp: %s[%d] is NaN", name, i)
		}
	}
	return nil
}

// LoadProblem replaces the model's problem by
//
//	minimise obj·x  subject to  rowLower ≤ A x ≤ rowUpper,  colLower ≤ x ≤ colUpper
//
// (Clp_loadProblem). Infinite bounds are ±Inf. A nil slice takes CLP's
// default: colLower 0, colUpper +Inf, obj 0, rowLower −Inf, rowUpper +Inf.
// Non-nil slices must have length a.Cols (column data) or a.Rows (row data).
// All data are copied; the previous basis is discarded.
func (m *Model) LoadProblem(a *CSC, colLower, colUpper, obj, rowLower, rowUpper []float64) error {
	p := m.ptr()
	defer runtime.KeepAlive(m)
	if err := a.Validate(); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		s    []float64
		n    int
	}{{"colLower", colLower, a.Cols}, {"colUpper", colUpper, a.Cols}, {"obj", obj, a.Cols}, {"rowLower", rowLower, a.Rows}, {"rowUpper", rowUpper, a.Rows}} {
		if err := checkLen(c.name, c.s, c.n); err != nil {
			return err
		}
	}
	for j, v := range obj {
		if math.IsInf(v, 0) {
			return fmt.Errorf("clp: obj[%d] = %v: want a finite number", j, v)
		}
	}
	start, index, value := cInts(a.Start), cInts(a.Index), cDoubles(a.Value)
	cl, cu, ob, rl, ru := cBounds(colLower), cBounds(colUpper), cDoubles(obj), cBounds(rowLower), cBounds(rowUpper)
	defer func() {
		cFree(start)
		cFree(index)
		cFree(value)
		cFree(cl)
		cFree(cu)
		cFree(ob)
		cFree(rl)
		cFree(ru)
	}()
	C.Clp_loadProblem(p, C.int(a.Cols), C.int(a.Rows), (*C.CoinBigIndex)(unsafe.Pointer(start)), index, value, cl, cu, ob, rl, ru)
	m.rows, m.cols = a.Rows, a.Cols
	return nil
}

// NumRows returns the number of rows of the loaded problem.
func (m *Model) NumRows() int {
	defer runtime.KeepAlive(m)
	return int(C.Clp_numberRows(m.ptr()))
}

// NumCols returns the number of columns of the loaded problem.
func (m *Model) NumCols() int {
	defer runtime.KeepAlive(m)
	return int(C.Clp_numberColumns(m.ptr()))
}

// SetColumnBounds replaces the lower and upper bounds of every column
// (Clp_chgColumnLower, Clp_chgColumnUpper); a nil slice leaves that side
// unchanged. The basis is kept, so a following Dual warm-starts from it.
func (m *Model) SetColumnBounds(lower, upper []float64) error {
	p := m.ptr()
	defer runtime.KeepAlive(m)
	if err := checkLen("column lower bounds", lower, m.cols); err != nil {
		return err
	}
	if err := checkLen("column upper bounds", upper, m.cols); err != nil {
		return err
	}
	if lower != nil {
		c := cBounds(lower)
		C.Clp_chgColumnLower(p, c)
		cFree(c)
	}
	if upper != nil {
		c := cBounds(upper)
		C.Clp_chgColumnUpper(p, c)
		cFree(c)
	}
	return nil
}

// SetRowBounds replaces the lower and upper bounds of every row
// (Clp_chgRowLower, Clp_chgRowUpper); a nil slice leaves that side
// unchanged. The basis is kept.
func (m *Model) SetRowBounds(lower, upper []float64) error {
	p := m.ptr()
	defer runtime.KeepAlive(m)
	if err := checkLen("row lower bounds", lower, m.rows); err != nil {
		return err
	}
	if err := checkLen("row upper bounds", upper, m.rows); err != nil {
		return err
	}
	if lower != nil {
		c := cBounds(lower)
		C.Clp_chgRowLower(p, c)
		cFree(c)
	}
	if upper != nil {
		c := cBounds(upper)
		C.Clp_chgRowUpper(p, c)
		cFree(c)
	}
	return nil
}

// SetObjective replaces the objective coefficients (Clp_chgObjCoefficients).
func (m *Model) SetObjective(obj []float64) error {
	p := m.ptr()
	defer runtime.KeepAlive(m)
	if obj == nil || len(obj) != m.cols {
		return fmt.Errorf("clp: objective has length %d: want %d", len(obj), m.cols)
	}
	if err := checkLen("objective", obj, m.cols); err != nil {
		return err
	}
	c := cDoubles(obj)
	C.Clp_chgObjCoefficients(p, c)
	cFree(c)
	return nil
}

// ColumnLower returns a copy of the column lower bounds.
func (m *Model) ColumnLower() []float64 {
	defer runtime.KeepAlive(m)
	return goDoubles(C.Clp_columnLower(m.ptr()), m.cols)
}

// ColumnUpper returns a copy of the column upper bounds.
func (m *Model) ColumnUpper() []float64 {
	defer runtime.KeepAlive(m)
	return goDoubles(C.Clp_columnUpper(m.ptr()), m.cols)
}

// SetLogLevel sets CLP's log level: 0 (the default of NewModel) is silent,
// 1 prints a summary, higher levels more.
func (m *Model) SetLogLevel(level int) {
	defer runtime.KeepAlive(m)
	C.Clp_setLogLevel(m.ptr(), C.int(level))
}

// SetMaxSeconds limits later solves to sec seconds of CPU time counted from
// this call (Clp_setMaximumSeconds); a negative sec removes the limit.
func (m *Model) SetMaxSeconds(sec float64) {
	defer runtime.KeepAlive(m)
	C.Clp_setMaximumSeconds(m.ptr(), C.double(sec))
}

// SetMaxIterations limits every later solve to n simplex iterations
// (Clp_setMaximumIterations).
func (m *Model) SetMaxIterations(n int) {
	defer runtime.KeepAlive(m)
	n = min(max(n, 0), math.MaxInt32)
	C.Clp_setMaximumIterations(m.ptr(), C.int(n))
}

// SetPrimalTolerance sets the primal feasibility tolerance (CLP's default
// is 1e-7).
func (m *Model) SetPrimalTolerance(tol float64) {
	defer runtime.KeepAlive(m)
	C.Clp_setPrimalTolerance(m.ptr(), C.double(tol))
}

// SetDualTolerance sets the dual feasibility tolerance (CLP's default is
// 1e-7).
func (m *Model) SetDualTolerance(tol float64) {
	defer runtime.KeepAlive(m)
	C.Clp_setDualTolerance(m.ptr(), C.double(tol))
}

// Dual runs the dual simplex method (Clp_dual) from the current basis, or
// from a slack basis when there is none, and returns the status. After
// bound changes this is the warm start of branch-and-bound: the previous
// basis stays dual feasible and usually needs few pivots.
func (m *Model) Dual() LPStatus {
	defer runtime.KeepAlive(m)
	return LPStatus(C.Clp_dual(m.ptr(), 0))
}

// Primal runs the primal simplex method (Clp_primal) from the current basis
// and returns the status.
func (m *Model) Primal() LPStatus {
	defer runtime.KeepAlive(m)
	return LPStatus(C.Clp_primal(m.ptr(), 0))
}

// InitialSolve solves from scratch with CLP's default strategy, presolve
// included (Clp_initialSolve), and returns the status.
func (m *Model) InitialSolve() LPStatus {
	defer runtime.KeepAlive(m)
	return LPStatus(C.Clp_initialSolve(m.ptr()))
}

// Status returns the status of the last solve (Clp_status).
func (m *Model) Status() LPStatus {
	defer runtime.KeepAlive(m)
	return LPStatus(C.Clp_status(m.ptr()))
}

// SecondaryStatus returns CLP's secondary status (Clp_secondaryStatus):
// 0 none, 1 primal infeasible because the dual limit was reached, 2–4 the
// scaled problem is optimal but the unscaled one has primal (2), dual (3) or
// both (4) infeasibilities, higher values as documented in ClpModel.hpp.
func (m *Model) SecondaryStatus() int {
	defer runtime.KeepAlive(m)
	return int(C.Clp_secondaryStatus(m.ptr()))
}

// Iterations returns the simplex iterations of the last solve.
func (m *Model) Iterations() int {
	defer runtime.KeepAlive(m)
	return int(C.Clp_numberIterations(m.ptr()))
}

// Objective returns the objective value of the current solution.
func (m *Model) Objective() float64 {
	defer runtime.KeepAlive(m)
	return float64(C.Clp_objectiveValue(m.ptr()))
}

// ColSolution returns a copy of the primal column values x.
func (m *Model) ColSolution() []float64 {
	defer runtime.KeepAlive(m)
	return goDoubles(C.Clp_getColSolution(m.ptr()), m.cols)
}

// RowActivity returns a copy of the row activities A x.
func (m *Model) RowActivity() []float64 {
	defer runtime.KeepAlive(m)
	return goDoubles(C.Clp_getRowActivity(m.ptr()), m.rows)
}

// RowPrice returns a copy of the row duals y (Clp_getRowPrice): the rate of
// change of the optimal objective per unit increase of a binding row bound.
// When minimising, a binding ≤ row has y ≤ 0 and a binding ≥ row y ≥ 0.
func (m *Model) RowPrice() []float64 {
	defer runtime.KeepAlive(m)
	return goDoubles(C.Clp_getRowPrice(m.ptr()), m.rows)
}

// ReducedCost returns a copy of the reduced costs d = c − Aᵀy.
func (m *Model) ReducedCost() []float64 {
	defer runtime.KeepAlive(m)
	return goDoubles(C.Clp_getReducedCost(m.ptr()), m.cols)
}

// Basis returns a copy of the basis status of every column then every row
// (Clp_statusArray, one byte each: 0 free, 1 basic, 2 at upper, 3 at lower,
// 4 superbasic, 5 fixed in the low three bits), or nil if there is none.
func (m *Model) Basis() []byte {
	p := m.ptr()
	defer runtime.KeepAlive(m)
	if C.Clp_statusExists(p) == 0 {
		return nil
	}
	s := C.Clp_statusArray(p)
	if s == nil {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(s), C.int(m.rows+m.cols))
}

// errBasisLength is returned by SetBasis for a basis of the wrong size.
var errBasisLength = errors.New("clp: basis length does not match the model")

// SetBasis installs a basis returned by Basis on a model of the same shape
// (Clp_copyinStatus); nil removes the basis, so the next solve starts cold.
func (m *Model) SetBasis(b []byte) error {
	p := m.ptr()
	defer runtime.KeepAlive(m)
	if b == nil {
		C.Clp_copyinStatus(p, nil)
		return nil
	}
	if len(b) != m.rows+m.cols {
		return fmt.Errorf("%w: got %d bytes, want rows+cols = %d", errBasisLength, len(b), m.rows+m.cols)
	}
	c := (*C.uchar)(C.CBytes(b))
	C.Clp_copyinStatus(p, c)
	C.free(unsafe.Pointer(c))
	return nil
}
