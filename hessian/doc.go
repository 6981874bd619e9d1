// Package hessian defines the symmetric-operator interface through which
// bitplan reaches a network's Hessian, and the randomized estimators built on
// it: Hutchinson trace estimation per block (Hutchinson 1990; Avron and Toledo
// 2011), the variance-reduced Hutch++ and NA-Hutch++ (Meyer, Musco, Musco and
// Woodruff 2021) and XTrace (Epperly, Tropp and Webber 2024), top-k
// eigenvalues by Lanczos with full reorthogonalisation, and spectral density
// by stochastic Lanczos quadrature (Lin, Saad and Yang 2016; Ghorbani,
// Krishnan and Xiao 2019), plus an exact unit-vector mode for small blocks.
//
// An Operator exposes only Hessian-vector products (HVPs); all estimators are
// matrix-free and count their cost in HVPs ("matvecs").
//
// Errors: a malformed operator (zero dimension, overlapping or out-of-range
// blocks, wrongly sized outputs, non-finite products) and a cancelled context
// are reported as error values, never as panics or silent NaNs.
package hessian
