// Package bundled holds the default model that `bitplan plan` plans when it
// is given no model: LeNet-5 trained on MNIST (a copy of
// testdata/models/lenet.onnx, made by scripts/train_models.py; a test keeps
// the two identical).
package bundled

import _ "embed"

// LeNet is the ONNX file of the bundled LeNet-5 (input N×1×28×28, 10
// logits).
//
//go:embed lenet.onnx
var LeNet []byte
