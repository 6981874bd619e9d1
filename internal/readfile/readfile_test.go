package readfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, make([]byte, 2048), 0o644)
	if _, err := Read(path, 1024); err == nil || !strings.Contains(err.Error(), "2048 bytes, more than the 1 KiB") {
		t.Errorf("file: %v", err)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if _, err := Read("/dev/zero", 1024); err == nil || !strings.Contains(err.Error(), "/dev/zero: more than the 1 KiB") {
			t.Errorf("/dev/zero: %v", err)
		}
	}
	if b, err := Read(path, 4096); err != nil || len(b) != 2048 {
		t.Errorf("within the bound: %d bytes, %v", len(b), err)
	}
	if Size(3<<20) != "3 MiB" || Size(1000) != "1000 bytes" {
		t.Error("Size")
	}
}
