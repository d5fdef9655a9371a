//! A bounded reader for GGUF metadata: the header and the key/value pairs, not tensors.
//!
//! Format: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md> (versions 2 and 3,
//! little-endian). Every length is checked against the bytes left in the file before
//! anything is allocated or skipped, so a corrupt or hostile file yields an error, never
//! an out-of-memory; arrays (token lists) are skipped, only their length is kept.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use crate::{HubError, Result};

const MAGIC: &[u8; 4] = b"GGUF";
const MAX_KEY_LEN: u64 = 65_535;
/// Chat templates are kilobytes; anything near this is not metadata.
const MAX_STRING_LEN: u64 = 16 << 20;
const MAX_KV_COUNT: u64 = 1 << 20;
const MAX_ARRAY_DEPTH: u32 = 4;

const TYPE_STRING: u32 = 8;
const TYPE_ARRAY: u32 = 9;

/// A metadata value. Integers are widened; arrays keep only their element type and length.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    String(String),
    Array { element_type: u32, len: u64 },
}

/// The metadata of a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufMetadata {
    pub version: u32,
    pub tensor_count: u64,
    pub values: BTreeMap<String, GgufValue>,
}

/// Reads the metadata of the GGUF file at `path`; `InvalidInput` when it is not one.
pub fn read_gguf_metadata(path: &Path) -> Result<GgufMetadata> {
    let file = File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            HubError::NotFound(format!("no such file: {}", path.display()))
        } else {
            HubError::io(format!("open {}", path.display()), e)
        }
    })?;
    let len = file
        .metadata()
        .map_err(|e| HubError::io(format!("stat {}", path.display()), e))?
        .len();
    GgufMetadata::read(BufReader::new(file), len).map_err(|e| match e {
        HubError::InvalidInput(detail) => HubError::InvalidInput(format!(
            "{} is not a valid GGUF file: {detail}",
            path.display()
        )),
        other => other,
    })
}

