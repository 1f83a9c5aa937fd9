#!/usr/bin/env python3
"""Runs an ONNX model in ONNX Runtime (CPU) on a batch of images and prints its logits as JSON.

Usage: onnx_logits.py MODEL.onnx IMAGES.f32 N C H W
IMAGES.f32 holds N x C x H x W little-endian f32 pixels (what hetconv's tests write). The
output is {"logits": [[...], ...], "inputs": [...], "outputs": [...]} on standard output.
"""
import json
import sys

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, images = sys.argv[1], sys.argv[2]
    shape = tuple(int(v) for v in sys.argv[3:7])
    x = np.fromfile(images, dtype="<f4").reshape(shape)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (logits,) = session.run(None, {name: x})
    print(
        json.dumps(
            {
                "logits": logits.astype(np.float64).tolist(),
                "inputs": [i.name for i in session.get_inputs()],
                "outputs": [o.name for o in session.get_outputs()],
            }
        )
    )


if __name__ == "__main__":
    main()
