//! Audio as Whisper hears it: any WAV, FLAC, MP3 or OGG/Vorbis stream decoded by
//! symphonia, its channels averaged to mono, resampled to 16 kHz by rubato.

use std::io::Cursor;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::SpeechError;

/// Whisper's sample rate.
pub const SAMPLE_RATE: u32 = 16_000;

/// Decode `bytes` to mono samples at 16 kHz. At most `max_seconds` of audio is accepted.
pub fn decode(bytes: &[u8], max_seconds: f64) -> Result<Vec<f32>, SpeechError> {
    let bad = |e: SymphoniaError| SpeechError::Decode(e.to_string());
    let stream = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|_| {
            SpeechError::Decode("not a WAV, FLAC, MP3 or OGG/Vorbis audio stream".into())
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| SpeechError::Decode("the stream has no audio track".into()))?;
    let track_id = track.id;
    let rate = track
        .codec_params
        .sample_rate
        .ok_or_else(|| SpeechError::Decode("the audio has no sample rate".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(bad)?;
    let limit = (max_seconds * f64::from(rate)) as usize;
    let mut mono: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(bad(e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            // A damaged packet is skipped, as players do.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(e) => return Err(bad(e)),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        let mut buffer = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buffer.copy_interleaved_ref(decoded);
        for frame in buffer.samples().chunks(channels) {
            mono.push(frame.iter().sum::<f32>() / channels as f32);
        }
        if mono.len() > limit {
            return Err(SpeechError::TooLong(max_seconds));
        }
    }
    if mono.is_empty() {
        return Err(SpeechError::Decode("the audio has no samples".into()));
    }
    resample(&mono, rate)
}

/// `samples` at `rate` Hz to 16 kHz (rubato's FFT resampler).
pub fn resample(samples: &[f32], rate: u32) -> Result<Vec<f32>, SpeechError> {
    use rubato::{FftFixedIn, Resampler};
    if rate == SAMPLE_RATE {
        return Ok(samples.to_vec());
    }
    let chunk = 1024;
    let mut r = FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE as usize, chunk, 2, 1)
        .map_err(|e| SpeechError::Decode(format!("cannot resample from {rate} Hz: {e}")))?;
    let mut out = Vec::with_capacity(samples.len() * SAMPLE_RATE as usize / rate as usize + chunk);
    let delay = r.output_delay();
    let mut at = 0;
    while at < samples.len() {
        let end = (at + chunk).min(samples.len());
        let mut block = samples[at..end].to_vec();
        block.resize(chunk, 0.0);
        let waves = r
            .process(&[block], None)
            .map_err(|e| SpeechError::Decode(format!("resampling: {e}")))?;
        out.extend_from_slice(&waves[0]);
        at = end;
    }
    // Flush the resampler's delay, then trim to the exact length.
    let waves = r
        .process(&[vec![0.0; chunk]], None)
        .map_err(|e| SpeechError::Decode(format!("resampling: {e}")))?;
    out.extend_from_slice(&waves[0]);
    let wanted = (samples.len() as u64 * u64::from(SAMPLE_RATE) / u64::from(rate)) as usize;
    let start = delay.min(out.len());
    let mut out = out.split_off(start);
    out.truncate(wanted);
    Ok(out)
}
