//! OpenAI's audio API: `POST /v1/audio/transcriptions` (multipart: `file`, `model`,
//! `language`, `prompt`, `response_format`, `temperature`, `timestamp_granularities[]`,
//! `stream`), so `client.audio.transcriptions.create` works unchanged. Replies as
//! OpenAI's: `json` (`{"text"}`), `text`, `srt`, `vtt`, `verbose_json` (language,
//! duration, segments with their times, words with theirs when
//! `timestamp_granularities[]` asks); `stream=true` sends each segment as a
//! `transcript.text.delta` event as soon as it is decoded, then `transcript.text.done`.

use std::convert::Infallible;

use aiaas_core::{Segment, Transcription, TranscriptionRequest};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{oai, OResult};
use crate::error::ApiError;
use crate::extract::Auth;
use crate::AppState;

/// Largest upload (the recording and the form's other fields).
pub(super) const MAX_AUDIO_BYTES: usize = 100 * 1024 * 1024;

/// The route, bounded by `MAX_AUDIO_BYTES` (413 past it) rather than the JSON limit.
pub(super) fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    let (schemas, paths, method) = utoipa_axum::routes!(transcriptions);
    utoipa_axum::router::OpenApiRouter::new().routes((
        schemas,
        paths,
        method.layer(DefaultBodyLimit::max(MAX_AUDIO_BYTES)),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
}

impl Format {
    fn parse(text: &str) -> Option<Format> {
        Some(match text {
            "json" => Format::Json,
            "text" => Format::Text,
            "srt" => Format::Srt,
            "vtt" => Format::Vtt,
            "verbose_json" => Format::VerboseJson,
            _ => return None,
        })
    }
}

/// The form, checked field by field.
struct Form {
    file: Vec<u8>,
    model: String,
    format: Format,
    stream: bool,
    /// `timestamp_granularities[]`, when given: (segments, words).
    granularities: Option<(bool, bool)>,
    request: TranscriptionRequest,
}

/// A 400 naming the form field at fault.
fn field_error(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::openai_param(param, message)
}

fn too_large() -> ApiError {
    ApiError::openai(aiaas_core::CoreError::PayloadTooLarge(format!(
        "the upload is over the {} MiB allowed",
        MAX_AUDIO_BYTES / (1024 * 1024)
    )))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::openai(aiaas_core::CoreError::InvalidInput(format!(
            "invalid multipart body: {}",
            e.body_text()
        )))
    }
}

/// The form; on a bad field the rest of the body is still read (and dropped), so the
/// connection stays usable for the client's next request.
async fn read_form(mut form: Multipart) -> OResult<Form> {
    let out = read_fields(&mut form).await;
    if out.is_err() {
        while let Ok(Some(field)) = form.next_field().await {
            if field.bytes().await.is_err() {
                break;
            }
        }
    }
    out
}

async fn read_fields(form: &mut Multipart) -> OResult<Form> {
    let mut file = None;
    let (mut model, mut format, mut stream) = (None, Format::Json, false);
    let mut granularities: Option<(bool, bool)> = None;
    let mut request = TranscriptionRequest::default();
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(multipart_error)?;
        if name == "file" {
            file = Some(bytes.to_vec());
            continue;
        }
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| field_error(&name, format!("{name} must be UTF-8 text")))?;
        match name.as_str() {
            "model" => model = Some(text.trim().to_string()),
            "language" => request.language = Some(text),
            "prompt" => request.prompt = Some(text),
            "response_format" => {
                format = Format::parse(text.trim()).ok_or_else(|| {
                    field_error(
                        "response_format",
                        format!("response_format must be json, text, srt, verbose_json or vtt, not {text:?}"),
                    )
                })?
            }
            "temperature" => {
                let t: f32 = text.trim().parse().map_err(|_| {
                    field_error("temperature", format!("temperature must be a number, got {text:?}"))
                })?;
                if !(0.0..=1.0).contains(&t) {
                    return Err(field_error("temperature", format!("temperature must be between 0 and 1, got {t}")));
                }
                request.temperature = Some(t);
            }
            "timestamp_granularities[]" | "timestamp_granularities" => match text.trim() {
                "segment" => granularities.get_or_insert((false, false)).0 = true,
                "word" => granularities.get_or_insert((false, false)).1 = true,
                other => {
                    return Err(field_error(
                        "timestamp_granularities",
                        format!("timestamp_granularities holds \"segment\" or \"word\", not {other:?}"),
                    ))
                }
            },
            "stream" => {
                stream = match text.trim() {
                    "true" | "True" | "1" => true,
                    "false" | "False" | "0" => false,
                    other => return Err(field_error("stream", format!("stream must be true or false, not {other:?}"))),
                }
            }
            // Accepted and without effect here: the server picks its own windows, and
            // log-probabilities of tokens are not offered by this API's models.
            "chunking_strategy" | "include[]" | "include" => {}
            other => {
                return Err(field_error(
                    other,
                    format!("unknown field {other:?} (file, model, language, prompt, response_format, temperature, timestamp_granularities[], stream)"),
                ))
            }
        }
    }
    let file =
        file.ok_or_else(|| field_error("file", "the form has no file (the audio to transcribe)"))?;
    let model = model
        .filter(|m| !m.is_empty())
        .ok_or_else(|| field_error("model", "model is required (e.g. whisper-tiny-en)"))?;
    if granularities.is_some() && format != Format::VerboseJson {
        return Err(field_error(
            "timestamp_granularities",
            "timestamp_granularities needs response_format=verbose_json",
        ));
    }
    request.words = granularities.is_some_and(|g| g.1);
    if stream && !matches!(format, Format::Json | Format::Text) {
        return Err(field_error(
            "stream",
            "streamed transcriptions are json or text; srt, vtt and verbose_json come whole",
        ));
    }
    Ok(Form {
        file,
        model,
        format,
        stream,
        granularities,
        request,
    })
}

