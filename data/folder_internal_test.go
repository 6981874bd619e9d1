package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// refImages is the reference made by scripts/make_image_reference.py.
const refImages = "../testdata/imagefolder_ref"

func openRef(t *testing.T) (*NPZ, int) {
	t.Helper()
	z, err := OpenNPZ(refImages + ".npz")
	if err != nil {
		t.Fatal(err) // a committed input: missing is a failure
	}
	t.Cleanup(func() { z.Close() })
	return z, z.Shape("labels")[0]
}

// presets are the transforms of the reference script, by array name.
var presets = map[string]Preprocess{
	"imagenet": ImageNet,
	"small":    {Resize: [2]int{60, 80}, Crop: [2]int{72, 72}, Mean: []float64{0.5}, Std: []float64{0.25}},
	"gray":     {Gray: true, Resize: [2]int{32, 0}, Crop: [2]int{28, 0}, Mean: []float64{0.5}, Std: []float64{0.5}},
}

// TestResampleEqualsPIL feeds the bytes Pillow decoded (rgb_i, gray_i) to
// the preprocessing: the tensors must equal torchvision's bit for bit, JPEG
// or not, since resizing, cropping and normalising are Pillow's and
// torchvision's exact arithmetic.
func TestResampleEqualsPIL(t *testing.T) {
	z, n := openRef(t)
	for name, p := range presets {
		ref, err := z.Array(name)
		if err != nil {
			t.Fatal(err)
		}
		size := len(ref.Float) / n
		for i := range n {
			src := "rgb_"
			c := 3
			if p.Gray {
				src, c = "gray_", 1
			}
			a, err := z.Array(src + itoa(i))
			if err != nil {
				t.Fatal(err)
			}
			im := img8{h: a.Shape[0], w: a.Shape[1], c: c, pix: make([]uint8, len(a.Int))}
			for k, v := range a.Int {
				im.pix[k] = uint8(v)
			}
			got := make([]float64, size)
			if err := p.apply(im, got); err != nil {
				t.Fatal(err)
			}
			want := ref.Float[i*size : (i+1)*size]
			bad := 0
			for k := range got {
				if got[k] != want[k] {
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%s image %d (%dx%d): %d of %d values differ from torchvision", name, i, im.w, im.h, bad, size)
			}
		}
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestImageFolderOrder(t *testing.T) {
	b, err := os.ReadFile(refImages + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Classes []string
		Samples [][2]any
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join("..", "testdata", "imagefolder")
	f, err := OpenImageFolder(root, ImageNet)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Classes) != len(meta.Classes) {
		t.Fatalf("classes %v, ImageFolder %v", f.Classes, meta.Classes)
	}
	for i := range f.Classes {
		if f.Classes[i] != meta.Classes[i] {
			t.Fatalf("classes %v, ImageFolder %v", f.Classes, meta.Classes)
		}
	}
	if f.Len() != len(meta.Samples) {
		t.Fatalf("%d images, ImageFolder %d", f.Len(), len(meta.Samples))
	}
	for i, s := range meta.Samples {
		rel, _ := filepath.Rel(root, f.Path(i))
		if rel != s[0].(string) || f.labels[i] != int(s[1].(float64)) {
			t.Errorf("sample %d: %s label %d, ImageFolder %v", i, rel, f.labels[i], s)
		}
	}
	if len(f.Skipped) != 1 || filepath.Base(f.Skipped[0]) != "notes.txt" {
		t.Errorf("skipped %v, want notes.txt", f.Skipped)
	}
}

// TestJPEGDecodeLevels compares the RGB bytes bitplan decodes with
// Pillow's (libjpeg): PNG must be identical, JPEG within jpegLevels.
func TestJPEGDecodeLevels(t *testing.T) {
	const jpegLevels = 4
	z, _ := openRef(t)
	f, err := OpenImageFolder(filepath.Join("..", "testdata", "imagefolder"), Preprocess{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.Len() {
		r, err := os.Open(f.Path(i))
		if err != nil {
			t.Fatal(err)
		}
		im, err := decodeImage(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		px, err := to8(im, false)
		if err != nil {
			t.Fatal(err)
		}
		a, err := z.Array("rgb_" + itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		maxd, diff := 0, 0
		for k, v := range a.Int {
			d := int(px.pix[k]) - int(v)
			if d != 0 {
				diff++
			}
			maxd = max(maxd, d, -d)
		}
		t.Logf("%-10s %T: %d of %d bytes differ from Pillow's, by at most %d levels", filepath.Base(f.Path(i)), im, diff, len(a.Int), maxd)
		png := filepath.Ext(f.Path(i)) == ".png"
		if (png && maxd != 0) || maxd > jpegLevels {
			t.Errorf("%s: decoded bytes differ from Pillow's by %d levels", f.Path(i), maxd)
		}
	}
}

func TestImageFolderShuffle(t *testing.T) {
	root := filepath.Join("..", "testdata", "imagefolder")
	f, err := OpenImageFolder(root, Preprocess{})
	if err != nil {
		t.Fatal(err)
	}
	label := map[string]int{}
	for i, p := range f.files {
		label[p] = f.labels[i]
	}
	g, _ := OpenImageFolder(root, Preprocess{})
	f.Shuffle(3)
	g.Shuffle(3)
	for i, p := range f.files {
		if f.labels[i] != label[p] {
			t.Errorf("%s has label %d after shuffling, %d before", p, f.labels[i], label[p])
		}
		if g.files[i] != p {
			t.Errorf("same seed, different order at %d: %s, %s", i, p, g.files[i])
		}
	}
	same := true
	h, _ := OpenImageFolder(root, Preprocess{})
	for i := range f.files {
		same = same && f.files[i] == h.files[i]
	}
	if same {
		t.Error("shuffling kept ImageFolder's order")
	}
}
