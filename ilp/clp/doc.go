// Package clp binds COIN-OR CLP, the open-source simplex LP solver, through
// its C interface (coin/Clp_C_Interface.h), and builds on it Solver, a
// branch-and-bound engine for bitplan's multiple-choice bit-allocation
// problem (ilp.Problem) whose LP relaxations are solved by CLP.
//
// Everything except this file needs cgo, the CLP development files (Debian
// package coinor-libclp-dev, pkg-config name "clp") and the build tag clp:
//
//	go test -tags clp ./ilp/clp/
//
// Without the tag the package is empty, so default builds stay pure Go.
//
// # Binding
//
// Model wraps one ClpSimplex. Go slices are copied into C memory before every
// call, so C never retains a Go pointer; the C model is freed by Model.Close
// (idempotent) or, as a safety net, by a runtime cleanup when the Model
// becomes unreachable. A Model is not safe for concurrent use: use one Model
// per goroutine (distinct Models may be used from different goroutines at
// the same time).
//
// # Engine
//
// Solver implements ilp.Solver. It solves the LP relaxation of the
// multiple-choice formulation
//
//	minimise   Σ_{g,c} v_{g,c} x_{g,c}
//	subject to Σ_c x_{g,c} = 1                       for every group g,
//	           Σ_{g,c} a_{k,g,c} x_{g,c} ≤ b_k          for every finite row k,
//	           0 ≤ x_{g,c} ≤ 1,
//
// by CLP's dual simplex and branches on generalised upper bound (GUB/SOS1)
// dichotomies of a fractional group, best-first, warm-starting every node
// from its parent's basis. Node bounds are Lagrangian bounds recomputed in
// Go from CLP's duals (Sinha–Zoltners 1979 for the LP of the multiple-choice
// knapsack; the safe-bound idea of Neumaier–Shcherbina 2004), so the proven
// bound does not depend on CLP's tolerances, and the same duals fix choices
// by reduced cost. Solver is safe for concurrent use: every Solve builds its
// own Model.
package clp
