package nn_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// TestCheckListsAll checks that the static check reports every problem of a
// graph at once, each naming its node and operator, with the supported set.
func TestCheckListsAll(t *testing.T) {
	b := mt.New("bad", 9)
	b.Input("x", -1, 3)
	b.Double("w", []int{2, 3}, make([]float64, 6))
	b.Node("Gemm", "fc", []string{"x", "w"}, []string{"h"}, mt.Int("transB", 1))
	b.Node("Hardmax", "hardmax", []string{"h"}, []string{"e"})
	b.Node("ConstantOfShape", "cos", []string{"e"}, []string{"g"})
	b.Node("Hardmax", "hardmax2", []string{"g"}, []string{"y"})
	b.Output("y")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	err = nn.Check(m)
	var ue *nn.UnsupportedError
	if !errors.As(err, &ue) {
		t.Fatalf("Check: %v, want an *UnsupportedError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"opset 9 is not supported (want 11–21",
		`operator Hardmax is not supported by the engine, at 2 nodes: Hardmax node "hardmax" (#1), Hardmax node "hardmax2" (#3)`,
		`ConstantOfShape node "cos" (#2): ConstantOfShape is supported only on constants and shapes`,
		"supported operators: Abs, Add,",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if len(ue.Problems) != 4 || strings.Join(ue.Ops(), ",") != "ConstantOfShape,Hardmax" {
		t.Errorf("problems %+v, ops %v", ue.Problems, ue.Ops())
	}
	if _, err := nn.New(m, nil); err == nil || err.Error() != msg {
		t.Errorf("New: %v, want the static check's error", err)
	}
}
