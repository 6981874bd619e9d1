package ilp

import (
	"fmt"
	"math"
)

// MaxBruteForce is the largest number of assignments BruteForce enumerates.
const MaxBruteForce = 1 << 22

// BruteForce solves p by enumerating every assignment (pinned groups at
// their pin), keeping the first one of least value that meets every row
// under FeasTol. It is the reference the solver is tested against and is
// meant for small problems: it returns an error when p is malformed or has
// more than MaxBruteForce assignments. An infeasible p gets an
// Infeasibility whose Conflicts are found by enumerating row subsets too.
func BruteForce(p *Problem) (*Solution, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	total := 1.0
	for _, g := range p.Groups {
		if g.Pin == "" {
			total *= float64(len(g.Choices))
		}
	}
	if total > MaxBruteForce {
		return nil, fmt.Errorf("ilp: brute force: %.0f assignments; at most %d enumerated", total, MaxBruteForce)
	}
	mag := rowMagnitude(p)
	best, obj := bruteRows(p, nil, mag)
	sol := &Solution{Status: Optimal, Objective: math.Inf(1), Bound: math.Inf(1), Nodes: int(total)}
	if best == nil {
		sol.Status = Infeasible
		inf := &Infeasibility{MinUsage: minUsage(p)}
		var rows []int
		for k, r := range p.Rows {
			if !math.IsInf(r.Limit, 1) {
				rows = append(rows, k)
			}
		}
		for size := 1; size <= len(rows); size++ {
			subsets(len(rows), size, func(idx []int) {
				set := make([]int, len(idx))
				use := make([]bool, len(p.Rows))
				for i, x := range idx {
					set[i] = rows[x]
					use[rows[x]] = true
				}
				for _, c := range inf.Conflicts {
					if contains(set, c) {
						return
					}
				}
				if b, _ := bruteRows(p, use, mag); b == nil {
					inf.Conflicts = append(inf.Conflicts, set)
				}
			})
		}
		sol.Infeasibility = inf
		return sol, nil
	}
	sol.Choices = best
	sol.Objective, sol.Usage = evaluate(p, best)
	_ = obj
	sol.Bound = sol.Objective
	sol.Slack = make([]float64, len(p.Rows))
	for k, r := range p.Rows {
		sol.Slack[k] = r.Limit - sol.Usage[k]
	}
	return sol, nil
}

// bruteRows enumerates assignments meeting the rows in use (nil: all) and
// returns the first of least value, or nil.
func bruteRows(p *Problem, use []bool, mag []float64) ([]int, float64) {
	ng := len(p.Groups)
	a := make([]int, ng)
	lo := make([]int, ng)
	hi := make([]int, ng)
	for g := range p.Groups {
		if pi := pinIndex(&p.Groups[g]); pi >= 0 {
			lo[g], hi[g] = pi, pi
		} else {
			hi[g] = len(p.Groups[g].Choices) - 1
		}
		a[g] = lo[g]
	}
	var best []int
	bestObj := math.Inf(1)
	for {
		obj, usage := evaluate(p, a)
		ok := true
		for k, r := range p.Rows {
			if (use == nil || use[k]) && !meets(r.Limit, usage[k], mag[k]) {
				ok = false
				break
			}
		}
		if ok && obj < bestObj {
			best, bestObj = append([]int(nil), a...), obj
		}
		g := ng - 1
		for g >= 0 && a[g] == hi[g] {
			a[g] = lo[g]
			g--
		}
		if g < 0 {
			break
		}
		a[g]++
	}
	return best, bestObj
}
