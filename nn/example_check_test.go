package nn_test

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// ExampleCheck runs the static check on the committed tiny U-Net export,
// whose per-pixel logits the default class-label loss cannot score:
// everything the engine cannot run is reported at once, before any work.
func ExampleCheck() {
	m, err := model.Load(filepath.Join("..", "testdata", "zoo", "tiny_unet", "op13.onnx"))
	if err != nil {
		fmt.Println(err)
		return
	}
	var ue *nn.UnsupportedError
	if errors.As(nn.Check(m), &ue) {
		for _, p := range ue.Problems {
			fmt.Println(p.Reason)
		}
		fmt.Println(ue.Ops())
	}
	// Output:
	// output "logits" has shape [1 3 16 16] at batch 1; class labels take batch×classes logits (per-position labels or MSE take other outputs: Options.Loss)
	// []

}
