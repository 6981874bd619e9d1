// Package hessian defines the symmetric-operator interface through which
// bitplan reaches a network's Hessian, and the matrix-free estimators built
// on it:
//
//   - Hutchinson: per-block traces from shared Rademacher (or Gaussian,
//     sphere) probes with standard errors, confidence intervals corrected
//     for the run's skewness (Hall's transformation of Student's t), adaptive
//     stopping on the standard error, parallel and reproducible probes,
//     progress reports and per-probe samples for the bootstrap (Hutchinson
//     1990; Avron and Toledo 2011).
//   - Mini-batch probes (Settings.ProbeBatch): for an operator that is a
//     mean over samples (Sampled), every probe on its own random
//     mini-batch (BatchSchedule), unbiased for the full-data trace; and a
//     wall-time budget (Settings.TimeBudget) with an ETA in Progress.
//   - Auto: a pilot of Hutchinson probes and a sketch that choose between
//     Hutchinson and adaptive Hutch++ (exact low-rank term, adaptive
//     residual on fresh probes and mini-batches), and then per block.
//   - HutchPP, NAHutchPP and XTrace: variance-reduced trace estimators for
//     operators with a few dominant eigenvalues (Meyer, Musco, Musco and
//     Woodruff 2021; Epperly, Tropp and Webber 2024), with per-block
//     variants that cost no extra products.
//   - Lanczos (full reorthogonalisation) and PowerIteration (PyHessian's
//     deflated power method, as a baseline) for extreme eigenvalues.
//   - Density: spectral density by stochastic Lanczos quadrature (Lin, Saad
//     and Yang 2016; Ghorbani, Krishnan and Xiao 2019).
//   - Exact and ExactDiagonal: ground truth from unit vectors.
//
// An Operator exposes only Hessian-vector products (HVPs); the estimators
// count their cost in HVPs ("matvecs"). Dense wraps an explicit matrix and
// Count counts products, for tests and benchmarks; Sub restricts an
// operator to one block, Restrict to the union of its blocks (H_WW: probes
// zero off the blocks, e.g. on a network's biases, and a total trace that
// is the blocks').
//
// Errors: a malformed operator (zero dimension, overlapping, unsorted or
// out-of-range blocks, failing or non-finite products), invalid settings
// and a cancelled context are reported as error values naming the field
// or value at fault, never as panics or silent NaNs.
package hessian
