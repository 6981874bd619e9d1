// Package sensitivity holds bitplan's per-layer sensitivity data: the
// sensitivity table (Hessian traces and quantization errors per candidate
// precision, the input of `bitplan solve`), the quantizers that price the
// errors, and the sensitivity criteria. The default objective is HAWQ-V3's
//
//	Ω_i(b) = (Tr(H_i)/n_i) · ‖Q_b(W_i) − W_i‖²₂
//
// (Dong et al., HAWQ-V2, arXiv:1911.03852; Yao et al., HAWQ-V3,
// arXiv:2011.10680). A table may instead carry per-candidate scores of
// another Criterion (Layer.Scores, JSON "omega"): the diagonal-Hessian
// Σ diag(H)·ΔW², the exact second-order term ΔWᵀHΔW (+ Δaᵀ·H_a·Δa) along
// the candidate's own errors, ModelOpt's output-space Fisher score, the first-order
// |∇L·ΔW|, ‖ΔW‖² alone, or the measured loss increase. Every criterion
// feeds the same ILP through Layer.Omega; their papers and costs are listed
// at the constants, and docs/validation.md compares them.
package sensitivity
