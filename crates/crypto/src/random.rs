//! The one source of randomness: the operating system's CSPRNG via `ring`.

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{CryptoError, Result};

pub(crate) fn fill(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Primitive("system random number generator unavailable"))
}

pub(crate) fn array<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}
