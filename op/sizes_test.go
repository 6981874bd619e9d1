package op

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"
)

// Sizes computed from tensor values (Range's count, ConstantOfShape's,
// Tile's, Expand's, Reshape's, Pad's, Resize's and Slice's shapes) come
// from data a file controls: a NaN, an infinity or a huge value must be an
// error naming the node, never a panic or an absurd allocation.

// rangeNode is a Range node named "r".
func rangeNode() *Node {
	return &Node{Op: "Range", Name: "r", Inputs: []string{"s", "l", "d"}, Outputs: []string{"y"}}
}

// TestRangeBadOperands checks that Range refuses a zero, NaN or infinite
// operand and a count beyond MaxElems with an error naming the node and
// its start, limit and delta (a NaN limit made an element count of
// int(NaN) and panicked in makeslice; FuzzGraph found it).
func TestRangeBadOperands(t *testing.T) {
	f := func(v float64) *Tensor { return &Tensor{Type: Float, Shape: []int{}, Float: []float64{v}} }
	i := func(v int64) *Tensor { return &Tensor{Type: Int64, Shape: []int{}, Int: []int64{v}} }
	nan, inf := math.NaN(), math.Inf(1)
	for _, c := range []struct {
		name string
		ins  []*Tensor
		want string
	}{
		{"NaN limit", []*Tensor{f(0), f(nan), f(-1)}, "start 0 to limit NaN by delta -1: NaN operand"},
		{"NaN start", []*Tensor{f(nan), f(1), f(1)}, "NaN operand"},
		{"NaN delta", []*Tensor{f(0), f(1), f(nan)}, "NaN operand"},
		{"infinite limit", []*Tensor{f(0), f(inf), f(1)}, "limit +Inf by delta 1: infinite operand"},
		{"infinite start", []*Tensor{f(-inf), f(0), f(1)}, "infinite operand"},
		{"infinite delta", []*Tensor{f(0), f(1), f(inf)}, "infinite operand"},
		{"zero delta", []*Tensor{f(0), f(1), f(0)}, "delta is 0"},
		{"huge float count", []*Tensor{f(0), f(1e30), f(1)}, "1e+30 elements, more than 2147483648"},
		{"overflowing float count", []*Tensor{f(-1e308), f(1e308), f(1e-10)}, "+Inf elements"},
		{"huge int count", []*Tensor{i(0), i(1 << 40), i(1)}, "1.099511627776e+12 elements"},
		{"int count beyond int64", []*Tensor{i(math.MinInt64), i(math.MaxInt64), i(1)}, "+Inf elements"},
	} {
		_, err := Fold(rangeNode(), 17, c.ins, nil)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), `Range node "r"`) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want one naming the node and %q", c.name, err, c.want)
		}
	}
}

// TestRangeIntegerCount checks integer Range counts, ⌈(limit − start)/delta⌉
// or 0, against math/big for operands near the ends of int64, where the
// float64 quotient is off by one or limit − start overflows, and the
// elements against start + k·delta.
func TestRangeIntegerCount(t *testing.T) {
	i := func(v int64) *Tensor { return &Tensor{Type: Int64, Shape: []int{}, Int: []int64{v}} }
	const big62 = 1 << 62
	for _, c := range [][3]int64{
		{0, 7, 3}, {7, 0, -3}, {0, 7, -3}, {7, 0, 3}, {0, 0, 1}, {-5, 5, 5}, {5, -5, -5},
		{0, big62 + 1, big62},                             // float64: (2^62+1)/2^62 rounds to 1
		{math.MaxInt64 - 5, math.MaxInt64, 2},             // 3 elements at the top of int64
		{math.MinInt64, math.MaxInt64, math.MaxInt64},     // limit − start overflows int64
		{math.MaxInt64, math.MinInt64, math.MinInt64 + 1}, // and downward
		{math.MinInt64 + 3, math.MinInt64, -1},
	} {
		s, l, d := big.NewInt(c[0]), big.NewInt(c[1]), big.NewInt(c[2])
		// ⌈(l − s)/d⌉ = −⌊(s − l)/d⌋ with floor division (big's Div is Euclidean, so work with |d|).
		num := new(big.Int).Sub(l, s)
		den := new(big.Int).Set(d)
		if den.Sign() < 0 {
			num.Neg(num)
			den.Neg(den)
		}
		want := new(big.Int).Neg(new(big.Int).Div(new(big.Int).Neg(num), den)).Int64() // Div floors for den > 0
		want = max(want, 0)
		outs, err := Fold(rangeNode(), 17, []*Tensor{i(c[0]), i(c[1]), i(c[2])}, nil)
		if err != nil {
			t.Errorf("range %v: %v", c, err)
			continue
		}
		y := outs[0]
		if len(y.Int) != int(want) {
			t.Errorf("range %v: %d elements, want %d", c, len(y.Int), want)
			continue
		}
		for k, v := range y.Int {
			if v != c[0]+int64(k)*c[2] {
				t.Errorf("range %v: element %d is %d", c, k, v)
			}
		}
	}
}

