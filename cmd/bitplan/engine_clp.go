//go:build clp

package main

import "github.com/bitplan/bitplan/ilp/clp"

// With the clp build tag, `--engine clp` solves the LP relaxations of the
// branch-and-bound with COIN-OR CLP.
func init() { engines["clp"] = clp.Solver{} }
