package op

import "testing"

// TestTaps checks taps against visiting every tap: the range holds exactly
// the taps start+i·d inside [0, n).
func TestTaps(t *testing.T) {
	for start := -12; start <= 12; start++ {
		for d := 1; d <= 4; d++ {
			for k := 0; k <= 7; k++ {
				for n := 0; n <= 6; n++ {
					i0, i1 := taps(start, d, k, n)
					for i := 0; i < k; i++ {
						in := start+i*d >= 0 && start+i*d < n
						if in != (i >= i0 && i < i1) {
							t.Fatalf("taps(%d, %d, %d, %d) = [%d, %d): tap %d inside is %v", start, d, k, n, i0, i1, i, in)
						}
					}
					if i0 > i1 || i1 > max(k, i0) {
						t.Fatalf("taps(%d, %d, %d, %d) = [%d, %d)", start, d, k, n, i0, i1)
					}
				}
			}
		}
	}
}
