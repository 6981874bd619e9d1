package data

import (
	"fmt"
	"image"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ImageFolder is a labelled image dataset in torchvision's ImageFolder
// layout: ROOT/<class>/…/<image>, one sub-folder per class, whose sorted
// names give the label indices. Files are listed in ImageFolder's order
// (classes in order; within a class, folders by sorted path and files by
// sorted name), and files without an image extension are skipped, as
// ImageFolder does. Images are decoded and preprocessed when read, so memory
// does not grow with the number of images: only their paths are held.
type ImageFolder struct {
	// Root is the folder given to OpenImageFolder.
	Root string
	// Classes are the class names; label i is Classes[i].
	Classes []string
	// Skipped lists the files skipped for not having an image extension.
	Skipped []string

	files  []string
	labels []int
	pre    Preprocess
	shape  []int
}

// OpenImageFolder lists the images under root and fixes the sample shape:
// from the crop, an exact resize, or else the first image (every image must
// then preprocess to the same shape). A missing folder, a class folder
// without images, or an image format bitplan cannot decode (.ppm, .pgm) is
// an error naming the folder or file.
func OpenImageFolder(root string, p Preprocess) (*ImageFolder, error) {
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("data: %s: preprocessing: %w", root, err)
	}
	if p.Layout == "" {
		p.Layout = NCHW
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("data: image folder: %w", err)
	}
	f := &ImageFolder{Root: root, pre: p}
	for _, e := range entries {
		if isDir(root, e) {
			f.Classes = append(f.Classes, e.Name())
		}
	}
	slices.Sort(f.Classes)
	if len(f.Classes) == 0 {
		return nil, fmt.Errorf("data: image folder %s has no class sub-folders (want %s/<class>/<image>, as torchvision's ImageFolder)", root, root)
	}
	var empty []string
	for label, c := range f.Classes {
		n := len(f.files)
		if err := f.addClass(filepath.Join(root, c), label); err != nil {
			return nil, err
		}
		if len(f.files) == n {
			empty = append(empty, c)
		}
	}
	if len(empty) > 0 {
		return nil, fmt.Errorf("data: image folder %s: no image file in class folder(s) %s (want files ending in %s)",
			root, strings.Join(empty, ", "), strings.Join(imageExtensions, ", "))
	}
	switch {
	case p.Crop[0] > 0 || (p.Resize[0] > 0 && p.Resize[1] > 0):
		f.shape = p.SampleShape(1, 1)
	default:
		w, h, err := imageSize(f.files[0])
		if err != nil {
			return nil, err
		}
		f.shape = p.SampleShape(w, h)
	}
	return f, nil
}

// isDir reports whether a directory entry is a folder, following symbolic
// links (as ImageFolder's os.scandir(...).is_dir() does).
func isDir(dir string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink != 0 {
		st, err := os.Stat(filepath.Join(dir, e.Name()))
		return err == nil && st.IsDir()
	}
	return false
}

// addClass appends the images of one class folder in torchvision's order:
// sorted(os.walk(dir, followlinks=True)), then sorted file names.
func (f *ImageFolder) addClass(dir string, label int) error {
	var dirs []string
	var walk func(d string, depth int) error
	walk = func(d string, depth int) error {
		if depth > 64 {
			return fmt.Errorf("data: %s: folders nested more than 64 deep (a symbolic link loop?)", d)
		}
		dirs = append(dirs, d)
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("data: image folder: %w", err)
		}
		for _, e := range entries {
			if isDir(d, e) {
				if err := walk(filepath.Join(d, e.Name()), depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(dir, 0); err != nil {
		return err
	}
	slices.Sort(dirs)
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("data: image folder: %w", err)
		}
		for _, e := range entries { // ReadDir sorts by name
			if isDir(d, e) {
				continue
			}
			p := filepath.Join(d, e.Name())
			if !hasImageExtension(e.Name()) {
				f.Skipped = append(f.Skipped, p)
				continue
			}
			if ext := strings.ToLower(filepath.Ext(e.Name())); ext == ".ppm" || ext == ".pgm" {
				return fmt.Errorf("data: %s: Netpbm images (.ppm, .pgm) are not supported; convert them to PNG", p)
			}
			f.files = append(f.files, p)
			f.labels = append(f.labels, label)
		}
	}
	return nil
}

// imageSize reads the width and height from an image file's header.
func imageSize(path string) (int, int, error) {
	r, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("data: %w", err)
	}
	defer r.Close()
	cfg, _, err := image.DecodeConfig(r)
	if err != nil {
		return 0, 0, fmt.Errorf("data: %s: %w", path, decodeErr(err))
	}
	return cfg.Width, cfg.Height, nil
}

// Len returns the number of images.
func (f *ImageFolder) Len() int { return len(f.files) }

// SampleShape returns the shape of one preprocessed image.
func (f *ImageFolder) SampleShape() []int { return f.shape }

// Path returns the file of sample i.
func (f *ImageFolder) Path(i int) string { return f.files[i] }

// ClassLabels returns every sample's label without decoding images.
func (f *ImageFolder) ClassLabels() []int { return f.labels }

// Validate reads every image's header, so that a file that is not an image
// (or too large) is reported, naming it, before long work starts.
func (f *ImageFolder) Validate() error {
	for i, p := range f.files {
		w, h, err := imageSize(p)
		if err != nil {
			return fmt.Errorf("%w (sample %d)", err, i)
		}
		if int64(w)*int64(h) > maxImagePixels {
			return fmt.Errorf("data: %s: image of %dx%d pixels, want at most %d pixels", p, w, h, maxImagePixels)
		}
	}
	return nil
}

// Shuffle reorders the images by a permutation seeded with seed, so that
// the first N (--samples) are drawn from every class rather than from the
// first classes of ImageFolder's class-sorted order. The same seed gives the
// same order.
func (f *ImageFolder) Shuffle(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x1a9e))
	rng.Shuffle(len(f.files), func(i, j int) {
		f.files[i], f.files[j] = f.files[j], f.files[i]
		f.labels[i], f.labels[j] = f.labels[j], f.labels[i]
	})
}

// head returns the first n images, sharing the lists.
func (f *ImageFolder) head(n int) *ImageFolder {
	g := *f
	g.files, g.labels = f.files[:n], f.labels[:n]
	return &g
}

// Read decodes and preprocesses images [start, start+len(labels)) into
// inputs. Errors name the file and the sample index.
func (f *ImageFolder) Read(start int, inputs []float64, labels []int) error {
	n := len(labels)
	size := SampleSize(f)
	if start < 0 || start+n > len(f.files) {
		return fmt.Errorf("data: samples [%d, %d) outside [0, %d)", start, start+n, len(f.files))
	}
	if len(inputs) != n*size {
		return fmt.Errorf("data: input buffer has %d values, want %d", len(inputs), n*size)
	}
	for i := range n {
		if err := f.readOne(start+i, inputs[i*size:(i+1)*size]); err != nil {
			return err
		}
		labels[i] = f.labels[start+i]
	}
	return nil
}

func (f *ImageFolder) readOne(i int, dst []float64) error {
	p := f.files[i]
	r, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	defer r.Close()
	im, err := decodeImage(r)
	if err != nil {
		return fmt.Errorf("data: %s (sample %d): %w", p, i, err)
	}
	if err := f.pre.Apply(im, dst); err != nil {
		b := im.Bounds()
		return fmt.Errorf("data: %s (sample %d, %dx%d pixels): %w (samples of this folder have shape %v; --crop or --resize HxW makes every image one shape)", p, i, b.Dx(), b.Dy(), err, f.shape)
	}
	return nil
}
