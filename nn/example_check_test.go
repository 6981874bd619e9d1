package nn_test

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// ExampleCheck runs the static check on the committed tiny LSTM classifier
// export: everything the engine cannot run yet is reported at once.
func ExampleCheck() {
	m, err := model.Load(filepath.Join("..", "testdata", "zoo", "tiny_lstm", "op13.onnx"))
	if err != nil {
		fmt.Println(err)
		return
	}
	var ue *nn.UnsupportedError
	if errors.As(nn.Check(m), &ue) {
		for _, p := range ue.Problems {
			fmt.Println(p.Node)
		}
		fmt.Println(ue.Ops())
	}
	// Output:
	// LSTM node "/rnn/LSTM" (#1)
	// [LSTM]
}
