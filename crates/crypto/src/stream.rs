//! Streaming encryption and decryption of objects: a header, then chunks sealed with the
//! object's data key in the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015).
//!
//! Chunk `i` is AES-256-GCM with nonce `0u32 ‖ i as u64 BE` and AAD
//! `header[0..29] ‖ i as u64 BE ‖ final flag (1 on the last chunk, else 0)`.
//! Every chunk but the last holds exactly `chunk_size` plaintext bytes; the last holds
//! fewer (possibly none), so a reader knows which chunk must be final from its length alone.
//! Hence: a stream ending on a boundary lacks its final chunk (`Truncated`), and reordered,
//! duplicated, cut or extended chunks fail authentication (`Tampered`).

use std::io::{self, Read, Write};

use ring::aead::{Aad, LessSafeKey, Nonce};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{CryptoError, Result};
use crate::header::{
    data_cipher, read_header, DataKey, Header, BOUND_LEN, DATA_KEY_LEN, HEADER_LEN, MAGIC,
    MAX_CHUNK_SIZE, TAG_LEN,
};
use crate::keyring::{KeyId, KeyRing};

/// Plaintext bytes per chunk unless `EncryptOptions` says otherwise.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;

/// Tuning for `encrypt_with`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncryptOptions {
    /// Plaintext bytes per chunk, 1 ..= `MAX_CHUNK_SIZE`. Readers buffer one chunk.
    pub chunk_size: u32,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        EncryptOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// What `verify` found in an object whose every chunk authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub key_id: KeyId,
    pub plaintext_len: u64,
    pub chunks: u64,
    pub chunk_size: u32,
}

/// Encrypts everything `reader` yields under the ring's active key, with default options.
/// Returns the number of plaintext bytes.
pub fn encrypt<R: Read, W: Write>(ring: &KeyRing, reader: R, writer: W) -> Result<u64> {
    encrypt_with(ring, reader, writer, EncryptOptions::default())
}

/// `encrypt` with a chosen chunk size. Holds one chunk in memory.
pub fn encrypt_with<R: Read, W: Write>(
    ring: &KeyRing,
    mut reader: R,
    mut writer: W,
    options: EncryptOptions,
) -> Result<u64> {
    let chunk_size = checked_chunk_size(options.chunk_size)?;
    let mut data_key: DataKey = Zeroizing::new([0u8; DATA_KEY_LEN]);
    crate::random::fill(data_key.as_mut())?;
    let header = Header::seal(ring.active_key(), options.chunk_size, &data_key)?;
    writer.write_all(&header.encode())?;
    let cipher = ChunkCipher::new(&header, &data_key)?;
    let mut buf = Zeroizing::new(vec![0u8; chunk_size + TAG_LEN]);
    let mut total = 0u64;
    for index in 0u64.. {
        let n = read_full(&mut reader, &mut buf[..chunk_size])?;
        let last = n < chunk_size;
        let tag = cipher.seal(index, last, &mut buf[..n])?;
        buf[n..n + TAG_LEN].copy_from_slice(tag.as_ref());
        writer.write_all(&buf[..n + TAG_LEN])?;
        total += n as u64;
        if last {
            break;
        }
    }
    writer.flush()?;
    Ok(total)
}

/// Push-side encryption: bytes are written as they arrive (an upload streaming in) and
/// sealed chunk by chunk into `writer`; [`Encryptor::finish`] seals the final chunk. The
/// output is the same format `encrypt` writes. Holds at most one chunk in memory. An
/// encryptor dropped without `finish` leaves a stream that readers refuse as truncated.
pub struct Encryptor<W: Write> {
    writer: W,
    cipher: ChunkCipher,
    buf: Zeroizing<Vec<u8>>,
    filled: usize,
    chunk_size: usize,
    next_index: u64,
}

impl<W: Write> Encryptor<W> {
    /// Writes the header (a fresh data key, wrapped by the ring's active key).
    pub fn new(ring: &KeyRing, mut writer: W, options: EncryptOptions) -> Result<Self> {
        let chunk_size = checked_chunk_size(options.chunk_size)?;
        let mut data_key: DataKey = Zeroizing::new([0u8; DATA_KEY_LEN]);
        crate::random::fill(data_key.as_mut())?;
        let header = Header::seal(ring.active_key(), options.chunk_size, &data_key)?;
        writer.write_all(&header.encode())?;
        Ok(Encryptor {
            writer,
            cipher: ChunkCipher::new(&header, &data_key)?,
            buf: Zeroizing::new(vec![0u8; chunk_size + TAG_LEN]),
            filled: 0,
            chunk_size,
            next_index: 0,
        })
    }

