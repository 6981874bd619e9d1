package model_test

import (
	"fmt"
	"path/filepath"

	"github.com/bitplan/bitplan/model"
)

// ExampleModel_Specialize imports the committed tiny ViT export (a class
// token expanded to the dynamic batch through Shape, Gather, Unsqueeze,
// Concat, Equal, Where and Expand) and specialises it to a batch of 4:
// import folds the 71 Constant and 8 Identity nodes and the constant
// subgraphs, Specialize the batch-dependent shape arithmetic.
func ExampleModel_Specialize() {
	m, err := model.Load(filepath.Join("..", "testdata", "zoo", "tiny_vit", "op17.onnx"))
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := m.Specialize(map[string][]int{"input": {4, 3, 16, 16}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("nodes in the file: 229; imported:", len(m.Nodes), "; for batch 4:", len(s.Nodes))
	fmt.Println("shape nodes left:", len(s.Residual()))
	fmt.Println("logits:", s.Shapes.Dims["logits"])
	// Output:
	// nodes in the file: 229; imported: 150 ; for batch 4: 72
	// shape nodes left: 0
	// logits: [4 10]
}
