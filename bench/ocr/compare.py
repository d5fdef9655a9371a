"""Rounds of aiaas's OCR (the ocr_pages example) and RapidOCR, alternating, on the same
pages and threads; prints images/s of each, the ratio, and whether the lines agree."""
import argparse
import io
import json
import os
import statistics
import subprocess
import time

from PIL import Image


def rapidocr_rounds(args, files, rounds):
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(det_model_path=os.path.join(args.model, "det.onnx"),
                      cls_model_path=os.path.join(args.model, "cls.onnx"),
                      rec_model_path=os.path.join(args.model, "rec.onnx"),
                      intra_op_num_threads=args.threads, inter_op_num_threads=1)
    times, texts = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        texts = []
        for data in files:
            result, _ = engine(data)
            texts.append([t for _, t, _ in (result or [])])
        times.append(time.perf_counter() - started)
    return times, texts


def aiaas_rounds(args, rounds, threads, instances):
    out = subprocess.run([args.binary, args.lib, args.model, args.pages, str(threads), str(instances), str(rounds)],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    lines = [json.loads(l) for l in out]
    return [l["seconds"] for l in lines if "seconds" in l], lines[-1]["texts"]


def main():
    p = argparse.ArgumentParser()
    for name in ("binary", "lib", "model", "pages"):
        p.add_argument("--" + name, required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    index = json.load(open(os.path.join(args.pages, "pages.json"), encoding="utf-8"))
    files = []
    for page in index:
        data = open(os.path.join(args.pages, page["file"]), "rb").read()
        img = Image.open(io.BytesIO(data))
        if img.mode == "RGBA":
            # RapidOCR inverts a transparent page's colours; both read it laid over white
            # (as aiaas does, and as tests/ocr/make_pages.py made RapidOCR's reference).
            white = Image.new("RGB", img.size, (255, 255, 255))
            white.paste(img, mask=img.split()[3])
            out = io.BytesIO()
            white.save(out, "PNG")
            data = out.getvalue()
        files.append(data)
    n = len(files)
    # aiaas as one instance with every thread, and as one single-threaded instance per
    # thread reading pages in parallel (the same CPU budget).
    setups = [(args.threads, 1)] + ([(1, args.threads)] if args.threads > 1 else [])
    ours = {s: [] for s in setups}
    theirs = []
    # One warm-up round each, then alternating rounds (the machine's noise hits all).
    for s in setups:
        aiaas_rounds(args, 1, *s)
    rapidocr_rounds(args, files, 1)
    for _ in range(args.rounds):
        for s in setups:
            t, our_texts = aiaas_rounds(args, 1, *s)
            ours[s] += t
        t, their_texts = rapidocr_rounds(args, files, 1)
        theirs += t
    theirs_ips = n / statistics.median(theirs)
    agree = sum(a == b for a, b in zip(our_texts, their_texts))
    print(f"# OCR throughput: {n} pages, {args.threads} threads in all, median of {args.rounds} rounds\n")
    print("| | images/s | ratio |")
    print("|---|---:|---:|")
    for (threads, instances), times in ours.items():
        ips = n / statistics.median(times)
        print(f"| aiaas (Rust pipeline, ppocr-v4), {instances} instance(s) x {threads} thread(s) | {ips:.2f} | {ips / theirs_ips:.2f}x |")
    print(f"| RapidOCR 1.4.4 (Python, onnxruntime), {args.threads} thread(s) | {theirs_ips:.2f} | 1.00x |")
    print(f"\nPages whose lines agree with RapidOCR's: {agree}/{n}")


if __name__ == "__main__":
    main()
