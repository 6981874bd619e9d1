package ilp

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

func TestSeeds(t *testing.T) {
	if os.Getenv("SEEDS") == "" {
		t.Skip()
	}
	var n, rows, count int
	fmt.Sscan(os.Getenv("SEEDS"), &n, &rows, &count)
	for seed := 1; seed <= count; seed++ {
		p := benchProblem(n, rows, uint64(1000+seed))
		Solve(context.Background(), p, &Settings{TimeLimit: 10 * time.Second}) // warm
		t0 := time.Now()
		sol, _ := Solve(context.Background(), p, &Settings{TimeLimit: 10 * time.Second})
		t.Logf("seed %d: %v %v gap %.2g", seed, sol.Status, time.Since(t0).Round(time.Millisecond), sol.Gap)
	}
}
