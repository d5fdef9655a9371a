//! Master keys and the key ring: which key wraps new data keys (the active one), which
//! older keys may still unwrap, and the ring's JSON persistence format.
//!
//! The JSON form (file or environment value):
//! `{"version":1,"active":"mk-…","keys":[{"id":"mk-…","secret":"<64 hex>","created_ms":…}]}`.
//! A bare 64-hex-character key is also accepted; its id is derived from the key so that
//! the same value always yields the same id across restarts.

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::aead::{self, LessSafeKey, UnboundKey};
use ring::{digest, hkdf};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::base64url;
use crate::error::{CryptoError, Result};
use crate::key_file;
use crate::random;

/// Length of a master key's secret in bytes (AES-256).
pub const MASTER_KEY_LEN: usize = 32;
/// Longest key id: it must fit the header's fixed, zero-padded key-id field.
pub const MAX_KEY_ID_LEN: usize = 32;

const RING_FORMAT_VERSION: u32 = 1;
const VALUE_KEY_INFO: &[u8] = b"aiaas-crypto/sealed-value/v1";
const DERIVED_ID_LABEL: &[u8] = b"aiaas-crypto/key-id/v1\0";

/// Names a master key. 1-32 characters from `A-Z a-z 0-9 _ -`: no NUL (the header field is
/// zero padded) and no `.` (the separator of sealed values).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct KeyId(String);

impl KeyId {
    pub fn new(id: impl Into<String>) -> Result<KeyId> {
        let id = id.into();
        let valid_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
        if id.is_empty() || id.len() > MAX_KEY_ID_LEN || !id.bytes().all(valid_char) {
            return Err(CryptoError::InvalidKeyId(id));
        }
        Ok(KeyId(id))
    }

