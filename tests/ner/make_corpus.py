"""The labelled NER corpus ("aiaas-pii-en-1") and the Python reference's entities on it.

Usage: make_corpus.py OUT_DIR MODEL_DIR

aiaas-pii-en-1 is English sentences of everyday correspondence (deliveries, invoices,
bookings, sign-ups) with people's names, postal addresses, e-mail addresses and phone
numbers put in from lists, so every entity's label and character span is known.
Seeded: the same corpus on every machine. Written to OUT_DIR/corpus.jsonl, one
{"text", "entities": [{"label", "start", "end"}]} a line, labels as the model names
them (GIVEN_NAME, SURNAME, BUILDING_NUMBER, STREET_NAME, SECONDARY_ADDRESS, CITY, STATE,
ZIP_CODE, EMAIL, PHONE).

The reference (OUT_DIR/reference.json): for each text and aggregation strategy, the
entities Hugging Face's TokenClassificationPipeline gives (its own `gather_pre_entities`,
`aggregate` and `aggregate_overlapping_entities` methods from `transformers`) on the
logits of the same ONNX model run by Python onnxruntime, with the model's tokenizer
(`tokenizers`) cutting long texts into 512-token windows overlapping by the stride.
"""

import json
import random
import sys
from pathlib import Path

GIVEN = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
         "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Aisha",
         "Wei", "Priya", "Olga", "Kenji", "Fatima", "Liam", "Sofia", "Mateo", "Chloe", "Noah"]
SURNAMES = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
            "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson",
            "Nguyen", "Patel", "Kowalski", "Okafor", "Yamamoto", "O'Brien", "Schmidt", "Rossi", "Chen", "Murphy"]
STREETS = ["Maple Avenue", "Oak Street", "Washington Boulevard", "Pine Road", "Elm Street", "Cedar Lane",
           "Lakeview Drive", "Sunset Boulevard", "Park Avenue", "Main Street", "Hillcrest Road", "River Road"]
CITIES = [("Springfield", "IL", "62704"), ("Austin", "TX", "78701"), ("Denver", "CO", "80202"),
          ("Portland", "OR", "97205"), ("Boston", "MA", "02108"), ("Seattle", "WA", "98101"),
          ("Madison", "WI", "53703"), ("Columbus", "OH", "43215"), ("Phoenix", "AZ", "85004"),
          ("Raleigh", "NC", "27601"), ("Nashville", "TN", "37203"), ("Omaha", "NE", "68102")]
DOMAINS = ["example.com", "mail.example.org", "company.example.net"]

TEMPLATES = [
    "Please ship the order to {given} {surname}, {number} {street}, {city}, {state} {zip}.",
    "{given} {surname} moved to {number} {street} in {city} last spring.",
    "Hi, this is {given}. You can reach me at {email} or call {phone}.",
    "The invoice was addressed to {given} {surname} at {number} {street} {unit}, {city}, {state} {zip}.",
    "Our new tenant, {given} {surname}, asked for the keys on Monday.",
    "Contact person: {given} {surname}; phone {phone}; e-mail {email}.",
    "Dear {given}, thank you for your booking. We will send the tickets to {email}.",
    "I met {given} {surname} and {given2} {surname2} at the conference in {city}.",
    "Return address: {number} {street}, {city}, {state} {zip}.",
    "{given} said that {given2} {surname2} will take over the account next week.",
    "The parcel for {given} {surname} is waiting at the post office in {city}, {state}.",
    "Send the signed contract to {given} {surname} ({email}) before Friday.",
]


