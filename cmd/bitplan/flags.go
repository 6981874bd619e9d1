package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/internal/outfile"
	"github.com/bitplan/bitplan/internal/table"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/profiles"
)

// parseInterspersed parses flags that may come before or after positional
// arguments ("bitplan solve t.json --max-size 50%") and returns the
// positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	// The flag package calls Usage on every parse error; the usage goes to
	// stdout (which stays machine-readable) only when -h asked for it.
	usage := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = usage }()
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				usage()
				return nil, err
			}
			return nil, usageError{fmt.Errorf("%v (run with -h for the flags)", err)}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, checkFlags(fs, pos)
		}
		if rest[0] == "--" {
			pos = append(pos, rest[1:]...)
			return pos, checkFlags(fs, pos)
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// outputFlags names the flags of every command whose value is a file the
// command writes; every other flag value naming a file is an input.
var outputFlags = map[string]bool{
	"o": true, "table-out": true, "write-lp": true, "write-mps": true,
	"plot": true, "density": true, "export": true, "overrides": true,
}

// checkFlags runs right after parsing, before any work: no numeric flag of
// bitplan takes a negative or NaN value (counts, limits, tolerances, seeds,
// durations), and checkOutputs.
func checkFlags(fs *flag.FlagSet, pos []string) error {
	var bad error
	fs.Visit(func(f *flag.Flag) {
		if bad != nil {
			return
		}
		v := f.Value.String()
		if d, err := time.ParseDuration(v); err == nil && d < 0 {
			bad = usageError{fmt.Errorf("flag --%s: %s is negative; want a duration of 0 or more", f.Name, v)}
			return
		}
		if x, err := strconv.ParseFloat(v, 64); err == nil && (x < 0 || math.IsNaN(x)) {
			bad = usageError{fmt.Errorf("flag --%s: %s is not allowed; want a number of 0 or more", f.Name, v)}
		}
	})
	if bad != nil {
		return bad
	}
	if err := checkOutputs(fs, pos); err != nil {
		return err
	}
	return checkCombinations(fs)
}

// checkCombinations runs with checkFlags: flags that contradict each other,
// plot files of no known image format, and energy budgets without a device
// are refused before any work.
func checkCombinations(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["exact"] && set["method"] {
		if ex := fs.Lookup("exact").Value.String(); ex == "true" {
			if m := fs.Lookup("method").Value.String(); !strings.EqualFold(m, "exact") {
				return usageError{fmt.Errorf("flags --exact and --method %s conflict; give one of them", m)}
			}
		}
	}
	for _, name := range []string{"plot", "density"} {
		if set[name] {
			if err := plan.CheckImagePath(fs.Lookup(name).Value.String()); err != nil {
				return usageError{fmt.Errorf("flag --%s: %v", name, err)}
			}
		}
	}
	if f := fs.Lookup("max-energy"); f != nil {
		if bv, ok := f.Value.(budgetValue); ok {
			for _, p := range bv.b.pending {
				if p.kind == budget.Energy && len(bv.b.devices) == 0 {
					return usageError{fmt.Errorf("flag --max-energy: needs a --profile (energy comes from a device's cost model; got --max-energy %s)", p.text)}
				}
			}
		}
	}
	return nil
}

// checkOutputs runs before any work: it refuses an output flag naming a file
// that is one of the inputs (a positional argument or the value of any other
// flag set, comma-separated lists included, so --profile and
// --latency-table files are protected too), and two output flags naming one
// file.
func checkOutputs(fs *flag.FlagSet, pos []string) error {
	inputs := append([]string(nil), pos...)
	type out struct{ flag, path string }
	var outs []out
	fs.Visit(func(f *flag.Flag) {
		v := f.Value.String()
		if outputFlags[f.Name] {
			if v != "" {
				outs = append(outs, out{f.Name, v})
			}
			return
		}
		for _, part := range strings.Split(v, ",") {
			if _, p, ok := strings.Cut(part, ":"); ok && p != "" {
				inputs = append(inputs, p) // imagefolder:DIR, idx:DIR
			}
			if part != "" {
				inputs = append(inputs, part)
			}
		}
	})
	for i, o := range outs {
		for _, in := range inputs {
			if sameFile(o.path, in) {
				return usageError{fmt.Errorf("flag --%s: %s is an input file; refusing to overwrite it", o.flag, o.path)}
			}
		}
		for _, p := range outs[:i] {
			if sameFile(o.path, p.path) {
				return usageError{fmt.Errorf("flags --%s and --%s both name %s; give each output its own file", p.flag, o.flag, o.path)}
			}
		}
	}
	return nil
}

// newFlagSet returns a flag set that returns errors rather than exiting and
// prints its usage to stdout only when asked (-h).
func newFlagSet(name, synopsis string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: bitplan %s %s\n\nFlags:\n", name, synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// budgetFlags holds the --max-* and --profile flags shared by the planning
// commands. Flags are taken in order: a --max-latency or --max-energy that
// follows a --profile budgets that device, so
//
//	--profile t4 --max-latency 2ms --profile orin --max-latency 5ms
//
// gives one ILP with a latency row per device.
type budgetFlags struct {
	pending []pendingBudget
	devices []plan.Device
	// batch, perChannel and latency tables tune the device cost models.
	batch      int
	perChannel bool
	// files are the profile and latency-table files read, protected from
	// the output flags (checkOutputs reads them through the flags' String).
	files []string
	// latencyNote names the first layer of a table without latency_ms
	// when others have it, for the error of a latency budget.
	latencyNote string
}

// fileList is the String of the flags that read files: the files read so far.
func (b *budgetFlags) fileList() string {
	if b == nil {
		return ""
	}
	return strings.Join(b.files, ",")
}

type pendingBudget struct {
	flag, text string
	kind       budget.Kind
	device     int // index into devices, or -1
}

// budgetValue is a flag.Value appending a budget of one kind.
type budgetValue struct {
	b    *budgetFlags
	kind budget.Kind
	flag string
}

func (v budgetValue) String() string { return "" }
func (v budgetValue) Set(s string) error {
	dev := -1
	if v.kind == budget.Latency || v.kind == budget.Energy {
		dev = len(v.b.devices) - 1
	}
	if _, err := budget.Parse(v.kind, s); err != nil {
		return err
	}
	v.b.pending = append(v.b.pending, pendingBudget{flag: v.flag, text: s, kind: v.kind, device: dev})
	return nil
}

// profileValue is a flag.Value loading a hardware profile.
type profileValue struct{ b *budgetFlags }

func (v profileValue) String() string { return v.b.fileList() }
func (v profileValue) Set(s string) error {
	p, err := profiles.Load(s)
	if err != nil {
		return err
	}
	for _, d := range v.b.devices {
		if d.Profile.Name == p.Name {
			return fmt.Errorf("profile %q given twice", p.Name)
		}
	}
	if st, err := os.Stat(s); err == nil && st.Mode().IsRegular() {
		v.b.files = append(v.b.files, s)
	}
	v.b.devices = append(v.b.devices, plan.Device{Profile: p, Options: &profiles.Options{}})
	return nil
}

// tableValue is a flag.Value attaching a measured latency table to the last
// profile.
type tableValue struct{ b *budgetFlags }

func (v tableValue) String() string { return v.b.fileList() }
func (v tableValue) Set(s string) error {
	if len(v.b.devices) == 0 {
		return fmt.Errorf("give --profile before --latency-table %s: a table measures one device", s)
	}
	t, err := profiles.LoadTable(s)
	if err != nil {
		return err
	}
	v.b.files = append(v.b.files, s)
	v.b.devices[len(v.b.devices)-1].Options.Table = t
	return nil
}

func (b *budgetFlags) register(fs *flag.FlagSet) {
	fs.Var(budgetValue{b, budget.Size, "max-size"}, "max-size", "model size budget: `SIZE` with a unit (6.5MB, 512KiB) or P% (= P%range) of the range between all-lowest and all-highest precision (HAWQ's convention); P%max: P% of the all-highest size")
	fs.Var(budgetValue{b, budget.BOPS, "max-bops"}, "max-bops", "bit-operations budget (MACs·b_w·b_a): `BOPS` such as 72G, or P% of the range (P%max: of the all-highest)")
	fs.Var(budgetValue{b, budget.Latency, "max-latency"}, "max-latency", "latency budget: `TIME` such as 2.8ms or 250us, or P% of the range (P%max: of the all-highest); after --profile it budgets that device, else the table's latency_ms")
	fs.Var(budgetValue{b, budget.Energy, "max-energy"}, "max-energy", "energy budget: `ENERGY` such as 3mJ, or P% of the range (P%max: of the all-highest); applies to the preceding --profile")
	fs.Var(profileValue{b}, "profile", "hardware `PROFILE`: a built-in name (see bitplan profiles) or a JSON file; repeat for several devices")
	fs.Var(tableValue{b}, "latency-table", "measured latencies (`FILE`, CSV layer,precision,ms or JSON) overriding the preceding profile's roofline")
	fs.IntVar(&b.batch, "batch", 1, "batch size `N` for the device cost models")
	fs.BoolVar(&b.perChannel, "per-channel", false, "count per-channel scales (4 bytes per output channel) in model size on devices")
}

// budgets returns the devices and the budgets, mapping each latency or
// energy budget to its device ("latency@t4"); a latency budget before any
// profile uses the table's latency_ms, or the only device when the table
// has none. Errors name the flag.
func (b *budgetFlags) budgets(tableHasLatency bool) ([]plan.Device, []plan.Budget, error) {
	if b.batch < 1 {
		return nil, nil, usageError{fmt.Errorf("flag --batch: must be at least 1, got %d", b.batch)}
	}
	for _, d := range b.devices {
		d.Options.Batch = b.batch
		d.Options.PerChannel = b.perChannel
	}
	var out []plan.Budget
	for _, p := range b.pending {
		s, err := budget.Parse(p.kind, p.text)
		if err != nil {
			return nil, nil, usageError{fmt.Errorf("flag --%s: %v", p.flag, err)}
		}
		res := p.kind.String()
		dev := p.device
		if dev < 0 && (p.kind == budget.Energy || (p.kind == budget.Latency && !tableHasLatency)) {
			switch len(b.devices) {
			case 0:
				return nil, nil, usageError{fmt.Errorf("flag --%s: needs a --profile (or, for latency, a table with latency_ms%s)", p.flag, b.latencyNote)}
			case 1:
				dev = 0
			default:
				return nil, nil, usageError{fmt.Errorf("flag --%s %s: give it after the --profile it budgets", p.flag, p.text)}
			}
		}
		if dev >= 0 {
			res += "@" + b.devices[dev].Profile.Name
		}
		for i, prev := range out {
			if prev.Resource == res {
				return nil, nil, usageError{fmt.Errorf("flag --%s given twice for %s (%s and %s); give one budget per resource", p.flag, res, b.pending[i].text, p.text)}
			}
		}
		out = append(out, plan.Budget{Resource: res, Spec: s})
	}
	return b.devices, out, nil
}

// sameFile reports whether two paths name the same existing file.
func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(sa, sb)
	}
	aa, _ := filepath.Abs(a)
	bb, _ := filepath.Abs(b)
	return aa == bb
}

