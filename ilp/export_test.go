package ilp

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// externalProblem draws a random instance for the external solvers: values
// and costs with a few significant digits (so printed optima compare well),
// sometimes negative, limits strictly inside the usage range or infeasible,
// ties and pins as in randProblem.
func externalProblem(rng *rand.Rand) *Problem {
	ng := 1 + rng.IntN(8)
	nr := 1 + rng.IntN(3)
	p := &Problem{}
	for g := 0; g < ng; g++ {
		gr := Group{Name: fmt.Sprintf("layer %d \"q\"", g)}
		m := 1 + rng.IntN(5)
		for c := 0; c < m; c++ {
			ch := Choice{Label: fmt.Sprint(c + 2), Value: math.Round((rng.Float64()*20-2)*1000) / 1000}
			for k := 0; k < nr; k++ {
				ch.Costs = append(ch.Costs, math.Round(rng.Float64()*1e5)/100)
			}
			gr.Choices = append(gr.Choices, ch)
		}
		if rng.IntN(8) == 0 {
			gr.Pin = gr.Choices[rng.IntN(m)].Label
		}
		p.Groups = append(p.Groups, gr)
	}
	for k := 0; k < nr; k++ {
		lo, hi := 0.0, 0.0
		for _, g := range p.Groups {
			l, h := math.Inf(1), math.Inf(-1)
			for _, c := range g.Choices {
				l, h = math.Min(l, c.Costs[k]), math.Max(h, c.Costs[k])
			}
			lo, hi = lo+l, hi+h
		}
		lim := lo + (rng.Float64()*1.1-0.1)*(hi-lo) + 0.005
		if rng.IntN(5) == 0 {
			lim = math.Inf(1)
		}
		p.Rows = append(p.Rows, Row{Name: fmt.Sprint("row ", k), Limit: lim})
	}
	return p
}

var (
	cbcObj   = regexp.MustCompile(`Objective value:\s+(\S+)`)
	glpsolOb = regexp.MustCompile(`Objective:\s+obj = (\S+)`)
)

// runCBC solves an MPS or LP file with cbc: (objective, feasible).
func runCBC(file string) (float64, bool, error) {
	out, err := exec.Command("cbc", file, "solve").CombinedOutput()
	if err != nil {
		return 0, false, fmt.Errorf("cbc %s: %v\n%s", file, err, out)
	}
	s := string(out)
	if strings.Contains(s, "Result - Problem proven infeasible") || strings.Contains(s, "Problem is infeasible") ||
		strings.Contains(s, "Pre-processing says infeasible") {
		return 0, false, nil
	}
	m := cbcObj.FindStringSubmatch(s)
	if m == nil || !strings.Contains(s, "Result - Optimal solution found") {
		return 0, false, fmt.Errorf("cbc %s: no optimum in output\n%s", file, s)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v, true, nil
}

// runGLPSOL solves an LP file with glpsol.
func runGLPSOL(file string) (float64, bool, error) {
	res := file + ".out"
	out, err := exec.Command("glpsol", "--lp", file, "-o", res).CombinedOutput()
	if err != nil {
		return 0, false, fmt.Errorf("glpsol %s: %v\n%s", file, err, out)
	}
	data, err := os.ReadFile(res)
	if err != nil {
		return 0, false, err
	}
	s := string(data)
	if strings.Contains(s, "INTEGER EMPTY") || strings.Contains(string(out), "NO PRIMAL FEASIBLE") || strings.Contains(string(out), "NO INTEGER FEASIBLE") {
		return 0, false, nil
	}
	m := glpsolOb.FindStringSubmatch(s)
	if m == nil || !strings.Contains(s, "INTEGER OPTIMAL") {
		return 0, false, fmt.Errorf("glpsol %s: no optimum\n%s\n%s", file, out, s)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v, true, nil
}

func TestExportAgainstCBCAndGLPK(t *testing.T) {
	for _, tool := range []string{"cbc", "glpsol"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH: skipping the comparison with external solvers", tool)
		}
	}
	n := 200
	if testing.Short() {
		n = 30
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	probs := make([]*Problem, n)
	for i := range probs {
		probs[i] = externalProblem(rng)
	}
	var wg sync.WaitGroup
	errs := make(chan string, n)
	work := make(chan int)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if msg := checkExternal(dir, i, probs[i]); msg != "" {
					errs <- msg
				}
			}
		}()
	}
	for i := range probs {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

func checkExternal(dir string, i int, p *Problem) string {
	var mps, lp bytes.Buffer
	if err := WriteMPS(&mps, p); err != nil {
		return err.Error()
	}
	if err := WriteLP(&lp, p); err != nil {
		return err.Error()
	}
	fm := filepath.Join(dir, fmt.Sprintf("p%d.mps", i))
	fl := filepath.Join(dir, fmt.Sprintf("p%d.lp", i))
	os.WriteFile(fm, mps.Bytes(), 0o644)
	os.WriteFile(fl, lp.Bytes(), 0o644)
	sol, err := Solve(context.Background(), p, nil)
	if err != nil {
		return err.Error()
	}
	for _, ext := range []struct {
		name string
		run  func() (float64, bool, error)
	}{
		{"cbc mps", func() (float64, bool, error) { return runCBC(fm) }},
		{"cbc lp", func() (float64, bool, error) { return runCBC(fl) }},
		{"glpsol lp", func() (float64, bool, error) { return runGLPSOL(fl) }},
	} {
		v, ok, err := ext.run()
		if err != nil {
			return fmt.Sprintf("instance %d: %v", i, err)
		}
		if ok != (sol.Status == Optimal) {
			return fmt.Sprintf("instance %d: %s feasible=%v, Solve %v", i, ext.name, ok, sol.Status)
		}
		if ok && math.Abs(v-sol.Objective) > 1e-6*(1+math.Abs(v)) {
			return fmt.Sprintf("instance %d: %s objective %.10g, Solve %.10g", i, ext.name, v, sol.Objective)
		}
	}
	return ""
}
