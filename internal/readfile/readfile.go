// Package readfile reads whole input files with a size bound, so a huge
// file, or a device that never ends (/dev/zero), is refused with a clear
// error instead of filling memory.
package readfile

import (
	"fmt"
	"io"
	"os"
)

// Limits of bitplan's whole-file inputs.
const (
	// Model bounds an ONNX model: protobuf messages are at most 2 GiB.
	Model = 2 << 30
	// NPY bounds a NumPy array file.
	NPY = 4 << 30
)

// Read reads the file at path, of at most max bytes. A regular file
// larger than max is refused before reading; anything else (a pipe, a
// device) is read to max+1 bytes at most.
func Read(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, more than the %s this reader accepts", path, st.Size(), Size(max))
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than the %s this reader accepts", path, Size(max))
	}
	return b, nil
}

// Size formats a byte count in binary units ("64 MiB").
func Size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
