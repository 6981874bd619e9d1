package jsonx

import (
	"bytes"
	"context"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// TestPlainFloat: the exact fast path agrees with strconv on every number
// it takes, and leaves the rest to it.
func TestPlainFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	taken := 0
	for i := 0; i < 400000; i++ {
		var s string
		switch i % 8 {
		case 4:
			// Shortest forms of 17 digits (latencies, traces).
			s = strconv.FormatFloat(math.Exp(rng.NormFloat64()*4), 'f', -1, 64)
		case 5:
			// Random 19-digit mantissas with the point anywhere.
			d := []byte(strconv.FormatUint(1e18+rng.Uint64N(9e18), 10))
			p := rng.IntN(len(d))
			s = string(d[:p+1]) + "." + string(d[p+1:])
			if p == len(d)-1 {
				s = string(d)
			}
		case 6:
			// Near halfway between two doubles: the decimal digits of an
			// exact midpoint, cut to at most 19.
			f := math.Exp(rng.NormFloat64() * 8)
			mid := new(big.Float).SetPrec(200).Add(big.NewFloat(f), big.NewFloat(math.Nextafter(f, 2*f+1)))
			mid.Quo(mid, big.NewFloat(2))
			s = mid.Text('f', 40)
			if sig := strings.TrimLeft(strings.ReplaceAll(s, ".", ""), "0"); len(sig) > 19 {
				s = s[:len(s)-(len(sig)-19)]
			}
			s = strings.TrimSuffix(s, ".")
		case 7:
			s = strconv.FormatFloat(rng.Float64()*1e4, 'f', 1+rng.IntN(17), 64)
		case 0:
			s = strconv.FormatFloat(math.Exp(rng.NormFloat64()*10), 'f', -1, 64)
		case 1:
			s = strconv.FormatFloat(rng.Float64(), 'f', rng.IntN(18), 64)
		case 2:
			s = strconv.FormatInt(rng.Int64N(1<<62)>>rng.IntN(62), 10)
		default:
			s = "-" + strconv.FormatFloat(rng.Float64()*1000, 'f', -1, 64)
		}
		want, _ := strconv.ParseFloat(s, 64)
		if got, n, ok := plainFloat([]byte(s), true); ok {
			taken++
			if n != len(s) {
				t.Fatalf("plainFloat(%s) read %d bytes", s, n)
			}
			if got != want || math.Signbit(got) != math.Signbit(want) {
				t.Fatalf("plainFloat(%s) = %v, strconv %v", s, got, want)
			}
		}
	}
	for _, s := range []string{"0", "-0", "0.000", "9007199254740992", "1e5", "12345678901234567", "0.00000000000000000000001",
		"9007199254740993.0", "9007199254740995.0", "9007199254740993.00", "0.0027355557000730427", "9999999999999999999",
		"1.000000000000000111", "1.000000000000000110", "0.1000000000000000055511151231257827"} {
		want, _ := strconv.ParseFloat(s, 64)
		if got, _, ok := plainFloat([]byte(s), true); ok && (got != want || math.Signbit(got) != math.Signbit(want)) {
			t.Errorf("plainFloat(%s) = %v, strconv %v", s, got, want)
		}
	}
	if taken < 300000 {
		t.Errorf("the fast path took only %d of 400000 numbers", taken)
	}
}

// Float reads numbers through the fast path and through Number and
// strconv (an exponent, a number at the end of the window, one out of
// range) with their text and place.
func TestScannerFloat(t *testing.T) {
	in := "[1.5, -0.25e1, 1e400, 12345678901234567890123, 0.0027355557000730427, -3]"
	s := NewScanner(context.Background(), bytes.NewReader([]byte(in)), 0)
	s.Begin('[')
	want := []struct {
		v    float64
		text string
		ok   bool
	}{{1.5, "1.5", true}, {-2.5, "-0.25e1", true}, {math.Inf(1), "1e400", false},
		{12345678901234567890123, "12345678901234567890123", true}, {0.0027355557000730427, "0.0027355557000730427", true}, {-3, "-3", true}}
	for i, w := range want {
		if more, err := s.Next(i); !more || err != nil {
			t.Fatalf("element %d: %v %v", i, more, err)
		}
		v, text, ok, err := s.Float()
		if err != nil || v != w.v || string(text) != w.text || ok != w.ok {
			t.Fatalf("element %d: got %v %q %v %v, want %v %q %v", i, v, text, ok, err, w.v, w.text, w.ok)
		}
		if p := s.PosBefore(len(text)); p.Col != strings.Index(in, w.text)+1 {
			t.Errorf("element %d at %v, want column %d", i, p, strings.Index(in, w.text)+1)
		}
	}
	// As Number, a leading zero ends the number (the next read fails).
	if v, text, ok, err := NewScanner(context.Background(), strings.NewReader("01"), 0).Float(); v != 0 || string(text) != "0" || !ok || err != nil {
		t.Errorf("01: %v %q %v %v", v, text, ok, err)
	}
}

// parseEight and eightDigits against the digits one at a time.
func TestParseEight(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	for n := 0; n < 100000; n++ {
		var b [8]byte
		for i := range b {
			b[i] = '0' + byte(rng.IntN(10))
			if n%3 == 0 && rng.IntN(8) == 0 {
				b[i] = byte(rng.IntN(256))
			}
		}
		digits, want := true, uint64(0)
		for _, c := range b {
			digits = digits && c >= '0' && c <= '9'
			want = want*10 + uint64(c-'0')
		}
		x := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		if eightDigits(x) != digits {
			t.Fatalf("%q: eightDigits %v", b[:], !digits)
		}
		if digits && parseEight(x) != want {
			t.Fatalf("%q: parseEight %d", b[:], parseEight(x))
		}
	}
}
