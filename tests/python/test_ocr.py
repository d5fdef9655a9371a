"""OCR through the HTTP API: `ppocr-v4` pulled by name from the rapidocr-onnxruntime wheel
the set-up script cached, pages (rendered by tests/ocr/make_pages.py) sent as base64 JSON
and as multipart files, the lines compared with what RapidOCR (Python) reads on the same
pages with the same model files."""
import base64
import json
import os
import zlib
import struct

import pytest

from conftest import pull

OCR = "ppocr-v4"
PAGES = os.path.join(os.environ.get("AIAAS_TEST_DATA", os.path.expanduser("~/.cache/aiaas-data-cache")),
                     "ocr", "pages")


@pytest.fixture(scope="module")
def ocr_model(server):
    pull(server, OCR)
    return OCR


def pages():
    with open(os.path.join(PAGES, "pages.json"), encoding="utf-8") as f:
        return json.load(f)


def read(name):
    with open(os.path.join(PAGES, name), "rb") as f:
        return f.read()


def check_page(reading, reference, name):
    texts = [l["text"] for l in reading["lines"]]
    assert texts == [l["text"] for l in reference], name
    for got, want in zip(reading["lines"], reference):
        assert 0 < got["confidence"] <= 1
        for (x, y), (rx, ry) in zip(got["box"], want["box"]):
            assert abs(x - rx) <= 1 and abs(y - ry) <= 1, (name, got, want)
    # The full text holds every line, in reading order.
    joined = reading["text"]
    at = 0
    for t in texts:
        at = joined.index(t, at) + len(t)


