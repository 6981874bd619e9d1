package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunSolve(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-groups", "60", "-solve"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "status optimal") {
		t.Fatalf("output %q", out.String())
	}
}

func TestRunBadFlag(t *testing.T) {
	if err := run([]string{"-groups", "0"}, &bytes.Buffer{}); err == nil {
		t.Fatal("no error for -groups 0")
	}
}

func BenchmarkGen500(b *testing.B) {
	for b.Loop() {
		run([]string{"-groups", "500", "-solve"}, &bytes.Buffer{})
	}
}
