package nn

import (
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
)

// The Hessian of a mean loss is the mean of per-sample Hessians, so an
// Operator is a hessian.Sampled: mini-batch probes evaluate it on subsets
// of its samples.
var _ hessian.Sampled = (*Operator)(nil)

// Samples returns the number of samples the Hessian averages over.
func (o *Operator) Samples() int { return o.ds.Len() }

// Subset returns the Hessian of the mean loss over samples idx of the
// operator's data (data.Rows; the samples were checked when the operator
// was made), with the same blocks. It is a BatchOperator.
func (o *Operator) Subset(idx []int) (hessian.Operator, error) {
	ds, err := data.Rows(o.ds, idx)
	if err != nil {
		return nil, err
	}
	return &Operator{e: o.e, ds: ds, blocks: o.blocks}, nil
}

var _ hessian.Sampled = (*ChannelOperator)(nil)

// Samples returns the number of samples the Hessian averages over.
func (c *ChannelOperator) Samples() int { return c.op.Samples() }

// Subset returns the per-channel Hessian over samples idx of the
// operator's data (see Operator.Subset), with the same coordinate order
// and blocks.
func (c *ChannelOperator) Subset(idx []int) (hessian.Operator, error) {
	sub, err := c.op.Subset(idx)
	if err != nil {
		return nil, err
	}
	return &ChannelOperator{op: sub.(*Operator), Perm: c.Perm, blocks: c.blocks}, nil
}
