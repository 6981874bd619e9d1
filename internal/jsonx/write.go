package jsonx

import (
	"encoding/json"
	"math"
	"strconv"
)

// AppendString appends s as a JSON string exactly as encoding/json writes
// it (HTML characters escaped, invalid UTF-8 replaced).
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendFloat appends f exactly as encoding/json writes a float64 ('f'
// format, 'e' below 1e-6 and from 1e21, exponents without a leading zero).
// f must be finite (encoding/json refuses NaN and infinities; callers report
// them with the field's name).
func AppendFloat(b []byte, f float64) []byte {
	// A non-zero integer below 2^53 is its own shortest representation
	// (its neighbours are at most 1 away): its digits, as strconv gives
	// them, without the float formatting (−0 is left to strconv).
	if t := int64(f); float64(t) == f && t != 0 && t > -1<<53 && t < 1<<53 {
		return strconv.AppendInt(b, t, 10)
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// AppendIndent appends a newline and depth levels of two-space indent, the
// layout of encoding/json's SetIndent("", "  ").
func AppendIndent(b []byte, depth int) []byte {
	b = append(b, '\n')
	for i := 0; i < depth; i++ {
		b = append(b, "  "...)
	}
	return b
}