// writeOutput runs write on a temporary file that replaces path only when it
// is complete (outfile.Write: a failed or killed run leaves the old file),
// refusing to overwrite any of the inputs; flag names the flag for errors,
// write errors (a full disk) included.
func writeOutput(flag, path string, inputs []string, write func(io.Writer) error) error {
	for _, in := range inputs {
		if sameFile(path, in) {
			return usageError{fmt.Errorf("flag --%s: %s is an input file; refusing to overwrite it", flag, path)}
		}
	}
	if err := outfile.Write(path, write); err != nil {
		return fmt.Errorf("flag --%s: writing %s: %w", flag, path, err)
	}
	return nil
}

// warn prints non-fatal diagnostics to stderr.
func warn(stderr io.Writer, ws []string) {
	for _, w := range ws {
		fmt.Fprintln(stderr, "bitplan: warning:", strings.TrimSpace(w))
	}
}

// defaultGap is the relative optimality gap of --gap by default (that of
// ilp.Settings).
const defaultGap = 1e-9

// gapFlag registers --gap, the relative optimality gap at which the ILP
// search stops.
func gapFlag(fs *flag.FlagSet) *float64 {
	return fs.Float64("gap", defaultGap, "stop the ILP search once the plan is proven within relative `GAP` of the optimum")
}

// checkGap rejects a --gap outside (0, 1).
func checkGap(g float64) error {
	if !(g > 0 && g < 1) {
		return usageError{fmt.Errorf("flag --gap: %v is not a relative gap; want a number in (0, 1), e.g. 1e-6", g)}
	}
	return nil
}

// parseOne parses the command line of a command that takes exactly one
// argument (what it is: "ONNX model", "sensitivity table") and checks its
// --format flag (read after parsing). help is true after -h, when the command has nothing left
// to do (err is then nil).
func parseOne(fs *flag.FlagSet, args []string, what string, format *string) (arg string, f table.Format, help bool, err error) {
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return "", "", true, nil
	}
	if err != nil {
		return "", "", false, err
	}
	if len(pos) != 1 {
		return "", "", false, usageError{fmt.Errorf("%s: want exactly one %s, got %d arguments", fs.Name(), what, len(pos))}
	}
	if f, err = table.ParseFormat(*format); err != nil {
		return "", "", false, usageError{fmt.Errorf("flag --format: %v", err)}
	}
	return pos[0], f, false, nil
}
