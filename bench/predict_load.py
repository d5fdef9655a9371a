#!/usr/bin/env python3
"""Latency and throughput of the predict endpoint of a running aiaas server.

usage: predict_load.py URL API_KEY MODEL [--seconds 5] [--concurrency 16]

Sends one-text predict requests: first one at a time (latency percentiles), then from
CONCURRENCY threads for SECONDS (requests/s). Uses only the standard library, so the
client is the same on any machine; on 2 cores the Python client itself is a bottleneck
at high concurrency, so read the throughput as a lower bound.
"""
import argparse
import json
import threading
import time
import urllib.request

TEXT = "The striker scored twice in the cup final at the stadium."


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("key")
    ap.add_argument("model")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    body = json.dumps({"texts": [TEXT]}).encode()
    endpoint = f"{args.url.rstrip('/')}/api/v1/models/{args.model}/predict"

    def call():
        req = urllib.request.Request(endpoint, data=body, headers={
            "Authorization": f"Bearer {args.key}", "content-type": "application/json"})
        with urllib.request.urlopen(req) as r:
            r.read()

    for _ in range(20):
        call()
    lat = []
    for _ in range(300):
        start = time.perf_counter()
        call()
        lat.append(time.perf_counter() - start)
    lat.sort()
    print(f"sequential: p50 {lat[len(lat) // 2] * 1e3:.2f} ms, p99 {lat[int(len(lat) * 0.99)] * 1e3:.2f} ms")

    done = 0
    lock = threading.Lock()

    def worker(deadline):
        nonlocal done
        while time.time() < deadline:
            call()
            with lock:
                done += 1

    deadline = time.time() + args.seconds
    threads = [threading.Thread(target=worker, args=(deadline,)) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{args.concurrency} concurrent clients: {done / args.seconds:.0f} requests/s")


if __name__ == "__main__":
    main()
