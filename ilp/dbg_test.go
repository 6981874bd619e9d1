package ilp

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

func TestDbg(t *testing.T) {
	if os.Getenv("DBG") == "" {
		t.Skip()
	}
	var n, rows, seed int
	fmt.Sscan(os.Getenv("DBG"), &n, &rows, &seed)
	sd := uint64(n*10 + rows)
	if seed > 0 {
		sd = uint64(1000 + seed)
	}
	p := benchProblem(n, rows, sd)
	dbgOn = true
	dbgT0 = time.Now()
	if b := os.Getenv("BEAM"); b != "" {
		fmt.Sscan(b, &dpBeam)
	}
	t0 := time.Now()
	sol, err := Solve(context.Background(), p, &Settings{TimeLimit: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status %v obj %.15g bound %.15g gap %.3g nodes %d time %v", sol.Status, sol.Objective, sol.Bound, sol.Gap, sol.Nodes, time.Since(t0))
}
