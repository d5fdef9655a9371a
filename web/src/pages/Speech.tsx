// The Playground's Speech tab: upload a recording (or record one in the browser), send
// it to a speech-to-text model of the library through the OpenAI audio API, see the
// transcript with each segment's times; a segment plays its stretch of the recording.

import { useEffect, useRef, useState } from "preact/hooks";
import { baseUrl, postForm } from "../api";
import { useAction } from "../hooks";
import { CodePanel, ErrorBox, Loading, Stat } from "../components/ui";
import { speechSnippets } from "../snippets";
import { clock, encodeWav } from "../wav";
import { ModelSelect, libraryOption, libraryGate, useLibrary } from "./playground-widgets";

export interface SpeechSegment {
  id: number;
  start: number;
  end: number;
  text: string;
}

interface VerboseTranscript {
  language: string;
  duration: number;
  text: string;
  segments: SpeechSegment[];
}

/** The largest recording the tab sends (the server takes up to 100 MiB). */
const MAX_BYTES = 100 * 1024 * 1024;

/** A microphone recording: raw samples gathered through Web Audio. */
interface Recorder {
  stop: () => { samples: Float32Array; rate: number };
}

async function startRecording(): Promise<Recorder> {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  // ScriptProcessor is deprecated but everywhere, and needs no worklet file.
  const node = context.createScriptProcessor(4096, 1, 1);
  const chunks: Float32Array[] = [];
  node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(node);
  node.connect(context.destination);
  return {
    stop: () => {
      node.disconnect();
      source.disconnect();
      stream.getTracks().forEach((t) => t.stop());
      void context.close();
      const samples = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of chunks) {
        samples.set(c, at);
        at += c.length;
      }
      return { samples, rate: context.sampleRate };
    },
  };
}

export function SpeechTab() {
  const library = useLibrary(["speech-to-text"]);
  const { models, model, setModel } = library;
  const [clip, setClip] = useState<{ name: string; blob: Blob; url: string } | undefined>(undefined);
  const [result, setResult] = useState<{ answer: VerboseTranscript; ms: number } | undefined>(undefined);
  const [recorder, setRecorder] = useState<Recorder | undefined>(undefined);
  const audio = useRef<HTMLAudioElement>(null);
  const action = useAction();

  const transcribe = async (c: { name: string; blob: Blob }, m: string) => {
    if (!m || action.busy) return;
    const form = new FormData();
    form.append("file", c.blob, c.name);
    form.append("model", m);
    form.append("response_format", "verbose_json");
    const start = performance.now();
    const answer = await action.run(() => postForm<VerboseTranscript>("/v1/audio/transcriptions", form));
    if (answer) setResult({ answer, ms: performance.now() - start });
  };

  const use = async (name: string, blob: Blob) => {
    setResult(undefined);
    if (blob.size > MAX_BYTES) {
      action.setError(new Error(`${name} is ${(blob.size / 1048576).toFixed(1)} MiB; the server takes up to 100 MiB.`));
      return;
    }
    if (clip) URL.revokeObjectURL(clip.url);
    const chosen = { name, blob, url: URL.createObjectURL(blob) };
    setClip(chosen);
    action.setError(undefined);
    await transcribe(chosen, model);
  };

  const record = async () => {
    if (recorder) {
      setRecorder(undefined);
      const { samples, rate } = recorder.stop();
      await use("recording.wav", new Blob([encodeWav(samples, rate)], { type: "audio/wav" }));
      return;
    }
    try {
      setRecorder(await startRecording());
    } catch (e) {
      action.setError(new Error(`The microphone cannot be used: ${e instanceof Error ? e.message : String(e)}`));
    }
  };

  // A new model transcribes the recording again.
  useEffect(() => {
    if (clip && model) void transcribe(clip, model);
  }, [model]);

  const play = (s: SpeechSegment) => {
    const a = audio.current;
    if (!a) return;
    a.currentTime = s.start;
    void a.play();
  };

  const gate = libraryGate(library, "speech-to-text", "whisper-tiny-en");
  if (gate) return gate;

  const t = result?.answer;
  return (
    <div class="card">
      <ModelSelect id="speech-model" label="Model" value={model} onChange={setModel} options={models.map(libraryOption)} />
      <div class="speech-input">
        <label for="speech-file" class="drop-zone">
          <strong>Choose a recording</strong> (WAV, FLAC, MP3, OGG/Vorbis)
          <input
            id="speech-file"
            type="file"
            accept="audio/wav,audio/x-wav,audio/flac,audio/mpeg,audio/ogg,.wav,.flac,.mp3,.ogg"
            onChange={(e) => {
              const f = (e.target as HTMLInputElement).files?.[0];
              if (f) void use(f.name, f);
            }}
          />
        </label>
        <button type="button" class={recorder ? "danger" : "secondary"} onClick={() => void record()} disabled={action.busy}>
          {recorder ? "Stop and transcribe" : "Record"}
        </button>
      </div>
      <ErrorBox error={action.error} />
      {action.busy && <Loading what="Transcribing" />}
      {clip && <audio ref={audio} controls src={clip.url} aria-label={`The recording sent: ${clip.name}`} />}
      {t && result && (
        <div aria-live="polite">
          <div class="stats">
            <Stat label="audio" value={`${t.duration.toFixed(1)} s`} />
            <Stat label="segments" value={t.segments.length} />
            <Stat label="language" value={t.language} />
            <Stat label="answered in" value={`${Math.round(result.ms)} ms`} />
          </div>
          {t.segments.length === 0 ? (
            <p class="muted">No speech was heard in this recording.</p>
          ) : (
            <ol class="speech-segments" aria-label="Transcript, segment by segment">
              {t.segments.map((s) => (
                <li>
                  <button type="button" class="secondary small" onClick={() => play(s)} title="Play this segment">
                    {clock(s.start)} – {clock(s.end)}
                  </button>{" "}
                  <span class="speech-text">{s.text.trim()}</span>
                </li>
              ))}
            </ol>
          )}
          <details>
            <summary>Full text</summary>
            <pre class="ocr-full">{t.text}</pre>
          </details>
        </div>
      )}
      <CodePanel snippets={speechSnippets({ base: baseUrl(), model, file: clip?.name ?? "meeting.mp3" })} />
    </div>
  );
}
