package nn

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/model"
)

var updateZoo = flag.Bool("update-zoo", false, "rewrite testdata/zoo/unsupported.txt from the static check")

// zooSupport is the expectation file of TestZooStaticCheck: one line per
// committed zoo model and opset, "name/opN: what the static check reports".
const zooSupport = "../testdata/zoo/unsupported.txt"

// zooFiles are the committed zoo exports (testdata/zoo/README.md).
var zooFiles = []string{
	"tiny_resnet", "tiny_bert", "tiny_vit", "tiny_quartznet", "tiny_lstm", "tiny_gru", "tiny_unet",
}

// checkSummary condenses Check's verdict on one model: "ok", or the
// unsupported operators (sorted) and the graph-level constructs.
func checkSummary(m *model.Model) (string, error) {
	err := Check(m)
	if err == nil {
		return "ok", nil
	}
	var ue *UnsupportedError
	if !errors.As(err, &ue) {
		return "", err
	}
	var parts []string
	if ops := ue.Ops(); len(ops) > 0 {
		parts = append(parts, "ops "+strings.Join(ops, " "))
	}
	var cons []string
	for _, p := range ue.Problems {
		if p.Op != "" {
			continue
		}
		switch {
		case strings.Contains(p.Reason, "data inputs"):
			cons = append(cons, "several-inputs")
		case strings.Contains(p.Reason, "element type"):
			cons = append(cons, "integer-input")
		case strings.Contains(p.Reason, "batch×classes"):
			cons = append(cons, "per-position-output")
		default:
			cons = append(cons, p.Reason)
		}
	}
	slices.Sort(cons)
	cons = slices.Compact(cons)
	if len(cons) > 0 {
		parts = append(parts, "constructs "+strings.Join(cons, " "))
	}
	return strings.Join(parts, "; "), nil
}

// TestZooStaticCheck runs the static check over every committed zoo model at
// both opsets and compares what remains unsupported with
// testdata/zoo/unsupported.txt. When an operator is added to the engine, the
// file changes: run `go test ./nn -run TestZooStaticCheck -update-zoo` and
// review the diff. It also checks that every problem names its node and
// that the error lists them all at once.
func TestZooStaticCheck(t *testing.T) {
	want := map[string]string{}
	if f, err := os.Open(zooSupport); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("%s: bad line %q, want name/opN: summary", zooSupport, line)
			}
			want[k] = v
		}
		f.Close()
	} else if !*updateZoo {
		t.Fatalf("%v (regenerate with -update-zoo)", err)
	}
	var lines []string
	for _, name := range zooFiles {
		for _, op := range []int{13, 17} {
			key := fmt.Sprintf("%s/op%d", name, op)
			m, err := model.Load(filepath.Join("..", "testdata", "zoo", name, fmt.Sprintf("op%d.onnx", op)))
			if err != nil {
				t.Fatalf("%s: import: %v", key, err)
			}
			got, err := checkSummary(m)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			lines = append(lines, key+": "+got)
			if !*updateZoo && want[key] != got {
				t.Errorf("%s: static check says %q, %s says %q (update with -update-zoo if the engine changed)", key, got, zooSupport, want[key])
			}
			var ue *UnsupportedError
			if errors.As(Check(m), &ue) {
				msg := ue.Error()
				for _, p := range ue.Problems {
					if p.Op != "" && (!strings.Contains(p.Node, p.Op) || !strings.Contains(msg, p.Node)) {
						t.Errorf("%s: problem %+v does not name its node in %q", key, p, msg)
					}
				}
				if !strings.Contains(msg, "supported operators: ") {
					t.Errorf("%s: error does not list the supported operators", key)
				}
				if _, err := New(m, nil); err == nil || err.Error() != msg {
					t.Errorf("%s: New error %v, want the static check's", key, err)
				}
			}
		}
	}
	if *updateZoo {
		head := "# What the static check (nn.Check) reports for each committed zoo model.\n" +
			"# Written by: go test ./nn -run TestZooStaticCheck -update-zoo\n"
		if err := os.WriteFile(zooSupport, []byte(head+strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestZooCacheStaticCheck logs the static check of the large zoo models when
// BITPLAN_ZOO_DIR names a directory written by
// `scripts/zoo.py --large --out DIR` (skipped otherwise).
func TestZooCacheStaticCheck(t *testing.T) {
	dir := os.Getenv("BITPLAN_ZOO_DIR")
	if dir == "" {
		t.Skip("set BITPLAN_ZOO_DIR to a directory made by /usr/bin/python3 scripts/zoo.py --large --out DIR")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
	for _, f := range files {
		m, err := model.Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		got, err := checkSummary(m)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		t.Logf("| %s | %s |", strings.TrimSuffix(filepath.Base(f), ".onnx"), got)
	}
}