// TestSizesFromValuesBounded folds operators whose output shape comes from
// an operand's values with values that overflow int or ask for more than
// MaxDim or MaxElems: each is an error naming the node, before anything
// is allocated (Tile's 3·2⁶² wrapped to a negative length and panicked in
// makeslice; a pad of MaxInt64 on both sides wrapped to −2 and looked like
// a valid shape).
func TestSizesFromValuesBounded(t *testing.T) {
	ints := func(shape []int, v ...int64) *Tensor { return &Tensor{Type: Int64, Shape: shape, Int: v} }
	floats := func(shape []int, v ...float64) *Tensor { return &Tensor{Type: Float, Shape: shape, Float: v} }
	x := floats([]int{3}, 1, 2, 3)
	for k, c := range []struct {
		op   string
		ins  []*Tensor
		want string
	}{
		{"Tile", []*Tensor{x, ints([]int{1}, 1<<62)}, "repeats [4611686018427387904]"},
		{"Tile", []*Tensor{ints([]int{3}, 1, 2, 3), ints([]int{1}, 1<<40)}, "repeats [1099511627776]: 1099511627776 on axis 0 of input [3]"},
		{"Tile", []*Tensor{floats([]int{1, 1}, 1), ints([]int{2}, 1<<20, 1<<20)}, "output \"y\" has shape [1048576 1048576]: more than 2147483648 elements"},
		{"Pad", []*Tensor{x, ints([]int{2}, math.MaxInt64, math.MaxInt64)}, "exceed ±2147483648"},
		{"Pad", []*Tensor{x, ints([]int{2}, math.MinInt64, -1)}, "exceed ±2147483648"},
		{"Pad", []*Tensor{x, ints([]int{2}, 1<<40, 0)}, "pads [1099511627776], [0] on axis 0 exceed"},
		{"Pad", []*Tensor{floats([]int{1, 1}, 1), ints([]int{4}, 1<<30, 1<<30, 0, 0)}, "output \"y\" has shape [1073741825 1073741825]: more than"},
		{"Resize", []*Tensor{x, nil, floats([]int{1}, 1e30)}, "scale 1e+30 makes axis 0 of length 3 3.0000000000000003e+30 long"},
		{"Resize", []*Tensor{x, nil, nil, ints([]int{1}, 1<<40)}, "sizes [1099511627776]: axis 0 is 1099511627776, want 1..2147483648"},
		{"ConstantOfShape", []*Tensor{ints([]int{2}, 1<<30, 1<<30)}, "more than 2147483648 elements"},
		{"ConstantOfShape", []*Tensor{ints([]int{1}, -1)}, "shape value 0 is -1"},
		{"Expand", []*Tensor{x, ints([]int{2}, 1<<40, 3)}, "shape value 0 is 1099511627776"},
		{"Reshape", []*Tensor{x, ints([]int{2}, 1<<40, -1)}, "invalid dimension 1099511627776"},
		{"Reshape", []*Tensor{x, ints([]int{3}, 1<<30, 1<<30, -1)}, "is too large"},
	} {
		n := &Node{Op: c.op, Name: "big", Outputs: []string{"y"}, Index: k}
		for i, in := range c.ins {
			name := ""
			if in != nil {
				name = fmt.Sprintf("in%d", i)
			}
			n.Inputs = append(n.Inputs, name)
		}
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			_, err = Fold(n, 18, c.ins, nil)
		}()
		if err == nil || IsNotFoldable(err) || !strings.Contains(err.Error(), c.op+` node "big"`) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d (%s): error %v, want one naming the node and %q", k, c.op, err, c.want)
		}
	}
	// Shape inference alone (the input too large to fold): 2³¹ × 2³³
	// repeats wrapped to a dimension of 0.
	n := &Node{Op: "Tile", Name: "big", Inputs: []string{"x", "r"}, Outputs: []string{"y"}}
	s := &Shapes{Dims: map[string][]int{"x": {1 << 31}, "r": {1}}, Types: map[string]DataType{"x": Float, "r": Int64},
		Ints: map[string][]int64{"r": {1 << 33}}, Values: map[string]*Tensor{}}
	if err := inferTile(n, s); err == nil || !strings.Contains(err.Error(), "repeats [8589934592]") {
		t.Errorf("Tile of 2³¹ by 2³³: err %v, shape %v", err, s.Dims["y"])
	}
}

// TestSliceHugeSteps checks Slice with steps far longer than the axis
// (up to ±MaxInt64, where e − s + step − 1 overflowed and gave no element)
// against the elements Python's x[s:e:step] takes.
func TestSliceHugeSteps(t *testing.T) {
	x := &Tensor{Type: Float, Shape: []int{5}, Float: []float64{10, 11, 12, 13, 14}}
	i1 := func(v int64) *Tensor { return &Tensor{Type: Int64, Shape: []int{1}, Int: []int64{v}} }
	for _, c := range []struct {
		start, end, step int64
		want             []float64
	}{
		{0, 5, math.MaxInt64, []float64{10}},
		{2, 5, math.MaxInt64, []float64{12}},
		{5, 5, math.MaxInt64, nil},
		{0, math.MaxInt64, 1 << 40, []float64{10}},
		{-1, math.MinInt64, math.MinInt64, []float64{14}},
		{-1, math.MinInt64, -math.MaxInt64, []float64{14}},
		{3, 0, math.MinInt64, []float64{13}},
		{0, 3, math.MinInt64, nil},
		{4, 0, -4, []float64{14}},
		{4, -6, -4, []float64{14, 10}},
		{0, 5, 4, []float64{10, 14}},
	} {
		n := &Node{Op: "Slice", Name: "s", Inputs: []string{"x", "b", "e", "a", "st"}, Outputs: []string{"y"}}
		outs, err := Fold(n, 18, []*Tensor{x, i1(c.start), i1(c.end), i1(0), i1(c.step)}, nil)
		if err != nil {
			t.Errorf("x[%d:%d:%d]: %v", c.start, c.end, c.step, err)
			continue
		}
		if got := outs[0].Float; !slices.Equal(got, c.want) && len(got)+len(c.want) > 0 {
			t.Errorf("x[%d:%d:%d] = %v, want %v", c.start, c.end, c.step, got, c.want)
		}
	}
}
