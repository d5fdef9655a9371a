//! Whisper's log-mel input: the Slaney-scale mel filter bank (librosa's
//! `filters.mel(sr=16000, n_fft=400, n_mels=80)`, `htk=False`, `norm="slaney"`, the
//! bank Whisper was trained with), computed rather than shipped.

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
}
