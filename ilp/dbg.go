package ilp

import (
	"fmt"
	"os"
	"time"
)

var dbgOn bool
var dbgT0 = time.Now()

func dbg(f string, a ...any) {
	if dbgOn {
		fmt.Fprintf(os.Stderr, "%8.3fs "+f+"\n", append([]any{time.Since(dbgT0).Seconds()}, a...)...)
	}
}
