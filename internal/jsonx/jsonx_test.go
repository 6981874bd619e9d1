package jsonx

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// scanAll reads one value and the end of input through a reader that
// returns one byte at a time (every token crosses a refill).
func scanAll(data []byte) error {
	s := NewScanner(context.Background(), iotest.OneByteReader(bytes.NewReader(data)), 0)
	if err := s.Skip(); err != nil {
		return err
	}
	return s.End()
}

func TestScannerAgreesWithValid(t *testing.T) {
	for _, in := range []string{`{}`, `[]`, `{"a": [1, -2.5e+3, true, false, null, "x\"y\u00e9"]}`, ` 0 `, `-0.0E-0`,
		`{"a":}`, `[1,]`, `01`, `1.`, `-`, `"\x"`, "\"a\nb\"", `{"a" 1}`, `[1 2]`, `tru`, `nul`, `{"a": 1} x`, `"`, ``, `1e`, `{,}`} {
		err := scanAll([]byte(in))
		if (err == nil) != json.Valid([]byte(in)) {
			t.Errorf("%q: scanner error %v, json.Valid %v", in, err, json.Valid([]byte(in)))
		}
	}
	err := scanAll([]byte("{\n  \"a\": 1,\n  \"b\" 2}"))
	if err == nil || err.Error() != `malformed JSON at line 3, column 7: invalid character '2' after object key` {
		t.Errorf("error = %v", err)
	}
	if err := scanAll([]byte(strings.Repeat("[", MaxDepth+1))); err == nil || !strings.Contains(err.Error(), "max depth") {
		t.Errorf("deep nesting: %v", err)
	}
}

func FuzzScanner(f *testing.F) {
	f.Add([]byte(`{"a": [1, -2.5e+3, true, null, "x\"y"]}`))
	f.Add([]byte(`[1,]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := scanAll(data); (err == nil) != json.Valid(data) {
			t.Fatalf("%q: scanner error %v, json.Valid %v", data, err, json.Valid(data))
		}
	})
}

func TestDuplicates(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"a": 1, "a": 2}`, `duplicate key "a" in the top-level object at line 1, column 10`},
		{"{\"x\": [{\"b\": 1},\n {\"b\": {\"c\": 1, \"c\": 2}}]}", `duplicate key "c" in x[1].b at line 2, column 17`},
		{`{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}`, ""},
	}
	for _, c := range cases {
		err := Duplicates([]byte(c.in))
		if c.want == "" && err != nil || c.want != "" && (err == nil || err.Error() != c.want) {
			t.Errorf("Duplicates(%s) = %v, want %q", c.in, err, c.want)
		}
	}
}

// TestDuplicatesMalformed: malformed input ends the check quietly (it
// looped for ever inside an array).
func TestDuplicatesMalformed(t *testing.T) {
	for _, in := range []string{`{"layers": [{"name":""x", "latency_ms : {"w4a4": 1}}], "layers": []}`, `[1, x]`, `{"a": [{"b": }]}`, `[[[`} {
		if err := Duplicates([]byte(in)); err != nil {
			t.Errorf("Duplicates(%s) = %v", in, err)
		}
	}
}

// AppendFloat writes what encoding/json writes, integers (the fast path)
// and fractions, at every magnitude and both signs.
func TestAppendFloatAgreesWithMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 58868, 1 << 53, 1<<53 - 1, -(1<<53 - 1), 1 << 60, 1e20, 1e21, 123456789012345678,
		0.5, 29279.25, 1e-6, 9.99e-7, 1e-7, 0.0018361238709790914, math.MaxFloat64, math.SmallestNonzeroFloat64, 4503599627370497}
	for i := 0; i < 20000; i++ {
		x := math.Exp(rng.NormFloat64()*20) * float64(1-2*rng.IntN(2))
		vals = append(vals, x, math.Round(x), math.Trunc(x*1e3)/1e3)
	}
	for _, v := range vals {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendFloat(nil, v); !bytes.Equal(got, want) {
			t.Fatalf("AppendFloat(%v) = %s, encoding/json %s", v, got, want)
		}
	}
}
