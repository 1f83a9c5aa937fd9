#!/usr/bin/env python3
"""Writes the embedded Fashion-MNIST subset in `data/fashion-mnist-subset/`.

Source: Debian's package `dataset-fashion-mnist` (apt-get install dataset-fashion-mnist), which
installs the original IDX files under /usr/share/datasets/fashion-mnist. The subset keeps the
first TRAIN images of the training set and the first TEST images of the test set, unchanged, as
gzipped IDX files (the format `hetconv` reads). Usage: scripts/make_embedded_data.py [SOURCE_DIR]
"""
import gzip
import os
import struct
import sys

TRAIN = 6000
TEST = 1000
SOURCE = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "fashion-mnist-subset")


def subset(name, count):
    with gzip.open(os.path.join(SOURCE, name), "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        header = struct.pack(">IIII", magic, count, rows, cols)
        body = data[16:16 + count * rows * cols]
    elif magic == 2049:
        header = struct.pack(">II", magic, count)
        body = data[8:8 + count]
    else:
        raise SystemExit(f"{name}: unknown IDX magic {magic}")
    if count > n:
        raise SystemExit(f"{name}: has {n} records, {count} wanted")
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name)
    # mtime=0 keeps the output byte-identical from run to run.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(header + body)
    print(f"{path}: {count} records, {os.path.getsize(path)} bytes")


subset("train-images-idx3-ubyte.gz", TRAIN)
subset("train-labels-idx1-ubyte.gz", TRAIN)
subset("t10k-images-idx3-ubyte.gz", TEST)
subset("t10k-labels-idx1-ubyte.gz", TEST)
