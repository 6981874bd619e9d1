package data_test

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
)

// jpegTol bounds |Go − torchvision| per value of the ImageNet preset for
// JPEG files: 4 levels of 255 after Normalize (4/(255·0.225) ≈ 0.070).
// Pillow decodes with libjpeg (islow IDCT), bitplan with Go's image/jpeg
// (a different integer IDCT), so the decoded pixels differ by a few levels
// (TestJPEGDecodeLevels measures it); chroma upsampling and YCbCr→RGB
// follow libjpeg exactly (upsampleChroma, yccToRGB), and resizing, cropping
// and normalising are exact (TestResampleEqualsPIL).
const jpegTol = 0.070

func TestImageFolderEqualsTorchvision(t *testing.T) {
	z, err := data.OpenNPZ(filepath.Join("..", "testdata", "imagefolder_ref.npz"))
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	ref, err := z.Array("imagenet")
	if err != nil {
		t.Fatal(err)
	}
	f, err := data.OpenImageFolder(filepath.Join("..", "testdata", "imagefolder"), data.ImageNet)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(f.SampleShape()); got != "[3 224 224]" {
		t.Fatalf("sample shape %s", got)
	}
	size := data.SampleSize(f)
	x := make([]float64, f.Len()*size)
	y := make([]int, f.Len())
	if err := f.Read(0, x, y); err != nil {
		t.Fatal(err)
	}
	if len(x) != len(ref.Float) {
		t.Fatalf("%d values, torchvision %d", len(x), len(ref.Float))
	}
	for i := range f.Len() {
		maxd, sum := 0.0, 0.0
		for k := i * size; k < (i+1)*size; k++ {
			d := math.Abs(x[k] - ref.Float[k])
			maxd = max(maxd, d)
			sum += d
		}
		p := f.Path(i)
		t.Logf("%-22s max |Go − torchvision| %.4g, mean %.3g", filepath.Base(p), maxd, sum/float64(size))
		isJPEG := strings.HasSuffix(strings.ToLower(p), ".jpg") || strings.HasSuffix(strings.ToLower(p), ".jpeg")
		switch {
		case !isJPEG && maxd != 0:
			t.Errorf("%s: PNG differs from torchvision by %g, want 0", p, maxd)
		case isJPEG && maxd > jpegTol:
			t.Errorf("%s: JPEG differs from torchvision by %g, want ≤ %g", p, maxd, jpegTol)
		}
	}
}
