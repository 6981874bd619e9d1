"""Random probe vectors, bit-identical to bitplan's Go estimators.

bitplan's ``hessian`` package draws probe number ``i`` of a stream from
Go's ``math/rand/v2`` PCG generator seeded with ``(seed, stream | i)``
(PCG-DXSM, 128-bit LCG state; O'Neill 2014). Rademacher entries take one
``Uint64`` per 64 coordinates, least significant bit first, bit 1 → +1,
bit 0 → −1. :func:`rademacher` reproduces that exactly, so a Python
Hutchinson estimate with seed *s* uses the same vectors as
``bitplan trace --seed s`` whenever the parameter vector θ is laid out the
same way (unit weights then biases, in graph order).

Gaussian probes use ``torch.Generator`` seeded from ``(seed, stream, i)``;
they have the right law (E[v vᵀ] = I) but are not Go's ziggurat draws.
"""

import torch

MASK64 = (1 << 64) - 1
MASK128 = (1 << 128) - 1
_MUL = (2549297995355413924 << 64) | 4865540595714422341
_INC = (6364136223846793005 << 64) | 1442695040888963407
_CHEAP_MUL = 0xDA942042E4DD58B5

#: Stream tags of bitplan's estimators (hessian/probe.go): Hutchinson
#: probes and sketch test vectors (Hutch++, XTrace) never coincide.
STREAM_HUTCHINSON = 0
STREAM_SKETCH = 1 << 56

DISTRIBUTIONS = ("rademacher", "gaussian")


def pcg_uint64(seed1, seed2, n):
    """Return the first n outputs of Go's rand.NewPCG(seed1, seed2).Uint64().

    The result is a list of Python ints in [0, 2^64).
    """
    state = ((seed1 & MASK64) << 64) | (seed2 & MASK64)
    out = []
    for _ in range(n):
        state = (state * _MUL + _INC) & MASK128
        hi, lo = state >> 64, state & MASK64
        hi ^= hi >> 32
        hi = (hi * _CHEAP_MUL) & MASK64
        hi ^= hi >> 48
        hi = (hi * (lo | 1)) & MASK64
        out.append(hi)
    return out


_SHIFTS = torch.arange(64, dtype=torch.int64)


def rademacher(dim, seed, index, stream=STREAM_HUTCHINSON, dtype=torch.float64):
    """Probe number ``index`` of ``stream``: a ±1 vector of length dim.

    Identical to bitplan's ``fillProbe(v, Rademacher, seed, stream, index)``.
    """
    words = (dim + 63) // 64
    raw = pcg_uint64(seed, stream | index, words)
    # Reinterpret as signed int64 so torch can hold the bits.
    signed = torch.tensor([w - (1 << 64) if w >> 63 else w for w in raw], dtype=torch.int64)
    bits = (signed[:, None] >> _SHIFTS[None, :]) & 1
    v = bits.reshape(-1)[:dim].to(dtype)
    return v * 2 - 1


def gaussian(dim, seed, index, stream=STREAM_HUTCHINSON, dtype=torch.float64):
    """A standard normal probe from torch.Generator, reproducible per (seed, stream, index)."""
    g = torch.Generator()
    g.manual_seed(((seed * 0x9E3779B97F4A7C15) ^ (stream | index)) & ((1 << 63) - 1))
    return torch.randn(dim, generator=g, dtype=torch.float64).to(dtype)


def probe(dist, dim, seed, index, stream=STREAM_HUTCHINSON):
    """Probe ``index`` of the given distribution (float64, CPU)."""
    if dist == "rademacher":
        return rademacher(dim, seed, index, stream)
    if dist == "gaussian":
        return gaussian(dim, seed, index, stream)
    raise ValueError(f"probe distribution {dist!r}: want one of {DISTRIBUTIONS}")
