// Command gen writes a synthetic bitplan benchmark instance: a sensitivity
// table (the JSON format of bitplan solve, with delta_sq and latency_ms at
// 2, 3, 4, 5, 6 and 8 bits) and the same problem as fixed-format MPS for
// external solvers, with the size and latency budgets at 50 % between
// all-lowest and all-highest (HAWQ-V3's convention, as bitplan solve
// --max-size 50% --max-latency 50% reads them).
//
// Usage:
//
//	go run ./bench/gen -groups 5000 -table t.json -mps t.mps [-seed 1] [-solve]
//	go run ./bench/gen -read t.json
//
// With -solve it also solves the instance with package ilp and prints the
// status, objective and time (a driver when the CLI is not available). With
// -read it only reads a table (bench/parse.sh times it).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/bitplan/bitplan/ilp"
	"github.com/bitplan/bitplan/internal/jsonx"
	"github.com/bitplan/bitplan/sensitivity"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// bits are the candidate weight bit widths.
var bits = [...]int{2, 3, 4, 5, 6, 8}

// bitKeys are bits as the table's keys, in encoding/json's sorted order.
var bitKeys = [len(bits)]string{"2", "3", "4", "5", "6", "8"}

// layer is one entry of the sensitivity table, with delta_sq and
// latency_ms indexed as bits.
type layer struct {
	params, macs int64
	avgTrace     float64
	deltaSq      [len(bits)]float64
	latencyMS    [len(bits)]float64
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	groups := fs.Int("groups", 500, "number of `N` layers")
	seed := fs.Uint64("seed", 1, "random `SEED`")
	tablePath := fs.String("table", "", "write the sensitivity table to `FILE` (JSON)")
	mpsPath := fs.String("mps", "", "write the problem to `FILE` (fixed MPS)")
	solve := fs.Bool("solve", false, "solve with package ilp and print the result")
	read := fs.String("read", "", "only read the sensitivity table `FILE` with package sensitivity and print the layer count and the time (bench/parse.sh)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `FILE` (go tool pprof)")
	memProfile := fs.String("memprofile", "", "write a heap profile (allocations) at the end of the run to `FILE`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 64 << 10
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	if *read != "" {
		t0 := time.Now()
		tab, _, err := sensitivity.ReadFile(*read)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "read %d layers in %.3f s\n", len(tab.Layers), time.Since(t0).Seconds())
		return nil
	}
	if *groups < 1 {
		return fmt.Errorf("-groups %d: want at least 1", *groups)
	}
	// The layers are kept only when a problem is built from them; a table
	// alone is written as it is drawn.
	keep := *mpsPath != "" || *solve
	var ls []layer
	if keep {
		ls = make([]layer, 0, *groups)
	}
	var tw *tableWriter
	if *tablePath != "" {
		f, err := os.Create(*tablePath)
		if err != nil {
			return err
		}
		tw = newTableWriter(f, *groups)
	}
	rng := rand.New(rand.NewPCG(*seed, 2024))
	for i := 0; i < *groups; i++ {
		l := draw(rng)
		if tw != nil {
			tw.layer(i, &l)
		}
		if keep {
			ls = append(ls, l)
		}
	}
	if tw != nil {
		if err := tw.close(); err != nil {
			return fmt.Errorf("-table %s: %w", *tablePath, err)
		}
	}
	if !keep {
		return nil
	}
	p := problem(ls)
	if *mpsPath != "" {
		f, err := os.Create(*mpsPath)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		if err := ilp.WriteMPS(w, p); err != nil {
			f.Close()
			return fmt.Errorf("-mps %s: %w", *mpsPath, err)
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return fmt.Errorf("-mps %s: %w", *mpsPath, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if *solve {
		t0 := time.Now()
		sol, err := ilp.Solve(context.Background(), p, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "status %v objective %.12g bound %.12g gap %.3g nodes %d time %.6f s\n",
			sol.Status, sol.Objective, sol.Bound, sol.Gap, sol.Nodes, time.Since(t0).Seconds())
	}
	return nil
}

// draw draws one layer: params log-uniform over 1e3..4e5, MACs a
// log-uniform multiple of params, average trace log-normal, Δ² falling about
// 4× per bit, latency roughly affine in the bit width.
func draw(rng *rand.Rand) layer {
	params := math.Round(math.Exp(rng.Float64()*6) * 1e3)
	macs := math.Round(params * math.Exp(rng.Float64()*4) * 50)
	l := layer{params: int64(params), macs: int64(macs), avgTrace: math.Exp(rng.NormFloat64() * 2)}
	base := params * (0.5 + rng.Float64())
	speed := macs * 1e-9 * (0.5 + rng.Float64())
	for k, b := range bits {
		l.deltaSq[k] = base * math.Pow(4, -float64(b)) * (0.8 + 0.4*rng.Float64())
		l.latencyMS[k] = speed * (0.4 + 0.1*float64(b)) * (0.9 + 0.2*rng.Float64())
	}
	return l
}

// tableWriter streams the table as encoding/json.MarshalIndent(t, "", " ")
// wrote it (a test checks the bytes), one layer at a time.
type tableWriter struct {
	f   *os.File
	w   *bufio.Writer
	buf []byte
	err error
}

func newTableWriter(f *os.File, n int) *tableWriter {
	tw := &tableWriter{f: f, w: bufio.NewWriterSize(f, 1<<20)}
	b := append(tw.buf[:0], "{\n \"model\": "...)
	b = jsonx.AppendString(b, fmt.Sprintf("synthetic-%d", n))
	b = append(b, ",\n \"source\": \"bitplan bench/gen\",\n \"layers\": ["...)
	tw.buf = b
	return tw
}

func (tw *tableWriter) layer(i int, l *layer) {
	b := tw.buf
	if i > 0 {
		b = append(b, ',')
	}
	b = append(b, "\n  {\n   \"name\": \"layer"...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, "\",\n   \"params\": "...)
	b = strconv.AppendInt(b, l.params, 10)
	b = append(b, ",\n   \"macs\": "...)
	b = strconv.AppendInt(b, l.macs, 10)
	b = append(b, ",\n   \"avg_trace\": "...)
	b = jsonx.AppendFloat(b, l.avgTrace)
	for m, vs := range [2]*[len(bits)]float64{&l.deltaSq, &l.latencyMS} {
		if m == 0 {
			b = append(b, ",\n   \"delta_sq\": {"...)
		} else {
			b = append(b, ",\n   \"latency_ms\": {"...)
		}
		for k, v := range vs {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, "\n    \""...)
			b = append(b, bitKeys[k]...)
			b = append(b, "\": "...)
			b = jsonx.AppendFloat(b, v)
		}
		b = append(b, "\n   }"...)
	}
	b = append(b, "\n  }"...)
	if len(b) >= 1<<16 {
		tw.write(b)
		b = b[:0]
	}
	tw.buf = b
}

func (tw *tableWriter) write(b []byte) {
	if tw.err == nil {
		_, tw.err = tw.w.Write(b)
	}
}

func (tw *tableWriter) close() error {
	tw.write(append(tw.buf, "\n ]\n}"...))
	if tw.err == nil {
		tw.err = tw.w.Flush()
	}
	if err := tw.f.Close(); tw.err == nil {
		tw.err = err
	}
	return tw.err
}

// problem builds the ILP: value avg_trace·Δ²(b), rows size = params·b/8 bytes
// and latency, both limited at 50 % between all-lowest and all-highest
// precision (the same limits `bitplan solve --max-size 50% --max-latency
// 50%` derives from the table).
func problem(ls []layer) *ilp.Problem {
	p := &ilp.Problem{Rows: []ilp.Row{{Name: "size", Unit: "B"}, {Name: "latency", Unit: "ms"}}}
	lo := make([]float64, 2)
	hi := make([]float64, 2)
	p.Groups = make([]ilp.Group, 0, len(ls))
	for i := range ls {
		l := &ls[i]
		g := ilp.Group{Name: "layer" + strconv.Itoa(i), Choices: make([]ilp.Choice, 0, len(bits))}
		for k, b := range bits {
			g.Choices = append(g.Choices, ilp.Choice{
				Label: bitKeys[k],
				Value: l.avgTrace * l.deltaSq[k],
				Costs: []float64{float64(l.params) * float64(b) / 8, l.latencyMS[k]},
			})
		}
		// HAWQ's convention, as `bitplan solve` resolves P%: the cost with
		// every layer at its lowest and at its highest bit width.
		for k := range lo {
			lo[k] += g.Choices[0].Costs[k]
			hi[k] += g.Choices[len(g.Choices)-1].Costs[k]
		}
		p.Groups = append(p.Groups, g)
	}
	for k := range p.Rows {
		p.Rows[k].Limit = lo[k] + 0.5*(hi[k]-lo[k])
	}
	return p
}
