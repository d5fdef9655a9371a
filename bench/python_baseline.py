#!/usr/bin/env python3
"""The Python side of the aiaas benchmark: gensim Word2Vec, the founding Keras example
(corrected) and scikit-learn TF-IDF + logistic regression, on the SAME tokens as aiaas.

Input: --tokens DIR with train.tsv and test.tsv written by the aiaas side, one document a
line: `label<TAB>token token ...` (lower-cased and segmented by aiaas' tokenizer, tokens
separated by single spaces), so both sides see identical tokens.

Output: --out FILE.json (see bench/README.md for the fields).

Order matters for fair timing: word2vec runs before TensorFlow is imported, so no idle
TensorFlow thread pool sits beside gensim's workers.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

THREADS = 2
SEED = 42

# Word2Vec settings, the same as aiaas' Word2VecParams defaults (crates/types).
W2V = dict(
    vector_size=100,
    window=5,
    min_count=2,
    negative=5,
    hs=0,
    epochs=5,
    sample=1e-3,
    alpha=0.025,
    min_alpha=0.0001,
    cbow_mean=1,
    workers=THREADS,
    seed=SEED,
)
# gensim's Cython routines silently truncate a sentence past this many words.
GENSIM_MAX_WORDS = 10000

# Founding example (corrected), as aiaas' `avgpool` defaults.
MAX_LEN = 400
EMBEDDING_DIM = 100
HIDDEN = 24
EPOCHS = 10
BATCH = 32
VALIDATION_SPLIT = 0.2
LEARNING_RATE = 1e-3
MASK_ZERO = True


class Busy:
    """Wall and CPU time of a timed section, and how busy the rest of the machine was
    meanwhile (cores' worth of CPU used by other processes, from /proc/stat on Linux):
    a sign of a contended, untrustworthy timing."""

    def __enter__(self):
        self.t0, self.c0, self.s0 = time.perf_counter(), _own_cpu(), _machine_busy()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.cpu_seconds = _own_cpu() - self.c0
        s1 = _machine_busy()
        self.other_cores = None
        if self.s0 is not None and s1 is not None and self.seconds > 0:
            self.other_cores = max(0.0, (s1 - self.s0 - self.cpu_seconds) / self.seconds)
        return False

    def fields(self):
        return dict(
            cpu_seconds=round(self.cpu_seconds, 3),
            other_processes_cores=None if self.other_cores is None else round(self.other_cores, 2),
        )


def _own_cpu():
    t = os.times()
    return t.user + t.system


def _machine_busy():
    """CPU seconds all processes have used since boot (None where /proc/stat is missing)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def log(msg):
    print(f"[python_baseline] {msg}", file=sys.stderr, flush=True)


def read_tsv(path):
    labels, docs = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            label, sep, text = line.partition("\t")
            if not sep:
                sys.exit(f"{path}:{n}: expected label<TAB>tokens")
            labels.append(label)
            docs.append(text.split(" ") if text else [])
    return labels, docs


def gensim_sentences(docs):
    """Documents as gensim sentences; any longer than gensim's limit are cut into pieces
    rather than silently truncated (counted in the JSON)."""
    out, split = [], 0
    for d in docs:
        if len(d) <= GENSIM_MAX_WORDS:
            out.append(d)
        else:
            split += 1
            out.extend(d[i:i + GENSIM_MAX_WORDS] for i in range(0, len(d), GENSIM_MAX_WORDS))
    return out, split


def time_word2vec(sentences, sg, repeats):
    """Train a fresh model `repeats` times; vocabulary building is not timed, only
    `model.train`. Returns the median run (by words/s), every run, and the last model."""
    from gensim.models import Word2Vec

    runs, model = [], None
    for r in range(repeats):
        model = Word2Vec(sg=sg, **W2V)
        model.build_vocab(sentences)
        with Busy() as busy:
            effective, raw = model.train(
                sentences, total_examples=model.corpus_count, epochs=model.epochs
            )
        seconds = busy.seconds
        runs.append(
            dict(
                words_per_second=effective / seconds,
                effective_words=int(effective),
                raw_words=int(raw),
                seconds=seconds,
                **busy.fields(),
            )
        )
        log(f"word2vec {'skip-gram' if sg else 'cbow'} run {r + 1}/{repeats}: "
            f"{effective / seconds / 1e6:.3f} M effective words/s "
            f"({effective} effective, {raw} raw words in {seconds:.2f} s; "
            f"other processes used {busy.other_cores or 0:.2f} cores)")
    by_speed = sorted(runs, key=lambda x: x["words_per_second"])
    median = dict(by_speed[len(by_speed) // 2])
    median["runs"] = runs
    median["vocabulary"] = len(model.wv.index_to_key)
    return median, model


def keras_founding_example(w2v, train_labels, train_docs, test_labels, test_docs, classes):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    from sklearn.metrics import accuracy_score, f1_score

    keras.utils.set_random_seed(SEED)

    # Vocabulary from the Word2Vec model: 0 = padding, 1 = out of vocabulary, then the
    # Word2Vec words in its (frequency) order. Rows 0 and 1 start at zero, as in aiaas.
    words = w2v.wv.index_to_key
    index = {w: i + 2 for i, w in enumerate(words)}
    vocab = len(words) + 2
    table = np.zeros((vocab, EMBEDDING_DIM), dtype=np.float32)
    table[2:] = w2v.wv.vectors[: len(words)]

    def encode(docs):
        # Truncate at the end (keep the first MAX_LEN tokens, as aiaas does), pad at the end.
        x = np.zeros((len(docs), MAX_LEN), dtype=np.int32)
        for r, d in enumerate(docs):
            ids = [index.get(t, 1) for t in d[:MAX_LEN]]
            x[r, : len(ids)] = ids
        return x

    label_index = {c: i for i, c in enumerate(classes)}
    x_train, x_test = encode(train_docs), encode(test_docs)
    y_train = np.array([label_index[c] for c in train_labels], dtype=np.int32)
    y_test = np.array([label_index[c] for c in test_labels], dtype=np.int32)

    embedding = keras.layers.Embedding(vocab, EMBEDDING_DIM, mask_zero=MASK_ZERO, name="embedding")
    model = keras.Sequential(
        [
            keras.Input(shape=(MAX_LEN,), dtype="int32"),
            embedding,
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(len(classes), activation="softmax"),
        ]
    )
    embedding.set_weights([table])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    class EpochTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times, self.t = [], time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            self.times.append(now - self.t)
            self.t = now

    epoch_times = EpochTimes()
    with Busy() as busy:
        history = model.fit(
            x_train,
            y_train,
            epochs=EPOCHS,
            batch_size=BATCH,
            validation_split=VALIDATION_SPLIT,
            callbacks=[epoch_times],
            verbose=0,
        )
    train_seconds = busy.seconds

    pred = np.argmax(model.predict(x_test, batch_size=256, verbose=0), axis=1)
    result = dict(
        train_seconds=train_seconds,
        accuracy=float(accuracy_score(y_test, pred)),
        macro_f1=float(f1_score(y_test, pred, average="macro")),
        epochs=EPOCHS,
        mask_zero=MASK_ZERO,
        epoch_seconds=epoch_times.times,
        val_accuracy=[float(v) for v in history.history.get("val_accuracy", [])],
        vocabulary=vocab,
        max_len=MAX_LEN,
        batch_size=BATCH,
        validation_split=VALIDATION_SPLIT,
        embedding_init="skip-gram word2vec",
        truncating="post",
        padding="post",
        tf_threads=dict(intra_op=THREADS, inter_op=1),
        **busy.fields(),
    )
    log(f"keras: {EPOCHS} epochs in {train_seconds:.2f} s, test accuracy "
        f"{result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f} "
        f"(other processes used {busy.other_cores or 0:.2f} cores)")
    return result, tf.__version__, keras.__version__


def sklearn_tfidf_logreg(train_labels, train_docs, test_labels, test_docs):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    train_text = [" ".join(d) for d in train_docs]
    test_text = [" ".join(d) for d in test_docs]
    vec = TfidfVectorizer(
        tokenizer=str.split,
        token_pattern=None,
        lowercase=False,
        ngram_range=(1, 2),
        sublinear_tf=True,
        min_df=2,
        max_features=50000,
    )
    clf = LogisticRegression(C=10.0, max_iter=1000)
    with Busy() as busy:
        x_train = vec.fit_transform(train_text)
        clf.fit(x_train, train_labels)
    train_seconds = busy.seconds
    pred = clf.predict(vec.transform(test_text))
    result = dict(
        accuracy=float(accuracy_score(test_labels, pred)),
        macro_f1=float(f1_score(test_labels, pred, average="macro")),
        train_seconds=train_seconds,
        features=int(x_train.shape[1]),
        settings="TfidfVectorizer(ngram_range=(1,2), sublinear_tf=True, min_df=2, "
                 "max_features=50000) + LogisticRegression(C=10, max_iter=1000), "
                 "fit on the whole training split",
        **busy.fields(),
    )
    log(f"sklearn tfidf-logreg: accuracy {result['accuracy']:.4f}, macro-F1 "
        f"{result['macro_f1']:.4f}, {train_seconds:.2f} s")
    return result


def sklearn_baselines(data_dir):
    """scikit-learn's two TF-IDF + logistic regression baselines on the raw texts of both
    corpora (the same split aiaas trains on): word 1-2-grams (jieba words for Chinese) and
    character 1-2-grams, each TfidfVectorizer(sublinear_tf=True, min_df=2,
    max_features=50000) + LogisticRegression(C=10, max_iter=1000)."""
    import csv

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def read(name):
        with open(os.path.join(data_dir, name), encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        return [r["text"] for r in rows], [r["category"] for r in rows]

    out = {}
    for corpus, language in (("bbc", "english"), ("zh-news", "chinese")):
        train_x, train_y = read(f"{corpus}-train.csv")
        test_x, test_y = read(f"{corpus}-test.csv")
        common = dict(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=50000)
        if language == "chinese":
            import jieba

            jieba.setLogLevel(60)
            word = TfidfVectorizer(tokenizer=jieba.lcut, token_pattern=None, **common)
        else:
            word = TfidfVectorizer(**common)
        scores = {}
        for name, vec in (("word", word), ("char", TfidfVectorizer(analyzer="char", **common))):
            clf = LogisticRegression(C=10.0, max_iter=1000)
            clf.fit(vec.fit_transform(train_x), train_y)
            pred = clf.predict(vec.transform(test_x))
            scores[name] = float(sum(p == y for p, y in zip(pred, test_y)) / len(test_y))
        scores["best"] = max(scores["word"], scores["char"])
        out[corpus] = scores
        log(f"sklearn baselines on {corpus}: {scores}")
    return out


def blas_info():
    try:
        from threadpoolctl import threadpool_info

        return [
            {k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for i in threadpool_info()
        ]
    except Exception as e:  # informational only
        return str(e)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", required=True, help="directory with train.tsv and test.tsv")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--data", help="directory with bbc-*.csv and zh-news-*.csv (both sklearn "
                    "baselines on raw texts)")
    ap.add_argument("--w2v-repeats", type=int, default=5,
                    help="word2vec timing runs per mode; the median is reported (default 5)")
    ap.add_argument("--skip-keras", action="store_true", help="leave out the Keras part")
    ap.add_argument("--only-word2vec", action="store_true",
                    help="time word2vec only (run.sh interleaves such runs with aiaas's)")
    args = ap.parse_args()

    train_labels, train_docs = read_tsv(os.path.join(args.tokens, "train.tsv"))
    test_labels, test_docs = read_tsv(os.path.join(args.tokens, "test.tsv"))
    classes = sorted(set(train_labels))
    unknown = sorted(set(test_labels) - set(classes))
    if unknown:
        sys.exit(f"test labels not in the training split: {unknown}")
    log(f"{len(train_docs)} train / {len(test_docs)} test documents, "
        f"{sum(map(len, train_docs))} training tokens, {len(classes)} classes")

    import gensim
    import sklearn
    from gensim.models.word2vec import FAST_VERSION

    if FAST_VERSION < 0:
        log("WARNING: gensim's compiled routines are missing; its word2vec is pure Python")

    sentences, split_docs = gensim_sentences(train_docs)
    out = {"word2vec": {}}
    cbow, _ = time_word2vec(sentences, 0, args.w2v_repeats)
    skip, skip_model = time_word2vec(sentences, 1, args.w2v_repeats)
    out["word2vec"]["cbow"] = cbow
    out["word2vec"]["skip-gram"] = skip
    out["word2vec"]["settings"] = {k: v for k, v in W2V.items()}
    out["word2vec"]["documents_split_for_gensim"] = split_docs
    out["word2vec"]["words_per_second_is"] = (
        "effective words (after min_count and sub-sampling, all epochs; train()'s first "
        "return value) / seconds of model.train(); median of the runs"
    )
    if args.only_word2vec:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)
        return

    versions = {
        "gensim": gensim.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    if not args.skip_keras:
        keras_result, tf_version, keras_version = keras_founding_example(
            skip_model, train_labels, train_docs, test_labels, test_docs, classes
        )
        out["keras"] = keras_result
        versions["tensorflow"] = tf_version
        versions["keras"] = keras_version

    out["sklearn_tfidf_logreg"] = sklearn_tfidf_logreg(train_labels, train_docs, test_labels, test_docs)
    if args.data:
        out["sklearn_baselines"] = sklearn_baselines(args.data)
    out["versions"] = versions
    out["machine"] = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "blas": blas_info(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
    }

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
