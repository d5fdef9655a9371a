//! The fixed-size object header: its byte layout, parsing, and the wrapping of the
//! per-object data key under a master key.
//!
//! ```text
//! offset len  field
//!      0   8  magic "AIAASENC"                      ┐
//!      8   1  format version (1)                    │ "bound" part: authenticated by the
//!      9   4  chunk size, u32 big-endian            │ key wrap and by every chunk; never
//!     13  16  object id (random)                    ┘ changes for the object's lifetime
//!     29  32  master key id, ASCII, zero padded     ┐ "wrap" part: replaced by rewrap
//!     61  12  wrap nonce (random)                   │
//!     73  32  wrapped data key (AES-256-GCM)        │
//!    105  16  wrap tag                              ┘
//!    121      end (HEADER_LEN)
//! ```

use std::io::Read;

use ring::aead::{Aad, Nonce};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::keyring::{aes_key, KeyId, KeyRing, MasterKey, MAX_KEY_ID_LEN};
use crate::random;
use crate::stream::read_full;

/// Every encrypted object starts with these bytes.
pub const MAGIC: &[u8; 8] = b"AIAASENC";
/// The object format this build writes (and the only one it reads).
pub const FORMAT_VERSION: u8 = 1;
/// Size of the header that precedes the chunks.
pub const HEADER_LEN: usize = WRAP_TAG_AT + TAG_LEN;
/// Largest accepted chunk: bounds the buffer a hostile header can make a reader allocate.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;

pub(crate) const TAG_LEN: usize = 16;
pub(crate) const DATA_KEY_LEN: usize = 32;
pub(crate) const OBJECT_ID_LEN: usize = 16;
/// Length of the header prefix that is the same before and after a rewrap.
pub(crate) const BOUND_LEN: usize = KEY_ID_AT;

const NONCE_LEN: usize = 12;
const VERSION_AT: usize = MAGIC.len();
const CHUNK_SIZE_AT: usize = VERSION_AT + 1;
const OBJECT_ID_AT: usize = CHUNK_SIZE_AT + 4;
const KEY_ID_AT: usize = OBJECT_ID_AT + OBJECT_ID_LEN;
const WRAP_NONCE_AT: usize = KEY_ID_AT + MAX_KEY_ID_LEN;
const WRAPPED_KEY_AT: usize = WRAP_NONCE_AT + NONCE_LEN;
const WRAP_TAG_AT: usize = WRAPPED_KEY_AT + DATA_KEY_LEN;

/// A per-object AES-256 key, wiped on drop.
pub(crate) type DataKey = Zeroizing<[u8; DATA_KEY_LEN]>;

/// A parsed header. Structurally valid; the wrap is only authenticated by `unwrap_key`.
#[derive(Clone, Debug)]
pub(crate) struct Header {
    bound: [u8; BOUND_LEN],
    key_id: KeyId,
    wrap_nonce: [u8; NONCE_LEN],
    wrapped_key: [u8; DATA_KEY_LEN + TAG_LEN],
}

impl Header {
    /// A header for a new object whose data key is wrapped by `master`.
    pub(crate) fn seal(master: &MasterKey, chunk_size: u32, data_key: &DataKey) -> Result<Header> {
        let mut bound = [0u8; BOUND_LEN];
        bound[..VERSION_AT].copy_from_slice(MAGIC);
        bound[VERSION_AT] = FORMAT_VERSION;
        bound[CHUNK_SIZE_AT..OBJECT_ID_AT].copy_from_slice(&chunk_size.to_be_bytes());
        random::fill(&mut bound[OBJECT_ID_AT..KEY_ID_AT])?;
        wrap(bound, master, data_key)
    }

