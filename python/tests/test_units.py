import unittest

import torch
import torch.nn as nn

from bitplan_torch import find_units, sensitivity_table

from . import models


class Nested(nn.Module):
    """A tied embedding / output projection, a nested block and a Linear on a 3-D input."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 6)
        self.block = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6))
        self.head = nn.Linear(6, 11, bias=False)
        self.head.weight = self.emb.weight
        self.unused = nn.Linear(3, 3)

    def forward(self, tokens):
        h = self.block(self.emb(tokens))       # B x T x 6: MatMul
        return self.head(h.mean(dim=1))        # B x 11 logits: Gemm


class TestUnits(unittest.TestCase):
    def test_names_match_onnx_exports(self):
        # testdata/ref/<model>/meta.json lists the ONNX file's Conv/Gemm
        # nodes, their weight and bias initializers, in graph order.
        for name in models.NAMES:
            mod = models.load(name)
            x, _ = models.ref_data(name)
            units, warn = find_units(mod, lambda: mod(x[:2]), 2)
            meta = models.ref_meta(name)["units"]
            self.assertEqual([u.name for u in units], [m["name"] for m in meta], name)
            self.assertEqual([u.weight_name for u in units], [m["weight"] for m in meta], name)
            self.assertEqual([u.bias_name for u in units], [m["bias"] for m in meta], name)
            self.assertEqual(warn, [])

    def test_macs_by_hand(self):
        mod = models.load("lenet")
        x, _ = models.ref_data("lenet")
        units, _ = find_units(mod, lambda: mod(x[:3]), 3)
        by = {u.name: u for u in units}
        c1 = by["/conv1/Conv"]
        self.assertEqual((c1.macs, c1.in_elems, c1.out_elems, c1.out_channels), (6 * 28 * 28 * 25, 784, 6 * 28 * 28, 6))
        f1 = by["/fc1/Gemm"]
        self.assertEqual((f1.macs, f1.in_elems, f1.out_elems), (400 * 120, 400, 120))

    def test_shared_weights_tied(self):
        torch.manual_seed(0)
        m = Nested().double()
        tokens = torch.randint(0, 11, (5, 4))
        labels = torch.randint(0, 11, (5,))
        units, warn = find_units(m, lambda: m(tokens), 5)
        self.assertEqual([u.name for u in units],
                         ["/emb/Gather", "/block/block.0/MatMul", "/block/block.2/MatMul", "/head/Gemm"])
        self.assertEqual(len(warn), 1)
        self.assertIn("unused", warn[0])
        t = sensitivity_table(m, [(tokens, labels)], method="exact", bits=(4, 8), progress=False)
        rows = {r["name"]: r for r in t["layers"]}
        emb, head = rows["/emb/Gather"], rows["/head/Gemm"]
        self.assertEqual(emb["tie"], "shared:emb.weight")
        self.assertEqual(head["tie"], "shared:emb.weight")
        self.assertEqual((emb["params"], head["params"], head["avg_trace"]), (66, 0, 0.0))
        self.assertEqual(emb["delta_sq"], head["delta_sq"])
        self.assertEqual(emb["macs"], 0)
        self.assertEqual(head["macs"], 66)
        self.assertEqual(rows["/block/block.0/MatMul"]["macs"], 4 * 36)  # per sample: T x 6 x 6
        # The shared block's trace covers both uses: compare with the Hessian of the
        # embedding weight computed by torch.autograd.functional.hessian.
        W = m.emb.weight.detach().clone()

        def loss_of(w):
            h = m.block(nn.functional.embedding(tokens, w))
            return nn.functional.cross_entropy(nn.functional.linear(h.mean(dim=1), w), labels)
        H = torch.autograd.functional.hessian(loss_of, W).reshape(66, 66)
        self.assertAlmostEqual(emb["trace"], float(torch.diagonal(H).sum()), delta=1e-10)

    def test_unit_selection_errors(self):
        m = nn.Sequential(nn.ReLU(), nn.Tanh())
        with self.assertRaisesRegex(ValueError, "the model has no units"):
            sensitivity_table(m, [(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))], progress=False)
        m = nn.Sequential(nn.Linear(3, 2))
        with self.assertRaisesRegex(ValueError, "no module 'fc'"):
            sensitivity_table(m, [(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))], units=["fc"], progress=False)
        with self.assertRaisesRegex(ValueError, "no floating-point weight"):
            sensitivity_table(m, [(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))], units=["0", ""],
                              progress=False)


if __name__ == "__main__":
    unittest.main()
