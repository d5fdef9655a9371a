"""What the LLM benchmarks share: the prompts, small helpers, and a streaming client of
the OpenAI completions API (one `Server` per server under test, one `Result` per
request). Standard library only."""

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from urllib.parse import urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

MODEL_SOURCE = "gemma-3-270m"

# 16 different prompts of about 40 tokens each (news-style openings; the model is a base
# model, so plain text to continue).
PROMPTS = [
    "The city council met on Tuesday evening to discuss the new plan for public transport, which would add three tram lines and close the old bus depot near the river by the end of next year.",
    "Scientists at the northern research station reported that the winter ice had formed two weeks later than usual, and they warned that the change could affect the seals that breed along the coast.",
    "The small bakery on the corner of Market Street has been run by the same family for four generations, and every morning a queue forms outside before the doors open at six o'clock.",
    "After months of negotiations, the two companies announced a merger that will create the largest maker of bicycles in Europe, with factories in five countries and more than twelve thousand workers.",
    "The museum's new exhibition brings together more than two hundred maps drawn by sailors and merchants between the fifteenth and the eighteenth centuries, many of them shown to the public for the first time.",
    "Farmers in the valley say the dry spring has left the soil too hard to plant, and many of them are now waiting for rain before they decide whether to sow wheat or leave the fields empty.",
    "The national team arrived at the airport late on Sunday night, greeted by hundreds of supporters who had waited for hours to celebrate the first championship title in almost thirty years.",
    "A report published by the health ministry this week found that children who walk or cycle to school sleep better and perform better in mathematics than those who are driven by their parents.",
    "The old railway bridge, built in 1887 and closed to trains since the 1970s, will reopen next month as a footpath and cycle route linking the two halves of the town across the gorge.",
    "Engineers working on the new telescope in the desert have finished polishing the last of its thirty-six mirror segments, and the first test images are expected to be taken before the end of the summer.",
    "The annual book fair opened its doors on Thursday with more than nine hundred publishers from forty countries, and the organisers expect a record number of visitors over the five days of the event.",
    "Residents of the island have voted to ban cars from the main village during the summer months, hoping to reduce noise and pollution while making the narrow streets safer for walkers and children.",
    "The orchestra's new conductor, who is only twenty-nine years old, said in an interview that she wants to bring classical music to schools and to play concerts in factories, markets and train stations.",
    "Heavy snow closed the mountain pass for the third time this month, leaving dozens of lorries stranded on both sides and forcing the regional government to open emergency shelters in two villages.",
    "A group of volunteers has spent the last ten years restoring the gardens of the ruined castle, planting old varieties of apples and pears that had almost disappeared from the region's orchards.",
    "The central bank kept interest rates unchanged on Wednesday, saying that prices were still rising faster than expected and that it would wait for more data before deciding its next move in the autumn.",
]

LONG_OPENINGS = [
    "Here is a summary of the week's local news, collected from several newspapers.",
    "Below are short reports from around the region, as printed in Friday's edition.",
    "The following stories were read on the evening radio bulletin last Monday.",
]


def long_prompt(rep):
    """About 500 tokens; each repetition starts with a different sentence and a rotated
    order, so no server can reuse the previous one as a cached prefix."""
    body = PROMPTS[rep % len(PROMPTS):] + PROMPTS[: rep % len(PROMPTS)]
    return LONG_OPENINGS[rep % len(LONG_OPENINGS)] + "\n\n" + "\n\n".join(body[:12]) + "\n\n"


# ---------------------------------------------------------------- small helpers


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    v = sorted(values)
    if len(v) == 1:
        return v[0]
    pos = (len(v) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def median(values):
    return statistics.median(values) if values else None


def http_json(base, method, path, body=None, headers=None, timeout=600):
    u = urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=h)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = data.decode("utf-8", "replace")
    return resp.status, parsed


def wait_http(base, path, timeout, proc=None, ok=(200,)):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            status, _ = http_json(base, "GET", path, timeout=5)
            if status in ok:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def busy_cores(seconds=2.0):
    """Cores busy on the machine over a short sample (nothing of ours is running yet)."""
    a = cpu_busy()
    time.sleep(seconds)
    b = cpu_busy()
    if not a or not b or b[1] == a[1]:
        return None
    return (b[0] - a[0]) / ((b[1] - a[1]) / (os.cpu_count() or 1))


