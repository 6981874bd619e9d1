package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/bitplan/bitplan/ilp"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/sensitivity"
)

// engines maps --engine names to ILP solvers; build-tagged files add more.
var engines = map[string]ilp.Solver{}

func runSolve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("solve", "TABLE.json [flags]", stdout)
	var bf budgetFlags
	bf.register(fs)
	format := fs.String("format", "table", "output `FORMAT`: table, json, csv or markdown")
	output := fs.String("o", "", "write the report to `FILE` instead of standard output")
	writeLP := fs.String("write-lp", "", "also write the ILP as a CPLEX LP `FILE` (for glpsol --lp, cbc)")
	writeMPS := fs.String("write-mps", "", "also write the ILP as a fixed-format MPS `FILE` (for cbc, glpsol)")
	timeLimit := fs.Duration("time-limit", time.Minute, "stop the search after `DURATION` and report the best plan with its gap, status limit (0: none)")
	nodeLimit := fs.Int("node-limit", 0, "stop after `N` branch-and-bound nodes (0: none)")
	gap := gapFlag(fs)
	stability := fs.Int("stability", 0, "re-solve `N` times with the weight and activation traces (avg_trace, act_avg_trace) each drawn from N(value, stderr²) and report how stable the plan is (a table of another criterion than hessian keeps its Ω scores)")
	seed := fs.Uint64("seed", 1, "random `SEED` for --stability")
	engine := fs.String("engine", "bitplan", "ILP `ENGINE`: bitplan (the specialised solver)"+engineHelp())
	var groups multiString
	fs.Var(&groups, "group", "layers matching `REGEX` share one precision, those whose matches agree outside the parenthesised parts in one group; repeatable (the table's ties are kept)")
	arg, f, help, err := parseOne(fs, args, "sensitivity table", format)
	if help || err != nil {
		return err
	}
	g, err := plan.ParseGroups(groups)
	if err != nil {
		return usageError{fmt.Errorf("flag --%v", err)}
	}
	if g.NoAuto {
		return usageError{fmt.Errorf("flag --group none: a table has no automatic groups (its ties are its own); give patterns, or use plan or trace on the model")}
	}
	var solver ilp.Solver
	if *engine != "bitplan" {
		s, ok := engines[*engine]
		if !ok {
			return usageError{fmt.Errorf("flag --engine: unknown engine %q (this build has: bitplan%s)", *engine, engineHelp())}
		}
		solver = s
	}
	if *timeLimit < 0 || *nodeLimit < 0 {
		return usageError{fmt.Errorf("flags --time-limit and --node-limit must not be negative")}
	}
	if err := checkGap(*gap); err != nil {
		return err
	}

	req, err := tableRequest(ctx, arg, &bf, stderr)
	if err != nil {
		return err
	}
	plan.GroupTable(req.Table, nil, g)
	req.Solver, req.Engine = solver, *engine
	req.Settings = &ilp.Settings{TimeLimit: *timeLimit, NodeLimit: *nodeLimit, RelGap: *gap}
	inputs := []string{arg}
	if *writeLP != "" || *writeMPS != "" {
		// plan.Solve builds the problem again: only an export pays for this.
		prob, err := plan.Problem(req)
		if err != nil {
			return err
		}
		if *writeLP != "" {
			if err := writeOutput("write-lp", *writeLP, inputs, func(w io.Writer) error { return ilp.WriteLP(w, prob) }); err != nil {
				return err
			}
		}
		if *writeMPS != "" {
			if err := writeOutput("write-mps", *writeMPS, inputs, func(w io.Writer) error { return ilp.WriteMPS(w, prob) }); err != nil {
				return err
			}
		}
	}
	show, endProgress := solveProgress(stderr)
	req.Settings.Progress = show
	p, err := plan.Solve(ctx, req)
	endProgress()
	if err != nil {
		return err
	}
	if *stability > 0 && p.Objective != nil {
		st, err := plan.StabilityOf(ctx, req, p, *stability, *seed, nil)
		if err != nil {
			return err
		}
		p.Stability = st
	}
	return emitPlan(ctx, p, f, *output, inputs, stdout, stderr)
}

// emitPlan prints the plan's warnings on stderr and the plan in format f to
// output (never over one of inputs) or stdout; an infeasible plan, reported
// all the same, gives errInfeasible. An interrupted run (ctx cancelled: the
// search stopped early) writes nothing and gives an error saying so.
func emitPlan(ctx context.Context, p *plan.Plan, f plan.Format, output string, inputs []string, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("the search was stopped before it finished (%w); no plan written", err)
	}
	warn(stderr, p.Warnings)
	var err error
	if output != "" {
		err = writeOutput("o", output, inputs, func(w io.Writer) error { return p.Write(w, f) })
	} else {
		err = p.Write(stdout, f)
	}
	if err != nil {
		return err
	}
	if p.Status == "infeasible" {
		return errInfeasible
	}
	return nil
}

// engineHelp lists the engines registered by build-tagged files.
func engineHelp() string {
	s := ""
	for name := range engines {
		s += ", " + name
	}
	return s
}

// tableRequest reads a sensitivity table (warnings to stderr) and turns the
// budget and profile flags into a planning request.
func tableRequest(ctx context.Context, path string, bf *budgetFlags, stderr io.Writer) (*plan.Request, error) {
	table, warnings, err := sensitivity.ReadFileContext(ctx, path)
	warn(stderr, warnings)
	if err != nil {
		return nil, err
	}
	hasLatency := true
	lack, first := 0, -1
	for i, l := range table.Layers {
		if l.LatencyMS == nil {
			hasLatency = false
			if lack++; first < 0 {
				first = i
			}
		}
	}
	if lack > 0 && lack < len(table.Layers) {
		bf.latencyNote = fmt.Sprintf("; layers[%d] (%q) has no latency_ms (%d of %d layers lack it)",
			first, table.Layers[first].Name, lack, len(table.Layers))
	}
	devices, budgets, err := bf.budgets(hasLatency)
	if err != nil {
		return nil, err
	}
	return &plan.Request{Table: table, Devices: devices, Budgets: budgets}, nil
}
