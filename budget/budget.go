// Package budget is bitplan's one vocabulary of budgets, shared by
// quantization plans, pruning plans and joint plans: the resources a
// budget can limit (Kind: size, bops, latency, energy, params, flops),
// their units, the flag syntax (--max-size, --max-bops, --max-latency,
// --max-energy, --max-params, --max-flops) and how a percentage resolves
// against a problem's cost range.
//
// A budget is either an absolute value with a unit ("6.5MB", "72G",
// "2.8ms", "3mJ", "30K" parameters) or a percentage. A percentage has two
// bases, each with its own spelling:
//
//	P%range  limit = lo + P/100 · (hi − lo)   (HAWQ-V3's convention)
//	P%max    limit = P/100 · hi
//
// where lo is the resource's cost with every unit at its lowest choice
// (narrowest candidate, fewest kept channels) and hi with every unit at its
// highest (widest candidate, the unpruned model). A bare "P%" means one of
// them, fixed per resource (Kind.DefaultBase): the range for size, bops,
// latency and energy (so "50%" is HAWQ's "0.5" scheme, arXiv:2011.10680,
// ILP.ipynb), the highest value — a fraction of the unpruned model — for
// params and flops. Percentages above 100 are allowed (a budget looser than
// hi); negative ones are not.
package budget

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Kind says which resource a budget constrains; it fixes the units accepted.
type Kind int

const (
	// Size is model size in bytes.
	Size Kind = iota
	// BOPS is bit operations (MACs · b_w · b_a).
	BOPS
	// Latency is time in milliseconds.
	Latency
	// Energy is energy in joules.
	Energy
	// Params counts weights and biases of the units.
	Params
	// FLOPs counts floating-point operations per sample (2·MACs).
	FLOPs
)

// Kinds lists every kind in report order.
var Kinds = []Kind{Size, BOPS, Latency, Energy, Params, FLOPs}

