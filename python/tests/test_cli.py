import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import torch

from . import models

PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # python/
FLAGS = ["--model", "train_models:LeNet", "--path", os.path.join(models.REPO, "scripts"),
         "--dtype", "float64", "--tol", "0.3", "--min-probes", "5", "--max-probes", "16",
         "--bits", "2,4,w4a8", "--threads", "1", "--batch-size", "4"]


def run(cmd, **kw):
    # One BLAS thread, as torchrun sets for its workers: float sums then run in the same order.
    env = dict(os.environ, PYTHONPATH=PKG + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, **kw)


class TestCommand(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        model = models.load("lenet", torch.float32)
        torch.save(model.state_dict(), os.path.join(d, "w.pt"))
        x, y = models.ref_data("lenet", torch.float32)
        torch.save({"inputs": x[:8], "labels": y[:8]}, os.path.join(d, "data.pt"))
        cls.common = FLAGS + ["--weights", os.path.join(d, "w.pt"), "--data", os.path.join(d, "data.pt")]
        cls.single = os.path.join(d, "single.json")
        p = run([sys.executable, "-m", "bitplan_torch", "trace"] + cls.common + ["-o", cls.single])
        if p.returncode:
            raise AssertionError(p.stderr)
        with open(cls.single) as f:
            cls.table = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_table(self):
        t = self.table
        self.assertEqual(t["model"], "LeNet")
        self.assertEqual([l["name"] for l in t["layers"]],
                         ["/conv1/Conv", "/conv2/Conv", "/fc1/Gemm", "/fc2/Gemm", "/fc3/Gemm"])
        self.assertEqual(sorted(t["layers"][0]["delta_sq"]), ["2", "4", "w4a8"])
        self.assertIn("over 8 calibration samples", t["source"])
        self.assertEqual(os.stat(self.single).st_mode & 0o777, 0o666 & ~_umask())

    @unittest.skipUnless(shutil.which("torchrun"), "torchrun not on PATH (it comes with python3-torch)")
    def test_torchrun_two_processes_equal_one(self):
        out = os.path.join(self.tmp.name, "two.json")
        # Debian's torchrun 1.13 on Python 3.11 fails on its default --redirects 0 --tee 0
        # (enum.Flag iteration changed); single non-zero values work.
        p = run(["torchrun", "--standalone", "--nproc_per_node", "2", "--redirects", "1", "--tee", "2",
                 "-m", "bitplan_torch", "trace"]
                + self.common + ["-o", out])
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        with open(out) as f:
            two = json.load(f)
        self.assertEqual(two["layers"], self.table["layers"])
        self.assertIn("2 rank(s), split probes", two["notes"])

    def test_npy_inputs_reproduce_committed_reference(self):
        # The same settings as scripts/make_torch_tables.py: the command must
        # print the table that plan/torch_test.go checks against bitplan.
        ref_dir = os.path.join(models.REPO, "testdata", "ref", "lenet")
        with open(os.path.join(models.REPO, "testdata", "torch", "lenet.json")) as f:
            want = json.load(f)["hutchinson"]
        p = run([sys.executable, "-m", "bitplan_torch", "trace", "--model", "train_models:LeNet",
                 "--path", os.path.join(models.REPO, "scripts"), "--weights", os.path.join(self.tmp.name, "w.pt"),
                 "--inputs", os.path.join(ref_dir, "inputs.npy"), "--labels", os.path.join(ref_dir, "labels.npy"),
                 "--samples", "8", "--batch-size", "8", "--dtype", "float64", "--tol", "0.3",
                 "--max-probes", "40", "--bits", "2,3,4,5,6,8", "--model-name", "lenet", "--threads", "1"])
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        got = json.loads(p.stdout)
        self.assertEqual(got["source"], want["source"])
        for a, b in zip(got["layers"], want["layers"]):
            self.assertEqual(a.keys(), b.keys())
            for k in ("avg_trace", "avg_trace_stderr", "trace"):
                self.assertAlmostEqual(a[k], b[k], delta=1e-12 * abs(b[k]))
            self.assertEqual(a["delta_sq"], b["delta_sq"])

    def test_errors(self):
        for extra, msg in ((["--model", "nosuchmodule:f"], "cannot import 'nosuchmodule'"),
                           (["--model", "train_models"], "want MODULE:NAME"),
                           (["--data", "/nonexistent.pt"], "no such file"),
                           (["--bits", "4,z"], "precision 'z'")):
            p = run([sys.executable, "-m", "bitplan_torch", "trace"] + self.common + extra)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(msg, p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "t.json")))


def _umask():
    u = os.umask(0)
    os.umask(u)
    return u


if __name__ == "__main__":
    unittest.main()
