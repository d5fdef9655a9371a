"""aiaas's GloVe vectors against a reference implementation on the same corpus.

The reference is `mittens` (PyPI; Dingwall and Potts's NumPy GloVe: the same weighted
least-squares objective, optimised by full-batch AdaGrad on the dense co-occurrence
matrix). Both sides see the same co-occurrence counts: the tokens aiaas wrote (one text a
line), out-of-vocabulary words removed, the vocabulary the `--top` most frequent words
(count descending, then the word), every pair within `--window` counted 1/distance both
ways. Prints (and with --json writes) for aiaas and the reference:

  overlap  mean share of the 10 nearest neighbours (cosine) two vector sets agree on, over
           the query words (vocabulary ranks 50..50+queries: content words); aiaas vs the
           reference, and the reference vs a second reference run (its own run-to-run
           spread: the ceiling aiaas can be held to);
  analogy  accuracy of 3CosAdd on the analogies file's questions whose four words are all
           in the vocabulary (the three question words excluded from the answers);
  seconds  the reference's training time (counting apart); aiaas's comes from its side.

  python bench/glove_reference.py --tokens T --ours VECTORS [--top 2000] [--window 10]
      [--dim 100] [--x-max 10] [--alpha 0.75] [--iters 500] [--analogies FILE] [--json OUT]
"""
import argparse
import json
import os
import time
from collections import Counter

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def read_tokens(path):
    """One text a line, tokens separated by spaces (a label before a tab is dropped)."""
    with open(path, encoding="utf-8") as f:
        return [line.split("\t")[-1].split() for line in f]


def vocabulary(docs, top):
    counts = Counter(w for d in docs for w in d)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [w for w, _ in ranked]


def cooccurrences(docs, index, window):
    """The dense symmetric count matrix, 1/distance per pair, OOV removed first."""
    ids, doc_of = [], []
    for n, d in enumerate(docs):
        kept = [index[w] for w in d if w in index]
        ids.extend(kept)
        doc_of.extend([n] * len(kept))
    ids, doc_of = np.asarray(ids, dtype=np.int64), np.asarray(doc_of)
    v = len(index)
    x = np.zeros(v * v)
    for dist in range(1, window + 1):
        same = doc_of[:-dist] == doc_of[dist:]
        a, b = ids[:-dist][same], ids[dist:][same]
        w = np.full(a.shape, 1.0 / dist)
        x += np.bincount(a * v + b, weights=w, minlength=v * v)
        x += np.bincount(b * v + a, weights=w, minlength=v * v)
    return x.reshape(v, v)


def read_vectors(path, words):
    """Vectors in word2vec's text format, rows in `words`' order."""
    table = {}
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").split(" ")
            table[parts[0]] = np.asarray(parts[1:], dtype=np.float64)
    missing = [w for w in words if w not in table]
    assert not missing, f"aiaas's vectors lack {len(missing)} words, e.g. {missing[:5]}"
    return np.stack([table[w] for w in words])


def unit(m):
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def neighbours(m, queries, k=10):
    u = unit(m)
    sims = u[queries] @ u.T
    sims[np.arange(len(queries)), queries] = -np.inf
    return np.argsort(-sims, axis=1)[:, :k]


def overlap(a, b, queries, k=10):
    na, nb = neighbours(a, queries, k), neighbours(b, queries, k)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb)]))


def analogies(path, index):
    questions, total = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if len(words) != 4 or line.startswith("#"):
                continue
            total += 1
            if all(w in index for w in words):
                questions.append([index[w] for w in words])
    return np.asarray(questions, dtype=np.int64).reshape(-1, 4), total


def analogy_accuracy(m, questions):
    if len(questions) == 0:
        return 0.0
    u = unit(m)
    a, b, c, d = questions.T
    target = u[b] - u[a] + u[c]
    sims = unit(target) @ u.T
    rows = np.arange(len(questions))
    for col in (a, b, c):
        sims[rows, col] = -np.inf
    return float(np.mean(np.argmax(sims, axis=1) == d))


def mittens_glove(x, args):
    from mittens.np_mittens import GloVe

    model = GloVe(n=args.dim, xmax=args.x_max, alpha=args.alpha, max_iter=args.iters,
                  learning_rate=args.learning_rate, display_progress=0)
    started = time.perf_counter()
    vectors = model.fit(x)
    return vectors, time.perf_counter() - started, float(model.errors[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", required=True)
    p.add_argument("--ours", required=True, help="aiaas's vectors, word2vec text format")
    p.add_argument("--top", type=int, default=2000)
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--x-max", type=float, default=10.0)
    p.add_argument("--alpha", type=float, default=0.75)
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--iters", type=int, default=500)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--analogies", default=os.path.join(HERE, "glove", "analogies.txt"))
    p.add_argument("--json")
    args = p.parse_args()

    docs = read_tokens(args.tokens)
    words = vocabulary(docs, args.top)
    index = {w: i for i, w in enumerate(words)}
    started = time.perf_counter()
    x = cooccurrences(docs, index, args.window)
    count_seconds = time.perf_counter() - started
    ours = read_vectors(args.ours, words)
    ref, ref_seconds, ref_cost = mittens_glove(x, args)
    ref2, _, _ = mittens_glove(x, args)
    queries = np.arange(50, min(50 + args.queries, len(words)))
    questions, total = analogies(args.analogies, index)
    result = {
        "vocabulary": len(words),
        "pairs": int(np.count_nonzero(x)),
        "reference": "mittens 0.2 (NumPy GloVe, full-batch AdaGrad)",
        "reference_iters": args.iters,
        "reference_seconds": ref_seconds,
        "reference_count_seconds": count_seconds,
        "reference_cost": ref_cost,
        "overlap_ours_reference": overlap(ours, ref, queries),
        "overlap_reference_reference": overlap(ref2, ref, queries),
        "analogy_questions": int(len(questions)),
        "analogy_questions_in_file": total,
        "analogy_ours": analogy_accuracy(ours, questions),
        "analogy_reference": analogy_accuracy(ref, questions),
        "analogy_reference_second_run": analogy_accuracy(ref2, questions),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