impl GgufMetadata {
    /// Reads metadata from the start of `reader`, a stream of `len` bytes.
    pub fn read<R: Read + Seek>(reader: R, len: u64) -> Result<GgufMetadata> {
        let mut c = Cursor {
            reader,
            pos: 0,
            len,
        };
        c.read_all().map_err(|e| match e {
            ParseError::Invalid(detail) => HubError::InvalidInput(detail),
            ParseError::Io(e) => HubError::io("read GGUF metadata", e),
        })
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.values.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.values.get(key) {
            Some(GgufValue::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        match self.values.get(key) {
            Some(GgufValue::Uint(v)) => Some(*v),
            Some(GgufValue::Int(v)) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// `general.architecture`, e.g. `llama`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// Instruction-tuned models carry a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.get_str("tokenizer.chat_template")
            .is_some_and(|t| !t.trim().is_empty())
    }

    /// `{architecture}.context_length`: the context the model was trained for.
    pub fn context_length(&self) -> Option<u64> {
        self.get_u64(&format!("{}.context_length", self.architecture()?))
    }

    pub fn license(&self) -> Option<&str> {
        self.get_str("general.license")
    }
}

enum ParseError {
    Invalid(String),
    Io(std::io::Error),
}

type Parse<T> = std::result::Result<T, ParseError>;

fn invalid<T>(detail: impl Into<String>) -> Parse<T> {
    Err(ParseError::Invalid(detail.into()))
}

/// A reader that knows how many bytes are left.
struct Cursor<R> {
    reader: R,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Cursor<R> {
    fn read_all(&mut self) -> Parse<GgufMetadata> {
        let magic: [u8; 4] = self.bytes()?;
        if &magic != MAGIC {
            return invalid("bad magic (expected \"GGUF\")");
        }
        let version = u32::from_le_bytes(self.bytes()?);
        if !(2..=3).contains(&version) {
            let hint = if version.swap_bytes() <= 3 {
                " (big-endian files are not supported)"
            } else {
                ""
            };
            return invalid(format!("unsupported version {version}{hint}"));
        }
        let tensor_count = self.u64()?;
        let kv_count = self.u64()?;
        if kv_count > MAX_KV_COUNT {
            return invalid(format!("implausible key/value count {kv_count}"));
        }
        let mut values = BTreeMap::new();
        for _ in 0..kv_count {
            let key = self.string(MAX_KEY_LEN)?;
            let value_type = u32::from_le_bytes(self.bytes()?);
            let value = self.value(value_type)?;
            values.insert(key, value);
        }
        Ok(GgufMetadata {
            version,
            tensor_count,
            values,
        })
    }

    fn value(&mut self, value_type: u32) -> Parse<GgufValue> {
        Ok(match value_type {
            0 => GgufValue::Uint(u8::from_le_bytes(self.bytes()?).into()),
            1 => GgufValue::Int(i8::from_le_bytes(self.bytes()?).into()),
            2 => GgufValue::Uint(u16::from_le_bytes(self.bytes()?).into()),
            3 => GgufValue::Int(i16::from_le_bytes(self.bytes()?).into()),
            4 => GgufValue::Uint(u32::from_le_bytes(self.bytes()?).into()),
            5 => GgufValue::Int(i32::from_le_bytes(self.bytes()?).into()),
            6 => GgufValue::Float(f32::from_le_bytes(self.bytes()?).into()),
            7 => GgufValue::Bool(u8::from_le_bytes(self.bytes()?) != 0),
            TYPE_STRING => GgufValue::String(self.string(MAX_STRING_LEN)?),
            TYPE_ARRAY => {
                let element_type = u32::from_le_bytes(self.bytes()?);
                let len = self.u64()?;
                self.skip_array(element_type, len, 1)?;
                GgufValue::Array { element_type, len }
            }
            10 => GgufValue::Uint(self.u64()?),
            11 => GgufValue::Int(i64::from_le_bytes(self.bytes()?)),
            12 => GgufValue::Float(f64::from_le_bytes(self.bytes()?)),
            other => return invalid(format!("unknown value type {other}")),
        })
    }

    fn skip_array(&mut self, element_type: u32, len: u64, depth: u32) -> Parse<()> {
        if depth > MAX_ARRAY_DEPTH {
            return invalid("arrays nested too deeply");
        }
        // Every element takes at least `min` bytes: a length beyond the file is corrupt.
        let (min, fixed) = match element_type {
            0 | 1 | 7 => (1, true),
            2 | 3 => (2, true),
            4..=6 => (4, true),
            10..=12 => (8, true),
            TYPE_STRING => (8, false),
            TYPE_ARRAY => (12, false),
            other => return invalid(format!("unknown array element type {other}")),
        };
        let bytes = len
            .checked_mul(min)
            .ok_or_else(|| ParseError::Invalid(format!("array length {len} overflows")))?;
        if fixed {
            return self.skip(bytes);
        }
        self.need(bytes)?;
        for _ in 0..len {
            if element_type == TYPE_STRING {
                let n = self.u64()?;
                self.skip(n)?;
            } else {
                let inner_type = u32::from_le_bytes(self.bytes()?);
                let inner_len = self.u64()?;
                self.skip_array(inner_type, inner_len, depth + 1)?;
            }
        }
        Ok(())
    }

    fn need(&self, n: u64) -> Parse<()> {
        if self.len.saturating_sub(self.pos) < n {
            invalid(format!(
                "truncated: {n} bytes needed at offset {}",
                self.pos
            ))
        } else {
            Ok(())
        }
    }

    fn bytes<const N: usize>(&mut self) -> Parse<[u8; N]> {
        self.need(N as u64)?;
        let mut buf = [0u8; N];
        self.reader.read_exact(&mut buf).map_err(ParseError::Io)?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u64(&mut self) -> Parse<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn string(&mut self, max: u64) -> Parse<String> {
        let n = self.u64()?;
        if n > max {
            return invalid(format!("string of {n} bytes at offset {}", self.pos));
        }
        self.need(n)?;
        let mut buf = vec![0u8; n as usize];
        self.reader.read_exact(&mut buf).map_err(ParseError::Io)?;
        self.pos += n;
        String::from_utf8(buf).or_else(|_| invalid("string is not UTF-8"))
    }

    fn skip(&mut self, n: u64) -> Parse<()> {
        self.need(n)?;
        let offset = i64::try_from(n).or_else(|_| invalid("skip too large"))?;
        self.reader.seek_relative(offset).map_err(ParseError::Io)?;
        self.pos += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor as IoCursor;

    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    /// A GGUF v3 header with a few typical keys; `chat` adds a chat template.
    fn sample(chat: bool) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        out.extend((if chat { 5u64 } else { 4 }).to_le_bytes());
        string(&mut out, "general.architecture");
        out.extend(8u32.to_le_bytes());
        string(&mut out, "llama");
        string(&mut out, "llama.context_length");
        out.extend(4u32.to_le_bytes());
        out.extend(8192u32.to_le_bytes());
        string(&mut out, "tokenizer.ggml.tokens");
        out.extend(9u32.to_le_bytes());
        out.extend(8u32.to_le_bytes());
        out.extend(2u64.to_le_bytes());
        string(&mut out, "<s>");
        string(&mut out, "hello");
        string(&mut out, "llama.rope.freq_base");
        out.extend(6u32.to_le_bytes());
        out.extend(10000f32.to_le_bytes());
        if chat {
            string(&mut out, "tokenizer.chat_template");
            out.extend(8u32.to_le_bytes());
            string(
                &mut out,
                "{% for m in messages %}{{ m.content }}{% endfor %}",
            );
        }
        out
    }

    fn parse(bytes: &[u8]) -> Result<GgufMetadata> {
        GgufMetadata::read(IoCursor::new(bytes), bytes.len() as u64)
    }

    #[test]
    fn reads_typical_metadata() {
        let meta = parse(&sample(true)).expect("valid");
        assert_eq!(meta.version, 3);
        assert_eq!(meta.architecture(), Some("llama"));
        assert_eq!(meta.context_length(), Some(8192));
        assert!(meta.has_chat_template());
        assert_eq!(
            meta.get("tokenizer.ggml.tokens"),
            Some(&GgufValue::Array {
                element_type: 8,
                len: 2
            })
        );
        assert_eq!(
            meta.get("llama.rope.freq_base"),
            Some(&GgufValue::Float(10000.0))
        );
        assert!(!parse(&sample(false)).expect("valid").has_chat_template());
    }

    #[test]
    fn corrupt_files_are_errors() {
        let good = sample(true);
        for cut in [0, 3, 10, 30, good.len() - 1] {
            assert!(
                matches!(parse(&good[..cut]), Err(HubError::InvalidInput(_))),
                "cut {cut}"
            );
        }
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        let mut v1 = good.clone();
        v1[4] = 1;
        // A string length of u64::MAX right after the header: must not allocate.
        let mut huge_string = good[..24].to_vec();
        huge_string.extend(u64::MAX.to_le_bytes());
        // An array claiming 2^40 strings.
        let mut huge_array = good[..24].to_vec();
        string(&mut huge_array, "k");
        huge_array.extend(9u32.to_le_bytes());
        huge_array.extend(8u32.to_le_bytes());
        huge_array.extend((1u64 << 40).to_le_bytes());
        let mut many_keys = good[..16].to_vec();
        many_keys.extend(u64::MAX.to_le_bytes());
        for bytes in [bad_magic, v1, huge_string, huge_array, many_keys] {
            assert!(matches!(parse(&bytes), Err(HubError::InvalidInput(_))));
        }
    }

    #[test]
    fn missing_file_is_not_found() {
        let err = read_gguf_metadata(Path::new("/nonexistent/model.gguf"));
        assert!(matches!(err, Err(HubError::NotFound(_))));
    }
}
