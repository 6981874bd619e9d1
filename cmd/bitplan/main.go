// Command bitplan plans mixed-precision quantization of neural networks:
// Hessian-trace sensitivities, hardware costs and an exact integer linear
// program choosing a bit width per layer.
//
// Usage:
//
//	bitplan plan [MODEL.onnx --data mnist] [--profile t4] [--max-size S] [--max-bops B] [--max-latency L]
//	bitplan trace MODEL.onnx --data mnist
//	bitplan solve TABLE.json [--max-size S] [--max-bops B] [--max-latency L] [--format F]
//	bitplan eval MODEL.onnx --plan plan.json --data mnist
//	bitplan quantize MODEL.onnx --plan plan.json --data mnist -o model.qdq.onnx
//	bitplan measure MODEL.onnx --runtime ort --data mnist -o latency.csv
//	bitplan prune MODEL.onnx --data mnist --max-params 50%
//	bitplan pareto TABLE.json --sweep bops --plot frontier.svg
//	bitplan profiles [NAME]
//
// Run `bitplan help` for the list of commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(os.Stderr, err))
}

// command is one subcommand of bitplan.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists the subcommands in help order.
var commands []command

func init() {
	commands = []command{
		{"plan", "plan an ONNX model: traces, costs and the optimal precision per layer (no arguments: the bundled demo)", runPlan},
		{"eval", "accuracy and loss of a model fake-quantized by a plan", runEval},
		{"quantize", "write a plan as an ONNX QDQ model (INT8/INT4 weights, calibrated activations) for ONNX Runtime or TensorRT", runQuantize},
		{"measure", "time every layer and the whole model in ONNX Runtime at each precision: a latency table for --latency-table", runMeasure},
		{"prune", "Hessian-aware pruning (HAP) under parameter, FLOPs or latency budgets; joint prune + quantize", runPrune},
		{"trace", "estimate per-layer Hessian traces of an ONNX model on calibration data", runTrace},
		{"solve", "solve the bit-allocation ILP for a sensitivity table", runSolve},
		{"pareto", "sweep one budget and print (and plot) the Pareto frontier", runPareto},
		{"profiles", "list the built-in hardware profiles, or describe some", runProfiles},
		{"help", "show this help", nil},
	}
}

// run is the real entry point: it dispatches args to a subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] && c.run != nil {
			err := c.run(ctx, args[1:], stdout, stderr)
			if err == nil && ctx.Err() != nil {
				// Whatever the command finished with, it was cut short.
				err = fmt.Errorf("stopped before the end (%w)", ctx.Err())
			}
			return err
		}
	}
	usage(stderr)
	return usageError{fmt.Errorf("unknown command %q", args[0])}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "bitplan plans mixed-precision quantization with Hessian sensitivities and an exact ILP.")
	fmt.Fprintln(w, "\nUsage: bitplan COMMAND [arguments]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `bitplan COMMAND -h` for a command's flags.")
}

// usageError marks errors in the command line (exit status 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// errInfeasible is returned after the report of an infeasible plan has been
// written (exit status 3).
var errInfeasible = errors.New("no plan meets the budgets")

// exitInterrupted is the exit status of a run stopped by Ctrl-C (128 + SIGINT,
// as shells report it).
const exitInterrupted = 130

// exitCode prints err and maps it to the process exit status: 0 success,
// 1 error, 2 bad command line, 3 infeasible budgets, 130 interrupted.
func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var ue usageError
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "bitplan: interrupted:", err)
		return exitInterrupted
	}
	fmt.Fprintln(stderr, "bitplan:", err)
	switch {
	case errors.As(err, &ue):
		return 2
	case errors.Is(err, errInfeasible):
		return 3
	}
	return 1
}