// String returns the resource name used in flags and reports.
func (k Kind) String() string {
	switch k {
	case Size:
		return "size"
	case BOPS:
		return "bops"
	case Latency:
		return "latency"
	case Energy:
		return "energy"
	case Params:
		return "params"
	case FLOPs:
		return "flops"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Unit returns the canonical unit that parsed absolute values are
// expressed in: "B", "BOPS", "ms", "J", "params" or "FLOPs".
func (k Kind) Unit() string {
	switch k {
	case Size:
		return "B"
	case BOPS:
		return "BOPS"
	case Latency:
		return "ms"
	case Energy:
		return "J"
	case Params:
		return "params"
	case FLOPs:
		return "FLOPs"
	}
	return ""
}

// KindOfUnit returns the kind whose canonical unit is u ("B", "ms", …),
// and false for an unknown unit.
func KindOfUnit(u string) (Kind, bool) {
	for _, k := range Kinds {
		if k.Unit() == u {
			return k, true
		}
	}
	return Size, false
}

// KindOf returns the kind named s ("size", "params", …; a device suffix
// such as "latency@t4" is ignored), and false for an unknown name.
func KindOf(s string) (Kind, bool) {
	s, _, _ = strings.Cut(s, "@")
	for _, k := range Kinds {
		if k.String() == s {
			return k, true
		}
	}
	return Size, false
}

// Base is what a percentage budget is a percentage of.
type Base int

const (
	// Range is HAWQ-V3's convention: lo + P/100 · (hi − lo), spelt
	// "P%range".
	Range Base = iota
	// Max is a fraction of the highest cost (the unpruned model, at the
	// widest candidate): P/100 · hi, spelt "P%max".
	Max
)

// String returns "range" or "max", the spelling after the % sign.
func (b Base) String() string {
	if b == Max {
		return "max"
	}
	return "range"
}

// DefaultBase is the base of a bare "P%": Max for params and flops (a
// fraction of the unpruned model), Range for the others (HAWQ's
// convention).
func (k Kind) DefaultBase() Base {
	if k == Params || k == FLOPs {
		return Max
	}
	return Range
}

// PercentHelp describes what a bare "P%" means for kind k, for flag help
// and errors.
func (k Kind) PercentHelp() string {
	if k.DefaultBase() == Max {
		return "P% of the unpruned model (P%range: of the range from the least to the unpruned model)"
	}
	return "P% of the range from all-lowest to all-highest (HAWQ's convention; P%max: P% of all-highest)"
}

// Spec is a parsed budget: an absolute limit in the kind's canonical unit,
// or a fraction of the cost range or of the highest cost.
type Spec struct {
	// Kind is the constrained resource.
	Kind Kind
	// Relative reports whether the budget was a percentage.
	Relative bool
	// Base is what a percentage is of (ignored unless Relative).
	Base Base
	// BaseGiven reports a percentage written with its base ("50%range",
	// "50%max") rather than a bare "50%".
	BaseGiven bool
	// Value is the absolute limit in Kind.Unit(), or the fraction P/100 when
	// Relative.
	Value float64
	// Text is the flag value as the user wrote it.
	Text string
}

// Resolve returns the absolute limit of s for a problem whose cost with
// every unit at its lowest choice is lo and at its highest is hi.
func (s Spec) Resolve(lo, hi float64) float64 {
	if !s.Relative {
		return s.Value
	}
	if s.Base == Max {
		return s.Value * hi
	}
	return lo + s.Value*(hi-lo)
}

// String returns the budget as the user wrote it.
func (s Spec) String() string { return s.Text }

// units maps accepted unit suffixes (lower case) to their factor into the
// kind's canonical unit.
var units = map[Kind]map[string]float64{
	Size: {
		"": 1, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	},
	BOPS: {
		"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15,
	},
	Latency: {
		"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1, "s": 1e3,
	},
	Energy: {
		"pj": 1e-12, "nj": 1e-9, "uj": 1e-6, "µj": 1e-6, "mj": 1e-3, "j": 1,
	},
	Params: {
		"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
	},
	FLOPs: {
		"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15,
	},
}

// unitHelp lists the accepted units of each kind for error messages.
var unitHelp = map[Kind]string{
	Size:    "B, KB (or kB), MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024)",
	BOPS:    "none, K, M, G, T or P, optionally followed by BOPS",
	Latency: "ns, us, ms or s",
	Energy:  "pJ, nJ, uJ, mJ or J",
	Params:  "none, K, M, G or T (a count of parameters)",
	FLOPs:   "none, K, M, G, T or P, optionally followed by FLOPs",
}

// Parse parses a budget of the given kind: a non-negative number followed by
// a unit of that kind, or a non-negative percentage "P%", "P%range" or
// "P%max" (see the package comment). Errors name the value and the units
// expected.
func Parse(k Kind, text string) (Spec, error) {
	if _, ok := units[k]; !ok {
		return Spec{}, fmt.Errorf("budget: unknown resource kind %d", int(k))
	}
	t := strings.TrimSpace(text)
	if t == "" {
		return Spec{}, fmt.Errorf("%s budget: empty value; want a number with a unit (%s) or a percentage like 50%%", k, unitHelp[k])
	}
	if i := strings.Index(t, "%"); i >= 0 {
		v, err := parseNumber(strings.TrimSpace(t[:i]))
		if err != nil {
			return Spec{}, fmt.Errorf("%s budget %q: %v before %%", k, text, err)
		}
		if v < 0 {
			return Spec{}, fmt.Errorf("%s budget %q: a percentage must not be negative", k, text)
		}
		s := Spec{Kind: k, Relative: true, Base: k.DefaultBase(), Value: v / 100, Text: text}
		switch strings.ToLower(strings.TrimSpace(t[i+1:])) {
		case "":
		case "range":
			s.Base, s.BaseGiven = Range, true
		case "max":
			s.Base, s.BaseGiven = Max, true
		default:
			return Spec{}, fmt.Errorf("%s budget %q: %q after %%; want nothing (%s), range or max", k, text, t[i+1:], k.PercentHelp())
		}
		return s, nil
	}
	i := numberEnd(t)
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	switch k {
	case BOPS:
		unit = strings.TrimSpace(strings.TrimSuffix(unit, "bops"))
	case FLOPs:
		unit = strings.TrimSpace(strings.TrimSuffix(unit, "flops"))
	}
	v, err := parseNumber(num)
	if err != nil {
		return Spec{}, fmt.Errorf("%s budget %q: %v", k, text, err)
	}
	if k == Size {
		// Case matters in sizes: b is a bit and m a milli, so 6.5Mb and
		// 6.5mb are not megabytes; refuse them rather than guess.
		raw := strings.TrimSpace(t[i:])
		if strings.HasSuffix(raw, "b") {
			return Spec{}, fmt.Errorf("%s budget %q: lower-case b means bits; sizes are in bytes: write B (%s)", k, text, unitHelp[k])
		}
		if strings.HasPrefix(raw, "m") {
			return Spec{}, fmt.Errorf("%s budget %q: lower-case m means milli; write MB for megabytes (%s)", k, text, unitHelp[k])
		}
	}
	f, ok := units[k][unit]
	if !ok {
		if unit == "" {
			return Spec{}, fmt.Errorf("%s budget %q: missing unit; want one of %s", k, text, unitHelp[k])
		}
		return Spec{}, fmt.Errorf("%s budget %q: unknown unit %q; want one of %s", k, text, t[i:], unitHelp[k])
	}
	if v < 0 {
		return Spec{}, fmt.Errorf("%s budget %q: must not be negative", k, text)
	}
	abs := v * f
	if math.IsInf(abs, 0) {
		return Spec{}, fmt.Errorf("%s budget %q: value out of range", k, text)
	}
	return Spec{Kind: k, Value: abs, Text: text}, nil
}

// numberEnd returns the length of the longest prefix of t that can be part
// of a decimal number (digits, sign, point, exponent).
func numberEnd(t string) int {
	i := 0
	for i < len(t) {
		c := t[i]
		switch {
		case c >= '0' && c <= '9', c == '.', c == '+', c == '-':
			i++
		case (c == 'e' || c == 'E') && i > 0 && i+1 < len(t) &&
			(t[i+1] >= '0' && t[i+1] <= '9' || t[i+1] == '-' || t[i+1] == '+'):
			i++
		default:
			return i
		}
	}
	return i
}

// parseNumber parses a finite decimal number.
func parseNumber(s string) (float64, error) {
	if s == "" {
		return 0, fmt.Errorf("missing number")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return v, nil
}

// Format writes v (in the kind's canonical unit) with a readable unit:
// sizes in MB/KB, BOPS with an SI prefix, latency in ms or µs, energy in J
// with an SI prefix.
func Format(k Kind, v float64) string {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return fmt.Sprint(v)
	}
	a := math.Abs(v)
	switch k {
	case Size:
		switch {
		case a >= 1e9:
			return trim(v/1e9) + " GB"
		case a >= 1e6:
			return trim(v/1e6) + " MB"
		case a >= 1e3:
			return trim(v/1e3) + " KB"
		}
		return trim(v) + " B"
	case BOPS, Params, FLOPs:
		for _, p := range []struct {
			f float64
			s string
		}{{1e15, "P"}, {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "K"}} {
			if a >= p.f {
				return trim(v/p.f) + " " + p.s
			}
		}
		return trim(v)
	case Latency:
		if a < 0.1 && a != 0 {
			return trim(v*1e3) + " µs"
		}
		return trim(v) + " ms"
	case Energy:
		for _, p := range []struct {
			f float64
			s string
		}{{1, "J"}, {1e-3, "mJ"}, {1e-6, "µJ"}, {1e-9, "nJ"}} {
			if a >= p.f {
				return trim(v/p.f) + " " + p.s
			}
		}
		return trim(v*1e12) + " pJ"
	}
	return trim(v)
}

// trim formats with four significant digits.
func trim(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
