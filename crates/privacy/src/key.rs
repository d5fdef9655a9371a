//! The secret behind pseudonyms: a 32-byte HMAC-SHA256 key, one per tenant.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::PrivacyError;

/// Domain separation for [`PseudonymKey::derive`], so a master secret shared with other
/// uses never yields the same bytes here.
const DERIVE_CONTEXT: &[u8] = b"aiaas-pseudonym:";

/// A tenant's pseudonymisation key. Tokens made with one key cannot be linked to tokens
/// made with another, so tenants cannot join each other's masked data.
///
/// `Debug` prints `PseudonymKey(***)`; there is deliberately no `Display` or `Serialize`.
#[derive(Clone)]
pub struct PseudonymKey([u8; 32]);

impl PseudonymKey {
    /// Wraps 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        PseudonymKey(bytes)
    }

    /// The key for `tenant` under the platform's master secret:
    /// HMAC-SHA256(master, `"aiaas-pseudonym:" + tenant`).
    pub fn derive(master: &[u8], tenant: &str) -> Self {
        PseudonymKey(hmac_sha256(master, &[DERIVE_CONTEXT, tenant.as_bytes()]))
    }

    /// Reads a key written as 64 hex characters (surrounding whitespace ignored), as it is
    /// kept in configuration.
    pub fn from_hex(text: &str) -> Result<Self, PrivacyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| PrivacyError::InvalidKey)?;
        Ok(PseudonymKey(bytes))
    }

    /// The first 12 hex characters of HMAC-SHA256(key, `label + ":" + normalised`).
    /// 48 bits: collisions stay unlikely up to millions of distinct values per tenant,
    /// while the token stays short enough to read in a log line.
    pub(crate) fn token(&self, label: &str, normalised: &str) -> String {
        let mac = hmac_sha256(&self.0, &[label.as_bytes(), b":", normalised.as_bytes()]);
        hex::encode(&mac[..6])
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(***)")
    }
}

impl Drop for PseudonymKey {
    fn drop(&mut self) {
        // Best effort: shortens the time the secret sits in freed memory. black_box keeps
        // the optimiser from dropping the store as dead.
        self.0 = [0; 32];
        std::hint::black_box(&self.0);
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC hashes over-long keys and pads short ones, so every key length is accepted;
    // the error case exists only because `KeyInit` is shared with fixed-key MACs.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_leak_bytes() {
        let key = PseudonymKey::new([0xab; 32]);
        let shown = format!("{key:?} {:?}", Some(&key));
        assert_eq!(format!("{key:?}"), "PseudonymKey(***)");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn derive_matches_hmac_definition() {
        // The one-part helper is checked against RFC 4231 below.
        let key = PseudonymKey::derive(b"Jefe", "tenant-a");
        let expected = hmac_sha256(b"Jefe", &[b"aiaas-pseudonym:tenant-a"]);
        assert_eq!(key.0, expected);
        assert_ne!(key.0, PseudonymKey::derive(b"Jefe", "tenant-b").0);
    }

    #[test]
    fn rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn from_hex_round_trips_and_rejects_garbage() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let key = PseudonymKey::from_hex(hex);
        assert!(key.is_ok());
        assert!(matches!(
            PseudonymKey::from_hex("abcd"),
            Err(PrivacyError::InvalidKey)
        ));
        assert!(PseudonymKey::from_hex(&"zz".repeat(32)).is_err());
        let err = PseudonymKey::from_hex(&hex[..62])
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| !e.contains("0011")));
    }

    #[test]
    fn token_is_12_hex_chars() {
        let t = PseudonymKey::new([7; 32]).token("PHONE", "8613812345678");
        assert_eq!(t.len(), 12);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