#[utoipa::path(
    post,
    path = "/v1/audio/transcriptions",
    tag = "openai",
    summary = "Transcribe audio (OpenAI format)",
    request_body(content = String, content_type = "multipart/form-data", description = "file (WAV, FLAC, MP3 or OGG/Vorbis), model, language, prompt, response_format (json, text, srt, vtt, verbose_json), temperature, timestamp_granularities[], stream"),
    responses(
        (status = 200, description = "the transcript in the asked format; with stream=true, server-sent events transcript.text.delta then transcript.text.done"),
        (status = 413, description = "the upload is over 100 MiB or the recording over two hours"),
        crate::wire::Refused
    ),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Infer.as_str()))),
)]
async fn transcriptions(
    State(s): State<AppState>,
    Auth(p): Auth,
    req: Request,
) -> OResult<Response> {
    // Before the upload is read: a key that may not infer is refused without it.
    aiaas_core::require(&p, aiaas_types::Permission::Infer).map_err(oai)?;
    // A declared length over the limit is refused before any of the body is read.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_AUDIO_BYTES as u64) {
        return Err(too_large());
    }
    let is_form = crate::bodies::is_multipart(req.headers());
    if !is_form {
        // Read (and drop) the body first, so the connection stays usable.
        let _ = axum::body::to_bytes(req.into_body(), MAX_AUDIO_BYTES).await;
        return Err(field_error(
            "file",
            "send the audio as multipart/form-data (fields file and model)",
        ));
    }
    let multipart = Multipart::from_request(req, &s).await.map_err(|e| {
        field_error(
            "file",
            format!("send the audio as multipart/form-data: {}", e.body_text()),
        )
    })?;
    let mut form = read_form(multipart).await?;
    form.request.audio = std::mem::take(&mut form.file);
    form.request.output = s
        .platform
        .privacy()
        .library_output_masking(&p, &form.model)
        .await
        .map_err(oai)?;
    if form.stream {
        return stream(s, p, form).await;
    }
    let out = s
        .platform
        .library()
        .transcribe(&p, &form.model, form.request)
        .await
        .map_err(oai)?;
    Ok(reply(form.format, form.granularities, &out))
}

fn usage(seconds: f64) -> Value {
    json!({"type": "duration", "seconds": seconds.ceil() as u64})
}

fn reply(format: Format, granularities: Option<(bool, bool)>, out: &Transcription) -> Response {
    let t = &out.transcript;
    let plain =
        |body: String, kind: &'static str| ([(header::CONTENT_TYPE, kind)], body).into_response();
    match format {
        Format::Json => Json(json!({"text": t.text, "usage": usage(t.duration)})).into_response(),
        Format::Text => plain(format!("{}\n", t.text), "text/plain; charset=utf-8"),
        Format::Srt => plain(subtitles(&t.segments, false), "text/plain; charset=utf-8"),
        Format::Vtt => plain(subtitles(&t.segments, true), "text/vtt; charset=utf-8"),
        Format::VerboseJson => {
            let segments: Vec<Value> = t
                .segments
                .iter()
                .map(|s| {
                    json!({
                        "id": s.id,
                        "seek": s.seek,
                        "start": s.start,
                        "end": s.end,
                        "text": s.text,
                        "tokens": s.tokens,
                        "temperature": s.temperature,
                        "avg_logprob": s.avg_logprob,
                        "compression_ratio": s.compression_ratio,
                        "no_speech_prob": s.no_speech_prob,
                    })
                })
                .collect();
            let mut body = json!({
                "task": "transcribe",
                "language": language_name(&t.language),
                "duration": t.duration,
                "text": t.text,
                "usage": usage(t.duration),
            });
            // Segments unless only words were asked for; words when asked for.
            let (with_segments, with_words) = granularities.unwrap_or((true, false));
            if with_segments {
                body["segments"] = Value::Array(segments);
            }
            if with_words {
                let words: Vec<Value> = t
                    .segments
                    .iter()
                    .flat_map(|s| &s.words)
                    .map(|w| json!({"word": w.word.trim(), "start": w.start, "end": w.end}))
                    .collect();
                body["words"] = Value::Array(words);
            }
            Json(body).into_response()
        }
    }
}

