#!/usr/bin/env python3
"""Writes testdata/models/external/: testdata/models/rescnn.onnx saved by
ONNX's own writer with its weights as external data (every initializer in
one side file, rescnn.onnx.data, with location/offset/length entries), the
layout torch.onnx and onnx.save use for models over 2 GB. model's
TestExternalData checks that it loads to the same tensors as the inline
file.

Usage: /usr/bin/python3 scripts/make_external_data.py   (from the repository root; needs python3-onnx)
"""
import os

import onnx

SRC = "testdata/models/rescnn.onnx"
OUT = "testdata/models/external"


def main():
    m = onnx.load(SRC)
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "rescnn.onnx")
    data = "rescnn.onnx.data"
    if os.path.exists(os.path.join(OUT, data)):
        os.remove(os.path.join(OUT, data))  # save appends to an existing file
    onnx.save(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location=data, size_threshold=0, convert_attribute=False)
    onnx.checker.check_model(path)
    ext = [t.name for t in onnx.load(path, load_external_data=False).graph.initializer
           if t.data_location == onnx.TensorProto.EXTERNAL]
    print(f"{path}: {len(ext)} external initializers in {data} "
          f"({os.path.getsize(os.path.join(OUT, data))} bytes)")


if __name__ == "__main__":
    main()
