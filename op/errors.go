package op

import "fmt"

func errMissing(i int) error { return fmt.Errorf("input %d is missing", i) }

func errInputs(want, got int) error { return fmt.Errorf("want %d inputs, got %d", want, got) }
