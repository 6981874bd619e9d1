// Package nn is an inference engine for imported ONNX graphs, in float32
// or float64 (Options.Precision; Auto takes float32 for models of at least
// 2^20 parameters), with reverse-mode gradients and exact Hessian-vector
// products of a loss (Options.Loss: class labels by default, per-position
// labels, MSE, KL to the model's own predictions) with respect to the
// parameters θ of the quantizable units (the weight and bias initializers
// of every Conv, Gemm and MatMul, and the embedding tables read by Gather,
// in node order, weight before bias).
//
// # Inputs
//
// A graph may have several inputs (Engine.Inputs), fed from a
// data.Inputs dataset in graph order; integer inputs (token ids, attention
// masks) hold exact integers (up to 2^24 in float32, 2^53 in float64) and
// carry no derivative: the mask's arithmetic (Cast, Sub, Mul, Where) runs
// on them as on any tensor that does not depend on θ, and a Gather of a
// weight table by computed ids is a lookup, linear in the table (its
// indices are checked after the forward pass: an id outside the table is
// an error naming the node). ScatterElements and ScatterND with computed
// indices are linear in their data and updates in the same way, their
// indices checked after the forward pass too.
//
// # Hessian-vector products
//
// H·v is computed by Pearlmutter's R-operator, "Fast exact multiplication by
// the Hessian", Neural Computation 6(1), 1994, in its forward-over-reverse
// form: with R{f} = d/dr f(θ + r v) at r = 0,
//
//	forward:   y = f(x_1, …, x_k)            R-forward:  R{y} = Σ_i J_i R{x_i}
//	backward:  x̄_i += J_iᵀ ȳ                 R-backward: R{x̄_i} += J_iᵀ R{ȳ} + (R{J_i})ᵀ ȳ
//
// seeded with R{θ} = v and, at the loss, ȳ = ∂L/∂z and R{ȳ} = ∇²_z L · R{z}.
// At the parameters, θ̄ = ∇L and R{θ̄} = H v exactly (no finite differences).
// One pass forward carries (value, R-value), one pass backward carries
// (adjoint, R-adjoint); a product costs about twice a gradient, and products
// with several vectors share the value/adjoint passes (HVPBatch).
//
// The kernels and their derivative rules come from the operator registry,
// package op: most operators give only their class's defining functions
// (a linear map and its transpose; f, f′, f″; partials of a binary
// elementwise f) and the four passes follow; Conv, Gemm/MatMul, Softmax and
// MaxPool keep hand-written passes for speed. The rules by class:
//
//	linear ops y = L x (Add/Sub, Flatten, Reshape, pools, BatchNorm, ...):
//	    R{y} = L R{x},  x̄ += Lᵀ ȳ,  R{x̄} += Lᵀ R{ȳ}
//	bilinear ops y = B(a, b) (Conv, Gemm, MatMul, Mul):
//	    R{y} = B(R{a}, b) + B(a, R{b})
//	    ā += B_aᵀ(ȳ, b),            R{ā} += B_aᵀ(R{ȳ}, b) + B_aᵀ(ȳ, R{b})
//	    b̄ += B_bᵀ(a, ȳ),            R{b̄} += B_bᵀ(a, R{ȳ}) + B_bᵀ(R{a}, ȳ)
//	elementwise y = f(x): R{y} = f'(x) R{x},  x̄ += f'(x) ȳ,
//	    R{x̄} += f'(x) R{ȳ} + f''(x) R{x} ȳ   (f'' = 0 for ReLU, Clip)
//	softmax p = softmax(z): R{p} = p ⊙ (R{z} − ⟨p, R{z}⟩)
//	cross-entropy L = (1/N) Σ_n lse(z_n) − z_n[y_n]:
//	    ∂L/∂z_n = (p_n − e_{y_n})/N,  R{∂L/∂z_n} = p_n ⊙ (R{z_n} − ⟨p_n, R{z_n}⟩)/N
//
// # Precision
//
// The kernels of package op are generic over float32 and float64. In
// float32 the engine keeps a float32 copy of θ (its float64 values stay
// the model's initializers, not copied, until θ is changed), converts the
// directions (parameter by parameter, where a step reads them), inputs
// and the loss's inputs at the boundary, accumulates each chunk's
// gradient or products in float32 and adds the chunks in float64: θ,
// probes, products and losses are float64 at the hessian.Operator
// boundary whatever the precision, so the estimators do not change. The
// loss itself is evaluated in float64 on the converted logits. float64 is
// the reference for tests (TestPyTorchReference runs both).
//
// # Execution
//
// A dataset is split into chunks of Options.BatchSize samples (the last may
// be smaller). Chunks run in parallel on Options.Workers goroutines and their
// partial sums are added in chunk order, so results do not depend on the
// number of workers or on scheduling. Memory is bounded by the chunk size
// and worker count: data are read chunk by chunk from the data.Dataset.
// Convolutions use im2col; every matrix product goes through op.Gemm
// (gonum's native BLAS, or the system OpenBLAS with -tags openblas).
//
// # Memory
//
// A chunk's activations have values, R-values, adjoints and R-adjoints,
// but not all at once: from the order of the passes and what each
// kernel's derivative passes read (op.Retains: a linear map reads no
// values, an op whose gradient needs its output does not keep its input)
// the plan computes when every buffer is first and last used, and a work
// area takes buffers from a pool of equal-length buffers just before
// their first use and gives them back right after their last
// (liveness.go). WorkBytes, and the batch size and workers chosen from
// Options.Memory, count what that pool holds at its peak, not the sum of
// all buffers. A product with one direction runs the backward pass
// fused into the R-backward pass, so that adjoints do not live across the
// R-forward pass; with several directions the backward pass is shared
// and the adjoints the R-backward pass reads are kept. On the BERT-base
// encoder of bench/engine_vs_torch.sh (float32) a 4-sample work area
// holds 1.04 GB of buffers for one direction and 1.51 GB for several,
// where keeping every buffer took 5.0 GB (3.9 GB with the R-adjoints
// shared, as the engine did before). Results are bit for bit those of
// keeping every buffer (TestRecyclingKeepsResults).
//
// The derivatives with respect to θ are not gathered in a θ-sized vector
// per worker either: a chunk accumulates each parameter's in a vector
// taken at its first accumulation in the backward (R-backward) pass and
// handed over right after its last, and a parameter's hand-overs are
// added into the float64 result in chunk order, whichever chunk finishes
// first (TestAccumChunkOrder, TestWorkersKeepResults).
//
// Shape arithmetic (Shape → Gather → Unsqueeze → Concat → Reshape, as
// PyTorch exports it, and constants expanded to the batch) is folded by
// package model for each batch size (model.Shapes.Values); subgraphs over
// constants are evaluated once when a plan is built.
//
// # Static check
//
// Check (run first by New) specialises the graph to batch 1 and reports
// every operator and construct the engine cannot run, all at once, naming
// the nodes and the supported operators: an *UnsupportedError, before any
// long computation.
package nn
