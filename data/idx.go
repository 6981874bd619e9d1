package data

import (
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// IDX is a labelled dataset read from a pair of IDX files (the format of
// MNIST, Fashion-MNIST, KMNIST and EMNIST): unsigned-byte images N×H×W and
// labels N, plain or gzipped. Samples are 1×H×W, bytes/255 (torchvision's
// ToTensor). Plain files are read in place; gzipped ones are decompressed
// into an unlinked temporary file as far as reads need, so memory does not
// grow with N.
type IDX struct {
	// Images and Labels are the two files.
	Images, Labels string
	n, h, w        int
	img, lbl       io.ReaderAt
	imgOff, lblOff int64
	closers        []io.Closer
}

// FashionMNISTDir is where Debian's dataset-fashion-mnist package installs
// the Fashion-MNIST IDX files.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// FashionMNIST opens a split of Fashion-MNIST from Debian's
// dataset-fashion-mnist package, saying what to install when it is absent.
func FashionMNIST(split Split) (*IDX, error) {
	if _, err := os.Stat(filepath.Join(FashionMNISTDir, "t10k-images-idx3-ubyte.gz")); err != nil {
		return nil, fmt.Errorf("data: Fashion-MNIST not found in %s: install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or give --data idx:DIR", FashionMNISTDir)
	}
	return OpenIDXDir(FashionMNISTDir, split)
}

// OpenIDXDir finds a split's image and label files in a folder and opens
// them. spec is a folder, or a folder followed by a file name prefix
// ("emnist/emnist-balanced") when the folder holds several sets. The
// training files have "train" in their names, the test files "t10k" or
// "test"; images "images" and "idx3", labels "labels" and "idx1".
func OpenIDXDir(spec string, split Split) (*IDX, error) {
	dir, prefix := spec, ""
	if st, err := os.Stat(spec); err != nil || !st.IsDir() {
		dir, prefix = filepath.Dir(spec), filepath.Base(spec)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data: IDX folder: %w", err)
	}
	var keys []string
	switch split {
	case Train:
		keys = []string{"train"}
	case Test:
		keys = []string{"t10k", "test"}
	default:
		return nil, fmt.Errorf("data: split %q, want %q or %q", split, Train, Test)
	}
	find := func(kind, idx string) (string, error) {
		var found []string
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() || !strings.HasPrefix(n, prefix) || !strings.Contains(n, kind) || !strings.Contains(n, idx) {
				continue
			}
			if slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(n, k) }) {
				found = append(found, n)
			}
		}
		switch len(found) {
		case 1:
			return filepath.Join(dir, found[0]), nil
		case 0:
			return "", fmt.Errorf("data: %s: no %s file of the %s split (want a name with %q, %q and %s)", spec, kind, split, kind, idx, strings.Join(keys, " or "))
		}
		return "", fmt.Errorf("data: %s: several %s files of the %s split (%s); give the folder and a name prefix, e.g. idx:%s", spec, kind, split, strings.Join(found, ", "), filepath.Join(dir, commonPrefix(found[0])))
	}
	img, err := find("images", "idx3")
	if err != nil {
		return nil, err
	}
	lbl, err := find("labels", "idx1")
	if err != nil {
		return nil, err
	}
	return OpenIDX(img, lbl)
}

// commonPrefix suggests the set name of an IDX file name ("emnist-balanced"
// of "emnist-balanced-train-images-idx3-ubyte").
func commonPrefix(name string) string {
	for _, k := range []string{"-train", "-test", "-t10k"} {
		if i := strings.Index(name, k); i > 0 {
			return name[:i]
		}
	}
	return name
}

// OpenIDX opens an image file (IDX, 3 dimensions, unsigned bytes) and a
// label file (1 dimension, unsigned bytes), each plain or gzipped, and
// checks their headers and that they hold the same number of samples.
// Errors name the file and the byte position.
func OpenIDX(images, labels string) (*IDX, error) {
	d := &IDX{Images: images, Labels: labels}
	var dims []int
	var err error
	d.img, d.imgOff, dims, err = d.open(images, 3)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.n, d.h, d.w = dims[0], dims[1], dims[2]
	d.lbl, d.lblOff, dims, err = d.open(labels, 1)
	if err != nil {
		d.Close()
		return nil, err
	}
	if dims[0] != d.n {
		d.Close()
		return nil, fmt.Errorf("data: %s has %d images but %s has %d labels", images, d.n, labels, dims[0])
	}
	return d, nil
}

// maxIDXBytes bounds the data an IDX header may declare (16 GiB).
const maxIDXBytes = 1 << 34

