#!/usr/bin/env python3
"""Validate QDQ models written by `bitplan quantize` with ONNX's own checker.

    /usr/bin/python3 scripts/check_qdq.py lenet.qdq.onnx [more.onnx ...]

Runs onnx.checker.check_model(full_check=True) (structure, types, shape
inference) on every file, then checks the bitplan conventions independently
of the Go code: opset 21, every DequantizeLinear of a weight with an INT8 or
INT4 initializer, a zero point of zeros of the same type and a scale vector
along its axis; every QuantizeLinear per tensor (scalar scale, no axis).

Exit status 0: all files pass; 1: a file fails; 77: the conventions pass
but onnx.checker was skipped because the installed onnx is older than 1.16
(the first with IR 10, opset 21 and INT4), e.g. Debian bookworm's
python3-onnx 1.12; install a newer one with `pip install 'onnx>=1.16'` (or
Debian trixie's python3-onnx).
"""
import sys

try:
    import onnx
except ImportError:
    print("check_qdq: skipped: python3-onnx is not installed "
          "(apt-get install python3-onnx, or pip install 'onnx>=1.16')")
    sys.exit(77)

SKIP = 77
# TensorProto data types by number (onnx < 1.16 has no INT4 name).
INT8, INT16, INT32, INT4 = 3, 5, 6, 22


def version_tuple(v):
    return tuple(int(p) for p in v.split(".")[:2] if p.isdigit())


def zeros(t):
    """Whether an integer initializer holds only zeros (raw bytes, so that
    INT4 needs no numpy support)."""
    if t.raw_data:
        return not any(t.raw_data)
    return not any(t.int32_data)


def check(path, checker):
    m = onnx.load(path)
    if checker:
        onnx.checker.check_model(m, full_check=True)
    opset = {o.domain or "ai.onnx": o.version for o in m.opset_import}
    assert opset.get("ai.onnx") == 21, f"{path}: opset {opset}"
    inits = {t.name: t for t in m.graph.initializer}
    weights = 0
    for n in m.graph.node:
        axis = [a for a in n.attribute if a.name == "axis"]
        if n.op_type == "QuantizeLinear":
            assert not axis, f"{path}: {n.name} has an axis attribute"
            s = inits[n.input[1]]
            assert len(s.dims) == 0, f"{path}: {n.name} scale dims {s.dims}"
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            q, s, z = (inits[i] for i in n.input[:3])
            if q.data_type == INT32:
                continue  # a bias
            assert q.data_type in (INT8, INT4, INT16), \
                f"{path}: {n.name} codes of type {q.data_type}"
            assert z.data_type == q.data_type, f"{path}: {n.name} zero point type {z.data_type}"
            assert zeros(z), f"{path}: {n.name} zero point not 0"
            if axis:
                assert list(s.dims) == [q.dims[axis[0].i]], f"{path}: {n.name} scale dims {s.dims}"
            weights += 1
    meta = {p.key: p.value for p in m.metadata_props}
    assert "bitplan.qdq" in meta, f"{path}: no bitplan.qdq metadata"
    return weights


def main(paths):
    if not paths:
        print(__doc__)
        return 2
    checker = version_tuple(onnx.__version__) >= (1, 16)
    bad = 0
    for p in paths:
        try:
            n = check(p, checker)
            how = "onnx.checker full_check and conventions" if checker else "conventions only"
            print(f"{p}: ok ({how}, onnx {onnx.__version__}, {n} quantized weights)")
        except Exception as e:  # noqa: BLE001 - report every failure
            print(f"{p}: FAIL: {e}")
            bad += 1
    if bad:
        return 1
    if not checker:
        print(f"check_qdq: onnx.checker skipped: onnx {onnx.__version__} predates IR 10, opset 21 and INT4 "
              "(needs onnx >= 1.16: pip install 'onnx>=1.16')")
        return SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
