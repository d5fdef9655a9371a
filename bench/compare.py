#!/usr/bin/env python3
"""Print the aiaas-vs-Python benchmark table, with ratios (aiaas / peer) and PASS/FAIL
against the targets, and write it as markdown (default bench/out/report.md).

  compare.py --ours bench/out/aiaas.json --peer bench/out/peer.json [--glove FILE]
      [--report FILE] [--strict]

--strict exits 1 when a target is missed or a figure is missing. Standard library only.
"""
import argparse
import datetime
import json
import os
import sys

EPS = 1e-9
AUTO_TARGET = 0.986
NO_PEER = object()  # a row with no Python counterpart


def get(d, *path):
    for key in path:
        if not isinstance(d, dict) or key not in d or d[key] is None:
            return None
        d = d[key]
    return d


def words(v):
    return "n/a" if v is None else f"{v / 1e6:.2f}M"


def secs(v):
    return "n/a" if v is None else f"{v:.2f}s"


def frac(v):
    return "n/a" if v is None else f"{v:.4f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def rows(ours, peer, glove=None):
    """(metric, aiaas, peer, ratio, target, result) with result PASS/FAIL/MISSING/''."""
    out = []

    def row(metric, a, p, fmt, target=None, passed=None, show_ratio=True):
        r = ratio(a, p) if show_ratio and p is not NO_PEER else None
        if target is None:
            result = ""
        elif passed is None:
            result = "MISSING"
        else:
            result = "PASS" if passed else "FAIL"
        out.append((metric, fmt(a), "-" if p is NO_PEER else fmt(p), "" if r is None else f"{r:.2f}x", target or "", result))

    for mode, name in (("cbow", "CBOW"), ("skip-gram", "skip-gram")):
        a = get(ours, "word2vec", mode, "words_per_second")
        p = get(peer, "word2vec", mode, "words_per_second")
        r = ratio(a, p)
        row(f"word2vec {name} words/s", a, p, words, ">= 1.0x", None if r is None else r >= 1.0 - EPS)

    a, p = get(ours, "avgpool", "train_seconds"), get(peer, "keras", "train_seconds")
    r = ratio(a, p)
    row("10 epochs wall (avgpool/Keras)", a, p, secs, "<= 0.5x", None if r is None else r <= 0.5 + EPS)

    a, p = get(ours, "avgpool", "accuracy"), get(peer, "keras", "accuracy")
    row("avgpool test accuracy", a, p, frac, ">= Keras",
        None if a is None or p is None else a >= p - EPS)
    row("avgpool test macro-F1", get(ours, "avgpool", "macro_f1"), get(peer, "keras", "macro_f1"), frac)
    row("avgpool word2vec (skip-gram) s", get(ours, "avgpool", "word2vec_seconds"),
        get(peer, "word2vec", "skip-gram", "seconds"), secs)

    row("tfidf-logreg test accuracy", get(ours, "tfidf-logreg", "accuracy"),
        get(peer, "sklearn_tfidf_logreg", "accuracy"), frac)
    row("tfidf-logreg test macro-F1", get(ours, "tfidf-logreg", "macro_f1"),
        get(peer, "sklearn_tfidf_logreg", "macro_f1"), frac)
    row("tfidf-logreg train seconds", get(ours, "tfidf-logreg", "train_seconds"),
        get(peer, "sklearn_tfidf_logreg", "train_seconds"), secs)

    a = get(ours, "auto", "accuracy")
    row("auto test accuracy", a, get(peer, "sklearn_tfidf_logreg", "accuracy"), frac,
        f">= {AUTO_TARGET}", None if a is None else a >= AUTO_TARGET - EPS, show_ratio=False)
    row("auto test macro-F1", get(ours, "auto", "macro_f1"),
        get(peer, "sklearn_tfidf_logreg", "macro_f1"), frac, show_ratio=False)
    row("auto train seconds", get(ours, "auto", "train_seconds"), NO_PEER, secs, show_ratio=False)

    # Both corpora against the better of scikit-learn's word and character baselines.
    for corpus, ours_at in (("bbc", ()), ("zh-news", ("zh-news",))):
        best = get(peer, "sklearn_baselines", corpus, "best")
        for arch in ("tfidf-logreg", "auto"):
            a = get(ours, *ours_at, arch, "accuracy")
            row(f"{corpus} {arch} accuracy vs sklearn's best", a, best, frac, ">= sklearn's best",
                None if a is None or best is None else a >= best - EPS)

    # GloVe against mittens (bench/glove_reference.py) on the same counts: the reference's
    # second run is its own run-to-run agreement, the bar for aiaas's agreement with it.
    if glove is not None:
        row("GloVe train seconds (vs mittens)", get(ours, "glove", "seconds"),
            get(glove, "reference_seconds"), secs)
        a, p = get(glove, "overlap_ours_reference"), get(glove, "overlap_reference_reference")
        row("GloVe 10-NN overlap with mittens (peer: mittens run 2)", a, p, frac, ">= 0.8x",
            None if a is None or p is None else a >= 0.8 * p - EPS)
        a, p = get(glove, "analogy_ours"), get(glove, "analogy_reference")
        row(f"GloVe analogy accuracy ({get(glove, 'analogy_questions')} questions)", a, p, frac)
    return out