def cpu_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = [int(x) for x in f.readline().split()[1:]]
        idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
        return sum(parts) - idle, sum(parts)
    except OSError:
        return None


def proc_cpu(pid):
    """utime + stime jiffies of a process and its threads."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


# ---------------------------------------------------------------- one streamed request


class Result:
    """One request: start, first text chunk, last text chunk (`last`), end of the stream."""

    __slots__ = ("start", "first", "last", "end", "tokens", "token_source", "chunks", "finish", "error", "text")

    def __init__(self):
        self.start = self.first = self.last = self.end = None
        self.tokens = 0
        self.token_source = None
        self.chunks = 0
        self.finish = None
        self.error = None
        self.text = []

    @property
    def latency(self):
        return self.end - self.start

    @property
    def ttft(self):
        return None if self.first is None else self.first - self.start

    @property
    def decode_rate(self):
        if self.first is None or self.tokens < 2 or self.last <= self.first:
            return None
        return (self.tokens - 1) / (self.last - self.first)


class Server:
    def __init__(self, name, base, model, headers=None, extra=None):
        self.name = name
        self.base = base
        self.model = model
        self.headers = headers or {}
        self.extra = extra or {}
        self.proc = None
        self.log_path = None

    def payload(self, prompt, max_tokens, stream=True):
        body = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": stream,
            "ignore_eos": True,
            "repeat_penalty": 1.0,
            "cache_prompt": False,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        body.update(self.extra)
        return body

    def stream(self, prompt, max_tokens, timeout=900):
        r = Result()
        u = urlparse(self.base)
        body = json.dumps(self.payload(prompt, max_tokens))
        h = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        h.update(self.headers)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        usage_tokens = timing_tokens = None
        try:
            r.start = time.perf_counter()
            conn.request("POST", "/v1/completions", body=body, headers=h)
            resp = conn.getresponse()
            if resp.status != 200:
                r.error = f"HTTP {resp.status}: {resp.read()[:300]!r}"
                r.end = time.perf_counter()
                return r
            while True:
                line = resp.readline()
                if not line:
                    break
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                try:
                    ev = json.loads(data)
                except ValueError:
                    continue
                if "error" in ev and not ev.get("choices"):
                    r.error = str(ev["error"])[:300]
                    break
                now = time.perf_counter()
                for ch in ev.get("choices") or []:
                    if ch.get("finish_reason"):
                        r.finish = ch["finish_reason"]
                    text = ch.get("text")
                    if text is None:
                        text = (ch.get("delta") or {}).get("content")
                    if text:
                        if r.first is None:
                            r.first = now
                        r.chunks += 1
                        r.text.append(text)
                        r.last = now
                u_ = ev.get("usage")
                if isinstance(u_, dict) and u_.get("completion_tokens") is not None:
                    usage_tokens = u_["completion_tokens"]
                t_ = ev.get("timings")
                if isinstance(t_, dict) and t_.get("predicted_n") is not None:
                    timing_tokens = t_["predicted_n"]
            r.end = time.perf_counter()
        except (OSError, http.client.HTTPException) as e:
            r.error = f"{type(e).__name__}: {e}"
            r.end = time.perf_counter()
        finally:
            conn.close()
        if usage_tokens is not None:
            r.tokens, r.token_source = usage_tokens, "usage"
        elif timing_tokens is not None:
            r.tokens, r.token_source = timing_tokens, "timings"
        else:
            r.tokens, r.token_source = r.chunks, "chunks"
        return r

    def prompt_eval(self, prompt):
        """Non-streamed, max_tokens 1: (prompt tokens, seconds)."""
        t0 = time.perf_counter()
        status, body = http_json(self.base, "POST", "/v1/completions",
                                 self.payload(prompt, 1, stream=False), self.headers)
        dt = time.perf_counter() - t0
        if status != 200 or not isinstance(body, dict):
            raise RuntimeError(f"{self.name}: prompt request failed: HTTP {status} {str(body)[:300]}")
        return (body.get("usage") or {}).get("prompt_tokens"), dt

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


