package profiles

import (
	"fmt"
	"strconv"
	"strings"
)

// Precision is a (weight bits, activation bits) pair, written "w4a8".
// Names with 16 or 32 bits denote the device's floating-point formats
// (w16a16 = FP16, w32a32 = FP32), narrower ones integer formats; a profile
// may say otherwise per precision (PrecisionSpec.Format).
type Precision struct {
	// W is the weight width in bits.
	W int
	// A is the activation width in bits.
	A int
}

// Common candidate precisions, in the order reports list them.
var (
	W4A4   = Precision{4, 4}
	W4A8   = Precision{4, 8}
	W8A8   = Precision{8, 8}
	W16A16 = Precision{16, 16}
	W32A32 = Precision{32, 32}
)

// CommonPrecisions lists the precisions that profile descriptions report
// fallbacks for: w4a4, w4a8, w8a8, w16a16, w32a32.
func CommonPrecisions() []Precision {
	return []Precision{W4A4, W4A8, W8A8, W16A16, W32A32}
}

// maxBits bounds the widths ParsePrecision accepts.
const maxBits = 64

// String returns the canonical name, e.g. "w4a8".
func (p Precision) String() string {
	return "w" + strconv.Itoa(p.W) + "a" + strconv.Itoa(p.A)
}

// Valid reports whether both widths are in 1..64.
func (p Precision) Valid() bool {
	return p.W >= 1 && p.W <= maxBits && p.A >= 1 && p.A <= maxBits
}

// Holds reports whether p can carry every value of q: p.W ≥ q.W and
// p.A ≥ q.A.
func (p Precision) Holds(q Precision) bool { return p.W >= q.W && p.A >= q.A }

// less orders precisions by total width, then weight width: the order in
// which fallbacks are tried and descriptions list precisions.
func (p Precision) less(q Precision) bool {
	if p.W+p.A != q.W+q.A {
		return p.W+p.A < q.W+q.A
	}
	return p.W < q.W
}

// ParsePrecision parses a precision name. Accepted forms (case-insensitive):
//
//	w4a8     weights 4 bits, activations 8 bits
//	8        the same width for weights and activations (the key form of
//	         the sensitivity table's latency_ms and delta_sq)
//	int8     the same, as integer
//	fp16     w16a16, fp32 → w32a32
//
// Widths must be in 1..64. The error names the value and the accepted forms.
func ParsePrecision(s string) (Precision, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	bad := func(why string) (Precision, error) {
		return Precision{}, fmt.Errorf("precision %q: %s; want wNaM (e.g. \"w4a8\"), a bit width (\"8\"), intN, fp16 or fp32", s, why)
	}
	width := func(d string) (int, bool) {
		if d == "" || len(d) > 2 {
			return 0, false
		}
		for _, r := range d {
			if r < '0' || r > '9' {
				return 0, false
			}
		}
		n, _ := strconv.Atoi(d)
		return n, n >= 1 && n <= maxBits
	}
	switch {
	case t == "fp16":
		return W16A16, nil
	case t == "fp32":
		return W32A32, nil
	case strings.HasPrefix(t, "int"):
		n, ok := width(t[3:])
		if !ok {
			return bad("width after \"int\" must be 1..64")
		}
		return Precision{n, n}, nil
	case strings.HasPrefix(t, "w"):
		i := strings.IndexByte(t, 'a')
		if i < 0 {
			return bad("missing \"a\"")
		}
		w, ok1 := width(t[1:i])
		a, ok2 := width(t[i+1:])
		if !ok1 || !ok2 {
			return bad("widths must be 1..64")
		}
		return Precision{w, a}, nil
	}
	if n, ok := width(t); ok {
		return Precision{n, n}, nil
	}
	return bad("unknown form")
}

// MarshalText implements encoding.TextMarshaler with the canonical name.
func (p Precision) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("precision %s: widths must be 1..64", p)
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParsePrecision.
func (p *Precision) UnmarshalText(b []byte) error {
	q, err := ParsePrecision(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// ParsePrecisions parses a comma-separated list such as "w4a4,w8a8,fp16"
// (a --precisions flag), rejecting empty items and duplicates.
func ParsePrecisions(s string) ([]Precision, error) {
	var out []Precision
	seen := map[Precision]bool{}
	for i, item := range strings.Split(s, ",") {
		q, err := ParsePrecision(item)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i+1, err)
		}
		if seen[q] {
			return nil, fmt.Errorf("item %d: %s listed twice", i+1, q)
		}
		seen[q] = true
		out = append(out, q)
	}
	return out, nil
}
