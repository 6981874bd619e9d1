package op

import (
	"math"
	"math/big"
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
