"""Real-time factor of aiaas's Whisper (the transcribe_clips example) and faster-whisper
(CTranslate2) on the same clips and model (tiny.en), faster-whisper's default decoding
on both sides (beam search of 5 with timestamps, temperature fallback, the previous text
as prompt), rounds alternating; faster-whisper at float32 (the precision
aiaas computes in) and at int8 (its fastest CPU setting)."""
import argparse
import json
import statistics
import subprocess
import time


def ours(args, rounds):
    out = subprocess.run([args.binary, args.converted, str(rounds), *args.clips],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    lines = [json.loads(l) for l in out]
    rtf = [l["seconds"] / l["audio_seconds"] for l in lines if "seconds" in l]
    return rtf, lines[-1]["texts"]


def theirs(model, clips, rounds):
    rtf, texts = [], []
    for _ in range(rounds):
        started, audio, texts = time.perf_counter(), 0.0, []
        for clip in clips:
            segments, info = model.transcribe(clip, beam_size=5)
            texts.append(" ".join(s.text.strip() for s in segments))
            audio += info.duration
        rtf.append((time.perf_counter() - started) / audio)
    return rtf, texts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--converted", required=True)
    p.add_argument("--ct2", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("clips", nargs="+")
    args = p.parse_args()
    from faster_whisper import WhisperModel

    models = {ct: WhisperModel(args.ct2, device="cpu", compute_type=ct, cpu_threads=args.threads)
              for ct in ("float32", "int8")}
    ours(args, 1)
    for m in models.values():
        theirs(m, args.clips, 1)
    mine, rtf = [], {ct: [] for ct in models}
    for _ in range(args.rounds):
        r, our_texts = ours(args, 1)
        mine += r
        for ct, m in models.items():
            r, their_texts = theirs(m, args.clips, 1)
            rtf[ct] += r
    ours_rtf = statistics.median(mine)
    print(f"# Speech real-time factor: {len(args.clips)} clips, {args.threads} threads, median of {args.rounds} rounds (lower is faster)\n")
    print("| | RTF | aiaas's speed against it |")
    print("|---|---:|---:|")
    print(f"| aiaas (candle, f32, beam 5) | {ours_rtf:.4f} | |")
    for ct in models:
        r = statistics.median(rtf[ct])
        print(f"| faster-whisper {ct} (beam 5) | {r:.4f} | {r / ours_rtf:.2f}x |")
    same = sum(a.strip() == b.strip() for a, b in zip(our_texts, their_texts))
    print(f"\nTranscripts equal to faster-whisper int8's: {same}/{len(args.clips)}")
    for a, b in zip(our_texts, their_texts):
        if a.strip() != b.strip():
            print(f"- aiaas: {a.strip()!r}\n  faster-whisper: {b.strip()!r}")


if __name__ == "__main__":
    main()