def sentence(rnd):
    given, given2 = rnd.sample(GIVEN, 2)
    surname, surname2 = rnd.sample(SURNAMES, 2)
    city, state, zipc = rnd.choice(CITIES)
    values = {
        "given": (given, "GIVEN_NAME"), "surname": (surname, "SURNAME"),
        "given2": (given2, "GIVEN_NAME"), "surname2": (surname2, "SURNAME"),
        "number": (str(rnd.randint(3, 9999)), "BUILDING_NUMBER"), "street": (rnd.choice(STREETS), "STREET_NAME"),
        "unit": (rnd.choice(["Apt 4B", "Suite 210", "Unit 7", "Apt 12"]), "SECONDARY_ADDRESS"),
        "city": (city, "CITY"), "state": (state, "STATE"), "zip": (zipc, "ZIP_CODE"),
        "email": (f"{given.lower()}.{surname.lower().replace(chr(39), '')}@{rnd.choice(DOMAINS)}", "EMAIL"),
        "phone": (f"({rnd.randint(201, 989)}) 555-{rnd.randint(1000, 9999)}", "PHONE"),
    }
    template = rnd.choice(TEMPLATES)
    text, entities, at = "", [], 0
    while True:
        open_ = template.find("{", at)
        if open_ < 0:
            text += template[at:]
            break
        close = template.index("}", open_)
        text += template[at:open_]
        value, label = values[template[open_ + 1:close]]
        entities.append({"label": label, "start": len(text), "end": len(text) + len(value)})
        text += value
        at = close + 1
    return {"text": text, "entities": entities}


def corpus(n=240, seed=16):
    rnd = random.Random(seed)
    items = [sentence(rnd) for _ in range(n)]
    # Long texts: letters of many sentences, longer than one 512-token window.
    for k in range(4):
        parts = [sentence(rnd) for _ in range(40 + 10 * k)]
        text, entities = "", []
        for p in parts:
            if text:
                text += " "
            entities += [dict(e, start=e["start"] + len(text), end=e["end"] + len(text)) for e in p["entities"]]
            text += p["text"]
        items.append({"text": text, "entities": entities})
    return items


def reference(items, model_dir, strategies=("simple", "first", "max", "average"), stride=128):
    import numpy as np
    import onnxruntime
    from types import SimpleNamespace
    from transformers import PreTrainedTokenizerFast
    from transformers.pipelines.token_classification import AggregationStrategy, TokenClassificationPipeline

    config = json.loads((model_dir / "config.json").read_text())
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"),
                                        unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")
    session = onnxruntime.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    # The pipeline's aggregation methods need only its tokenizer and the labels.
    pipe = TokenClassificationPipeline.__new__(TokenClassificationPipeline)
    pipe.tokenizer = tokenizer
    pipe.model = SimpleNamespace(config=SimpleNamespace(id2label={int(k): v for k, v in config["id2label"].items()}))
    names = [i.name for i in session.get_inputs()]
    out = []
    for item in items:
        text = item["text"]
        enc = tokenizer(text, truncation=True, max_length=512, stride=stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True, return_special_tokens_mask=True,
                        return_token_type_ids=True, return_attention_mask=True)
        windows = []
        for w in range(len(enc["input_ids"])):
            feed = {"input_ids": np.array([enc["input_ids"][w]], dtype=np.int64),
                    "attention_mask": np.array([enc["attention_mask"][w]], dtype=np.int64),
                    "token_type_ids": np.array([enc["token_type_ids"][w]], dtype=np.int64)}
            logits = session.run(None, {n: feed[n] for n in names})[0][0]
            maxes = np.max(logits, axis=-1, keepdims=True)
            shifted = np.exp(logits - maxes)
            scores = shifted / shifted.sum(axis=-1, keepdims=True)
            windows.append((np.array(enc["input_ids"][w]), scores, [tuple(o) for o in enc["offset_mapping"][w]],
                            np.array(enc["special_tokens_mask"][w])))
        per_strategy = {}
        for name in strategies:
            strategy = AggregationStrategy(name)
            found = []
            for ids, scores, offsets, special in windows:
                pre = pipe.gather_pre_entities(text, ids, scores, offsets, special, strategy)
                grouped = pipe.aggregate(pre, strategy)
                found += [e for e in grouped if e.get("entity_group", e.get("entity")) != "O"]
            if len(windows) > 1:
                found = pipe.aggregate_overlapping_entities(found)
            per_strategy[name] = [{"label": e["entity_group"], "score": float(e["score"]), "start": int(e["start"]),
                                   "end": int(e["end"])} for e in found]
        out.append({"windows": len(windows), "entities": per_strategy})
    return out


def main():
    out, model_dir = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    items = corpus()
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    (out / "reference.json").write_text(json.dumps(reference(items, model_dir), indent=0))


if __name__ == "__main__":
    main()
