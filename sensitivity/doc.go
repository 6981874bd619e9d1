// Package sensitivity holds bitplan's per-layer sensitivity data: the
// sensitivity table (Hessian traces and quantization errors per candidate
// precision, the input of `bitplan solve`) and the HAWQ-V3 objective
//
//	Ω_i(b) = (Tr(H_i)/n_i) · ‖Q_b(W_i) − W_i‖²₂
//
// (Dong et al., HAWQ-V2, arXiv:1911.03852; Yao et al., HAWQ-V3,
// arXiv:2011.10680).
package sensitivity
