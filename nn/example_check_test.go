package nn_test

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// ExampleCheck runs the static check on the committed tiny U-Net export:
// the engine runs every operator (Check returns nil), but the per-pixel
// logits do not suit the default class-label loss, which New reports before
// any work; per-position labels take them.
func ExampleCheck() {
	m, err := model.Load(filepath.Join("..", "testdata", "zoo", "tiny_unet", "op13.onnx"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(nn.Check(m))
	var ue *nn.UnsupportedError
	if _, err := nn.New(m, nil); errors.As(err, &ue) {
		for _, p := range ue.Problems {
			fmt.Println(p.Reason)
		}
	}
	e, err := nn.New(m, &nn.Options{Loss: nn.PositionLabels{Ignore: -100}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.OutputShape())
	// Output:
	// <nil>
	// output "logits" has shape [1 3 16 16] at batch 1; the class-label loss takes batch×classes logits (per-position labels or MSE take other outputs: Options.Loss)
	// [3 16 16]
}
