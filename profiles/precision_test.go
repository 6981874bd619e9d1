package profiles

import (
	"strings"
	"testing"
)

func TestParsePrecision(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Precision
	}{
		{"w4a8", Precision{4, 8}},
		{"W8A8", Precision{8, 8}},
		{" w16a16 ", W16A16},
		{"8", W8A8},
		{"4", W4A4},
		{"int8", W8A8},
		{"INT4", W4A4},
		{"fp16", W16A16},
		{"fp32", W32A32},
		{"w1a64", Precision{1, 64}},
	} {
		got, err := ParsePrecision(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParsePrecision(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "w", "w4", "wa8", "w4a", "w0a8", "w4a65", "w4a8x", "int", "int99", "fp8", "x8", "-8", "0", "w+4a8", "w4a08a"} {
		_, err := ParsePrecision(in)
		if err == nil {
			t.Errorf("ParsePrecision(%q): no error", in)
			continue
		}
		if !strings.Contains(err.Error(), "want wNaM") {
			t.Errorf("ParsePrecision(%q) error %q does not say what is expected", in, err)
		}
	}
}

func TestPrecisionText(t *testing.T) {
	var p Precision
	if err := p.UnmarshalText([]byte("int4")); err != nil || p != W4A4 {
		t.Fatalf("UnmarshalText(int4) = %v, %v", p, err)
	}
	b, err := Precision{4, 8}.MarshalText()
	if err != nil || string(b) != "w4a8" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
	if _, err := (Precision{0, 8}).MarshalText(); err == nil {
		t.Fatal("MarshalText of w0a8: no error")
	}
}

func TestParsePrecisions(t *testing.T) {
	got, err := ParsePrecisions("w4a4, 8,fp16")
	if err != nil || len(got) != 3 || got[0] != W4A4 || got[1] != W8A8 || got[2] != W16A16 {
		t.Fatalf("ParsePrecisions = %v, %v", got, err)
	}
	for in, want := range map[string]string{"w4a4,,w8a8": "item 2", "w4a4,int4": "listed twice", "": "item 1"} {
		if _, err := ParsePrecisions(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePrecisions(%q) error %v, want %q", in, err, want)
		}
	}
}

func FuzzParsePrecision(f *testing.F) {
	for _, s := range []string{"w4a8", "8", "int8", "fp16", "w64a1", "w", "ä"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrecision(s)
		if err != nil {
			return
		}
		if !p.Valid() {
			t.Fatalf("ParsePrecision(%q) = %v, invalid", s, p)
		}
		q, err := ParsePrecision(p.String())
		if err != nil || q != p {
			t.Fatalf("round trip of %v: %v, %v", p, q, err)
		}
	})
}

func FuzzParsePrecisions(f *testing.F) {
	f.Add("w4a4,w8a8")
	f.Add("8, fp16 ,int4")
	f.Fuzz(func(t *testing.T, s string) {
		qs, err := ParsePrecisions(s)
		if err != nil {
			return
		}
		seen := map[Precision]bool{}
		for _, q := range qs {
			if !q.Valid() || seen[q] {
				t.Fatalf("ParsePrecisions(%q) = %v", s, qs)
			}
			seen[q] = true
		}
	})
}