def test_pages_read_as_rapidocr_reads_them(server, ocr_model):
    index = pages()
    for page in index:
        r = server.api("POST", f"/api/v1/models/{OCR}/predict",
                       json={"images": [base64.b64encode(read(page["file"])).decode()]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == OCR and body["task"] == "ocr"
        check_page(body["predictions"][0], page["rapidocr"], page["file"])


def test_several_pages_as_multipart_files_answer_in_order(server, ocr_model):
    index = pages()[:4]
    files = [("file", (p["file"], read(p["file"]), "image/png")) for p in index]
    r = server.api("POST", f"/api/v1/models/{OCR}/predict", files=files)
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert len(predictions) == len(index)
    for reading, page in zip(predictions, index):
        check_page(reading, page["rapidocr"], page["file"])
    # A data URL works as plain base64 does.
    url = "data:image/png;base64," + base64.b64encode(read(index[0]["file"])).decode()
    r = server.api("POST", f"/api/v1/models/{OCR}/predict", json={"images": [url]})
    assert r.status_code == 200 and r.json()["predictions"][0]["lines"] == predictions[0]["lines"]


def png_of_size(width, height):
    """A valid, tiny (compressed) one-colour PNG of any size."""
    row = b"\x00" + b"\xff" * width
    raw = zlib.compress(row * height, 9)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_bad_pages_get_clear_errors(server, ocr_model):
    url = f"/api/v1/models/{OCR}/predict"
    blank = base64.b64encode(png_of_size(64, 64)).decode()
    cases = [
        ({"images": [blank, base64.b64encode(b"not an image").decode()]}, 400, "images[1]: the image cannot be decoded"),
        ({"images": ["%%%"]}, 400, "images[0]: not base64"),
        ({"images": [blank] * 17}, 400, "1-16 images"),
        ({"images": [blank], "top_k": 3}, 400, "top_k"),
        ({"images": [base64.b64encode(png_of_size(8000, 6000)).decode()]}, 413, "more than the 40000000 allowed"),
    ]
    for body, status, words in cases:
        r = server.api("POST", url, json=body)
        assert r.status_code == status, (words, r.text)
        assert words in r.json()["error"]["message"], (words, r.text)
    # A page without text reads as no lines.
    r = server.api("POST", url, json={"images": [blank]})
    assert r.status_code == 200 and r.json()["predictions"] == [{"text": "", "lines": []}]
    # A model that is not there, or not an OCR model.
    r = server.api("POST", "/api/v1/models/no-such-ocr/predict", json={"images": [blank]})
    assert r.status_code == 404, r.text


def test_keys_see_ocr_as_their_allow_list_says(server, ocr_model):
    assert server.api("POST", "/api/v1/tenants", json={"name": "ocr-other"}).status_code == 201
    page = pages()[0]
    body = {"images": [base64.b64encode(read(page["file"])).decode()]}
    allowed = server.api("POST", "/api/v1/keys", json={"name": "reader", "role": "owner",
                                                       "tenant": "ocr-other"}).json()["secret"]
    limited = server.api("POST", "/api/v1/keys", json={"name": "limited", "role": "owner", "tenant": "ocr-other",
                                                       "allowed_models": ["something-else"]}).json()["secret"]
    url = server.base + f"/api/v1/models/{OCR}/predict"
    r = server.http.post(url, json=body, headers={"Authorization": f"Bearer {allowed}"}, timeout=60)
    assert r.status_code == 200, r.text
    check_page(r.json()["predictions"][0], page["rapidocr"], page["file"])
    r = server.http.post(url, json=body, headers={"Authorization": f"Bearer {limited}"}, timeout=60)
    assert r.status_code == 403, r.text
    r = server.http.post(url, json=body, timeout=60, headers={"Authorization": "Bearer aiaas_" + "00" * 32})
    assert r.status_code == 401


def test_parallel_instances_read_the_same_lines(server, ocr_model):
    r = server.api("PUT", f"/api/v1/library/{OCR}/settings", json={"instances": 0})
    assert r.status_code == 400 and "instances 1-64" in r.json()["error"]["message"]
    r = server.api("PUT", f"/api/v1/library/{OCR}/settings", json={"instances": 2, "threads": 1})
    assert r.status_code == 200, r.text
    index = pages()[4:10]
    body = {"images": [base64.b64encode(read(p["file"])).decode() for p in index]}
    r = server.api("POST", f"/api/v1/models/{OCR}/predict", json=body)
    assert r.status_code == 200, r.text
    for reading, page in zip(r.json()["predictions"], index):
        check_page(reading, page["rapidocr"], page["file"])
    loaded = [m for m in server.api("GET", "/api/v1/ps").json()["models"] if m["label"] == OCR]
    assert [m["kind"] for m in loaded] == ["ocr"], server.api("GET", "/api/v1/ps").text
    assert server.api("PUT", f"/api/v1/library/{OCR}/settings", json={}).status_code == 200


def test_an_output_policy_masks_the_lines_read(server, ocr_model):
    """With the model's output policy (rules and the NER model) the names and e-mail
    addresses read off a page are masked in its lines and in its full text."""
    import io
    from PIL import Image, ImageDraw, ImageFont
    pull(server, "pii-ner")
    img = Image.new("RGB", (1000, 170), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 34)
    draw.text((40, 30), "Please call Mary Johnson tomorrow.", fill="black", font=font)
    draw.text((40, 100), "Write to mary.johnson@example.com", fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    page = base64.b64encode(buf.getvalue()).decode()

    def lines():
        r = server.api("POST", f"/api/v1/models/{OCR}/predict", json={"images": [page]})
        assert r.status_code == 200, r.text
        reading = r.json()["predictions"][0]
        return [l["text"] for l in reading["lines"]], reading["text"]

    plain, _ = lines()
    assert any("Mary Johnson" in l for l in plain) and "mary.johnson@example.com" in plain, plain

    def replaced(names):
        out = [l.replace("Mary Johnson", "[PERSON]") if names else l for l in plain]
        return [l.replace("mary.johnson@example.com", "[EMAIL]") for l in out]

    settings = f"/api/v1/library/{OCR}/settings"
    try:
        r = server.api("PUT", settings, json={"pii_outputs": "label", "pii_detectors": ["rules", "ner"]})
        assert r.status_code == 200, r.text
        masked, text = lines()
        assert masked == replaced(names=True), masked
        assert "Mary" not in text and "[PERSON]" in text and "[EMAIL]" in text, text
        # The rules alone: the e-mail address only.
        r = server.api("PUT", settings, json={"pii_outputs": "label", "pii_detectors": ["rules"]})
        assert r.status_code == 200, r.text
        masked, _ = lines()
        assert masked == replaced(names=False), masked
    finally:
        assert server.api("PUT", settings, json={}).status_code == 200
