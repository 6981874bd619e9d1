// Package op is the operator registry: one record (Def) per ONNX operator
// of the default domain, which every other package reads instead of keeping
// its own table.
//
//	package model   Def.Infer   shape and type inference, folding of shape arithmetic
//	                Def.Eval    constant evaluation of an operator without a kernel
//	                            (Fold: Infer's integer values, else Eval, else the
//	                            operator's own kernel, run once on the constants)
//	                Def.Unit    does the node own a quantizable weight (params, MACs);
//	                Def.Units   for a node owning several (an LSTM's W and R)
//	package nn      Def.Exec    the kernel: forward, R-forward, backward, R-backward
//	                Def.Fold    runs only on values folded before execution
//	package prune   Def.Channels how channels pass through (structured pruning)
//	conformance     Def.Cases   small problems every record must carry
//
// The package also defines the graph's node and tensor types (Node, Attr,
// Tensor, DataType, Shapes, Window), because the records are written over
// them; package model decodes ONNX files into these types and re-exports
// them under its own names. Data flows one way: op ← model ← nn, prune.
//
// # Derivative rules by class
//
// The engine computes exact Hessian-vector products by forward-over-reverse
// differentiation (Pearlmutter 1994; JAX computes H·v the same way, as the
// JVP of the gradient). Every kernel provides the four passes
//
//	forward:   y = f(x)                   R-forward:  R{y} = J R{x}
//	backward:  x̄ += Jᵀ ȳ                  R-backward: R{x̄} += Jᵀ R{ȳ} + (R{J})ᵀ ȳ
//
// but most operators do not write them: the passes follow from the class
// (Def.Class), as JAX derives reverse mode from a primitive's JVP and
// transpose rules:
//
//   - Linear: the operator gives a LinearMap (Apply and Transpose, plus
//     Offset when affine); R{y} = L R{x}, x̄ += Lᵀ ȳ, R{x̄} += Lᵀ R{ȳ}
//     (views, Transpose, Concat, BatchNormalization, average pooling,
//     Resize, Sum and Mean of any number of inputs, ReduceMean and
//     ReduceSum, the layout operators of layout.go: DepthToSpace,
//     SpaceToDepth, Trilu, CumSum, GatherElements, ScatterND and
//     ScatterElements for fixed indices, read when the kernel runs if they
//     are computed: scatter.go; GatherND, a pick with a scatter-add
//     transpose, gathernd.go; OneHot, linear in its values, onehot.go; TopK,
//     the values routed to the picks its forward pass records, as
//     ReduceMax's, topk.go).
//   - Elementwise: unary operators give f, f′, f″ (UnaryFns); binary
//     broadcasting operators give f with its first and second partials
//     (BinaryFns). The second-order term f″ R{x} ȳ is then never forgotten.
//   - Composite: the operator gives an Expansion over registered primitives
//     (Compose); LayerNormalization is ReduceMean, Sub, Mul, Add, Sqrt and
//     Div, so its R-forward and R-backward follow from theirs; so are
//     GroupNormalization, InstanceNormalization and
//     MeanVarianceNormalization, over the same standardization
//     (groupnorm.go).
//   - Bilinear and Custom: hand-written four-method kernels remain where a
//     derived rule would be much slower — Conv, ConvTranspose and
//     Gemm/MatMul (one im2col and one BLAS call per product), Einsum (MatMul's
//     rules through the maps into a batched GEMM layout, see einsum.go),
//     Softmax (closed form), MaxPool,
//     ReduceMax and ReduceMin and the variadic Max and Min (the argmax
//     routing of the forward pass, linear for fixed picks; one kernel for
//     any number of inputs, see variadic.go and reduce.go), ReduceProd,
//     ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum and ReduceLogSumExp
//     (one walk over each slice; as composites ReduceProd would divide by
//     x and ReduceL2 give NaN at zero, see reduce.go; GlobalMaxPool and
//     GlobalLpPool are the same kernels over the spatial axes), LSTM, GRU and RNN (one BLAS call
//     over all steps for every product that does not wait for the previous
//     step; their unrolled composite is the tests' reference); each says
//     why in its comment.
//
// # Precision
//
// Kernels are written once over Real (float32 | float64): Work[T],
// Kernel[T], LinearMap[T]. A Def's Exec carries both instantiations of
// its constructor, Both(newX[float64], newX[float32]); the engine builds
// the one of its precision (NewKernel), and package nn folds constants in
// float64. Elementwise functions (UnaryFns, BinaryFns) stay float64 and
// are called on converted elements. Every matrix product goes through
// Gemm (gonum's BLAS, or the system OpenBLAS with -tags openblas).
//
// # Adding an operator
//
// Add one file (or one entry in the family file: elementwise.go for f, f′,
// f″ operators, binary.go for broadcasting ones) that registers a Def in an
// init function:
//
//	func init() {
//		Register(&Def{Type: "Softsign", Infer: InferSame, Class: Elementwise,
//			Exec: Unary(fixed(UnaryFns{F: …, D1: …, D2: …})),
//			Channels: FlowPass, Cases: unaryCase(-2, 2)})
//	}
//
// (a kernel of its own is a generic type, e.g. type myOp[T Real] struct,
// registered with Exec: Both(newMyOp[float64], newMyOp[float32])) and
// give it Cases. Nothing else needs to change: model infers its
// shapes, nn runs it, prune knows its channel flow, and TestConformance
// checks it — shape inference against Case.Want, and, for an executable
// operator, the gradient against central finite differences, H·v against
// finite differences of the gradient and uᵀHv = vᵀHu. A record without
// cases, or an executable differentiable one whose cases have no
// differentiable input, fails the test; TestFloat32MatchesFloat64 checks
// the float32 instantiation against the float64 one on the same cases.
package op