    pub(crate) fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Header> {
        if &bytes[..VERSION_AT] != MAGIC {
            return Err(CryptoError::NotEncrypted);
        }
        if bytes[VERSION_AT] != FORMAT_VERSION {
            return Err(CryptoError::UnsupportedVersion(bytes[VERSION_AT]));
        }
        let header = Header {
            bound: sub_array(bytes, 0),
            key_id: parse_key_id(&bytes[KEY_ID_AT..WRAP_NONCE_AT])?,
            wrap_nonce: sub_array(bytes, WRAP_NONCE_AT),
            wrapped_key: sub_array(bytes, WRAPPED_KEY_AT),
        };
        if header.chunk_size() == 0 || header.chunk_size() > MAX_CHUNK_SIZE {
            return Err(CryptoError::InvalidHeader("chunk size out of range"));
        }
        Ok(header)
    }

    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..BOUND_LEN].copy_from_slice(&self.bound);
        out[KEY_ID_AT..KEY_ID_AT + self.key_id.as_str().len()]
            .copy_from_slice(self.key_id.as_str().as_bytes());
        out[WRAP_NONCE_AT..WRAPPED_KEY_AT].copy_from_slice(&self.wrap_nonce);
        out[WRAPPED_KEY_AT..].copy_from_slice(&self.wrapped_key);
        out
    }

    pub(crate) fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    pub(crate) fn chunk_size(&self) -> u32 {
        let bytes: [u8; 4] = sub_array(&self.bound, CHUNK_SIZE_AT);
        u32::from_be_bytes(bytes)
    }

    /// Magic, version, chunk size and object id: what every chunk's AAD starts with.
    pub(crate) fn bound(&self) -> &[u8; BOUND_LEN] {
        &self.bound
    }

    /// The data key, after authenticating the wrap (and with it the bound header fields).
    pub(crate) fn unwrap_key(&self, ring: &KeyRing) -> Result<DataKey> {
        let master = ring.key(&self.key_id)?;
        let mut buf = Zeroizing::new(self.wrapped_key);
        let nonce = Nonce::assume_unique_for_key(self.wrap_nonce);
        let plain = master
            .wrapping_key()?
            .open_in_place(nonce, Aad::from(&self.bound), buf.as_mut())
            .map_err(|_| CryptoError::HeaderTampered {
                key: self.key_id.clone(),
            })?;
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        key.copy_from_slice(plain);
        Ok(key)
    }

    /// The same header wrapped by the ring's active key, or `None` if it already is.
    pub(crate) fn rewrapped(&self, ring: &KeyRing) -> Result<Option<Header>> {
        if self.key_id == *ring.active_id() {
            return Ok(None);
        }
        let data_key = self.unwrap_key(ring)?;
        wrap(self.bound, ring.active_key(), &data_key).map(Some)
    }
}

/// Reads and parses exactly `HEADER_LEN` bytes, telling a plaintext file (`NotEncrypted`)
/// apart from an encrypted one that was cut short (`Truncated`).
pub(crate) fn read_header<R: Read>(reader: &mut R) -> Result<Header> {
    let mut bytes = [0u8; HEADER_LEN];
    let n = read_full(reader, &mut bytes)?;
    if n < HEADER_LEN {
        let seen = &bytes[..n];
        let looks_encrypted = if n < MAGIC.len() {
            n > 0 && MAGIC.starts_with(seen)
        } else {
            seen.starts_with(MAGIC)
        };
        return Err(if looks_encrypted {
            CryptoError::Truncated
        } else {
            CryptoError::NotEncrypted
        });
    }
    Header::parse(&bytes)
}

/// The wrap's AAD is the whole bound prefix (magic, version, chunk size, object id), so a
/// wrapped key cannot be moved to another object and no bound field can be edited.
fn wrap(bound: [u8; BOUND_LEN], master: &MasterKey, data_key: &DataKey) -> Result<Header> {
    let wrap_nonce = random::array::<NONCE_LEN>()?;
    let mut buf = Zeroizing::new([0u8; DATA_KEY_LEN]);
    buf.copy_from_slice(data_key.as_ref());
    let tag = master
        .wrapping_key()?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(wrap_nonce),
            Aad::from(&bound),
            buf.as_mut(),
        )
        .map_err(|_| CryptoError::Primitive("AES-256-GCM seal"))?;
    let mut wrapped_key = [0u8; DATA_KEY_LEN + TAG_LEN];
    wrapped_key[..DATA_KEY_LEN].copy_from_slice(buf.as_ref());
    wrapped_key[DATA_KEY_LEN..].copy_from_slice(tag.as_ref());
    Ok(Header {
        bound,
        key_id: master.id().clone(),
        wrap_nonce,
        wrapped_key,
    })
}

