package main

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/sensitivity"
)

var root = filepath.Join("..", "..", "..")

// TestDocumentCurrent checks that docs/validation.md is the output of a
// full run on the committed inputs: every input the document lists has
// the SHA-256 it lists, the list covers the study's own inputs, and the
// document is not a -quick smoke test. It costs a few hashes, not a rerun.
func TestDocumentCurrent(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, "docs", "validation.md"))
	if err != nil {
		t.Fatalf("docs/validation.md: %v (regenerate it: nice -n 10 go run ./eval/internal/study)", err)
	}
	text := string(doc)
	if strings.Contains(text, "Quick mode") {
		t.Fatal("docs/validation.md is a -quick smoke test; regenerate it with a full run")
	}
	re := regexp.MustCompile("(?m)^- `([^`]+)` `([0-9a-f]{64})`$")
	listed := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		listed[m[1]] = true
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(m[1])))
		if err != nil {
			t.Errorf("input %s listed in docs/validation.md: %v", m[1], err)
			continue
		}
		h := sha256.Sum256(b)
		if got := hex.EncodeToString(h[:]); got != m[2] {
			t.Errorf("%s changed since docs/validation.md was generated (SHA-256 %s, the document lists %s): rerun nice -n 10 go run ./eval/internal/study", m[1], got, m[2])
		}
	}
	for _, in := range inputs {
		if !listed[in] {
			t.Errorf("docs/validation.md does not list the input %s: rerun the study", in)
		}
	}
	for _, m := range strings.Split(defaultModels, ",") {
		if p := "testdata/models/" + m + ".onnx"; !listed[p] {
			t.Errorf("docs/validation.md does not list the study's model %s: rerun the study", p)
		}
	}
}

// The bootstrap interval of a mean of ±1 differences covers the mean and
// has about the width 2·1.96·sd/√n.
func TestBootstrap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	d := make([]float64, 2000)
	for i := range d {
		if rng.Float64() < 0.3 {
			d[i] = 1
		} else if rng.Float64() < 0.2 {
			d[i] = -1
		}
	}
	iv := bootstrap([][][]float64{{d}}, 2000, 3)
	var m, v float64
	for _, x := range d {
		m += x / float64(len(d))
	}
	for _, x := range d {
		v += (x - m) * (x - m) / float64(len(d)-1)
	}
	half := 1.96 * math.Sqrt(v/float64(len(d)))
	if math.Abs(iv.mean-m) > 1e-12 || iv.lo > m || iv.hi < m {
		t.Fatalf("interval %+v, mean %v", iv, m)
	}
	if w := (iv.hi - iv.lo) / 2; math.Abs(w-half) > 0.15*half {
		t.Errorf("half width %.4f, normal theory %.4f", w, half)
	}
}

func TestSpearman(t *testing.T) {
	if got, want := spearman([]float64{1, 2, 2, 3}, []float64{10, 20, 30, 40}), 4.5/math.Sqrt(4.5*5); math.Abs(got-want) > 1e-12 {
		t.Errorf("ties: %g, want %g", got, want)
	}
	if got := spearman([]float64{3, 2, 1}, []float64{1, 5, 9}); math.Abs(got+1) > 1e-12 {
		t.Errorf("reversed: %g, want -1", got)
	}
}

// toy is a three-layer model whose middle layer is the most sensitive.
func toy() *modelResult {
	cands := []sensitivity.Precision{{W: 2, A: 8}, {W: 3, A: 8}, {W: 4, A: 8}, {W: 8, A: 8}, {W: 4, A: 4}}
	r := &modelResult{}
	for i, n := range []float64{100, 400, 200} {
		l := sensitivity.Layer{Name: string(rune('a' + i)), Params: n, MACs: 10 * n, AvgTrace: []float64{1, 5, 0.5}[i], DeltaSq: map[string]float64{}}
		for _, c := range cands {
			l.DeltaSq[c.String()] = 1
		}
		r.layers = append(r.layers, l)
		p, k := l.Candidates()
		r.precs, r.keys = append(r.precs, p), append(r.keys, k)
	}
	return r
}

// Greedy and random plans fit and are maximal: no layer can be widened
// and still fit; greedy lowers the least sensitive layer first.
func TestGreedyAndRandomAreMaximal(t *testing.T) {
	r := toy()
	rng := rand.New(rand.NewPCG(2, 2))
	for _, res := range []string{"size", "bops"} {
		lo, hi := 0.0, 0.0
		for i := range r.layers {
			l := r.ladder(res, i)
			hi += r.cost(res, i, l[0])
			lo += r.cost(res, i, l[len(l)-1])
		}
		for _, f := range []float64{0.1, 0.3, 0.5, 0.8} {
			limit := lo + f*(hi-lo)
			plans := [][]int{r.greedy(&sensitivity.Table{Layers: r.layers}, res, limit)}
			for k := 0; k < 20; k++ {
				plans = append(plans, r.randomMaximal(rng, res, limit))
			}
			for pi, c := range plans {
				if !fits(r.total(res, c), limit) {
					t.Fatalf("%s %.0f%%: plan %d %v does not fit", res, 100*f, pi, c)
				}
				for i := range c {
					for cc, p := range r.precs[i] {
						if !wider(p, r.precs[i][c[i]]) {
							continue
						}
						up := append([]int(nil), c...)
						up[i] = cc
						if fits(r.total(res, up), limit) && pi > 0 {
							t.Fatalf("%s %.0f%%: random plan %v is not maximal (layer %d can take %s)", res, 100*f, c, i, p)
						}
					}
				}
			}
			g := plans[0]
			per := func(i int) float64 { return r.cost(res, i, g[i]) / r.layers[i].Params }
			if res == "bops" {
				per = func(i int) float64 { return r.cost(res, i, g[i]) / r.layers[i].MACs }
			}
			if per(2) > per(1) {
				t.Errorf("%s %.0f%%: greedy %v gives the least sensitive layer c more bits than the most sensitive b", res, 100*f, g)
			}
		}
	}
}

// TestQuick runs the whole study in -quick mode on one small model: every
// section is written, the fine-tuned plans are compared in the summary,
// and fine-tuning changes some plan's accuracy (a few straight-through
// steps recover part of what a low-bit plan loses).
func TestQuick(t *testing.T) {
	t.Chdir(root)
	out := filepath.Join(t.TempDir(), "validation.md")
	cfg := quickConfig([]string{"fmnist_mbv2"})
	if err := run(t.Context(), cfg, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, want := range []string{"Quick mode", "## Summary", "All models pooled:", "## Does the goal hold?", "- FT `hessian`:",
		"## Does Ω predict the damage?", "## Which proxy error?", "## fmnist_mbv2", "After fine-tuning (seed 1)", "difference to the fine-tuned Hessian ILP"} {
		if !strings.Contains(doc, want) {
			t.Errorf("the quick document lacks %q", want)
		}
	}
	re := regexp.MustCompile(`(?m)^\| uniform \| [^|]+ \| [^|]+ \| \(reference\) \| \| \| (\d+ / \d+ / \d+) \| `)
	if m := re.FindStringSubmatch(doc); m == nil {
		t.Errorf("no fine-tuned uniform row vs hessian in the summary:\n%s", doc)
	}
	pairs := regexp.MustCompile(`([0-9.]+) → ([0-9.]+)`).FindAllStringSubmatch(doc, -1)
	changed := 0
	for _, m := range pairs {
		if m[1] != m[2] {
			changed++
		}
	}
	if len(pairs) == 0 || changed == 0 {
		t.Errorf("%d PTQ → FT accuracies, %d changed by fine-tuning", len(pairs), changed)
	}
}