    /// `mk-` and 12 random hex characters.
    pub fn generate() -> Result<KeyId> {
        Ok(KeyId(format!("mk-{}", hex::encode(random::array::<6>()?))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One 256-bit master key. The secret is wiped from memory on drop and never printed.
pub struct MasterKey {
    id: KeyId,
    secret: Zeroizing<[u8; MASTER_KEY_LEN]>,
    created_ms: u64,
}

impl MasterKey {
    /// A fresh random key with a fresh random id.
    pub fn generate() -> Result<MasterKey> {
        let mut secret = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        random::fill(secret.as_mut())?;
        Ok(MasterKey {
            id: KeyId::generate()?,
            secret,
            created_ms: now_ms(),
        })
    }

    /// Imports an existing key (e.g. fetched from an external KMS).
    pub fn from_secret(id: KeyId, secret: [u8; MASTER_KEY_LEN], created_ms: u64) -> MasterKey {
        let secret = Zeroizing::new(secret);
        MasterKey {
            id,
            secret,
            created_ms,
        }
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// The AES-256-GCM key that wraps data keys.
    pub(crate) fn wrapping_key(&self) -> Result<LessSafeKey> {
        aes_key(self.secret.as_ref())
    }

    /// A separate key for sealed column values, derived with HKDF so the two uses never
    /// share a key even though they share a master secret.
    pub(crate) fn value_key(&self) -> Result<LessSafeKey> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(self.secret.as_ref());
        let okm = prk
            .expand(&[VALUE_KEY_INFO], &aead::AES_256_GCM)
            .map_err(|_| CryptoError::Primitive("HKDF expand"))?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("secret", &format_args!("***"))
            .field("created_ms", &self.created_ms)
            .finish()
    }
}

/// The active master key (wraps every new data key) plus older keys kept to unwrap objects
/// written before a rotation.
#[derive(Debug)]
pub struct KeyRing {
    active: KeyId,
    keys: Vec<MasterKey>,
}

impl KeyRing {
    /// An in-memory ring holding one fresh key.
    pub fn generate() -> Result<KeyRing> {
        Ok(KeyRing::from_key(MasterKey::generate()?))
    }

    /// A ring whose only (and active) key is `key`.
    pub fn from_key(key: MasterKey) -> KeyRing {
        KeyRing {
            active: key.id.clone(),
            keys: vec![key],
        }
    }

    /// Parses the key-ring JSON, or a bare 64-hex-character key (as an environment
    /// variable would carry it). Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<KeyRing> {
        let text = text.trim();
        if text.starts_with('{') {
            return parse_json(text);
        }
        if text.len() == 2 * MASTER_KEY_LEN {
            let secret = decode_hex_secret(text).ok_or_else(|| {
                CryptoError::InvalidKeyRing("bare key is not 64 hex characters".into())
            })?;
            return Ok(KeyRing::from_key(MasterKey::from_secret(
                derived_id(&secret),
                *secret,
                0,
            )));
        }
        Err(CryptoError::InvalidKeyRing(
            "expected key-ring JSON or a 64-hex-character key".into(),
        ))
    }

    /// Creates a ring with one fresh key and writes it to `path` (mode 0600, atomically).
    /// Refuses to overwrite an existing file, so a typo cannot destroy the only copy of a key.
    pub fn create_file(path: &Path) -> Result<KeyRing> {
        let ring = KeyRing::generate()?;
        key_file::create(path, &ring.to_json()?)?;
        Ok(ring)
    }

    /// Loads a ring written by `create_file`/`save_file` (or holding a bare hex key).
    /// Refuses a file that group or others may access.
    pub fn load_file(path: &Path) -> Result<KeyRing> {
        KeyRing::parse(&key_file::read_private(path)?)
    }

    /// Atomically replaces `path` with this ring (mode 0600); used after `rotate`/`retire`.
    pub fn save_file(&self, path: &Path) -> Result<()> {
        key_file::replace(path, &self.to_json()?)
    }

    /// Adds a fresh key and makes it active; older keys remain for unwrapping.
    pub fn rotate(&mut self) -> Result<KeyId> {
        let mut key = MasterKey::generate()?;
        while self.contains(&key.id) {
            key.id = KeyId::generate()?;
        }
        self.active = key.id.clone();
        self.keys.push(key);
        Ok(self.active.clone())
    }

    /// Removes a key. Only the caller knows whether any object still references it (run
    /// `rewrap_file` over everything first); the active key is always refused.
    pub fn retire(&mut self, id: &KeyId) -> Result<()> {
        if *id == self.active {
            return Err(CryptoError::RetireActive(id.clone()));
        }
        let before = self.keys.len();
        self.keys.retain(|key| key.id != *id);
        if self.keys.len() == before {
            return Err(CryptoError::UnknownKey(id.clone()));
        }
        Ok(())
    }

    pub fn active_id(&self) -> &KeyId {
        &self.active
    }

    /// Every key id in the ring, oldest first.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|key| &key.id)
    }

    pub fn contains(&self, id: &KeyId) -> bool {
        self.keys.iter().any(|key| key.id == *id)
    }

    pub(crate) fn active_key(&self) -> &MasterKey {
        // `active` is always one of `keys`: every constructor and mutator keeps it so.
        self.keys
            .iter()
            .find(|key| key.id == self.active)
            .unwrap_or(&self.keys[0])
    }

    pub(crate) fn key(&self, id: &KeyId) -> Result<&MasterKey> {
        self.keys
            .iter()
            .find(|key| key.id == *id)
            .ok_or_else(|| CryptoError::UnknownKey(id.clone()))
    }

    /// The JSON form; wiped from memory when the caller drops it.
    fn to_json(&self) -> Result<Zeroizing<Vec<u8>>> {
        let file = RingFile {
            version: RING_FORMAT_VERSION,
            active: self.active.0.clone(),
            keys: self
                .keys
                .iter()
                .map(|key| KeyEntry {
                    id: key.id.0.clone(),
                    secret: hex::encode(key.secret.as_ref()),
                    created_ms: key.created_ms,
                })
                .collect(),
        };
        // Pre-size the buffer so serde_json never reallocates and leaves unwiped copies.
        let mut out = Zeroizing::new(Vec::with_capacity(256 + 192 * self.keys.len()));
        serde_json::to_writer_pretty(&mut *out, &file)
            .map_err(|_| CryptoError::InvalidKeyRing("could not serialise".into()))?;
        out.push(b'\n');
        Ok(out)
    }
}

#[derive(Serialize, Deserialize)]
struct RingFile {
    version: u32,
    active: String,
    keys: Vec<KeyEntry>,
}

#[derive(Serialize, Deserialize)]
struct KeyEntry {
    id: String,
    secret: String,
    #[serde(default)]
    created_ms: u64,
}

impl Drop for KeyEntry {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

fn parse_json(text: &str) -> Result<KeyRing> {
    // serde_json's messages can quote the offending value, which might be a secret: keep
    // only the position.
    let file: RingFile = serde_json::from_str(text).map_err(|e| {
        CryptoError::InvalidKeyRing(format!(
            "malformed JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    if file.version != RING_FORMAT_VERSION {
        return Err(CryptoError::InvalidKeyRing(format!(
            "unsupported key-ring version {} (expected {RING_FORMAT_VERSION})",
            file.version
        )));
    }
    let mut keys: Vec<MasterKey> = Vec::with_capacity(file.keys.len());
    for entry in &file.keys {
        let id = KeyId::new(entry.id.clone())?;
        let secret = decode_secret(&entry.secret).ok_or_else(|| {
            CryptoError::InvalidKeyRing(format!(
                "secret of key {id} must be 32 bytes as 64 hex characters or base64"
            ))
        })?;
        if keys.iter().any(|key| key.id == id) {
            return Err(CryptoError::DuplicateKey(id));
        }
        keys.push(MasterKey {
            id,
            secret,
            created_ms: entry.created_ms,
        });
    }
    let active = KeyId::new(file.active.clone())?;
    if !keys.iter().any(|key| key.id == active) {
        return Err(CryptoError::InvalidKeyRing(format!(
            "active key {active} is not among the ring's keys"
        )));
    }
    Ok(KeyRing { active, keys })
}

fn decode_secret(text: &str) -> Option<Zeroizing<[u8; MASTER_KEY_LEN]>> {
    if text.len() == 2 * MASTER_KEY_LEN {
        return decode_hex_secret(text);
    }
    let bytes = Zeroizing::new(base64url::decode(text)?);
    let mut secret = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    if bytes.len() != MASTER_KEY_LEN {
        return None;
    }
    secret.copy_from_slice(&bytes);
    Some(secret)
}

fn decode_hex_secret(text: &str) -> Option<Zeroizing<[u8; MASTER_KEY_LEN]>> {
    let mut secret = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    hex::decode_to_slice(text, secret.as_mut()).ok()?;
    Some(secret)
}

/// A stable id for a key given without one: a hash of the key (48 bits of SHA-256 reveal
/// nothing usable about a 256-bit secret).
fn derived_id(secret: &[u8; MASTER_KEY_LEN]) -> KeyId {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(DERIVED_ID_LABEL);
    ctx.update(secret);
    KeyId(format!("mk-{}", hex::encode(&ctx.finish().as_ref()[..6])))
}

pub(crate) fn aes_key(secret: &[u8]) -> Result<LessSafeKey> {
    let unbound = UnboundKey::new(&aead::AES_256_GCM, secret)
        .map_err(|_| CryptoError::Primitive("AES-256-GCM key setup"))?;
    Ok(LessSafeKey::new(unbound))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn key_ids_are_validated() {
        assert!(KeyId::new("mk-0123456789ab").is_ok());
        assert!(KeyId::new("a".repeat(32)).is_ok());
        for bad in ["", "a.b", "a b", "é", "x\0"] {
            assert!(KeyId::new(bad).is_err(), "{bad:?}");
        }
        assert!(KeyId::new("a".repeat(33)).is_err());
        let generated = KeyId::generate().unwrap();
        assert_eq!(generated.as_str().len(), 15);
        assert!(generated.as_str().starts_with("mk-"));
    }

    #[test]
    fn bare_hex_key_gets_a_stable_id() {
        let a = KeyRing::parse(HEX).unwrap();
        let b = KeyRing::parse(&format!("  {HEX}\n")).unwrap();
        assert_eq!(a.active_id(), b.active_id());
        assert!(a.active_id().as_str().starts_with("mk-"));
        assert!(KeyRing::parse(&HEX.replace('0', "g")).is_err());
    }

    #[test]
    fn json_round_trips() {
        let mut ring = KeyRing::generate().unwrap();
        let old = ring.active_id().clone();
        let new = ring.rotate().unwrap();
        let json = ring.to_json().unwrap();
        let back = KeyRing::parse(std::str::from_utf8(&json).unwrap()).unwrap();
        assert_eq!(back.active_id(), &new);
        assert_eq!(
            back.key_ids().cloned().collect::<Vec<_>>(),
            vec![old.clone(), new]
        );
        assert_eq!(
            *back.key(&old).unwrap().secret,
            *ring.key(&old).unwrap().secret
        );
    }

    #[test]
    fn json_errors_never_echo_secrets() {
        let text = format!(
            r#"{{"version":1,"active":"k","keys":[{{"id":"k","secret":"{HEX}","created_ms":"{HEX}"}}]}}"#
        );
        let err = KeyRing::parse(&text).unwrap_err().to_string();
        assert!(!err.contains(HEX), "{err}");
        let short = r#"{"version":1,"active":"k","keys":[{"id":"k","secret":"abcd"}]}"#;
        let err = KeyRing::parse(short).unwrap_err().to_string();
        assert!(!err.contains("abcd"), "{err}");
    }

    #[test]
    fn json_structure_is_checked() {
        let entry = |id: &str| format!(r#"{{"id":"{id}","secret":"{HEX}"}}"#);
        let missing = format!(r#"{{"version":1,"active":"x","keys":[{}]}}"#, entry("k"));
        assert!(matches!(
            KeyRing::parse(&missing),
            Err(CryptoError::InvalidKeyRing(_))
        ));
        let dup = format!(
            r#"{{"version":1,"active":"k","keys":[{},{}]}}"#,
            entry("k"),
            entry("k")
        );
        assert!(matches!(
            KeyRing::parse(&dup),
            Err(CryptoError::DuplicateKey(_))
        ));
        let v2 = format!(r#"{{"version":2,"active":"k","keys":[{}]}}"#, entry("k"));
        assert!(matches!(
            KeyRing::parse(&v2),
            Err(CryptoError::InvalidKeyRing(_))
        ));
        assert!(KeyRing::parse("nonsense").is_err());
    }

    #[test]
    fn base64_secrets_are_accepted() {
        let bytes = hex::decode(HEX).unwrap();
        let b64 = base64url::encode(&bytes);
        let text =
            format!(r#"{{"version":1,"active":"k","keys":[{{"id":"k","secret":"{b64}"}}]}}"#);
        let ring = KeyRing::parse(&text).unwrap();
        assert_eq!(
            ring.key(ring.active_id()).unwrap().secret.as_slice(),
            &bytes[..]
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let ring = KeyRing::parse(HEX).unwrap();
        let shown = format!("{ring:?} {:?}", ring.active_key());
        assert!(shown.contains("secret: ***"), "{shown}");
        assert!(!shown.contains(HEX) && !shown.contains("0a0b0c"), "{shown}");
    }

    #[test]
    fn rotate_and_retire() {
        let mut ring = KeyRing::generate().unwrap();
        let first = ring.active_id().clone();
        let second = ring.rotate().unwrap();
        assert_ne!(first, second);
        assert_eq!(ring.active_key().id(), &second);
        assert!(matches!(
            ring.retire(&second),
            Err(CryptoError::RetireActive(_))
        ));
        ring.retire(&first).unwrap();
        assert!(!ring.contains(&first));
        assert!(matches!(
            ring.retire(&first),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn value_key_differs_from_wrapping_key() {
        // Same plaintext, nonce and AAD under both keys must give different ciphertexts.
        let ring = KeyRing::parse(HEX).unwrap();
        let key = ring.active_key();
        let seal = |k: LessSafeKey| {
            let mut buf = [7u8; 32];
            let nonce = aead::Nonce::assume_unique_for_key([0; 12]);
            let tag = k
                .seal_in_place_separate_tag(nonce, aead::Aad::empty(), &mut buf)
                .unwrap();
            (buf, tag.as_ref().to_vec())
        };
        assert_ne!(
            seal(key.wrapping_key().unwrap()),
            seal(key.value_key().unwrap())
        );
    }
}
