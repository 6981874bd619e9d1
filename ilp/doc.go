// Package ilp models and solves bitplan's bit-allocation problem: a
// multiple-choice knapsack with several resource rows (groups × choices ×
// rows), solved exactly by a branch-and-bound written for its structure, with
// a certificate (bound, gap, shadow prices) and an explanation of infeasible
// budgets. It also writes the problem as MPS and CPLEX LP files for external
// solvers.
package ilp
