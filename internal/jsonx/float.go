package jsonx

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"unsafe"
)

// Float reads a number value as a float64, rounded as strconv.ParseFloat
// rounds, and returns its text too (valid until the next call). A number
// outside float64's range gives ok false (a caller names the field; its
// place is PosBefore(len(text))). The common plain decimals of up to 19
// digits are converted as they are scanned (see plainFloat); the others
// are scanned by Number and converted by strconv.
func (s *Scanner) Float() (v float64, text []byte, ok bool, err error) {
	if _, err := s.Peek(); err != nil {
		return 0, nil, false, err
	}
	if v, n, ok := plainFloat(s.buf[s.i:s.n], false); ok {
		text = s.buf[s.i : s.i+n]
		s.i += n
		return v, text, true, nil
	}
	b, err := s.Number()
	if err != nil {
		return 0, nil, false, err
	}
	v, perr := strconv.ParseFloat(unsafe.String(&b[0], len(b)), 64)
	return v, b, perr == nil, nil
}

// PosBefore returns the place n bytes before the next unread byte on the
// same line (the start of a token of n bytes just read).
func (s *Scanner) PosBefore(n int) Pos { return s.posAt(s.i - n) }

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// pow10u holds 10^0 … 10^19, the powers of ten below 2^64.
var pow10u = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// plainFloat converts the number at the start of b when it is plain,
// -?(0|[1-9][0-9]*)(.[0-9]+)? without an exponent, ends at a byte of b that
// cannot continue a number (or at the end of b when atEnd), its digits
// form an integer m < 10^19 and its decimal exponent e (minus the fraction
// digits) is at most 0:
//
//   - m ≤ 2^53 and e ≥ −22: m and 10^−e are exact and one IEEE division
//     rounds correctly (Clinger 1990, the exact case strconv also takes);
//   - otherwise, for e ≥ −19: m / 10^−e is divided exactly in 128-bit
//     integers and rounded once to 53 bits, half to even (divide).
//
// These cover the shortest representations that encoding/json writes
// between 1e-6 and 1e21 (up to 17 significant digits, e.g.
// 0.0027355557000730427). It returns the value and the number's length;
// otherwise ok is false and Number and strconv decide.
func plainFloat(b []byte, atEnd bool) (v float64, n int, ok bool) {
	i, neg := 0, false
	if len(b) > 0 && b[0] == '-' {
		neg, i = true, 1
	}
	var m uint64
	digits, exp := 0, 0
	d := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if m != 0 || b[i] != '0' {
			digits++
		}
		m = m*10 + uint64(b[i]-'0')
		if digits > 19 {
			return 0, 0, false
		}
	}
	if i == d || (i-d > 1 && b[d] == '0') {
		return 0, 0, false
	}
	if i < len(b) && b[i] == '.' {
		f := i + 1
		for i = f; ; {
			// Eight digits at a time once every digit counts and they
			// keep m below 10^19; one at a time otherwise.
			if m != 0 && digits <= 11 && i+8 <= len(b) {
				if x := binary.LittleEndian.Uint64(b[i:]); eightDigits(x) {
					m = m*1e8 + parseEight(x)
					digits += 8
					exp -= 8
					i += 8
					continue
				}
			}
			if i >= len(b) || b[i] < '0' || b[i] > '9' {
				break
			}
			if m != 0 || b[i] != '0' {
				digits++
			}
			m = m*10 + uint64(b[i]-'0')
			exp--
			i++
			if digits > 19 {
				return 0, 0, false
			}
		}
		if i == f {
			return 0, 0, false
		}
	}
	if i >= len(b) {
		if !atEnd {
			return 0, 0, false
		}
	} else {
		switch b[i] {
		case 'e', 'E', '.', '+', '-':
			return 0, 0, false
		}
	}
	switch {
	case m <= 1<<53 && exp >= -22:
		v = float64(m) / pow10[-exp]
	case exp >= -19:
		if v, ok = divide(m, pow10u[-exp]); !ok {
			return 0, 0, false
		}
	default:
		return 0, 0, false
	}
	if neg {
		v = -v
	}
	return v, i, true
}

// eightDigits reports whether the bytes of x (little-endian) are all
// ASCII digits: each byte's high nibble is 3, and adding 6 to its low
// nibble does not carry into it.
func eightDigits(x uint64) bool {
	return (x&0xF0F0F0F0F0F0F0F0)|(((x+0x0606060606060606)&0xF0F0F0F0F0F0F0F0)>>4) == 0x3333333333333333
}

// parseEight returns the number that the eight ASCII digits of x
// (little-endian: the first digit in the low byte) write, combining pairs,
// then quadruples, then the two halves.
func parseEight(x uint64) uint64 {
	x -= 0x3030303030303030
	x = x*10 + x>>8 // each even byte: two digits
	x = ((x&0x000000FF000000FF)*(100+1000000<<32) + (x>>16&0x000000FF000000FF)*(1+10000<<32)) >> 32
	return x
}

// divide returns m/d correctly rounded to float64 (half to even) for
// 10 ≤ d < 2^64 and 1 ≤ m < 2^64: it shifts m left by s so that the
// integer quotient q = ⌊m·2^s/d⌋ has 63 or 64 bits (128-bit division),
// keeps q's top 53 bits and rounds on the bits below them and the
// remainder. ok is false when m is 0.
func divide(m, d uint64) (float64, bool) {
	if m == 0 {
		return 0, false
	}
	s := uint(63 + bits.Len64(d) - bits.Len64(m))
	var hi, lo uint64
	if s >= 64 {
		hi, lo = m<<(s-64), 0
	} else {
		hi, lo = m>>(64-s), m<<s // s ≥ 3: d ≥ 10
	}
	q, r := bits.Div64(hi, lo, d)
	shift := uint(bits.Len64(q) - 53)
	mant := q >> shift
	rest := q & (1<<shift - 1)
	half := uint64(1) << (shift - 1)
	if rest > half || (rest == half && (r != 0 || mant&1 == 1)) {
		mant++
		if mant == 1<<53 {
			mant >>= 1
			shift++
		}
	}
	return math.Ldexp(float64(mant), int(shift)-int(s)), true
}
