package op

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Einsum of any number of operands (torch.einsum as torch.onnx exports it:
// attention scores 'bhqd,bhkd->bhqk', batched products 'bij,bjk->bik',
// bilinear and outer products, transposes, sums over an index, diagonals
// and traces, with or without '...').
//
// Each label of the equation is classified after two simplifications: a
// label of size 1 in an operand is dropped from it (its index is always
// 0; this is also how '...' dimensions broadcast), and a label found in
// one operand only and not in the output is summed over in that operand.
// Every operand is then brought by one linear map P — a 0/1 scatter,
// P(x)[t[i]] += x[i], which takes diagonals (elements off the diagonal
// have no target), sums and permutes at once — into the layout of a
// batched matrix product
//
//	A' = P_a(a): batch × M × K  (or batch × K × M, transposed),
//	B' = P_b(b): batch × K × N  (or batch × N × K),
//	Y' = A' B':  batch × M × N, y = Q(Y') (a permutation),
//
// with batch the labels of a, b and the output, K those of a and b only
// (contracted), M those of a and the output, N those of b and the output.
// Of the two layouts of each operand the one where P is the identity is
// taken (then no copy is made: 'bhqd,bhkd->bhqk' is one GEMM per batch
// element with B transposed, as MatMul with a transposed operand); when
// both would be transposed ('bkq,bdk->bqd') the operands swap roles,
// Y'ᵀ = B'ᵀA'ᵀ with both untransposed, as gonum's GEMM runs both
// transposed several times slower than any other form. The
// product is bilinear and its passes are MatMul's rules through P and Q:
//
//	R{Y'} = R{A'} B' + A' R{B'},        Ā' = Ȳ' B'ᵀ,  B̄' = A'ᵀ Ȳ',
//	R{Ā'} = R{Ȳ'} B'ᵀ + Ȳ' R{B'}ᵀ,      R{B̄'} = A'ᵀ R{Ȳ'} + R{A'}ᵀ Ȳ',
//
// with R{A'} = P_a(R{a}), Ȳ' = Qᵀ(ȳ), ā += P_aᵀ(Ā') and so on (class
// Custom: hand-written bilinear rules, as MatMul's). One operand: y = P(a)
// into the output's layout, class Linear's kernel. Three or more operands
// ('bi,ij,bj->b'): a chain of two-operand Einsums, left to right, run as a
// composite (einsumChain), whose passes follow from the steps'.
//
// An Einsum of an activation and a weight matrix that contracts one of the
// weight's labels with the activation and passes the other to the output
// ('bld,dh->blh', 'bld,hd->blh': a Linear layer written as einsum) is a
// quantizable unit like MatMul (unitEinsum): its output channels are the
// weight's axis of the passed label. Other weights (three-dimensional,
// shared labels such as per-head weights 'bhd,hde->bhe') stay float
// constants outside θ. An Einsum of two activations is an attention
// point as a MatMul of two activations is (model.ActMatMuls, MACs from
// EinsumMACs). Its channel flow blocks (pruning leaves its groups intact).

func init() {
	eq := func(e string) []*Attr { return []*Attr{{Name: "equation", Type: AttrString, String: e}} }
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	Register(&Def{Type: "Einsum", Since: 12, Infer: inferEinsum, Exec: Both(newEinsum[float64], newEinsum[float32]), Class: Custom, Unit: unitEinsum,
		Cases: []Case{
			{Name: "batched matmul", Attrs: eq("bij,bjk->bik"), Inputs: []CaseInput{x(2, 3, 4), x(2, 4, 2)}, Want: []int{2, 3, 2}},
			{Name: "attention scores", Opset: 12, Attrs: eq("bhqd,bhkd->bhqk"), Inputs: []CaseInput{x(1, 2, 3, 2), x(1, 2, 4, 2)}, Want: []int{1, 2, 3, 4}},
			{Name: "attention values, spaces", Opset: 14, Attrs: eq("bhqk, bhkd -> bqhd"), Inputs: []CaseInput{x(1, 2, 3, 4), x(1, 2, 4, 2)}, Want: []int{1, 3, 2, 2}},
			{Name: "bilinear with a weight", Attrs: eq("bi,ij->bj"), Inputs: []CaseInput{x(3, 2), {Shape: []int{2, 3}, Const: []float64{0.5, -1, 2, 0.25, 1.5, -0.75}}}, Want: []int{3, 3}},
			{Name: "outer product", Attrs: eq("i,j->ij"), Inputs: []CaseInput{x(3), x(2)}, Want: []int{3, 2}},
			{Name: "implicit output, own sum", Opset: 21, Attrs: eq("ijk,kl"), Inputs: []CaseInput{x(2, 3, 2), x(2, 3)}, Want: []int{2, 3, 3}},
			{Name: "ellipsis broadcast", Attrs: eq("...ij,...jk->...ik"), Inputs: []CaseInput{x(2, 1, 2, 3), x(3, 3, 2)}, Want: []int{2, 3, 2, 2}},
			{Name: "dot per row", Attrs: eq("bi,bi->b"), Inputs: []CaseInput{x(3, 4), x(3, 4)}, Want: []int{3}},
			{Name: "diagonal product", Attrs: eq("ii,ij->ij"), Inputs: []CaseInput{x(3, 3), x(3, 2)}, Want: []int{3, 2}},
			{Name: "transpose", Attrs: eq("ijk->kij"), Inputs: []CaseInput{x(2, 3, 4)}, Want: []int{4, 2, 3}},
			{Name: "trace", Attrs: eq("ii"), Inputs: []CaseInput{x(3, 3)}, Want: []int{}},
			{Name: "batched diagonal, sum", Attrs: eq("bii->b"), Inputs: []CaseInput{x(2, 3, 3)}, Want: []int{2}},
			{Name: "sum over an index", Attrs: eq("ij->j"), Inputs: []CaseInput{x(3, 2)}, Want: []int{2}},
			{Name: "bilinear form, three operands", Attrs: eq("bi,ij,bj->b"), Inputs: []CaseInput{x(2, 3), x(3, 2), x(2, 2)}, Want: []int{2}},
			{Name: "chain of four, ellipsis", Attrs: eq("...ij,jk,kl,l->...i"), Inputs: []CaseInput{x(2, 2, 3), x(3, 2), {Shape: []int{2, 2}, Const: []float64{1, -0.5, 0.25, 2}}, x(2)}, Want: []int{2, 2}},
		}})
}

// Labels: letters are 0..51, the dimensions '...' stands for 52 and up.
const einsumEllipsis = 52

// einsumEq is a parsed equation with the ellipsis expanded for given
// operand ranks.
type einsumEq struct {
	ins  [][]int // labels of each operand, one per axis
	out  []int   // labels of the output
	size map[int]int
}

// parseEinsum parses equation for operands of the given shapes: terms of
// letters and at most one '...' each, separated by ',', and an optional
// '->' and output term (implicit: the ellipsis, then the letters found
// once, sorted). A label's size is its largest size in the operands; a
// size of 1 broadcasts.
func parseEinsum(n *Node, equation string, shapes [][]int) (*einsumEq, error) {
	bad := func(format string, args ...any) error {
		return AttrError(n, "equation", "%q: %s", equation, fmt.Sprintf(format, args...))
	}
	e := strings.ReplaceAll(equation, " ", "")
	lhs, rhs, explicit := strings.Cut(e, "->")
	terms := strings.Split(lhs, ",")
	if len(terms) != len(shapes) {
		return nil, bad("%d operand terms for %d inputs", len(terms), len(shapes))
	}
	letter := func(r rune) (int, bool) {
		switch {
		case r >= 'a' && r <= 'z':
			return int(r - 'a'), true
		case r >= 'A' && r <= 'Z':
			return int(r-'A') + 26, true
		}
		return 0, false
	}
	// term splits a term into the labels before and after its ellipsis.
	term := func(t string) (pre, post []int, ell bool, err error) {
		a, b, ell := strings.Cut(t, "...")
		if strings.Contains(b, "...") {
			return nil, nil, false, bad("term %q has two ellipses", t)
		}
		for i, part := range []string{a, b} {
			for _, r := range part {
				l, ok := letter(r)
				if !ok {
					return nil, nil, false, bad("term %q: %q is not a letter", t, r)
				}
				if i == 0 {
					pre = append(pre, l)
				} else {
					post = append(post, l)
				}
			}
		}
		return pre, post, ell, nil
	}
	eq := &einsumEq{size: map[int]int{}}
	ellRank := 0
	count := map[int]int{}
	for i, t := range terms {
		pre, post, ell, err := term(t)
		if err != nil {
			return nil, err
		}
		r := len(shapes[i])
		k := len(pre) + len(post)
		if (!ell && k != r) || (ell && k > r) {
			return nil, bad("term %q has %d labels for input %d of shape %v", t, k, i, shapes[i])
		}
		labels := slices.Clone(pre)
		if ell {
			ne := r - k
			ellRank = max(ellRank, ne)
			for j := 0; j < ne; j++ {
				labels = append(labels, -1-(ne-1-j)) // placeholder: -1 is the last ellipsis axis
			}
		}
		labels = append(labels, post...)
		eq.ins = append(eq.ins, labels)
		for _, l := range labels {
			if l >= 0 {
				count[l]++
			}
		}
	}
	// Ellipsis axes are right-aligned: placeholder -1-j is label
	// einsumEllipsis+ellRank-1-j.
	for _, labels := range eq.ins {
		for p, l := range labels {
			if l < 0 {
				labels[p] = einsumEllipsis + ellRank + l
			}
		}
	}
	ellLabels := func() []int {
		var out []int
		for j := 0; j < ellRank; j++ {
			out = append(out, einsumEllipsis+j)
		}
		return out
	}
	if explicit {
		pre, post, ell, err := term(rhs)
		if err != nil {
			return nil, err
		}
		if !ell && ellRank > 0 {
			return nil, bad("the output drops the ellipsis dimensions")
		}
		eq.out = append(slices.Clone(pre), post...)
		if ell {
			eq.out = slices.Concat(pre, ellLabels(), post)
		}
	} else {
		var once []int
		for l, c := range count {
			if c == 1 {
				once = append(once, l)
			}
		}
		// ASCII order: 'A'..'Z' before 'a'..'z'.
		ascii := func(l int) int { return (l + 26) % einsumEllipsis }
		sort.Slice(once, func(i, j int) bool { return ascii(once[i]) < ascii(once[j]) })
		eq.out = append(ellLabels(), once...)
	}
	for i, labels := range eq.ins {
		for p, l := range labels {
			d := shapes[i][p]
			for q := 0; q < p; q++ {
				if labels[q] == l && shapes[i][q] != d {
					return nil, bad("label %s repeats in operand %d with sizes %d and %d", labelName(l), i, shapes[i][q], d)
				}
			}
			switch s, ok := eq.size[l]; {
			case !ok || s == 1:
				eq.size[l] = d
			case d != 1 && d != s:
				return nil, bad("label %s has sizes %d and %d", labelName(l), s, d)
			}
		}
	}
	seen := map[int]bool{}
	for _, l := range eq.out {
		if seen[l] {
			return nil, bad("output label %s repeats", labelName(l))
		}
		seen[l] = true
		if _, ok := eq.size[l]; !ok {
			return nil, bad("output label %s is in no operand", labelName(l))
		}
	}
	return eq, nil
}

// labelName returns a label's letter, or "...k" for ellipsis axis k.
func labelName(l int) string {
	switch {
	case l < 26:
		return string(rune('a' + l))
	case l < einsumEllipsis:
		return string(rune('A' + l - 26))
	}
	return fmt.Sprintf("...%d", l-einsumEllipsis)
}

// einsumEquation returns the equation attribute of an Einsum node.
func einsumEquation(n *Node) (string, error) {
	if _, ok := n.Attrs["equation"]; !ok {
		return "", AttrError(n, "equation", "is required")
	}
	return n.AttrString("equation", "")
}

func inferEinsum(n *Node, s *Shapes) error {
	var shapes [][]int
	for _, in := range n.Inputs {
		d, ok := s.dims(in)
		if !ok {
			return nil
		}
		shapes = append(shapes, d)
	}
	if len(shapes) == 0 {
		return fmt.Errorf("%s: Einsum needs at least one input", n.Label())
	}
	equation, err := einsumEquation(n)
	if err != nil {
		return err
	}
	eq, err := parseEinsum(n, equation, shapes)
	if err != nil {
		return err
	}
	out := make([]int, len(eq.out))
	for i, l := range eq.out {
		out[i] = eq.size[l]
	}
	if len(n.Outputs) > 0 {
		s.Set(n.Outputs[0], out, s.Types[n.Input(0)])
	}
	return nil
}

// scatterMap is the linear map P(x)[t[i]] += x[i] (t[i] < 0: dropped) of an
// operand into a target layout.
type scatterMap[T Real] struct {
	t []int32
	n int // target size
}

// Apply sets dst = P(src[0]).
func (m *scatterMap[T]) Apply(dst []T, src [][]T) {
	clear(dst)
	if x := src[0]; x != nil {
		for i, t := range m.t {
			if t >= 0 {
				dst[t] += x[i]
			}
		}
	}
}

// Transpose adds Pᵀ src into dst[0]: dst[0][i] += src[t[i]].
func (m *scatterMap[T]) Transpose(dst [][]T, src []T) {
	if x := dst[0]; x != nil {
		for i, t := range m.t {
			if t >= 0 {
				x[i] += src[t]
			}
		}
	}
}

// einsumScatter returns the targets of an operand with the given labels
// and shape in the layout of labels target (sizes eq.size): element i goes
// to the target position of its indices, or nowhere when a repeated label
// has two indices (off a diagonal). Labels not in target are summed over.
// identity reports that the map is the identity.
func einsumScatter(labels, shape, target []int, size map[int]int) (t []int32, identity bool) {
	tst := make(map[int]int, len(target))
	tn := 1
	for i := len(target) - 1; i >= 0; i-- {
		tst[target[i]] = tn
		tn *= size[target[i]]
	}
	// Per axis: its stride in the target (0 for a summed or broadcast
	// label, and for a repeat) and, for a repeated label, the axis of its
	// first occurrence, whose index it must equal (-1: none).
	stride, same := make([]int, len(shape)), make([]int, len(shape))
	for p, l := range labels {
		same[p] = -1
		if shape[p] == 1 && size[l] != 1 {
			continue // broadcast: the label is dropped
		}
		for q := 0; q < p; q++ {
			if labels[q] == l && !(shape[q] == 1 && size[l] != 1) {
				same[p] = q
				break
			}
		}
		if same[p] < 0 {
			stride[p] = tst[l]
		}
	}
	t = make([]int32, Numel(shape))
	coord := make([]int, len(shape))
	identity = len(t) == tn
	for i := range t {
		q := 0
		for p, c := range coord {
			if same[p] >= 0 && coord[same[p]] != c {
				q = -1 // off a diagonal
				break
			}
			q += c * stride[p]
		}
		t[i] = int32(q)
		if q != i {
			identity = false
		}
		for d := len(shape) - 1; d >= 0; d-- {
			coord[d]++
			if coord[d] < shape[d] {
				break
			}
			coord[d] = 0
		}
	}
	return t, identity
}

// einsum is the kernel of a two-operand Einsum (see the comment above).
type einsum[T Real] struct {
	a, b, y int
	pa, pb  *scatterMap[T] // nil: the identity
	q       []int32        // y[o] = Y'[q[o]]; nil: the identity
	g       gemm[T]
	batch   int
	// sa, sb, sy are the sizes of A', B' and Y'.
	sa, sb, sy int
}

// Scratch buffers of an einsum's passes.
const (
	esA = iota
	esB
	esRA
	esRB
	esY
	esRY
	esDA
	esDB
)

func newEinsum[T Real](b *Build) (Kernel[T], error) {
	n := b.Node
	if len(b.In) == 0 {
		return nil, fmt.Errorf("no operands")
	}
	if len(b.In) > 2 {
		return compose[T](einsumChain)(b)
	}
	var shapes [][]int
	for i, s := range b.In {
		if s < 0 {
			return nil, errMissing(i)
		}
		shapes = append(shapes, b.Shape(s))
	}
	equation, err := einsumEquation(n)
	if err != nil {
		return nil, err
	}
	eq, err := parseEinsum(n, equation, shapes)
	if err != nil {
		return nil, err
	}
	ys := b.Shape(b.Out[0])
	// The output's layout without its size-1 labels (which no operand
	// indexes).
	var out []int
	for _, l := range eq.out {
		if eq.size[l] != 1 {
			out = append(out, l)
		}
	}
	tn := 1
	for _, l := range out {
		tn *= eq.size[l]
	}
	if tn != Numel(ys) {
		return nil, fmt.Errorf("equation %q gives %d elements, output %v has %d", equation, tn, ys, Numel(ys))
	}
	if len(b.In) == 1 {
		t, _ := einsumScatter(eq.ins[0], shapes[0], out, eq.size)
		return LinearKernel[T](&scatterMap[T]{t: t, n: tn}, b.In[:1], b.Out[0]), nil
	}
	// Labels of each operand after dropping broadcast ones.
	has := func(i, l int) bool {
		if eq.size[l] == 1 {
			return false
		}
		for p, m := range eq.ins[i] {
			if m == l && shapes[i][p] != 1 {
				return true
			}
		}
		return false
	}
	inOut := func(l int) bool { return slices.Contains(out, l) }
	var batch, mm, nn, kk []int
	for _, l := range out {
		switch a, bb := has(0, l), has(1, l); {
		case a && bb:
			batch = append(batch, l)
		case a:
			mm = append(mm, l)
		case bb:
			nn = append(nn, l)
		}
	}
	for _, l := range eq.ins[0] {
		if has(0, l) && has(1, l) && !inOut(l) && !slices.Contains(kk, l) {
			kk = append(kk, l)
		}
	}
	prod := func(ls []int) int {
		p := 1
		for _, l := range ls {
			p *= eq.size[l]
		}
		return p
	}
	cat := func(ls ...[]int) []int { return slices.Concat(ls...) }
	// Operand layouts: the untransposed one unless only the transposed one
	// is the identity.
	layout := func(i int, plain, trans []int, size int) (*scatterMap[T], bool) {
		t, id := einsumScatter(eq.ins[i], shapes[i], plain, eq.size)
		if id {
			return nil, false
		}
		if _, tid := einsumScatter(eq.ins[i], shapes[i], trans, eq.size); tid {
			return nil, true
		}
		return &scatterMap[T]{t: t, n: size}, false
	}
	// setup makes operand ia A and ib B, with M and N the labels of A and
	// of B and the output.
	var k *einsum[T]
	setup := func(ia, ib int, mm, nn []int) {
		k = &einsum[T]{a: b.In[ia], b: b.In[ib], y: b.Out[0], batch: prod(batch)}
		k.g = gemm[T]{a: -1, b: -1, c: -1, y: -1, m: prod(mm), k: prod(kk), n: prod(nn), alpha: 1, beta: 1}
		k.sa, k.sb, k.sy = k.batch*k.g.m*k.g.k, k.batch*k.g.k*k.g.n, k.batch*k.g.m*k.g.n
		k.pa, k.g.ta = layout(ia, cat(batch, mm, kk), cat(batch, kk, mm), k.sa)
		k.pb, k.g.tb = layout(ib, cat(batch, kk, nn), cat(batch, nn, kk), k.sb)
	}
	setup(0, 1, mm, nn)
	if k.g.ta && k.g.tb {
		// Both transposed ('bkq,bdk->bqd'): gonum's GEMM with both operands
		// transposed runs strided axpys, 3–4 times slower than any other
		// form (BenchmarkEinsum), so the operands swap roles, Y'ᵀ = B'ᵀA'ᵀ:
		// both untransposed, and the output reads Y'ᵀ through Q.
		setup(1, 0, nn, mm)
		mm, nn = nn, mm
	}
	// Y' is batch × M × N; q reads it in the output's order.
	if yt, id := einsumScatter(cat(batch, mm, nn), dimsOf(cat(batch, mm, nn), eq.size), out, eq.size); !id {
		k.q = make([]int32, tn)
		for i, o := range yt {
			k.q[o] = int32(i)
		}
	}
	return k, nil
}

// einsumChain expands an Einsum of three or more operands into a chain of
// two-operand Einsums, left to right: step i contracts the result so far
// with operand i and keeps the labels the output or a later operand reads.
// Labels are renamed to letters (the '...' axes included), so each step is
// an ordinary equation.
func einsumChain(b *Build) (*Expansion, error) {
	var shapes [][]int
	for i, s := range b.In {
		if s < 0 {
			return nil, errMissing(i)
		}
		shapes = append(shapes, b.Shape(s))
	}
	equation, err := einsumEquation(b.Node)
	if err != nil {
		return nil, err
	}
	eq, err := parseEinsum(b.Node, equation, shapes)
	if err != nil {
		return nil, err
	}
	letter := map[int]byte{}
	term := func(ls []int) (string, error) {
		t := make([]byte, len(ls))
		for i, l := range ls {
			c, ok := letter[l]
			if !ok {
				if len(letter) == einsumEllipsis {
					return "", fmt.Errorf("equation %q has more than %d labels with its '...' axes", equation, einsumEllipsis)
				}
				c = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[len(letter)]
				letter[l] = c
			}
			t[i] = c
		}
		return string(t), nil
	}
	var nodes []*Node
	cur, curName := eq.ins[0], "$0"
	for i := 1; i < len(eq.ins); i++ {
		next, name := eq.out, "$out"
		if i < len(eq.ins)-1 {
			later := map[int]bool{}
			for _, l := range eq.out {
				later[l] = true
			}
			for _, ls := range eq.ins[i+1:] {
				for _, l := range ls {
					later[l] = true
				}
			}
			next = nil
			for _, l := range slices.Concat(cur, eq.ins[i]) {
				if later[l] && !slices.Contains(next, l) {
					next = append(next, l)
				}
			}
			name = fmt.Sprintf("step%d", i)
		}
		ta, err := term(cur)
		if err != nil {
			return nil, err
		}
		tb, err := term(eq.ins[i])
		if err != nil {
			return nil, err
		}
		ty, err := term(next)
		if err != nil {
			return nil, err
		}
		e := ta + "," + tb + "->" + ty
		nodes = append(nodes, &Node{Op: "Einsum", Inputs: []string{curName, fmt.Sprintf("$%d", i)}, Outputs: []string{name},
			Attrs: map[string]*Attr{"equation": {Name: "equation", Type: AttrString, String: e}}})
		cur, curName = next, name
	}
	return &Expansion{Nodes: nodes}, nil
}

// EinsumMACs returns the multiply-accumulates of Einsum node n on operands
// of the given shapes: the product of the sizes of all its labels (one per
// combination of their indices), the output's elements times the sizes of
// the summed labels.
func EinsumMACs(n *Node, shapes [][]int) (int64, error) {
	equation, err := einsumEquation(n)
	if err != nil {
		return 0, err
	}
	eq, err := parseEinsum(n, equation, shapes)
	if err != nil {
		return 0, err
	}
	macs := int64(1)
	for _, d := range eq.size {
		macs *= int64(d)
	}
	return macs, nil
}

// unitEinsum recognises an Einsum of two operands one of which is a
// floating-point weight matrix with two distinct labels: k, read by the
// other operand and not the output (contracted), and c, in the output and
// not the other operand (the output channels, the weight's ChannelAxis).
// MACs are the output's elements times the size of k. When c is the
// output's last axis, a 1-D constant added to the output is the unit's
// bias (a Linear layer written as einsum plus its bias, BiasFromAdd). Any
// other Einsum has no unit (its constants stay constants).
func unitEinsum(n *Node, g UnitGraph) (*UnitSpec, error) {
	if len(n.Inputs) != 2 || len(n.Outputs) == 0 {
		return nil, nil
	}
	wi, w := weightOperand(n, g)
	if w == nil || len(w.Shape) != 2 || g.FloatConst(n.Input(1-wi)) != nil {
		return nil, nil
	}
	equation, err := einsumEquation(n)
	if err != nil {
		return nil, err
	}
	lhs, out, explicit := strings.Cut(strings.ReplaceAll(equation, " ", ""), "->")
	terms := strings.Split(lhs, ",")
	if !explicit || len(terms) != 2 {
		return nil, nil
	}
	wt, xt := terms[wi], terms[1-wi]
	if len(wt) != 2 || wt[0] == wt[1] || strings.Contains(wt, ".") {
		return nil, nil
	}
	count := func(t string, c byte) int { return strings.Count(t, string(c)) }
	axis := -1
	for i := 0; i < 2; i++ {
		k, c := wt[1-i], wt[i]
		if count(xt, k) == 1 && count(out, k) == 0 && count(xt, c) == 0 && count(out, c) == 1 {
			axis = i
		}
	}
	if axis < 0 {
		return nil, nil
	}
	u := &UnitSpec{WeightInput: wi, DataInput: 1 - wi, BiasInput: -1, Group: 1, OutChannels: w.Shape[axis], ChannelAxis: axis,
		BiasFromAdd: out != "" && out[len(out)-1] == wt[axis]}
	if x, y := g.Dims(n.Input(1-wi)), g.Dims(n.Outputs[0]); x != nil && y != nil {
		u.ShapeKnown = true
		u.MACs = int64(Numel(y)) * int64(w.Shape[1-axis])
		u.InElems, u.OutElems = int64(Numel(x)), int64(Numel(y))
		u.perSample(g.Batch())
	}
	return u, nil
}

// dimsOf returns the sizes of labels.
func dimsOf(labels []int, size map[int]int) []int {
	d := make([]int, len(labels))
	for i, l := range labels {
		d[i] = size[l]
	}
	return d
}

// ScratchSizes are the lengths of A', B', their R-values, Y' (or Ȳ'),
// R{Y'} (or R{Ȳ'}) and the adjoints Ā', B̄'.
func (k *einsum[T]) ScratchSizes() []int {
	return []int{esA: k.sa, esB: k.sb, esRA: k.sa, esRB: k.sb, esY: k.sy, esRY: k.sy, esDA: k.sa, esDB: k.sb}
}

// operand returns P(x) (x itself for the identity) in scratch buffer i; nil
// for a nil x.
func (k *einsum[T]) operand(w *Work[T], p *scatterMap[T], x []T, i int) []T {
	if x == nil || p == nil {
		return x
	}
	buf := w.Scratch(i, p.n)
	p.Apply(buf, [][]T{x})
	return buf
}

// bmm sets (beta 0) or adds (beta 1) y = A'B' per batch element.
func (k *einsum[T]) bmm(a, b, y []T, beta T) {
	g := &k.g
	mk, kn, mn := g.m*g.k, g.k*g.n, g.m*g.n
	for i := 0; i < k.batch; i++ {
		g.prod(a[i*mk:], b[i*kn:], y[i*mn:], beta)
	}
}

// gradA adds G B'ᵀ into da (A's layout); gradB adds A'ᵀ G into db.
func (k *einsum[T]) gradA(da, gy, b []T) {
	g := &k.g
	mk, kn, mn := g.m*g.k, g.k*g.n, g.m*g.n
	for i := 0; i < k.batch; i++ {
		g.gradA(da[i*mk:], gy[i*mn:], b[i*kn:])
	}
}

func (k *einsum[T]) gradB(db, a, gy []T) {
	g := &k.g
	mk, kn, mn := g.m*g.k, g.k*g.n, g.m*g.n
	for i := 0; i < k.batch; i++ {
		g.gradB(db[i*kn:], a[i*mk:], gy[i*mn:])
	}
}

// product returns the buffer Y' is computed in: y itself when Q is the
// identity.
func (k *einsum[T]) product(w *Work[T], y []T, i int) []T {
	if k.q == nil {
		return y
	}
	return w.Scratch(i, k.sy)
}

// finish sets y = Q(Y').
func (k *einsum[T]) finish(y, yp []T) {
	if k.q == nil {
		return
	}
	for o, q := range k.q {
		y[o] = yp[q]
	}
}

// adjoint returns Qᵀ(g) = Ȳ' in scratch buffer i (g itself for the
// identity; nil for nil).
func (k *einsum[T]) adjoint(w *Work[T], g []T, i int) []T {
	if g == nil || k.q == nil {
		return g
	}
	buf := w.Scratch(i, k.sy)
	for o, q := range k.q {
		buf[q] = g[o]
	}
	return buf
}

// accumulate returns the buffer an operand's adjoint (in its product
// layout) is added into: dst itself for the identity, else a cleared
// scratch buffer i that scatter then maps back.
func (k *einsum[T]) accumulate(w *Work[T], p *scatterMap[T], dst []T, i int) []T {
	if p == nil {
		return dst
	}
	buf := w.Scratch(i, p.n)
	clear(buf)
	return buf
}

// scatter adds Pᵀ(buf) into dst when P is not the identity.
func (k *einsum[T]) scatter(p *scatterMap[T], dst, buf []T) {
	if p != nil {
		p.Transpose([][]T{dst}, buf)
	}
}

func (k *einsum[T]) Forward(w *Work[T]) {
	a, b := k.operand(w, k.pa, w.Val[k.a], esA), k.operand(w, k.pb, w.Val[k.b], esB)
	y := w.Val[k.y]
	yp := k.product(w, y, esY)
	k.bmm(a, b, yp, 0)
	k.finish(y, yp)
}

func (k *einsum[T]) RForward(w *Work[T]) {
	ry := w.RV[k.y]
	if ry == nil {
		return
	}
	ra, rb := w.RV[k.a], w.RV[k.b]
	if ra == nil && rb == nil {
		clear(ry)
		return
	}
	yp := k.product(w, ry, esY)
	var beta T
	if ra != nil {
		k.bmm(k.operand(w, k.pa, ra, esRA), k.operand(w, k.pb, w.Val[k.b], esB), yp, 0)
		beta = 1
	}
	if rb != nil {
		k.bmm(k.operand(w, k.pa, w.Val[k.a], esA), k.operand(w, k.pb, rb, esRB), yp, beta)
	}
	k.finish(ry, yp)
}

func (k *einsum[T]) Backward(w *Work[T]) {
	gy := w.Adj[k.y]
	da, db := w.Adj[k.a], w.Adj[k.b]
	if gy == nil || (da == nil && db == nil) {
		return
	}
	g := k.adjoint(w, gy, esY)
	if da != nil {
		acc := k.accumulate(w, k.pa, da, esDA)
		k.gradA(acc, g, k.operand(w, k.pb, w.Val[k.b], esB))
		k.scatter(k.pa, da, acc)
	}
	if db != nil {
		acc := k.accumulate(w, k.pb, db, esDB)
		k.gradB(acc, k.operand(w, k.pa, w.Val[k.a], esA), g)
		k.scatter(k.pb, db, acc)
	}
}

func (k *einsum[T]) RBackward(w *Work[T]) {
	rgy, gy := w.RAdj[k.y], w.Adj[k.y]
	rda, rdb := w.RAdj[k.a], w.RAdj[k.b]
	if rgy == nil || (rda == nil && rdb == nil) {
		return
	}
	rg, g := k.adjoint(w, rgy, esRY), k.adjoint(w, gy, esY)
	ra, rb := w.RV[k.a], w.RV[k.b]
	if rda != nil {
		acc := k.accumulate(w, k.pa, rda, esDA)
		k.gradA(acc, rg, k.operand(w, k.pb, w.Val[k.b], esB))
		if rb != nil && g != nil {
			k.gradA(acc, g, k.operand(w, k.pb, rb, esRB))
		}
		k.scatter(k.pa, rda, acc)
	}
	if rdb != nil {
		acc := k.accumulate(w, k.pb, rdb, esDB)
		k.gradB(acc, k.operand(w, k.pa, w.Val[k.a], esA), rg)
		if ra != nil && g != nil {
			k.gradB(acc, k.operand(w, k.pa, ra, esRA), g)
		}
		k.scatter(k.pb, rdb, acc)
	}
}

// Retains: see retainsBilinear.
func (k *einsum[T]) Retains() Retains { return retainsBilinear }
