package nn

import (
	"context"
	"fmt"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
)

// Operator is the Hessian of the engine's loss (Options.Loss) over a
// dataset with respect to θ, as a hessian.BatchOperator with one block per
// unit. Products
// are exact (R-operator) and safe for concurrent calls; the engine's
// parameters must not change while an Operator is in use.
type Operator struct {
	e      *Engine
	ds     data.Dataset
	blocks []hessian.Block
}

var _ hessian.BatchOperator = (*Operator)(nil)

// Operator returns the Hessian operator over ds, after checking that the
// samples fit the model and every label is one of its classes.
func (e *Engine) Operator(ds data.Dataset) (*Operator, error) {
	if err := e.checkData(ds); err != nil {
		return nil, err
	}
	if _, classes := e.loss.(ClassLabels); classes {
		if err := data.Check(ds, e.sample, e.classes); err != nil {
			return nil, fmt.Errorf("nn: %w", err)
		}
	}
	if _, err := e.loss.Prepare(e.outShape, ds); err != nil {
		return nil, err
	}
	return &Operator{e: e, ds: ds, blocks: e.Blocks()}, nil
}

// Dim returns the number of parameters.
func (o *Operator) Dim() int { return o.e.Dim() }

// Blocks returns one block per unit (weight and bias).
func (o *Operator) Blocks() []hessian.Block { return o.blocks }

// HVP sets dst = H v.
func (o *Operator) HVP(ctx context.Context, dst, v []float64) error {
	return o.e.HVP(ctx, o.ds, [][]float64{dst}, [][]float64{v})
}

// HVPBatch sets dst[j] = H v[j], sharing one value and adjoint pass.
func (o *Operator) HVPBatch(ctx context.Context, dst, v [][]float64) error {
	return o.e.HVP(ctx, o.ds, dst, v)
}

// ChannelOperator is the same Hessian in a permuted coordinate order in
// which every output channel of every unit is contiguous (its weights, then
// its bias element), so that Blocks() can return one block per channel —
// the blocks Hessian-aware pruning needs (HAP, Yu et al. 2021,
// arXiv:2101.08940). Coordinate i of this operator is θ[Perm[i]].
type ChannelOperator struct {
	op     *Operator
	Perm   []int
	blocks []hessian.Block
}

var _ hessian.BatchOperator = (*ChannelOperator)(nil)

// ChannelOperator returns the per-output-channel Hessian operator over ds.
// Blocks are named "<unit>/<channel>" (and "<unit>/bias" for a bias that
// is broadcast rather than per channel); a unit's channels are its node's
// output channels (UnitLayout.OutputChannelIndices).
func (e *Engine) ChannelOperator(ds data.Dataset) (*ChannelOperator, error) {
	op, err := e.Operator(ds)
	if err != nil {
		return nil, err
	}
	c := &ChannelOperator{op: op}
	for _, u := range e.units {
		chans := u.OutputChannelIndices()
		for ch, idx := range chans {
			c.blocks = append(c.blocks, hessian.Block{Name: fmt.Sprintf("%s/%d", u.Name, ch), Offset: len(c.Perm), Size: len(idx)})
			c.Perm = append(c.Perm, idx...)
		}
		if u.BiasSize > 0 && !u.biasPerOutputChannel(len(chans)) {
			c.blocks = append(c.blocks, hessian.Block{Name: u.Name + "/bias", Offset: len(c.Perm), Size: u.BiasSize})
			for i := 0; i < u.BiasSize; i++ {
				c.Perm = append(c.Perm, u.BiasOffset+i)
			}
		}
	}
	if len(c.Perm) != e.Dim() {
		return nil, fmt.Errorf("nn: channel blocks cover %d of %d parameters", len(c.Perm), e.Dim())
	}
	return c, nil
}

// Dim returns the number of parameters.
func (c *ChannelOperator) Dim() int { return len(c.Perm) }

// Blocks returns one block per output channel.
func (c *ChannelOperator) Blocks() []hessian.Block { return c.blocks }

// HVP sets dst = H v in the permuted coordinates.
func (c *ChannelOperator) HVP(ctx context.Context, dst, v []float64) error {
	return c.HVPBatch(ctx, [][]float64{dst}, [][]float64{v})
}

// HVPBatch sets dst[j] = H v[j] in the permuted coordinates.
func (c *ChannelOperator) HVPBatch(ctx context.Context, dst, v [][]float64) error {
	if len(dst) != len(v) {
		return fmt.Errorf("nn: %d destination vectors for %d directions", len(dst), len(v))
	}
	n := len(c.Perm)
	pv := make([][]float64, len(v))
	pd := make([][]float64, len(v))
	for j := range v {
		if len(v[j]) != n || len(dst[j]) != n {
			return fmt.Errorf("nn: vector %d has %d values (destination %d), want %d", j, len(v[j]), len(dst[j]), n)
		}
		pv[j], pd[j] = make([]float64, n), make([]float64, n)
		for i, q := range c.Perm {
			pv[j][q] = v[j][i]
		}
	}
	if err := c.op.HVPBatch(ctx, pd, pv); err != nil {
		return err
	}
	for j := range dst {
		for i, q := range c.Perm {
			dst[j][i] = pd[j][q]
		}
	}
	return nil
}
