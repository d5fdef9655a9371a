//! Sealed values: short secrets (tokens, credentials) kept in database columns as a compact
//! string `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`.
//!
//! The caller's context (e.g. `"integrations.token:42"`) is authenticated, so a value
//! copied into another column or row fails to open. Values use a key derived from the
//! master key by HKDF, never the master key itself.

use ring::aead::{Aad, Nonce};
use zeroize::{Zeroize, Zeroizing};

use crate::base64url;
use crate::error::{CryptoError, Result};
use crate::header::TAG_LEN;
use crate::keyring::{KeyId, KeyRing, MasterKey};
use crate::random;

const PREFIX: &str = "v1";
const NONCE_LEN: usize = 12;
const AAD_LABEL: &[u8] = b"aiaas-crypto/sealed-value/v1\0";

/// Seals `plaintext` under the ring's active key, bound to `context`.
pub fn seal_value(ring: &KeyRing, plaintext: &[u8], context: &str) -> Result<String> {
    let master = ring.active_key();
    let nonce = random::array::<NONCE_LEN>()?;
    let mut buf = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN));
    buf.extend_from_slice(&nonce);
    buf.extend_from_slice(plaintext);
    let tag = master
        .value_key()?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(master.id(), context)),
            &mut buf[NONCE_LEN..],
        )
        .map_err(|_| CryptoError::Primitive("AES-256-GCM seal"))?;
    buf.extend_from_slice(tag.as_ref());
    Ok(format!(
        "{PREFIX}.{}.{}",
        master.id(),
        base64url::encode(&buf)
    ))
}

/// Opens a value made by `seal_value` with the same `context`.
pub fn open_value(ring: &KeyRing, sealed: &str, context: &str) -> Result<Vec<u8>> {
    let (key_id, body) = split(sealed)?;
    let master = ring.key(&key_id)?;
    open_with(master, body, context)
}

/// Re-seals a value under the ring's active key (for rotation), or `None` if it already
/// uses it. Fails like `open_value` if the value does not open.
pub fn reseal_value(ring: &KeyRing, sealed: &str, context: &str) -> Result<Option<String>> {
    let (key_id, body) = split(sealed)?;
    let plaintext = Zeroizing::new(open_with(ring.key(&key_id)?, body, context)?);
    if key_id == *ring.active_id() {
        return Ok(None);
    }
    seal_value(ring, &plaintext, context).map(Some)
}

fn split(sealed: &str) -> Result<(KeyId, &str)> {
    let mut parts = sealed.splitn(3, '.');
    let (Some(prefix), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CryptoError::MalformedValue("expected v1.<key id>.<data>"));
    };
    if prefix != PREFIX {
        return Err(CryptoError::MalformedValue("unknown version prefix"));
    }
    let key_id = KeyId::new(id).map_err(|_| CryptoError::MalformedValue("invalid key id"))?;
    Ok((key_id, body))
}

fn open_with(master: &MasterKey, body: &str, context: &str) -> Result<Vec<u8>> {
    let mut bytes =
        base64url::decode(body).ok_or(CryptoError::MalformedValue("data is not base64url"))?;
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::MalformedValue("data too short"));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[..NONCE_LEN]);
    let opened = master
        .value_key()?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(master.id(), context)),
            &mut bytes[NONCE_LEN..],
        )
        .map(|plain| plain.len());
    let Ok(plain_len) = opened else {
        // A failed open may leave unauthenticated plaintext in the buffer.
        bytes.zeroize();
        return Err(CryptoError::ValueTampered);
    };
    // Shift the plaintext to the front instead of copying it into a second buffer.
    bytes.copy_within(NONCE_LEN..NONCE_LEN + plain_len, 0);
    bytes.truncate(plain_len);
    Ok(bytes)
}

/// Label ‖ key id ‖ NUL ‖ context. Key ids contain no NUL, so the split is unambiguous.
fn aad(key_id: &KeyId, context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + key_id.as_str().len() + 1 + context.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.extend_from_slice(key_id.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(context.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_format() {
        let ring = KeyRing::generate().unwrap();
        let sealed = seal_value(&ring, b"sk-live-123", "integrations.token:7").unwrap();
        let prefix = format!("v1.{}.", ring.active_id());
        assert!(sealed.starts_with(&prefix), "{sealed}");
        assert!(!sealed.contains("sk-live"));
        assert_eq!(
            open_value(&ring, &sealed, "integrations.token:7").unwrap(),
            b"sk-live-123"
        );
        let empty = seal_value(&ring, b"", "c").unwrap();
        assert_eq!(open_value(&ring, &empty, "c").unwrap(), b"");
    }

    #[test]
    fn wrong_context_or_edit_fails() {
        let ring = KeyRing::generate().unwrap();
        let sealed = seal_value(&ring, b"secret", "users.totp:1").unwrap();
        assert!(matches!(
            open_value(&ring, &sealed, "users.totp:2"),
            Err(CryptoError::ValueTampered)
        ));
        let mut edited = sealed.into_bytes();
        let last = edited.len() - 2;
        edited[last] = if edited[last] == b'A' { b'B' } else { b'A' };
        let edited = String::from_utf8(edited).unwrap();
        assert!(open_value(&ring, &edited, "users.totp:1").is_err());
    }

    #[test]
    fn malformed_and_unknown() {
        let ring = KeyRing::generate().unwrap();
        for bad in [
            "",
            "v1",
            "v1.mk-1",
            "v2.mk-1.AAAA",
            "v1.mk 1.AAAA",
            "v1.k.!!",
            "v1.k.AAAA",
        ] {
            let err = open_value(&ring, bad, "c").unwrap_err();
            assert!(
                matches!(
                    err,
                    CryptoError::MalformedValue(_) | CryptoError::UnknownKey(_)
                ),
                "{bad}: {err}"
            );
        }
        let other = KeyRing::generate().unwrap();
        let sealed = seal_value(&other, b"x", "c").unwrap();
        assert!(matches!(
            open_value(&ring, &sealed, "c"),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn reseal_moves_to_the_active_key() {
        let mut ring = KeyRing::generate().unwrap();
        let sealed = seal_value(&ring, b"pw", "c").unwrap();
        assert_eq!(reseal_value(&ring, &sealed, "c").unwrap(), None);
        let old = ring.active_id().clone();
        ring.rotate().unwrap();
        let fresh = reseal_value(&ring, &sealed, "c").unwrap().unwrap();
        ring.retire(&old).unwrap();
        assert_eq!(open_value(&ring, &fresh, "c").unwrap(), b"pw");
        assert!(matches!(
            open_value(&ring, &sealed, "c"),
            Err(CryptoError::UnknownKey(_))
        ));
    }
}
