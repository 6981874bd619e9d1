package modeltest

// GroupNorm builds the graph of scripts/make_groupnorm_reference.py at
// opset 18 (GroupNormalization's scale and bias per group) or 21 (per
// channel) from the tensors of testdata/models/groupnorm_ref.npz, which
// get returns by name (shape and values): x N×2×4×4 → Conv 3×3 (pads 1) →
// GroupNormalization (2 groups, epsilon 1e-5) → Tanh → Flatten → Gemm
// (transB) → y. The initializers are float64 when double, else float32.
func GroupNorm(opset int64, double bool, get func(name string) ([]int, []float64)) *Builder {
	b := New("groupnorm", opset)
	b.Input("x", -1, 2, 4, 4)
	add := func(name, from string) {
		shape, v := get(from)
		if double {
			b.Double(name, shape, v)
		} else {
			b.Float(name, shape, v)
		}
	}
	for _, n := range []string{"conv.weight", "conv.bias", "fc.weight", "fc.bias"} {
		add(n, n)
	}
	gn := "gn21"
	if opset < 21 {
		gn = "gn18"
	}
	add("scale", gn+".scale")
	add("bias", gn+".bias")
	b.Node("Conv", "conv", []string{"x", "conv.weight", "conv.bias"}, []string{"a"}, Ints("pads", 1, 1, 1, 1))
	b.Node("GroupNormalization", "gn", []string{"a", "scale", "bias"}, []string{"g"}, Int("num_groups", 2), Float32("epsilon", 1e-5))
	b.Node("Tanh", "", []string{"g"}, []string{"t"})
	b.Node("Flatten", "", []string{"t"}, []string{"f"})
	b.Node("Gemm", "fc", []string{"f", "fc.weight", "fc.bias"}, []string{"y"}, Int("transB", 1))
	b.Output("y")
	return b
}
