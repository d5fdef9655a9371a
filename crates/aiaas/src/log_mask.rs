//! The server's log writer: every formatted log line passes through the PII masker
//! before it reaches stderr, so an e-mail address or phone number in an error message,
//! a file name or a model's input never lands in a log file or a log collector.

use std::io::Write;

use aiaas_privacy::{Mode, Policy};
use tracing_subscriber::fmt::MakeWriter;

/// Makes one [`MaskedLine`] per log event.
pub struct MaskedStderr;

impl<'a> MakeWriter<'a> for MaskedStderr {
    type Writer = MaskedLine;

    fn make_writer(&'a self) -> MaskedLine {
        MaskedLine(Vec::with_capacity(256))
    }
}

/// Collects one formatted event; masks and writes it whole when dropped (the formatter
/// drops it after each event), so a finding is never split across two writes.
pub struct MaskedLine(Vec<u8>);

impl Write for MaskedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for MaskedLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let masked = aiaas_privacy::detector().mask(&text, &Policy::new(Mode::Mask));
        let _ = std::io::stderr().lock().write_all(masked.text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_masked_whole() {
        let mut line = MaskedStderr.make_writer();
        line.write_all(b"upload from zhang.wei@").unwrap();
        line.write_all(b"example.cn failed\n").unwrap();
        let text = String::from_utf8_lossy(&line.0).into_owned();
        let masked = aiaas_privacy::detector()
            .mask(&text, &Policy::new(Mode::Mask))
            .text;
        assert!(!masked.contains("zhang.wei@"), "{masked}");
        assert!(masked.contains("@example.cn"), "{masked}");
        line.0.clear();
    }
}
