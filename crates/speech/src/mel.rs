//! Whisper's log-mel input: the Slaney-scale mel filter bank (librosa's
//! `filters.mel(sr=16000, n_fft=400, n_mels=80)`, `htk=False`, `norm="slaney"`, the
//! bank Whisper was trained with), computed rather than shipped, and the features
//! faster-whisper's front end computes from it: a centred short-time Fourier transform
//! (Hann window of 400, hop 160, reflected edges) by realfft, powers through the bank,
//! log10 floored 8 below the clip's loudest value, scaled to about [-1, 1].

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Hz to mel on the Slaney scale: linear below 1 kHz, logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// `n_mels` triangular filters over the `n_fft / 2 + 1` FFT bins, row-major, each
/// normalised to unit area (Slaney).
pub fn filters(sample_rate: usize, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| i as f64 * sample_rate as f64 / n_fft as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sample_rate as f64 / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0f32; n_mels * bins];
    for m in 0..n_mels {
        let (left, centre, right) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - left) / (centre - left);
            let upper = (right - f) / (right - centre);
            out[m * bins + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    out
}

/// Log-mel features of 16 kHz samples, as faster-whisper's `FeatureExtractor`
/// computes them (so that its transcripts and ours start from the same input).
pub struct Features {
    n_fft: usize,
    hop: usize,
    n_mels: usize,
    /// Per filter: the first bin it covers and its weights from there.
    bank: Vec<(usize, Vec<f32>)>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl Features {
    pub fn new(sample_rate: usize, n_fft: usize, hop: usize, n_mels: usize) -> Features {
        let bins = n_fft / 2 + 1;
        let all = filters(sample_rate, n_fft, n_mels);
        let bank = all
            .chunks(bins)
            .map(|row| {
                let first = row.iter().position(|&w| w > 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w > 0.0).map_or(first, |l| l + 1);
                (first, row[first..last].to_vec())
            })
            .collect();
        // The periodic Hann window (numpy's `hanning(n + 1)[:-1]`).
        let window = (0..n_fft)
            .map(|i| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos()) as f32
            })
            .collect();
        Features {
            n_fft,
            hop,
            n_mels,
            bank,
            window,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(n_fft),
        }
    }

    /// Features of `samples`: `n_mels` rows of `frames` values (row-major) and the
    /// number of frames, one per hop of audio.
    pub fn compute(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        // faster-whisper pads a hop of silence at the end, centres the frames by
        // reflecting n_fft / 2 samples at each edge and drops the last frame.
        let mut audio = samples.to_vec();
        audio.extend(std::iter::repeat_n(0.0, self.hop));
        let n = audio.len();
        let half = self.n_fft / 2;
        let reflect = |i: isize| -> f32 {
            if n == 1 {
                return audio[0];
            }
            let period = 2 * (n as isize - 1);
            let mut j = i.rem_euclid(period);
            if j >= n as isize {
                j = period - j;
            }
            audio[j as usize]
        };
        let frames = (n + 2 * half - self.n_fft) / self.hop;
        let mut out = vec![0f32; self.n_mels * frames];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; spectrum.len()];
        for f in 0..frames {
            let start = (f * self.hop) as isize - half as isize;
            for (k, x) in input.iter_mut().enumerate() {
                let i = start + k as isize;
                let s = if i >= 0 && (i as usize) < n {
                    audio[i as usize]
                } else {
                    reflect(i)
                };
                *x = s * self.window[k];
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("buffers sized by the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (m, (first, weights)) in self.bank.iter().enumerate() {
                let e: f32 = weights
                    .iter()
                    .zip(&power[*first..])
                    .map(|(w, p)| w * p)
                    .sum();
                out[m * frames + f] = e.max(1e-10).log10();
            }
        }
        let top = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in &mut out {
            *v = (v.max(top - 8.0) + 4.0) / 4.0;
        }
        (out, frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bank_matches_librosa_at_known_points() {
        let f = filters(16000, 400, 80);
        assert_eq!(f.len(), 80 * 201);
        // librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)[0, 1] and [79, 200].
        assert!((f[1] - 0.024_862_593).abs() < 1e-6, "{}", f[1]);
        assert!(f[79 * 201 + 200].abs() < 1e-9);
        // Every filter covers some bins; the mel scale is monotonic.
        for m in 0..80 {
            assert!(
                f[m * 201..(m + 1) * 201].iter().any(|&v| v > 0.0),
                "filter {m}"
            );
        }
        assert!((mel_to_hz(hz_to_mel(3456.0)) - 3456.0).abs() < 1e-9);
    }

    #[test]
    fn features_of_a_tone_peak_in_its_filter() {
        // One second of 1 kHz: one frame per 160 samples, the loudest filter the one
        // centred nearest 1 kHz, in every frame away from the edges.
        let samples: Vec<f32> = (0..16000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16000.0).sin())
            .collect();
        let f = Features::new(16000, 400, 160, 80);
        let (mel, frames) = f.compute(&samples);
        assert_eq!(frames, 101);
        let column = |t: usize| (0..80).map(|m| mel[m * frames + t]).collect::<Vec<_>>();
        let peak = column(50)
            .into_iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
            .0;
        let centres: Vec<f64> = (0..82)
            .map(|i| mel_to_hz(hz_to_mel(8000.0) * i as f64 / 81.0))
            .collect();
        let nearest = (1..81)
            .min_by(|&a, &b| {
                (centres[a] - 1000.0)
                    .abs()
                    .total_cmp(&(centres[b] - 1000.0).abs())
            })
            .unwrap()
            - 1;
        assert_eq!(peak, nearest);
        // Scaled as Whisper expects: the top at (max + 4) / 4, nothing below 8 under it.
        let top = mel.iter().copied().fold(f32::MIN, f32::max);
        let bottom = mel.iter().copied().fold(f32::MAX, f32::min);
        assert!(bottom >= top - 2.0 - 1e-5, "{top} {bottom}");
    }
}
