"""torch.distributed helpers: one Comm object hides whether a process group exists.

Two ways to share the work of an estimate between ranks:

* ``split="probes"``: every rank holds the whole calibration set and
  computes different probes (or, for exact traces, different unit
  vectors); per-probe samples are gathered in probe order, so every rank
  accepts the same probes in the same order as one process would. The
  result is bit-for-bit the single-process result when the kernels are
  deterministic.
* ``split="data"``: every rank computes the same probes on its part of the
  calibration batches; the partial Hessian-vector products (each weighted
  by its share of the samples) are summed with ``all_reduce``. Equal to the
  single-process result up to the order of the float sums.
"""

import torch


class Comm:
    """Rank, world size and the few collectives the estimators need."""

    def __init__(self, group=None):
        self.group = group
        self.dist = None
        self.rank, self.world = 0, 1
        self.device = torch.device("cpu")
        try:
            import torch.distributed as dist
        except ImportError:  # pragma: no cover - torch built without distributed
            return
        if dist.is_available() and dist.is_initialized():
            self.dist = dist
            self.rank = dist.get_rank(group)
            self.world = dist.get_world_size(group)
            if dist.get_backend(group) == "nccl":
                self.device = torch.device("cuda", torch.cuda.current_device())

    @property
    def active(self):
        """True when more than one rank takes part."""
        return self.world > 1

    def all_reduce_sum(self, t):
        """Sum t over the ranks in place (no-op for one rank) and return it."""
        if not self.active:
            return t
        x = t.to(self.device)
        self.dist.all_reduce(x, op=self.dist.ReduceOp.SUM, group=self.group)
        if x is not t:
            t.copy_(x.to(t.device))
        return t

    def all_gather(self, t):
        """Stack t (same shape on every rank) from all ranks: world × t.shape."""
        if not self.active:
            return t.unsqueeze(0)
        x = t.to(self.device).contiguous()
        out = [torch.empty_like(x) for _ in range(self.world)]
        self.dist.all_gather(out, x, group=self.group)
        return torch.stack([o.to(t.device) for o in out])

    def all_gather_object(self, obj):
        """List of obj from every rank (a list of one for one rank)."""
        if not self.active:
            return [obj]
        out = [None] * self.world
        self.dist.all_gather_object(out, obj, group=self.group)
        return out

    def agree(self, info, error=None, keys=()):
        """Check that every rank reports the same values of info[k] for k in keys.

        ``error`` is this rank's error message (or None): if any rank has
        one, every rank raises it, so no rank is left waiting in a
        collective. Returns the gathered infos.
        """
        got = self.all_gather_object({"info": info, "error": error})
        for r, g in enumerate(got):
            if g["error"]:
                prefix = f"rank {r}: " if self.active else ""
                raise ValueError(prefix + g["error"])
        for k in keys:
            vals = [g["info"][k] for g in got]
            if any(v != vals[0] for v in vals):
                detail = ", ".join(f"rank {r}: {v}" for r, v in enumerate(vals))
                raise ValueError(f"ranks disagree on {k} ({detail}); every rank must pass the same "
                                 f"model and calibration batches (or sharded=True with split='data')")
        return [g["info"] for g in got]
