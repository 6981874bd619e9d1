package bundled

import (
	"bytes"
	"os"
	"testing"
)

func TestCopyMatchesTestdata(t *testing.T) {
	b, err := os.ReadFile("../../testdata/models/lenet.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, LeNet) {
		t.Fatal("internal/bundled/lenet.onnx differs from testdata/models/lenet.onnx: copy it again")
	}
}
