// Package outfile writes output files atomically: the content goes to a
// temporary file beside the destination, which replaces the destination by
// rename only once it is complete, synced and closed. A run that fails or is
// killed part-way leaves the old file (or no file) where the output was to go,
// never a truncated one.
package outfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Write runs write on a temporary file in the directory of path and, if write
// and every flush, sync and close succeed, renames it to path. On any error
// the temporary file is removed and path is left as it was. A new file gets
// mode 0644 (less the umask); an existing file keeps its mode.
//
// Paths that are not regular files (/dev/stdout, /dev/null, a FIFO) cannot be
// replaced by rename; Write then writes to them directly and reports every
// write error.
func Write(path string, write func(io.Writer) error) error {
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		if !st.Mode().IsRegular() {
			return writeDirect(path, write)
		}
		mode = st.Mode().Perm()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, tmp, err := createTemp(dir, base, mode)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	if err := write(bw); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// writeDirect writes to a path that is not a regular file, reporting write
// and close errors (e.g. /dev/full's "no space left on device").
func writeDirect(path string, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	if err := write(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// createTemp creates a new file named .BASE.tmpN in dir with permissions
// perm (the umask applies, as for any created file).
func createTemp(dir, base string, perm os.FileMode) (*os.File, string, error) {
	seed := uint32(time.Now().UnixNano()) ^ uint32(os.Getpid())<<16
	for try := 0; ; try++ {
		seed = seed*1664525 + 1013904223
		name := filepath.Join(dir, "."+base+".tmp"+strconv.FormatUint(uint64(seed), 36))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if os.IsExist(err) && try < 100 {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		return f, name, nil
	}
}
