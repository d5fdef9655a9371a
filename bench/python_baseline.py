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
        t0 = time.perf_counter()
        effective, raw = model.train(
            sentences, total_examples=model.corpus_count, epochs=model.epochs
        )
        seconds = time.perf_counter() - t0
        runs.append(
            dict(
                words_per_second=effective / seconds,
                effective_words=int(effective),
                raw_words=int(raw),
                seconds=seconds,
            )
        )
        log(f"word2vec {'skip-gram' if sg else 'cbow'} run {r + 1}/{repeats}: "
            f"{effective / seconds / 1e6:.3f} M effective words/s "
            f"({effective} effective, {raw} raw words in {seconds:.2f} s)")
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
    t0 = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        epochs=EPOCHS,
        batch_size=BATCH,
        validation_split=VALIDATION_SPLIT,
        callbacks=[epoch_times],
        verbose=0,
    )
    train_seconds = time.perf_counter() - t0

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
    )
    log(f"keras: {EPOCHS} epochs in {train_seconds:.2f} s, test accuracy "
        f"{result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}")
    return result, tf.__version__, keras.__version__


def sklearn_tfidf_logreg(train_labels, train_docs, test_labels, test_docs):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    train_text = [" ".join(d) for d in train_docs]
    test_text = [" ".join(d) for d in test_docs]
    t0 = time.perf_counter()
    vec = TfidfVectorizer(
        tokenizer=str.split,
        token_pattern=None,
        lowercase=False,
        ngram_range=(1, 2),
        sublinear_tf=True,
        min_df=2,
        max_features=50000,
    )
    x_train = vec.fit_transform(train_text)
    clf = LogisticRegression(C=10.0, max_iter=1000)
    clf.fit(x_train, train_labels)
    train_seconds = time.perf_counter() - t0
    pred = clf.predict(vec.transform(test_text))
    result = dict(
        accuracy=float(accuracy_score(test_labels, pred)),
        macro_f1=float(f1_score(test_labels, pred, average="macro")),
        train_seconds=train_seconds,
        features=int(x_train.shape[1]),
        settings="TfidfVectorizer(ngram_range=(1,2), sublinear_tf=True, min_df=2, "
                 "max_features=50000) + LogisticRegression(C=10, max_iter=1000), "
                 "fit on the whole training split",
    )
    log(f"sklearn tfidf-logreg: accuracy {result['accuracy']:.4f}, macro-F1 "
        f"{result['macro_f1']:.4f}, {train_seconds:.2f} s")
    return result


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
    ap.add_argument("--w2v-repeats", type=int, default=3,
                    help="word2vec timing runs per mode; the median is reported (default 3)")
    ap.add_argument("--skip-keras", action="store_true", help="leave out the Keras part")
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
