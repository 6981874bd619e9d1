package data_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
)

// TestFashionMNIST reads Debian's dataset-fashion-mnist files (installed by
// .ci/run): counts, the first labels, the SHA-256 of the first ten images'
// bytes and the class balance, all computed independently with Python's
// gzip module.
func TestFashionMNIST(t *testing.T) {
	cases := []struct {
		split  data.Split
		n      int
		labels string
		sha    string
		each   int
	}{
		{data.Train, 60000, "[9 0 0 3 0 2 7 2 5 5]", "76572dc31d5577d692ce9c71a65528a8a5345f8a31aa15089a0585fd02758d1b", 6000},
		{data.Test, 10000, "[9 2 1 1 6 1 4 6 5 7]", "c9665db176243f9f0706b99fc7cedd0367466d363943d966ae8d7c50825f681d", 1000},
	}
	for _, c := range cases {
		ds, err := data.FashionMNIST(c.split)
		if err != nil {
			t.Fatal(err) // .ci/run installs the package: absent is a failure
		}
		if ds.Len() != c.n || fmt.Sprint(ds.SampleShape()) != "[1 28 28]" {
			t.Fatalf("%s: %d samples of %v", c.split, ds.Len(), ds.SampleShape())
		}
		x := make([]float64, 10*784)
		y := make([]int, 10)
		if err := ds.Read(0, x, y); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(y) != c.labels {
			t.Errorf("%s: first labels %v, want %s", c.split, y, c.labels)
		}
		raw := make([]byte, len(x))
		for i, v := range x {
			raw[i] = byte(v*255 + 0.5)
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(raw)); got != c.sha {
			t.Errorf("%s: SHA-256 of the first ten images %s, want %s", c.split, got, c.sha)
		}
		counts := make([]int, 10)
		for b, err := range data.Batches(ds, 4096) {
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range b.Labels {
				counts[l]++
			}
		}
		for k, n := range counts {
			if n != c.each {
				t.Errorf("%s: class %d has %d samples, want %d", c.split, k, n, c.each)
			}
		}
		if err := ds.Close(); err != nil {
			t.Error(err)
		}
	}
}

func idxBytes(rank int, dims []uint32, payload []byte) []byte {
	b := []byte{0, 0, 8, byte(rank)}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, payload...)
}

func gz(b []byte) []byte {
	var w bytes.Buffer
	z := gzip.NewWriter(&w)
	z.Write(b)
	z.Close()
	return w.Bytes()
}

func TestIDX(t *testing.T) {
	dir := t.TempDir()
	pix := make([]byte, 3*2*2)
	for i := range pix {
		pix[i] = byte(i * 20)
	}
	write(t, dir, "train-images-idx3-ubyte.gz", gz(idxBytes(3, []uint32{3, 2, 2}, pix)))
	write(t, dir, "train-labels-idx1-ubyte", idxBytes(1, []uint32{3}, []byte{4, 1, 7}))
	ds, err := data.OpenIDXDir(dir, data.Train)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	x := make([]float64, 2*4)
	y := make([]int, 2)
	if err := ds.Read(1, x, y); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(y, x[0]*255, x[7]*255) != "[1 7] 80 220" {
		t.Errorf("read %v %v", y, x)
	}
	if _, err := data.OpenIDXDir(dir, data.Test); err == nil || !strings.Contains(err.Error(), "no images file of the test split") {
		t.Errorf("missing test split: %v", err)
	}
	// Several sets in one folder: an error naming a prefix, which then works.
	write(t, dir, "emnist-digits-train-images-idx3-ubyte", idxBytes(3, []uint32{1, 1, 1}, []byte{9}))
	if _, err := data.OpenIDXDir(dir, data.Train); err == nil || !strings.Contains(err.Error(), "emnist-digits") {
		t.Errorf("ambiguous folder: %v", err)
	}
	if ds2, err := data.OpenIDXDir(filepath.Join(dir, "train"), data.Train); err != nil || ds2.Len() != 3 {
		t.Errorf("prefix: %v", err)
	}

	bad := []struct {
		name string
		img  []byte
		lbl  []byte
		want string
	}{
		{"garbage", []byte("hello world"), idxBytes(1, []uint32{1}, []byte{0}), "bytes 0–1 are 0x68 0x65"},
		{"type", append([]byte{0, 0, 0x0d, 3}, make([]byte, 16)...), idxBytes(1, []uint32{1}, []byte{0}), "IDX type 0x0d at byte 2"},
		{"rank", idxBytes(1, []uint32{1}, []byte{0}), idxBytes(1, []uint32{1}, []byte{0}), "IDX rank 1 at byte 3, want 3"},
		{"truncated", idxBytes(3, []uint32{2, 28, 28}, make([]byte, 784)), idxBytes(1, []uint32{2}, []byte{0, 1}), "need 1568 data bytes after byte 16"},
		{"truncated gzip", gz(idxBytes(3, []uint32{2, 28, 28}, noise(2*784)))[:400], idxBytes(1, []uint32{2}, []byte{0, 1}), "truncated"},
		{"count", idxBytes(3, []uint32{1, 1, 1}, []byte{0}), idxBytes(1, []uint32{2}, []byte{0, 1}), "has 1 images but"},
		{"header", []byte{0, 0, 8, 3, 0, 0}, idxBytes(1, []uint32{1}, []byte{0}), "dimensions at bytes 4–15 unreadable"},
	}
	for _, c := range bad {
		ip := write(t, dir, c.name+"-img", c.img)
		lp := write(t, dir, c.name+"-lbl", c.lbl)
		_, err := data.OpenIDX(ip, lp)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
	if _, err := data.OpenIDX(filepath.Join(dir, "absent"), filepath.Join(dir, "absent")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("absent: %v", err)
	}
}

func noise(n int) []byte {
	b := make([]byte, n)
	s := uint32(1)
	for i := range b {
		s = s*1664525 + 1013904223
		b[i] = byte(s >> 24)
	}
	return b
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func FuzzOpenIDX(f *testing.F) {
	f.Add(idxBytes(3, []uint32{2, 2, 2}, make([]byte, 8)), false)
	f.Add(gz(idxBytes(3, []uint32{1, 3, 3}, make([]byte, 9))), true)
	f.Add([]byte{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff}, false)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte, _ bool) {
		ip := filepath.Join(dir, "img")
		lp := filepath.Join(dir, "lbl")
		os.WriteFile(ip, b, 0o644)
		os.WriteFile(lp, idxBytes(1, []uint32{1}, []byte{3}), 0o644)
		ds, err := data.OpenIDX(ip, lp)
		if err != nil {
			return
		}
		defer ds.Close()
		x := make([]float64, data.SampleSize(ds))
		if err := ds.Read(0, x, make([]int, 1)); err != nil {
			t.Fatalf("opened but unreadable: %v", err)
		}
	})
}