/// SubRip (`00:00:01,500`) or WebVTT (`00:00:01.500`, with its header) cues, one per
/// segment.
fn subtitles(segments: &[Segment], vtt: bool) -> String {
    let stamp = |seconds: f64| {
        let ms = (seconds.max(0.0) * 1000.0).round() as u64;
        let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        if vtt {
            format!("{h:02}:{m:02}:{s:02}.{ms:03}")
        } else {
            format!("{h:02}:{m:02}:{s:02},{ms:03}")
        }
    };
    let mut out = String::new();
    if vtt {
        out.push_str("WEBVTT\n\n");
    }
    for (i, s) in segments.iter().enumerate() {
        if !vtt {
            out.push_str(&format!("{}\n", i + 1));
        }
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            stamp(s.start),
            stamp(s.end),
            s.text.trim()
        ));
    }
    out
}

/// The language's English name, as OpenAI's verbose replies give it.
fn language_name(code: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        ("en", "english"),
        ("zh", "chinese"),
        ("de", "german"),
        ("es", "spanish"),
        ("ru", "russian"),
        ("ko", "korean"),
        ("fr", "french"),
        ("ja", "japanese"),
        ("pt", "portuguese"),
        ("tr", "turkish"),
        ("pl", "polish"),
        ("nl", "dutch"),
        ("ar", "arabic"),
        ("sv", "swedish"),
        ("it", "italian"),
        ("hi", "hindi"),
    ];
    NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| code.to_string(), |(_, n)| n.to_string())
}

/// A streamed transcription. Errors found before the first segment (an unknown model,
/// undecodable audio) are ordinary HTTP errors; after it, an `error` event.
async fn stream(s: AppState, p: aiaas_types::Principal, form: Form) -> OResult<Response> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Segment>();
    let library = s.platform.library().clone();
    let model = form.model.clone();
    let mut request = form.request;
    request.segments = Some(tx);
    let mut job = tokio::spawn(async move { library.transcribe(&p, &model, request).await });
    let mut finished = None;
    let first = tokio::select! {
        segment = rx.recv() => segment,
        done = &mut job => {
            finished = Some(done);
            // Segments sent before the job ended are still in the channel.
            rx.try_recv().ok()
        }
    };
    let outcome = match finished {
        Some(done) => Outcome::Finished(done),
        None => Outcome::Running(job),
    };
    if first.is_none() {
        // Over before a segment: an error is the request's, a transcript has no speech.
        let out = outcome
            .result()
            .await
            .map_err(|e| ApiError::openai(aiaas_core::CoreError::Internal(e.to_string())))?
            .map_err(oai)?;
        let done = futures_util::stream::iter([Ok::<_, Infallible>(done_event(&out))]);
        return Ok(Sse::new(done).into_response());
    }
    Ok(Sse::new(events(first, rx, outcome)).into_response())
}

fn delta_event(segment: &Segment) -> Event {
    Event::default()
        .data(json!({"type": "transcript.text.delta", "delta": segment.text}).to_string())
}

fn done_event(out: &Transcription) -> Event {
    let t = &out.transcript;
    Event::default().data(
        json!({"type": "transcript.text.done", "text": t.text, "usage": usage(t.duration)})
            .to_string(),
    )
}

type Job = tokio::task::JoinHandle<aiaas_core::Result<Transcription>>;
type JobResult = Result<aiaas_core::Result<Transcription>, tokio::task::JoinError>;

/// The transcription job, still running or already over.
enum Outcome {
    Running(Job),
    Finished(JobResult),
}

impl Outcome {
    async fn result(self) -> JobResult {
        match self {
            Outcome::Running(job) => job.await,
            Outcome::Finished(done) => done,
        }
    }
}

/// Deltas as segments arrive, then the whole text (or the error). Dropping the stream
/// (the client left) drops the receiver, which stops the transcription.
fn events(
    first: Option<Segment>,
    rx: mpsc::UnboundedReceiver<Segment>,
    job: Outcome,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct State {
        pending: Option<Segment>,
        rx: mpsc::UnboundedReceiver<Segment>,
        job: Option<Outcome>,
    }
    let state = State {
        pending: first,
        rx,
        job: Some(job),
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if let Some(s) = st.pending.take() {
            return Some((Ok(delta_event(&s)), st));
        }
        if let Some(s) = st.rx.recv().await {
            return Some((Ok(delta_event(&s)), st));
        }
        let job = st.job.take()?;
        let event = match job.result().await {
            Ok(Ok(out)) => done_event(&out),
            Ok(Err(e)) => error_event(&e.to_string()),
            Err(e) => error_event(&e.to_string()),
        };
        Some((Ok(event), st))
    })
}

fn error_event(message: &str) -> Event {
    Event::default().data(
        json!({"type": "error", "error": {"message": message, "type": "server_error"}}).to_string(),
    )
}