HEADER = ("metric", "aiaas", "peer", "ratio", "target", "result")


def notes(ours, peer):
    n = []
    chosen = get(ours, "auto", "chosen")
    if chosen:
        n.append(f"auto chose `{chosen}`.")
    n.append("peer: word2vec = gensim, avgpool = Keras (founding example, corrected), "
             "tfidf-logreg and auto = scikit-learn TF-IDF + LogisticRegression.")
    for mode in ("cbow", "skip-gram"):
        a = get(ours, "word2vec", mode, "words")
        p = get(peer, "word2vec", mode, "effective_words")
        if a and p and abs(a / p - 1) > 0.05:
            n.append(f"word2vec {mode}: aiaas counted {a} words, gensim {p} effective words "
                     f"({a / p:.2f}x): the words/s figures count different work.")
    busy = []
    for label, path in (("gensim CBOW", ("word2vec", "cbow")), ("gensim skip-gram", ("word2vec", "skip-gram")),
                        ("Keras fit", ("keras",)), ("scikit-learn fit", ("sklearn_tfidf_logreg",))):
        other = get(peer, *path, "other_processes_cores")
        if other is not None and other > 0.25:
            busy.append(f"{label} {other:.2f}")
    if busy:
        n.append("WARNING: other processes were busy during the Python timings (cores used: "
                 + ", ".join(busy) + "); rerun on an idle machine.")
    mask = get(peer, "keras", "mask_zero")
    if mask is not None:
        n.append(f"Keras GlobalAveragePooling1D with mask_zero={str(mask).lower()} "
                 f"({'padding excluded from the mean' if mask else 'padding included in the mean'}).")
    v = get(peer, "versions") or {}
    if v:
        n.append("peer versions: " + ", ".join(f"{k} {v[k]}" for k in sorted(v)))
    return n


def table_text(data):
    widths = [max(len(r[i]) for r in [HEADER] + data) for i in range(len(HEADER))]
    lines = []
    for r in [HEADER] + data:
        lines.append("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def table_markdown(data):
    lines = ["| " + " | ".join(HEADER) + " |", "|---|---:|---:|---:|---|---|"]
    for r in data:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    return "\n".join(lines)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", required=True, help="aiaas JSON")
    ap.add_argument("--peer", required=True, help="python_baseline.py JSON")
    ap.add_argument("--glove", help="glove_reference.py JSON (GloVe against mittens)")
    ap.add_argument("--report", default=os.path.join(here, "out", "report.md"),
                    help="markdown report to write (default bench/out/report.md)")
    ap.add_argument("--strict", action="store_true", help="exit 1 unless every target passes")
    args = ap.parse_args()

    with open(args.ours, encoding="utf-8") as f:
        ours = json.load(f)
    with open(args.peer, encoding="utf-8") as f:
        peer = json.load(f)

    glove = None
    if args.glove:
        with open(args.glove, encoding="utf-8") as f:
            glove = json.load(f)
    data = rows(ours, peer, glove)
    extra = notes(ours, peer)
    print(table_text(data))
    for line in extra:
        print("  * " + line)

    results = [r[5] for r in data if r[5]]
    summary = f"{results.count('PASS')} of {len(results)} targets met"
    print(summary)

    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = [
        "# aiaas benchmark",
        "",
        f"Run {stamp}. Ratio = aiaas / peer. {summary}.",
        "",
        table_markdown(data),
        "",
    ] + [f"- {line}" for line in extra] + [""]
    tmp = args.report + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    os.replace(tmp, args.report)
    print(f"report: {args.report}")

    if args.strict and any(r != "PASS" for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
