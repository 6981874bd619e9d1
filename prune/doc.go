// Package prune plans and applies structured pruning of ONNX models —
// convolution channels, attention heads, FFN rows and the hidden units of
// LSTM, GRU and RNN layers — with Hessian-aware
// importances, and plans pruning and weight bit widths jointly. Plans are
// package plan's Plan (with Pruning filled), budgets package plan's Budget
// in package budget's vocabulary.
//
// The pipeline:
//
//   - Analyze follows every unit's output channels through the graph and
//     returns the channel groups: channels that must be removed together
//     (a residual Add, or a Sum, Max, Min or Mean of several, ties the
//     units feeding it), with every tensor that
//     shrinks with them (BatchNormalization vectors, the next layer's input
//     weights, the block of Gemm inputs a Flatten makes of a channel).
//     A reduction (ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceL2,
//     …) over axes without the channel axis passes the channels through
//     as a global pooling does (torch's x.mean(dim=(2, 3)); with keepdims
//     0 the channel axis moves down by the reduced axes before it; axes
//     as attribute or, from opset 18 and ReduceSum's 13, input; an empty
//     set with noop_with_empty_axes is an identity). Over the channel
//     axis a sum-like reduction (ReduceSum, ReduceL1, ReduceL2,
//     ReduceSumSquare, ReduceLogSum: a removed channel adds nothing)
//     consumes the channels; any other — a LayerNorm's ReduceMean over
//     the features, whose divisor counts the channels, a ReduceMax or
//     ReduceMin, where a removed channel's zero may be the extreme —
//     would change its output, so the group is left intact and reported
//     (rewriting the mean's divisor is not done).
//     A grouped convolution (Conv or ConvTranspose with G groups, not
//     depthwise; a depthwise one passes the channels through) keeps its
//     group attribute: its output and input channels are removed group by
//     group, every group keeping the same number (Group.Directions = G,
//     as a bidirectional layer's directions below). A Conv's output
//     channel is its weight's row (M×C/G×kernel) and its input channel
//     j of group d is column j of group d's rows; a ConvTranspose's
//     (C×M/G×kernel) input channel is its row and its output channel j of
//     group d column j of group d's rows. Channels split into groups
//     differently elsewhere (two group counts, a group count and a
//     bidirectional layer's directions) are left intact.
//     Whatever it does not model leaves the group intact and is reported.
//     In transformers (MLPruning's structures, Lagunas et al. / Yao et al.
//     arXiv:2105.14636) it follows the feature axis of MatMuls on
//     sequences: an FFN row is column j of the first projection (and its
//     bias) with row j of the second; an attention head is found where a
//     Reshape splits q, k and v into heads × head size — the group's
//     channel h is then the block of head-size columns of q, k and v, the
//     heads stay on a batch axis through Transpose, Softmax and the
//     activation products Q·Kᵀ and P·V, and the Reshape that merges them
//     back makes head h the block of rows of the output projection. The
//     Reshape shape constants are rewritten (each Reshape gets its own).
//     Where q, k and v come from one fused MatMul split by Slice or Split
//     (torch's chunk(3)), the projection's columns are partitioned: head h
//     is its block of head-size columns in each third, and the Slice
//     bounds (or Split sizes) become constants for the heads kept. Where
//     the export computes the Reshape shapes and Slice bounds at run time
//     (Shape → Gather → Concat chains, as the zoo's tiny_vit and tiny_bert
//     do), they are replaced by constants that hold for every batch size
//     (0 copies the batch and sequence dimensions) and the dead shape
//     arithmetic is dropped; a Shape of a pruned tensor whose value
//     reaches anything else leaves its group intact (reported). torch's
//     nn.MultiheadAttention export (torchvision's vit_b_16), which merges
//     the heads with the batch ([T, B·H, dh], back to [T·B, E]), gets
//     constants with −1 for the merged entry; each rewritten shape is
//     checked against shape inference at a second batch size.
//     An LSTM, GRU or RNN's hidden unit k is row g·H + k of every gate
//     block g of W, R and B, column k of R and entry k of the initial
//     states and outputs (Analyze); its HAP block is its rows of W, B and
//     R (package nn's OutputChannelIndices). Zero initial states that the
//     export builds at run time (ConstantOfShape) are dropped: absent
//     means zero. The directions of a bidirectional layer have their own
//     rows of W, R and B and their own hidden state, so they are pruned
//     each on its own: the group has 2·H channels (Group.Directions = 2),
//     channel d·H + k being unit k of direction d with its own HAP
//     statistics, and since the node has one hidden_size both directions
//     keep the same number n of units, each its n most important (the
//     ILP's choices keep 2·n channels and rank every direction by its own
//     scores; HAP's threshold removes one unit of each direction at a
//     time). Direction d's kept units become its units 0..n−1 of the
//     pruned node; torch's merge of the directions ([T, N, 2, H] reshaped
//     to [T, N, 2·H]) makes unit k of direction d the consumer's input
//     d·H + k, so the consumer's columns follow. Where the directions'
//     outputs meet an operator modelled only for tied directions (a
//     Gather of one direction, as torch's h_n[-1], a Slice, a Concat, a
//     constant varying along the units) the analysis is repeated with
//     that layer's directions tied: unit k is then one channel of both
//     (inputs k and H + k of the consumer after the merge).
//   - Estimate computes every output channel's Hessian trace Tr(H_cc) with
//     Hutchinson's estimator over the engine's per-channel operator, with
//     standard errors, and HAP's importance Tr(H_cc)/n_c·‖W_c‖² (Yu et al.,
//     "Hessian-Aware Pruning and Optimal Neural Implant", arXiv:2101.08940).
//     A head's block is the union of its columns, so its trace is their
//     sum: Tr(H_hh)/n_h·‖W_h‖² comes from the same probes.
//   - Solve chooses how many channels every group keeps: exactly by the
//     multiple-choice knapsack ILP of package ilp over keep ratios (and
//     bit widths in joint mode), or by the baselines (HAP's global
//     threshold, one uniform ratio with HAP's or the L1 ranking).
//     Parameter, FLOP and latency costs of a
//     layer depend on its own keep ratio and on its input's: the ILP prices
//     them with a separable linearisation, and the plan is verified with
//     the exact counts and repaired (see Solve).
//   - Apply writes the pruned ONNX model; FineTune recovers accuracy with
//     a short SGD run and WriteWeights stores the trained weights.
//
// Costs count the units (Conv, ConvTranspose, Gemm, MatMul, a recurrent
// node's W and R): params are their weights and biases, FLOPs are 2·MACs
// per sample (a recurrent node's over its sequence length); R reads the
// hidden units it produces, so its D·gates·k² params and T·D·gates·k² MACs
// are quadratic in the k units kept and are counted so exactly; BatchNormalization vectors and
// element-wise operators are not counted. FLOPs also count attention's
// activation × activation MatMuls (model.Model.ActMatMuls: Q·Kᵀ and P·V),
// whose MACs scale with the heads kept of the head group their output
// carries, and are fixed when it carries none (or the group is not
// prunable); bops and latency count the units only.
package prune
