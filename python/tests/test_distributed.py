"""torch.distributed with the gloo backend, two processes on this machine.

The ranks' tables must equal the single-process table for the same seed:
identically when the ranks split the probes (every rank holds all the data),
up to float summation order when they split the data.
"""

import json
import os
import socket
import tempfile
import unittest

import torch
import torch.multiprocessing as mp

from bitplan_torch import sensitivity_table

from . import models

WORLD = 2
SETTINGS = dict(tol=0.3, min_probes=5, max_probes=24, bits=(2, 4, 8), progress=False)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    x, y = models.ref_data("lenet")
    return [(x[0:3], y[0:3]), (x[3:8], y[3:8]), (x[8:10], y[8:10])]


def _cases():
    return {
        "hutchinson/probes": dict(split="probes"),
        "hutchinson/data": dict(split="data"),
        "hutch++/probes": dict(method="hutch++", matvecs=12),
        "exact/probes": dict(method="exact", units=["conv1", "fc3"]),
    }


def _worker(rank, port, out):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    model = models.load("lenet")
    batches = _data()
    got = {}
    for name, kw in _cases().items():
        t = sensitivity_table(model, batches, **SETTINGS, **kw)
        got[name] = {"layers": t["layers"], "probes": t.result.probes, "matvecs": t.result.matvecs,
                     "seconds": t.result.seconds}
    # Each rank passes only its own batches.
    mine = batches[:2] if rank == 0 else batches[2:]
    t = sensitivity_table(model, mine, sharded=True, **SETTINGS)
    got["hutchinson/sharded"] = {"layers": t["layers"], "probes": t.result.probes}
    # Bad input: ranks that disagree on the data; a rank without batches.
    for name, bad in (("disagree", batches if rank == 0 else batches[:2]), ("empty", batches if rank == 0 else [])):
        try:
            sensitivity_table(model, bad, **SETTINGS)
            got[name] = "no error"
        except ValueError as e:
            got[name] = str(e)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(got, f)
    dist.destroy_process_group()


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


class TestGloo(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        model = models.load("lenet")
        batches = _data()
        cls.single = {}
        for name, kw in _cases().items():
            kw = {k: v for k, v in kw.items() if k != "split"}
            t = sensitivity_table(model, batches, **SETTINGS, **kw)
            cls.single[name] = {"layers": t["layers"], "probes": t.result.probes, "matvecs": t.result.matvecs,
                                "seconds": t.result.seconds}
        cls.tmp = tempfile.TemporaryDirectory()
        mp.spawn(_worker, args=(_free_port(), cls.tmp.name), nprocs=WORLD, join=True)
        cls.ranks = []
        for r in range(WORLD):
            with open(os.path.join(cls.tmp.name, f"rank{r}.json")) as f:
                cls.ranks.append(json.load(f))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def compare(self, name, single, tol):
        worst = 0.0
        for got in self.ranks:
            g = got[name]
            self.assertEqual(g["probes"], single["probes"], name)
            for a, b in zip(g["layers"], single["layers"]):
                self.assertEqual(a["name"], b["name"])
                self.assertEqual(a["delta_sq"], b["delta_sq"])
                for k in ("avg_trace", "avg_trace_stderr"):
                    if k in b:
                        worst = max(worst, _rel(a[k], b[k]))
        self.assertLessEqual(worst, tol, name)
        return worst

    def test_probe_split_equals_single_process(self):
        for name in ("hutchinson/probes", "hutch++/probes"):
            self.compare(name, self.single[name], 0.0 if name.startswith("hutchinson") else 1e-12)
        # Passes of 8 probes per rank, 16 in all, capped at max_probes.
        p = self.single["hutchinson/probes"]["probes"]
        self.assertEqual(self.ranks[0]["hutchinson/probes"]["matvecs"], min(16 * -(-p // 16), SETTINGS["max_probes"]))

    def test_exact_split_equals_single_process(self):
        self.compare("exact/probes", self.single["exact/probes"], 1e-12)

    def test_data_split_equals_single_process(self):
        self.compare("hutchinson/data", self.single["hutchinson/probes"], 1e-10)
        self.compare("hutchinson/sharded", self.single["hutchinson/probes"], 1e-10)

    def test_bad_input_raises_on_every_rank(self):
        for got in self.ranks:
            self.assertRegex(got["disagree"], r"ranks disagree on batches \(rank 0: 3, rank 1: 2\)")
            self.assertEqual(got["empty"], "rank 1: no calibration batches")


if __name__ == "__main__":
    unittest.main()