/// The key id field: ASCII id, then zeros only.
fn parse_key_id(field: &[u8]) -> Result<KeyId> {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    if field[len..].iter().any(|&b| b != 0) {
        return Err(CryptoError::InvalidHeader(
            "key id field has bytes after its padding",
        ));
    }
    let text = std::str::from_utf8(&field[..len])
        .map_err(|_| CryptoError::InvalidHeader("key id field is not ASCII"))?;
    KeyId::new(text).map_err(|_| CryptoError::InvalidHeader("key id field is not a valid key id"))
}

fn sub_array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// The data key's AES-256-GCM key schedule.
pub(crate) fn data_cipher(data_key: &DataKey) -> Result<ring::aead::LessSafeKey> {
    aes_key(data_key.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_documented_offsets() {
        assert_eq!(
            (VERSION_AT, CHUNK_SIZE_AT, OBJECT_ID_AT, KEY_ID_AT),
            (8, 9, 13, 29)
        );
        assert_eq!(
            (WRAP_NONCE_AT, WRAPPED_KEY_AT, WRAP_TAG_AT, HEADER_LEN),
            (61, 73, 105, 121)
        );
    }

    #[test]
    fn encode_parse_round_trip() {
        let ring = KeyRing::generate().unwrap();
        let data_key = Zeroizing::new([9u8; DATA_KEY_LEN]);
        let header = Header::seal(ring.active_key(), 4096, &data_key).unwrap();
        let bytes = header.encode();
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(bytes[8], 1);
        assert_eq!(&bytes[9..13], &4096u32.to_be_bytes());
        let id = ring.active_id().as_str().as_bytes();
        assert_eq!(&bytes[29..29 + id.len()], id);
        assert!(bytes[29 + id.len()..61].iter().all(|&b| b == 0));
        let parsed = Header::parse(&bytes).unwrap();
        assert_eq!(parsed.chunk_size(), 4096);
        assert_eq!(parsed.encode(), bytes);
        assert_eq!(*parsed.unwrap_key(&ring).unwrap(), [9u8; DATA_KEY_LEN]);
    }

    #[test]
    fn structural_errors() {
        let ring = KeyRing::generate().unwrap();
        let data_key = Zeroizing::new([1u8; DATA_KEY_LEN]);
        let good = Header::seal(ring.active_key(), 64, &data_key)
            .unwrap()
            .encode();
        let edit = |at: usize, value: u8| {
            let mut bytes = good;
            bytes[at] = value;
            Header::parse(&bytes)
        };
        assert!(matches!(edit(0, b'X'), Err(CryptoError::NotEncrypted)));
        assert!(matches!(
            edit(8, 2),
            Err(CryptoError::UnsupportedVersion(2))
        ));
        let mut zero_chunk = good;
        zero_chunk[9..13].fill(0);
        assert!(matches!(
            Header::parse(&zero_chunk),
            Err(CryptoError::InvalidHeader(_))
        ));
        assert!(matches!(edit(60, b'a'), Err(CryptoError::InvalidHeader(_))));
        assert!(matches!(edit(29, 0), Err(CryptoError::InvalidHeader(_))));
    }

    #[test]
    fn short_input_is_classified() {
        let classify = |bytes: &[u8]| read_header(&mut &bytes[..]).unwrap_err();
        assert!(matches!(classify(b""), CryptoError::NotEncrypted));
        assert!(matches!(classify(b"AIA"), CryptoError::Truncated));
        assert!(matches!(
            classify(b"hello world"),
            CryptoError::NotEncrypted
        ));
        assert!(matches!(
            classify(b"AIAASENC\x01rest"),
            CryptoError::Truncated
        ));
    }

    #[test]
    fn wrap_is_bound_to_the_object() {
        let ring = KeyRing::generate().unwrap();
        let data_key = Zeroizing::new([3u8; DATA_KEY_LEN]);
        let a = Header::seal(ring.active_key(), 64, &data_key)
            .unwrap()
            .encode();
        let b = Header::seal(ring.active_key(), 64, &data_key)
            .unwrap()
            .encode();
        let mut moved = b;
        moved[KEY_ID_AT..].copy_from_slice(&a[KEY_ID_AT..]);
        let err = Header::parse(&moved)
            .unwrap()
            .unwrap_key(&ring)
            .unwrap_err();
        assert!(matches!(err, CryptoError::HeaderTampered { .. }));
    }
}
