//! Base64 as the key ring and sealed values spell it, on the `base64` crate: the URL-safe
//! alphabet without padding on output; on input the standard alphabet and padding too, so
//! `openssl rand -base64 32` keys load. Stray bits in the last symbol are refused, so every
//! byte string has exactly one accepted spelling per alphabet.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

const LENIENT_PADDING: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT_PADDING);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT_PADDING);

pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

/// `None` on a character outside the alphabet, an impossible length, or stray bits.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE
        .decode(text)
        .or_else(|_| STANDARD.decode(text))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in cases {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).as_deref(), Some(plain.as_bytes()));
        }
    }

    #[test]
    fn round_trips_every_byte_and_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..data.len() {
            let coded = encode(&data[..len]);
            assert!(!coded.contains(['+', '/', '=']));
            assert_eq!(decode(&coded).as_deref(), Some(&data[..len]));
        }
    }

    #[test]
    fn accepts_standard_alphabet_with_padding() {
        assert_eq!(decode("+/8=").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(decode("Zg==").as_deref(), Some(&b"f"[..]));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(decode("Z"), None);
        assert_eq!(decode("Zm9v!"), None);
        assert_eq!(decode("Zh"), None, "stray low bits in the last symbol");
        assert_eq!(decode("Zm.v"), None);
    }
}