func (d *IDX) open(path string, rank int) (io.ReaderAt, int64, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("data: %w", err)
	}
	d.closers = append(d.closers, f)
	var ra io.ReaderAt = f
	var head [2]byte
	if _, err := f.ReadAt(head[:], 0); err == nil && head == [2]byte{0x1f, 0x8b} {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("data: %s: %w", path, err)
		}
		sp, err := newSpool(zr, path)
		if err != nil {
			return nil, 0, nil, err
		}
		d.closers = append(d.closers, sp)
		ra = sp
	}
	dims, off, err := readIDXHeader(ra, rank)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("data: %s: %w", path, err)
	}
	return ra, off, dims, nil
}

// readIDXHeader reads and checks an IDX header: two zero bytes, type 0x08
// (unsigned byte), the rank, then each dimension as a big-endian uint32.
// The data must be as long as the dimensions say (checked by reading its
// last byte).
func readIDXHeader(r io.ReaderAt, rank int) ([]int, int64, error) {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil {
		return nil, 0, fmt.Errorf("not an IDX file: %d-byte header unreadable (%v)", len(magic), err)
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, 0, fmt.Errorf("not an IDX file: bytes 0–1 are %#02x %#02x, want 0 0", magic[0], magic[1])
	}
	if magic[2] != 0x08 {
		return nil, 0, fmt.Errorf("IDX type %#02x at byte 2, want 0x08 (unsigned byte)", magic[2])
	}
	if int(magic[3]) != rank {
		return nil, 0, fmt.Errorf("IDX rank %d at byte 3, want %d (%s)", magic[3], rank, map[int]string{1: "labels", 3: "images N×H×W"}[rank])
	}
	raw := make([]byte, 4*rank)
	if _, err := r.ReadAt(raw, 4); err != nil {
		return nil, 0, fmt.Errorf("IDX header truncated: dimensions at bytes 4–%d unreadable", 4+4*rank-1)
	}
	dims := make([]int, rank)
	total := int64(1)
	for i := range dims {
		v := int64(binary.BigEndian.Uint32(raw[4*i:]))
		if v == 0 || (i > 0 && v > 1<<16) {
			return nil, 0, fmt.Errorf("IDX dimension %d (bytes %d–%d) is %d, want 1 to %d", i, 4+4*i, 7+4*i, v, map[bool]int{true: 1<<32 - 1, false: 1 << 16}[i == 0])
		}
		total *= v
		if total > maxIDXBytes {
			return nil, 0, fmt.Errorf("IDX dimensions %v declare more than %d bytes", raw, int64(maxIDXBytes))
		}
		dims[i] = int(v)
	}
	off := int64(4 + 4*rank)
	var last [1]byte
	if _, err := r.ReadAt(last[:], off+total-1); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("IDX file truncated: dimensions %v need %d data bytes after byte %d", dims, total, off)
		}
		return nil, 0, err
	}
	return dims, off, nil
}

// Close closes the files and removes temporary ones.
func (d *IDX) Close() error {
	var err error
	for _, c := range slices.Backward(d.closers) {
		err = errors.Join(err, c.Close())
	}
	d.closers = nil
	return err
}

// Len returns the number of samples.
func (d *IDX) Len() int { return d.n }

// SampleShape returns [1 H W].
func (d *IDX) SampleShape() []int { return []int{1, d.h, d.w} }

// Read copies samples [start, start+len(labels)), pixels scaled to [0, 1].
func (d *IDX) Read(start int, inputs []float64, labels []int) error {
	n := len(labels)
	size := d.h * d.w
	if start < 0 || start+n > d.n {
		return fmt.Errorf("data: samples [%d, %d) outside [0, %d)", start, start+n, d.n)
	}
	if len(inputs) != n*size {
		return fmt.Errorf("data: input buffer has %d values, want %d", len(inputs), n*size)
	}
	buf := make([]byte, n*size)
	at := d.imgOff + int64(start*size)
	if _, err := d.img.ReadAt(buf, at); err != nil {
		return fmt.Errorf("data: %s: images %d–%d at byte %d: %w", d.Images, start, start+n-1, at, err)
	}
	for i, b := range buf {
		inputs[i] = float64(b) / 255
	}
	lb := buf[:n]
	at = d.lblOff + int64(start)
	if _, err := d.lbl.ReadAt(lb, at); err != nil {
		return fmt.Errorf("data: %s: labels %d–%d at byte %d: %w", d.Labels, start, start+n-1, at, err)
	}
	for i, b := range lb {
		labels[i] = int(b)
	}
	return nil
}
