package ilp

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Exported models use binary variables x_G_C (group G, choice C, both
// 0-based indices), rows r_K for the resource rows (rows with Limit = +Inf
// are left out) and g_G for the one-choice-per-group rows; a comment maps
// every variable and row to its original name. Pinned groups have the pin
// fixed at 1 and the other choices at 0.

func varName(g, c int) string { return "x_" + strconv.Itoa(g) + "_" + strconv.Itoa(c) }

// rowScale returns the power of two that the exported row k is divided by,
// so that its largest coefficient (or limit) has magnitude in [0.5, 1).
// External solvers work with absolute tolerances (about 1e-7 to 1e-9): a
// BOPS row with coefficients near 1e10 otherwise makes cbc cut off the
// optimum (seen on HAWQ's ResNet18 BOPS scheme). Dividing by a power of two
// is exact in binary floating point, so the feasible set is unchanged.
func rowScale(p *Problem, k int) float64 {
	m := math.Abs(p.Rows[k].Limit)
	for _, g := range p.Groups {
		for _, ch := range g.Choices {
			m = math.Max(m, math.Abs(ch.Costs[k]))
		}
	}
	if m == 0 || math.IsInf(m, 0) {
		return 1
	}
	_, e := math.Frexp(m)
	return math.Ldexp(1, e)
}

// num formats a coefficient exactly (shortest round-trip form).
func num(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// WriteMPS writes p as a fixed-format MPS file (fields in the standard
// columns; names longer than eight characters, as x_G_C becomes for large
// problems, push later fields right, which cbc and glpsol --mps accept since
// names contain no spaces). It returns an error wrapping ErrMalformed when p
// is malformed, or the first write error.
func WriteMPS(w io.Writer, p *Problem) error {
	if err := p.Validate(); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	comment := func(prefix string) {
		fmt.Fprintf(bw, "%s bitplan multiple-choice knapsack: %d groups, %d rows\n", prefix, len(p.Groups), len(p.Rows))
		for k, r := range p.Rows {
			if math.IsInf(r.Limit, 1) {
				fmt.Fprintf(bw, "%s row %d %q has no limit and is left out\n", prefix, k, r.Name)
			} else {
				fmt.Fprintf(bw, "%s r_%d = row %q divided by %s\n", prefix, k, r.Name, num(rowScale(p, k)))
			}
		}
		for g, gr := range p.Groups {
			for c, ch := range gr.Choices {
				fmt.Fprintf(bw, "%s %s = group %q choice %q\n", prefix, varName(g, c), gr.Name, ch.Label)
			}
		}
	}
	comment("*")
	field := func(a, b, c, d, e, f string) {
		// Columns 2-3, 5-12, 15-22, 25-36, 40-47, 50-61.
		line := fmt.Sprintf(" %-2s %-8s  %-8s  %12s", a, b, c, d)
		if e != "" {
			line += fmt.Sprintf("   %-8s  %12s", e, f)
		}
		fmt.Fprintln(bw, line)
	}
	fmt.Fprintln(bw, "NAME          BITPLAN")
	fmt.Fprintln(bw, "ROWS")
	field("N", "obj", "", "", "", "")
	for k, r := range p.Rows {
		if !math.IsInf(r.Limit, 1) {
			field("L", "r_"+strconv.Itoa(k), "", "", "", "")
		}
	}
	for g := range p.Groups {
		field("E", "g_"+strconv.Itoa(g), "", "", "", "")
	}
	scale := make([]float64, len(p.Rows))
	for k := range p.Rows {
		scale[k] = rowScale(p, k)
	}
	fmt.Fprintln(bw, "COLUMNS")
	fmt.Fprintln(bw, "    MARKER                 'MARKER'                 'INTORG'")
	for g, gr := range p.Groups {
		for c, ch := range gr.Choices {
			v := varName(g, c)
			type entry struct{ row, val string }
			es := []entry{{"obj", num(ch.Value)}}
			for k, r := range p.Rows {
				if !math.IsInf(r.Limit, 1) && ch.Costs[k] != 0 {
					es = append(es, entry{"r_" + strconv.Itoa(k), num(ch.Costs[k] / scale[k])})
				}
			}
			es = append(es, entry{"g_" + strconv.Itoa(g), "1"})
			for i := 0; i < len(es); i += 2 {
				if i+1 < len(es) {
					field("", v, es[i].row, es[i].val, es[i+1].row, es[i+1].val)
				} else {
					field("", v, es[i].row, es[i].val, "", "")
				}
			}
		}
	}
	fmt.Fprintln(bw, "    MARKER                 'MARKER'                 'INTEND'")
	fmt.Fprintln(bw, "RHS")
	for k, r := range p.Rows {
		if !math.IsInf(r.Limit, 1) {
			field("", "rhs", "r_"+strconv.Itoa(k), num(r.Limit/scale[k]), "", "")
		}
	}
	for g := range p.Groups {
		field("", "rhs", "g_"+strconv.Itoa(g), "1", "", "")
	}
	fmt.Fprintln(bw, "BOUNDS")
	for g, gr := range p.Groups {
		pi := pinIndex(&gr)
		for c := range gr.Choices {
			switch {
			case pi < 0:
				field("UP", "bnd", varName(g, c), "1", "", "")
			case pi == c:
				field("FX", "bnd", varName(g, c), "1", "", "")
			default:
				field("FX", "bnd", varName(g, c), "0", "", "")
			}
		}
	}
	fmt.Fprintln(bw, "ENDATA")
	return bw.Flush()
}

// WriteLP writes p in CPLEX LP format, as read by glpsol --lp and cbc. It
// returns an error wrapping ErrMalformed when p is malformed, or the first
// write error.
func WriteLP(w io.Writer, p *Problem) error {
	if err := p.Validate(); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "\\ bitplan multiple-choice knapsack: %d groups, %d rows\n", len(p.Groups), len(p.Rows))
	for k, r := range p.Rows {
		if math.IsInf(r.Limit, 1) {
			fmt.Fprintf(bw, "\\ row %d %q has no limit and is left out\n", k, r.Name)
		} else {
			fmt.Fprintf(bw, "\\ r_%d = row %q divided by %s\n", k, r.Name, num(rowScale(p, k)))
		}
	}
	for g, gr := range p.Groups {
		for c, ch := range gr.Choices {
			fmt.Fprintf(bw, "\\ %s = group %q choice %q\n", varName(g, c), gr.Name, ch.Label)
		}
	}
	// terms writes a linear expression, a few terms per line.
	terms := func(coef func(g, c int) float64) {
		n := 0
		for g, gr := range p.Groups {
			for c := range gr.Choices {
				a := coef(g, c)
				if a == 0 {
					continue
				}
				if n > 0 && n%6 == 0 {
					fmt.Fprint(bw, "\n   ")
				}
				sign := "+"
				if a < 0 {
					sign, a = "-", -a
				}
				if n == 0 && sign == "+" {
					fmt.Fprintf(bw, " %s %s", num(a), varName(g, c))
				} else {
					fmt.Fprintf(bw, " %s %s %s", sign, num(a), varName(g, c))
				}
				n++
			}
		}
		if n == 0 {
			fmt.Fprintf(bw, " 0 %s", varName(0, 0))
		}
	}
	fmt.Fprintln(bw, "Minimize")
	fmt.Fprint(bw, " obj:")
	terms(func(g, c int) float64 { return p.Groups[g].Choices[c].Value })
	fmt.Fprintln(bw, "\nSubject To")
	for k, r := range p.Rows {
		if math.IsInf(r.Limit, 1) {
			continue
		}
		sk := rowScale(p, k)
		fmt.Fprintf(bw, " r_%d:", k)
		terms(func(g, c int) float64 { return p.Groups[g].Choices[c].Costs[k] / sk })
		fmt.Fprintf(bw, " <= %s\n", num(r.Limit/sk))
	}
	for g, gr := range p.Groups {
		fmt.Fprintf(bw, " g_%d:", g)
		for c := range gr.Choices {
			if c == 0 {
				fmt.Fprintf(bw, " %s", varName(g, c))
			} else {
				fmt.Fprintf(bw, " + %s", varName(g, c))
			}
		}
		fmt.Fprintln(bw, " = 1")
	}
	fmt.Fprintln(bw, "Bounds")
	for g, gr := range p.Groups {
		pi := pinIndex(&gr)
		if pi < 0 {
			continue
		}
		for c := range gr.Choices {
			if c == pi {
				fmt.Fprintf(bw, " %s = 1\n", varName(g, c))
			} else {
				fmt.Fprintf(bw, " %s = 0\n", varName(g, c))
			}
		}
	}
	fmt.Fprintln(bw, "Binaries")
	for g, gr := range p.Groups {
		for c := range gr.Choices {
			fmt.Fprintf(bw, " %s\n", varName(g, c))
		}
	}
	fmt.Fprintln(bw, "End")
	return bw.Flush()
}
