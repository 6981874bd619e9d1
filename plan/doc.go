// Package plan is bitplan's planning API: it turns a sensitivity table, cost
// resources and budgets into an ILP (one group per layer, tied layers merged,
// one row per budget; a candidate is dropped when a wider one has the same Ω
// and no higher cost in any budgeted row, since a weight-only Ω cannot see
// activation error), solves it, and returns a Plan — per-layer precision,
// Ω, costs, the optimality certificate and uniform-precision baselines —
// that round-trips through JSON and renders as text, Markdown or CSV
// reports. With Request.Verify the plan is measured against its K next-best
// ILP plans and the widest uniform plan that fits, on held-out data, and the
// best measured is returned, with Ω corrected where the measurement
// overrules it (Verification).
//
// A table layer need not own weights: layers of kind "attention" (an
// activation × activation MatMul, Q·Kᵀ or P·V, both inputs at the chosen
// width; "16" is float) and "nonlinear" (a block's GELU, Softmax or
// LayerNorm, integer-only as I-BERT computes them at "8" or float at
// "16", priced per element by profiles.Profile.NonlinearCost) carry
// measured Ω and no parameters (eval.AddAttention, eval.AddNonlinear);
// the ILP treats them like any other group.
package plan