    /// The sink, to drain what has been sealed so far (a `Vec<u8>` sink, say).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.writer
    }

    /// Seals what is left as the final chunk and returns the sink.
    pub fn finish(mut self) -> Result<W> {
        self.seal(true)?;
        self.writer.flush()?;
        // The buffer zeroizes itself on drop.
        let Encryptor { writer, .. } = self;
        Ok(writer)
    }

    /// Seals the buffered chunk: a full one is never final (the format's rule), the
    /// final one is shorter (possibly empty).
    fn seal(&mut self, last: bool) -> Result<()> {
        let n = self.filled;
        let tag = self
            .cipher
            .seal(self.next_index, last, &mut self.buf[..n])?;
        self.buf[n..n + TAG_LEN].copy_from_slice(tag.as_ref());
        self.writer.write_all(&self.buf[..n + TAG_LEN])?;
        self.buf[..n + TAG_LEN].zeroize();
        self.filled = 0;
        self.next_index += 1;
        Ok(())
    }
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = data.len().min(self.chunk_size - self.filled);
        self.buf[self.filled..self.filled + take].copy_from_slice(&data[..take]);
        self.filled += take;
        if self.filled == self.chunk_size {
            self.seal(false)?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl<W: Write> std::fmt::Debug for Encryptor<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("chunk_size", &self.chunk_size)
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

/// Encrypts a whole buffer.
pub fn encrypt_to_vec(ring: &KeyRing, plaintext: &[u8]) -> Result<Vec<u8>> {
    let capacity = ciphertext_len(plaintext.len() as u64, DEFAULT_CHUNK_SIZE);
    let mut out = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    encrypt(ring, plaintext, &mut out)?;
    Ok(out)
}

/// Decrypts a whole buffer; nothing is returned unless every chunk authenticates.
pub fn decrypt_to_vec(ring: &KeyRing, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut decryptor = Decryptor::new(ring, bytes)?;
    let mut out = Vec::with_capacity(bytes.len());
    loop {
        match decryptor.next_chunk() {
            Ok(Some(plain)) => out.extend_from_slice(plain),
            Ok(None) => return Ok(out),
            Err(err) => {
                // Earlier chunks were authentic, but the caller gets an error, not them.
                out.zeroize();
                return Err(err);
            }
        }
    }
}

/// Reads every chunk, authenticates it and throws the plaintext away.
pub fn verify<R: Read>(ring: &KeyRing, reader: R) -> Result<VerifyReport> {
    let mut decryptor = Decryptor::new(ring, reader)?;
    while decryptor.next_chunk()?.is_some() {}
    Ok(VerifyReport {
        key_id: decryptor.key_id().clone(),
        plaintext_len: decryptor.plaintext_len,
        chunks: decryptor.next_index,
        chunk_size: decryptor.chunk_size(),
    })
}

/// Which master key an object is wrapped with, from its header alone (no ring needed).
pub fn header_key_id<R: Read>(mut reader: R) -> Result<KeyId> {
    Ok(read_header(&mut reader)?.key_id().clone())
}

/// Whether `prefix` (at least the first 8 bytes of a file) starts like an encrypted
/// object; lets callers tell legacy plaintext files apart during migration.
pub fn is_encrypted(prefix: &[u8]) -> bool {
    prefix.starts_with(MAGIC)
}

/// Size of the encrypted form of `plaintext_len` bytes with chunks of `chunk` bytes
/// (a `chunk` of 0 is treated as 1). Saturates instead of overflowing.
pub fn ciphertext_len(plaintext_len: u64, chunk: u32) -> u64 {
    let chunks = (plaintext_len / u64::from(chunk.max(1))).saturating_add(1);
    (HEADER_LEN as u64)
        .saturating_add(plaintext_len)
        .saturating_add(chunks.saturating_mul(TAG_LEN as u64))
}

/// Plaintext reader over an encrypted object.
///
/// `read` only ever hands out bytes of chunks that authenticated; a chunk that fails is
/// wiped, and that read and every later one return an `io::Error` of kind `InvalidData`
/// whose inner error is the `CryptoError` (`Tampered` or `Truncated`).
pub struct Decryptor<R: Read> {
    reader: R,
    key_id: KeyId,
    cipher: ChunkCipher,
    /// One ciphertext chunk; after authentication `buf[start..end]` is unread plaintext.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    next_index: u64,
    plaintext_len: u64,
    state: State,
}

impl<R: Read> Decryptor<R> {
    /// Reads the header and unwraps the data key (authenticating the header).
    pub fn new(ring: &KeyRing, mut reader: R) -> Result<Self> {
        let header = read_header(&mut reader)?;
        let data_key = header.unwrap_key(ring)?;
        let cipher = ChunkCipher::new(&header, &data_key)?;
        let chunk_size = checked_chunk_size(header.chunk_size())?;
        Ok(Decryptor {
            reader,
            key_id: header.key_id().clone(),
            cipher,
            buf: vec![0u8; chunk_size + TAG_LEN],
            start: 0,
            end: 0,
            next_index: 0,
            plaintext_len: 0,
            state: State::Reading,
        })
    }

    /// The master key that wraps this object's data key.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    pub fn chunk_size(&self) -> u32 {
        // The buffer was sized from a checked u32, so this cannot truncate.
        u32::try_from(self.buf.len() - TAG_LEN).unwrap_or(u32::MAX)
    }

    /// The next authenticated chunk's plaintext, `None` after the final chunk.
    fn next_chunk(&mut self) -> Result<Option<&[u8]>> {
        match &self.state {
            State::Finished => return Ok(None),
            State::Failed(failure) => return Err(failure.replay()),
            State::Reading => {}
        }
        if let Err(err) = self.open_next() {
            // open_in_place may leave unauthenticated plaintext behind.
            self.buf.as_mut_slice().zeroize();
            self.start = 0;
            self.end = 0;
            self.state = State::Failed(Failure::record(&err));
            return Err(err);
        }
        Ok(Some(&self.buf[self.start..self.end]))
    }

    fn open_next(&mut self) -> Result<()> {
        let n = read_full(&mut self.reader, &mut self.buf)?;
        // A chunk shorter than a tag cannot exist: the stream ended where a chunk was due.
        if n < TAG_LEN {
            return Err(CryptoError::Truncated);
        }
        let index = self.next_index;
        let last = n < self.buf.len();
        let plain_len = self.cipher.open(index, last, &mut self.buf[..n])?;
        self.start = 0;
        self.end = plain_len;
        self.next_index += 1;
        self.plaintext_len += plain_len as u64;
        if last {
            self.state = State::Finished;
        }
        Ok(())
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.start == self.end {
            if self.next_chunk()?.is_none() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

impl<R: Read> Drop for Decryptor<R> {
    fn drop(&mut self) {
        self.buf.as_mut_slice().zeroize();
    }
}

impl<R: Read> std::fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("key_id", &self.key_id)
            .field("chunk_size", &self.chunk_size())
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

/// Fills `buf` from `reader` until it is full or the reader reports end of stream;
/// returns how many bytes arrived. Retries `Interrupted` like `read_exact`.
pub(crate) fn read_full<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            // `min` guards against a reader that claims more than it was given room for.
            Ok(n) => filled += n.min(buf.len() - filled),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

enum State {
    Reading,
    Finished,
    Failed(Failure),
}

/// A copy of the error that stopped a `Decryptor`, so every later read repeats it.
enum Failure {
    Truncated,
    Tampered(u64),
    Io(io::ErrorKind, String),
}

impl Failure {
    fn record(err: &CryptoError) -> Failure {
        match err {
            CryptoError::Truncated => Failure::Truncated,
            CryptoError::Tampered { chunk } => Failure::Tampered(*chunk),
            CryptoError::Io(e) => Failure::Io(e.kind(), e.to_string()),
            other => Failure::Io(io::ErrorKind::Other, other.to_string()),
        }
    }

    fn replay(&self) -> CryptoError {
        match self {
            Failure::Truncated => CryptoError::Truncated,
            Failure::Tampered(chunk) => CryptoError::Tampered { chunk: *chunk },
            Failure::Io(kind, msg) => CryptoError::Io(io::Error::new(*kind, msg.clone())),
        }
    }
}

/// The data key plus the chunk AAD template (bound header ‖ index ‖ final flag).
struct ChunkCipher {
    key: LessSafeKey,
    aad: [u8; BOUND_LEN + 9],
}

impl ChunkCipher {
    fn new(header: &Header, data_key: &DataKey) -> Result<ChunkCipher> {
        let mut aad = [0u8; BOUND_LEN + 9];
        aad[..BOUND_LEN].copy_from_slice(header.bound());
        Ok(ChunkCipher {
            key: data_cipher(data_key)?,
            aad,
        })
    }

    fn seal(&self, index: u64, last: bool, in_out: &mut [u8]) -> Result<ring::aead::Tag> {
        self.key
            .seal_in_place_separate_tag(nonce(index), self.aad(index, last), in_out)
            .map_err(|_| CryptoError::Primitive("AES-256-GCM seal"))
    }

    /// Authenticates and decrypts `in_out` (ciphertext ‖ tag) in place; returns the
    /// plaintext length.
    fn open(&self, index: u64, last: bool, in_out: &mut [u8]) -> Result<usize> {
        self.key
            .open_in_place(nonce(index), self.aad(index, last), in_out)
            .map(|plain| plain.len())
            .map_err(|_| CryptoError::Tampered { chunk: index })
    }

    fn aad(&self, index: u64, last: bool) -> Aad<[u8; BOUND_LEN + 9]> {
        let mut aad = self.aad;
        aad[BOUND_LEN..BOUND_LEN + 8].copy_from_slice(&index.to_be_bytes());
        aad[BOUND_LEN + 8] = u8::from(last);
        Aad::from(aad)
    }
}

/// Each object has its own random data key, so a counter nonce never repeats under a key.
fn nonce(index: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

fn checked_chunk_size(chunk_size: u32) -> Result<usize> {
    if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
        return Err(CryptoError::InvalidChunkSize(chunk_size));
    }
    usize::try_from(chunk_size).map_err(|_| CryptoError::InvalidChunkSize(chunk_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_writes_give_the_same_format_as_encrypt() {
        let ring = KeyRing::generate().unwrap();
        let data: Vec<u8> = (0..500u32).map(|i| (i * 31 % 251) as u8).collect();
        for chunk in [1u32, 7, 64] {
            for len in [0usize, 1, 6, 7, 8, 63, 64, 65, 128, 500] {
                for piece in [1usize, 3, 64, 1000] {
                    let options = EncryptOptions { chunk_size: chunk };
                    let mut e = Encryptor::new(&ring, Vec::new(), options).unwrap();
                    for part in data[..len].chunks(piece) {
                        e.write_all(part).unwrap();
                    }
                    let out = e.finish().unwrap();
                    assert_eq!(out.len() as u64, ciphertext_len(len as u64, chunk));
                    assert_eq!(decrypt_to_vec(&ring, &out).unwrap(), &data[..len]);
                }
            }
        }
    }

    #[test]
    fn an_unfinished_push_stream_reads_as_truncated() {
        let ring = KeyRing::generate().unwrap();
        let options = EncryptOptions { chunk_size: 8 };
        let mut e = Encryptor::new(&ring, Vec::new(), options).unwrap();
        e.write_all(b"sixteen bytes!!!").unwrap();
        let partial = std::mem::take(e.get_mut());
        drop(e);
        assert!(matches!(
            decrypt_to_vec(&ring, &partial),
            Err(CryptoError::Truncated)
        ));
    }

    #[test]
    fn ciphertext_len_matches_output() {
        let ring = KeyRing::generate().unwrap();
        for chunk in [1u32, 7, 64] {
            for len in [0usize, 1, 6, 7, 8, 63, 64, 65, 200] {
                let mut out = Vec::new();
                let options = EncryptOptions { chunk_size: chunk };
                encrypt_with(&ring, &vec![5u8; len][..], &mut out, options).unwrap();
                assert_eq!(
                    out.len() as u64,
                    ciphertext_len(len as u64, chunk),
                    "{chunk} {len}"
                );
            }
        }
        assert_eq!(ciphertext_len(u64::MAX, 1), u64::MAX);
        assert_eq!(ciphertext_len(0, 0), (HEADER_LEN + TAG_LEN) as u64);
    }

    #[test]
    fn chunk_size_is_checked() {
        let ring = KeyRing::generate().unwrap();
        for bad in [0, MAX_CHUNK_SIZE + 1] {
            let result = encrypt_with(
                &ring,
                &b""[..],
                io::sink(),
                EncryptOptions { chunk_size: bad },
            );
            assert!(matches!(result, Err(CryptoError::InvalidChunkSize(_))));
        }
    }

    #[test]
    fn read_full_survives_interrupts() {
        struct Flaky(u8);
        impl Read for Flaky {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0 += 1;
                if self.0.is_multiple_of(2) {
                    return Err(io::ErrorKind::Interrupted.into());
                }
                buf[0] = self.0;
                Ok(1)
            }
        }
        let mut buf = [0u8; 3];
        assert_eq!(read_full(&mut Flaky(0), &mut buf).unwrap(), 3);
        assert_eq!(buf, [1, 3, 5]);
    }

    #[test]
    fn failure_is_sticky() {
        let ring = KeyRing::generate().unwrap();
        let options = EncryptOptions { chunk_size: 16 };
        let mut bytes = Vec::new();
        encrypt_with(&ring, &[1u8; 40][..], &mut bytes, options).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let mut decryptor = Decryptor::new(&ring, &bytes[..]).unwrap();
        let mut out = Vec::new();
        assert!(decryptor.read_to_end(&mut out).is_err());
        assert_eq!(out.len(), 32, "two good chunks, none of the bad one");
        let again = decryptor.read(&mut [0u8; 8]).unwrap_err();
        assert!(matches!(
            CryptoError::from(again),
            CryptoError::Tampered { chunk: 2 }
        ));
    }
}
