package data

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// spool gives random access to a stream that can only be read once in
// order (a gzip file, a deflated archive member): the bytes are copied to an
// unlinked temporary file as far as a read needs them, so memory stays flat
// and only the part of a data set that is used is decompressed. It is safe
// for concurrent use.
type spool struct {
	mu   sync.Mutex
	src  io.Reader
	tmp  *os.File
	n    int64 // bytes copied so far
	err  error // sticky error of src (io.EOF at its end)
	name string
}

func newSpool(src io.Reader, name string) (*spool, error) {
	tmp, err := os.CreateTemp("", "bitplan-spool-*")
	if err != nil {
		return nil, fmt.Errorf("data: %s: a temporary file for decompressing: %w", name, err)
	}
	// Unlinked at once: the file lives as long as it is open.
	os.Remove(tmp.Name())
	return &spool{src: src, tmp: tmp, name: name}, nil
}

// ReadAt reads len(p) bytes at off, decompressing up to off+len(p) first.
func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("data: negative offset")
	}
	s.mu.Lock()
	if need := off + int64(len(p)); need > s.n && s.err == nil {
		m, err := io.CopyN(s.tmp, s.src, need-s.n)
		s.n += m
		if err != nil {
			s.err = err
		}
	}
	n, serr := s.n, s.err
	s.mu.Unlock()
	if off >= n {
		return 0, s.eof(serr)
	}
	k, err := s.tmp.ReadAt(p[:min(int64(len(p)), n-off)], off)
	if err == nil && k < len(p) {
		err = s.eof(serr)
	}
	return k, err
}

// eof returns the error for a read past the copied bytes: io.EOF at the
// stream's end, else the stream's error (a corrupt gzip member).
func (s *spool) eof(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return io.EOF
	}
	return fmt.Errorf("decompressing %s: %w", s.name, err)
}

// Close removes the temporary file.
func (s *spool) Close() error { return s.tmp.Close() }
