#!/usr/bin/env python3
"""Fold the interleaved word2vec rounds into the two result files.

run.sh alternates one aiaas word2vec run and one gensim run per mode, ROUNDS times, so
that both sides see the same machine conditions (on a shared 2-core VM single runs vary
by 2x). This replaces each side's word2vec figures with the median over its rounds and
keeps every round in `runs`.

usage: merge_word2vec.py OURS.json PEER.json ROUND_DIR
"""
import glob
import json
import os
import statistics
import sys


def rounds(pattern):
    out = {}
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            w2v = json.load(f)["word2vec"]
        for mode in ("cbow", "skip-gram"):
            out.setdefault(mode, []).append(w2v[mode])
    return out


def fold(result_path, per_mode):
    with open(result_path) as f:
        result = json.load(f)
    for mode, runs in per_mode.items():
        speeds = [r["words_per_second"] for r in runs]
        median = statistics.median(speeds)
        entry = dict(result["word2vec"].get(mode, {}))
        entry.update({
            "words_per_second": median,
            "rounds": len(runs),
            "runs": speeds,
            "interleaved": True,
        })
        result["word2vec"][mode] = entry
    with open(result_path, "w") as f:
        json.dump(result, f, indent=2)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    ours, peer, rdir = sys.argv[1:]
    fold(ours, rounds(os.path.join(rdir, "ours-*.json")))
    fold(peer, rounds(os.path.join(rdir, "peer-*.json")))


if __name__ == "__main__":
    main()
