// Package prune plans and applies structured (channel) pruning of ONNX
// models with Hessian-aware importances, and plans pruning and weight bit
// widths jointly.
//
// The pipeline:
//
//   - Analyze follows every unit's output channels through the graph and
//     returns the channel groups: channels that must be removed together
//     (a residual Add ties the units feeding it), with every tensor that
//     shrinks with them (BatchNormalization vectors, the next layer's input
//     weights, the block of Gemm inputs a Flatten makes of a channel).
//     Whatever it does not model leaves the group intact and is reported.
//   - Estimate computes every channel's Hessian trace Tr(H_cc) with
//     Hutchinson's estimator over the engine's per-channel operator, with
//     standard errors, and HAP's importance Tr(H_cc)/n_c·‖W_c‖² (Yu et al.,
//     "Hessian-Aware Pruning and Optimal Neural Implant", arXiv:2101.08940).
//   - Solve chooses how many channels every group keeps: exactly by the
//     multiple-choice knapsack ILP of package ilp over keep ratios (and
//     bit widths in joint mode), or by the baselines (HAP's global
//     threshold, L1 magnitude). Parameter, FLOP and latency costs of a
//     layer depend on its own keep ratio and on its input's: the ILP prices
//     them with a separable linearisation, and the plan is verified with
//     the exact counts and repaired (see Solve).
//   - Apply writes the pruned ONNX model; FineTune recovers accuracy with
//     a short SGD run and WriteWeights stores the trained weights.
//
// Costs count the units (Conv, Gemm, MatMul): params are their weights and
// biases, FLOPs are 2·MACs per sample; BatchNormalization vectors and
// element-wise operators are not counted.
package prune
