//! End-to-end behaviour of the envelope format through the public API only: round trips,
//! every kind of tampering, key rotation with rewrap, key-ring files and sealed values.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use aiaas_crypto::{
    ciphertext_len, decrypt_to_vec, encrypt, encrypt_to_vec, encrypt_with, header_key_id,
    is_encrypted, open_value, rewrap_file, rewrap_header, seal_value, verify, CryptoError,
    Decryptor, EncryptOptions, KeyRing, DEFAULT_CHUNK_SIZE, HEADER_LEN,
};

const TAG: usize = 16;
const KIB: usize = 1024;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn seal(ring: &KeyRing, plaintext: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let options = EncryptOptions {
        chunk_size: chunk as u32,
    };
    let written = encrypt_with(ring, plaintext, &mut out, options).unwrap();
    assert_eq!(written, plaintext.len() as u64);
    out
}

/// Reads through a `Decryptor` with an awkward buffer size; returns what was handed out
/// and the error that stopped it, if any.
fn read_all(ring: &KeyRing, bytes: &[u8]) -> (Vec<u8>, Option<CryptoError>) {
    let mut decryptor = match Decryptor::new(ring, bytes) {
        Ok(d) => d,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 333];
    loop {
        match decryptor.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
                assert!(e.get_ref().is_some_and(|inner| inner.is::<CryptoError>()));
                return (out, Some(CryptoError::from(e)));
            }
        }
    }
}

/// Output of a failed read must be authentic plaintext ending on a chunk boundary, and
/// contain nothing from chunk `bad_chunk` onwards.
fn assert_only_good_chunks(out: &[u8], plaintext: &[u8], chunk: usize, bad_chunk: usize) {
    assert_eq!(
        out,
        &plaintext[..out.len()],
        "released bytes are not the plaintext"
    );
    assert_eq!(out.len() % chunk, 0, "released part of a chunk");
    assert!(
        out.len() <= bad_chunk * chunk,
        "released {} bytes from bad chunk {bad_chunk}",
        out.len()
    );
}

#[test]
fn round_trips_at_every_interesting_size() {
    let ring = KeyRing::generate().unwrap();
    let big = 3 * KIB * KIB + 5;
    for chunk in [KIB, DEFAULT_CHUNK_SIZE as usize] {
        for len in [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk, big] {
            let plaintext = pattern(len);
            let bytes = seal(&ring, &plaintext, chunk);
            assert_eq!(bytes.len() as u64, ciphertext_len(len as u64, chunk as u32));
            assert!(is_encrypted(&bytes));
            assert_eq!(
                decrypt_to_vec(&ring, &bytes).unwrap(),
                plaintext,
                "chunk {chunk} len {len}"
            );
            let (streamed, err) = read_all(&ring, &bytes);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(streamed, plaintext);
            let report = verify(&ring, &bytes[..]).unwrap();
            assert_eq!(report.plaintext_len, len as u64);
            assert_eq!(report.chunks, (len / chunk + 1) as u64);
            assert_eq!(report.chunk_size, chunk as u32);
            assert_eq!(&report.key_id, ring.active_id());
        }
    }
    let quick = encrypt_to_vec(&ring, b"hello").unwrap();
    assert_eq!(decrypt_to_vec(&ring, &quick).unwrap(), b"hello");
}

#[test]
fn same_plaintext_encrypts_differently() {
    let ring = KeyRing::generate().unwrap();
    let a = encrypt_to_vec(&ring, b"same").unwrap();
    let b = encrypt_to_vec(&ring, b"same").unwrap();
    assert_ne!(a, b);
    assert!(!is_encrypted(b"same"));
}

/// 64 MiB in 4 KiB blocks of one value each, served in short reads.
struct Generated {
    pos: usize,
    len: usize,
}

impl Generated {
    fn block_value(pos: usize) -> u8 {
        ((pos / 4096) * 31 % 251) as u8
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(self.len - self.pos)
            .min(4096 - self.pos % 4096);
        buf[..n].fill(Generated::block_value(self.pos));
        self.pos += n;
        Ok(n)
    }
}

struct Counting<W>(W, u64);

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[test]
fn streams_64_mib_in_bounded_memory() {
    let len = 64 * KIB * KIB;
    let ring = KeyRing::generate().unwrap();
    let mut sink = Counting(io::sink(), 0);
    assert_eq!(
        encrypt(&ring, Generated { pos: 0, len }, &mut sink).unwrap(),
        len as u64
    );
    assert_eq!(sink.1, ciphertext_len(len as u64, DEFAULT_CHUNK_SIZE));

    let mut file = tempfile::tempfile().unwrap();
    encrypt(&ring, Generated { pos: 0, len }, &mut file).unwrap();
    let mut decryptor = Decryptor::new(&ring, io::BufReader::new(reopen(&mut file))).unwrap();
    let mut buf = vec![0u8; 10_000];
    let mut pos = 0;
    loop {
        let n = decryptor.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for (i, byte) in buf[..n].iter().enumerate() {
            if *byte != Generated::block_value(pos + i) {
                panic!("mismatch at {}", pos + i);
            }
        }
        pos += n;
    }
    assert_eq!(pos, len);
    assert_eq!(
        verify(&ring, reopen(&mut file)).unwrap().plaintext_len,
        len as u64
    );
}

fn reopen(file: &mut fs::File) -> fs::File {
    use std::io::Seek;
    file.rewind().unwrap();
    file.try_clone().unwrap()
}

#[test]
fn truncation_anywhere_is_detected() {
    let ring = KeyRing::generate().unwrap();
    for chunk in [64, KIB] {
        let plaintext = pattern(5 * chunk + 10);
        let bytes = seal(&ring, &plaintext, chunk);
        for cut in 0..bytes.len() {
            let (out, err) = read_all(&ring, &bytes[..cut]);
            let err = err.unwrap_or_else(|| panic!("cut at {cut} decrypted without error"));
            if cut == 0 {
                assert!(matches!(err, CryptoError::NotEncrypted), "cut {cut}: {err}");
                continue;
            }
            if cut < HEADER_LEN {
                assert!(matches!(err, CryptoError::Truncated), "cut {cut}: {err}");
                continue;
            }
            let body = cut - HEADER_LEN;
            if body.is_multiple_of(chunk + TAG) {
                assert!(
                    matches!(err, CryptoError::Truncated),
                    "boundary cut {cut}: {err}"
                );
            } else {
                assert!(
                    matches!(err, CryptoError::Truncated | CryptoError::Tampered { .. }),
                    "cut {cut}: {err}"
                );
            }
            assert_only_good_chunks(&out, &plaintext, chunk, body / (chunk + TAG));
            assert!(decrypt_to_vec(&ring, &bytes[..cut]).is_err());
            assert!(verify(&ring, &bytes[..cut]).is_err());
        }
    }
}

#[test]
fn a_flipped_bit_anywhere_is_detected() {
    let ring = KeyRing::generate().unwrap();
    let chunk = KIB;
    let plaintext = pattern(3000);
    let bytes = seal(&ring, &plaintext, chunk);
    for pos in 0..bytes.len() {
        let mut edited = bytes.clone();
        edited[pos] ^= 1 << (pos % 8);
        let (out, err) = read_all(&ring, &edited);
        let err = err.unwrap_or_else(|| panic!("flip at {pos} went unnoticed"));
        let expected = match pos {
            0..=7 => matches!(err, CryptoError::NotEncrypted),
            8 => matches!(err, CryptoError::UnsupportedVersion(_)),
            9..=12 => matches!(
                err,
                CryptoError::InvalidHeader(_) | CryptoError::HeaderTampered { .. }
            ),
            13..=28 | 61..=120 => matches!(err, CryptoError::HeaderTampered { .. }),
            29..=60 => matches!(
                err,
                CryptoError::InvalidHeader(_) | CryptoError::UnknownKey(_)
            ),
            _ => {
                let bad = (pos - HEADER_LEN) / (chunk + TAG);
                assert_only_good_chunks(&out, &plaintext, chunk, bad);
                matches!(err, CryptoError::Tampered { chunk } if chunk == bad as u64)
            }
        };
        assert!(expected, "flip at {pos}: {err}");
    }
}

#[test]
fn reordered_duplicated_dropped_or_extended_chunks_fail() {
    let ring = KeyRing::generate().unwrap();
    let chunk = 100;
    let plaintext = pattern(350);
    let bytes = seal(&ring, &plaintext, chunk);
    let (header, body) = bytes.split_at(HEADER_LEN);
    let chunks: Vec<&[u8]> = body.chunks(chunk + TAG).collect();
    assert_eq!(chunks.len(), 4);
    let assemble = |order: &[usize]| {
        let mut out = header.to_vec();
        for &i in order {
            out.extend_from_slice(chunks[i]);
        }
        out
    };
    let cases: [(&str, Vec<usize>, usize); 5] = [
        ("swap 0 and 1", vec![1, 0, 2, 3], 0),
        ("swap 1 and 2", vec![0, 2, 1, 3], 1),
        ("duplicate 1", vec![0, 1, 1, 2, 3], 2),
        ("drop 1", vec![0, 2, 3], 1),
        ("final chunk early", vec![0, 3], 1),
    ];
    for (name, order, bad) in cases {
        let (out, err) = read_all(&ring, &assemble(&order));
        let err = err.unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(
            matches!(err, CryptoError::Tampered { chunk } if chunk == bad as u64),
            "{name}: {err}"
        );
        assert_only_good_chunks(&out, &plaintext, chunk, bad);
    }
    for extra in [1, 15, 16, 17, chunk + TAG, 5 * chunk] {
        let mut extended = bytes.clone();
        extended.extend(std::iter::repeat_n(0xAB, extra));
        let (out, err) = read_all(&ring, &extended);
        assert!(
            matches!(err, Some(CryptoError::Tampered { chunk: 3 })),
            "append {extra}: {err:?}"
        );
        assert_only_good_chunks(&out, &plaintext, chunk, 3);
    }
    let mut doubled = bytes.clone();
    doubled.extend_from_slice(chunks[3]);
    assert!(decrypt_to_vec(&ring, &doubled).is_err());
}

#[test]
fn a_wrapped_key_cannot_move_to_another_object() {
    let ring = KeyRing::generate().unwrap();
    let a = encrypt_to_vec(&ring, b"object a").unwrap();
    let b = encrypt_to_vec(&ring, b"object b").unwrap();
    let mut spliced = a[..HEADER_LEN].to_vec();
    spliced.extend_from_slice(&b[HEADER_LEN..]);
    assert!(matches!(
        decrypt_to_vec(&ring, &spliced),
        Err(CryptoError::Tampered { chunk: 0 })
    ));
    let mut moved = b.clone();
    moved[29..HEADER_LEN].copy_from_slice(&a[29..HEADER_LEN]);
    assert!(matches!(
        decrypt_to_vec(&ring, &moved),
        Err(CryptoError::HeaderTampered { .. })
    ));
}

#[test]
fn wrong_ring_and_plaintext_are_named() {
    let ring = KeyRing::generate().unwrap();
    let bytes = encrypt_to_vec(&ring, b"data").unwrap();
    let other = KeyRing::generate().unwrap();
    match decrypt_to_vec(&other, &bytes) {
        Err(CryptoError::UnknownKey(id)) => assert_eq!(&id, ring.active_id()),
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    assert_eq!(&header_key_id(&bytes[..]).unwrap(), ring.active_id());
    assert!(matches!(
        decrypt_to_vec(&ring, b"{\"plain\":true}"),
        Err(CryptoError::NotEncrypted)
    ));
    assert!(matches!(
        header_key_id(&b""[..]),
        Err(CryptoError::NotEncrypted)
    ));
    let empty = encrypt_to_vec(&ring, b"").unwrap();
    assert_eq!(empty.len(), HEADER_LEN + TAG);
    assert!(matches!(
        decrypt_to_vec(&ring, &empty[..HEADER_LEN]),
        Err(CryptoError::Truncated)
    ));

    // Same key id, different secret: the header no longer authenticates.
    let id = ring.active_id().as_str();
    let zero = "00".repeat(32);
    let impostor = KeyRing::parse(&format!(
        r#"{{"version":1,"active":"{id}","keys":[{{"id":"{id}","secret":"{zero}"}}]}}"#
    ))
    .unwrap();
    assert!(matches!(
        decrypt_to_vec(&impostor, &bytes),
        Err(CryptoError::HeaderTampered { .. })
    ));
}

#[test]
fn rotation_rewrap_and_retirement() {
    let dir = tempfile::tempdir().unwrap();
    let ring_path = dir.path().join("keyring.json");
    let mut ring = KeyRing::create_file(&ring_path).unwrap();
    let old_id = ring.active_id().clone();

    let objects: Vec<(std::path::PathBuf, Vec<u8>)> = (0..3)
        .map(|i| {
            let path = dir.path().join(format!("object-{i}.enc"));
            let plaintext = pattern(i * 2500 + 1);
            fs::write(&path, seal(&ring, &plaintext, KIB)).unwrap();
            (path, plaintext)
        })
        .collect();
    set_mode(&objects[0].0, 0o640);

    let new_id = ring.rotate().unwrap();
    ring.save_file(&ring_path).unwrap();
    let mut ring = KeyRing::load_file(&ring_path).unwrap();
    assert_eq!(ring.active_id(), &new_id);
    let fresh = encrypt_to_vec(&ring, b"new object").unwrap();
    assert_eq!(header_key_id(&fresh[..]).unwrap(), new_id);

    for (path, plaintext) in &objects {
        let before = fs::read(path).unwrap();
        assert_eq!(
            &decrypt_to_vec(&ring, &before).unwrap(),
            plaintext,
            "old key still unwraps"
        );
        assert!(rewrap_file(&ring, path).unwrap());
        let after = fs::read(path).unwrap();
        assert_eq!(header_key_id(&after[..]).unwrap(), new_id);
        assert_eq!(
            before[HEADER_LEN..],
            after[HEADER_LEN..],
            "payload must be untouched"
        );
        assert_eq!(
            before[..29],
            after[..29],
            "bound header part must be untouched"
        );
        assert!(
            !rewrap_file(&ring, path).unwrap(),
            "second rewrap is a no-op"
        );
        assert_eq!(fs::read(path).unwrap(), after);
    }
    assert_eq!(mode(&objects[0].0), 0o640, "rewrap keeps the file's mode");

    ring.retire(&old_id).unwrap();
    assert!(matches!(
        ring.retire(&new_id),
        Err(CryptoError::RetireActive(_))
    ));
    ring.save_file(&ring_path).unwrap();
    let ring = KeyRing::load_file(&ring_path).unwrap();
    assert_eq!(ring.key_ids().collect::<Vec<_>>(), vec![&new_id]);
    for (path, plaintext) in &objects {
        assert_eq!(
            &decrypt_to_vec(&ring, &fs::read(path).unwrap()).unwrap(),
            plaintext
        );
    }
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn rewrap_refuses_what_it_cannot_handle() {
    let dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::generate().unwrap();
    let plain = dir.path().join("legacy.bin");
    fs::write(&plain, b"legacy plaintext").unwrap();
    assert!(matches!(
        rewrap_file(&ring, &plain),
        Err(CryptoError::NotEncrypted)
    ));
    assert_eq!(fs::read(&plain).unwrap(), b"legacy plaintext");

    let foreign = dir.path().join("foreign.enc");
    let bytes = encrypt_to_vec(&KeyRing::generate().unwrap(), b"x").unwrap();
    fs::write(&foreign, &bytes).unwrap();
    assert!(matches!(
        rewrap_file(&ring, &foreign),
        Err(CryptoError::UnknownKey(_))
    ));
    assert_eq!(fs::read(&foreign).unwrap(), bytes);
    assert!(matches!(
        rewrap_header(&ring, &bytes[..HEADER_LEN - 1]),
        Err(CryptoError::Truncated)
    ));
}

#[test]
fn key_ring_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    let ring = KeyRing::create_file(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert!(matches!(
        KeyRing::create_file(&path),
        Err(CryptoError::FileExists(_))
    ));
    assert_eq!(
        KeyRing::load_file(&path).unwrap().active_id(),
        ring.active_id()
    );

    set_mode(&path, 0o644);
    let err = KeyRing::load_file(&path).unwrap_err();
    assert!(
        matches!(err, CryptoError::InsecurePermissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
    set_mode(&path, 0o640);
    assert!(KeyRing::load_file(&path).is_err());

    set_mode(&path, 0o600);
    let mut ring = KeyRing::load_file(&path).unwrap();
    ring.rotate().unwrap();
    ring.save_file(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(KeyRing::load_file(&path).unwrap().key_ids().count(), 2);

    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["active"].as_str(), Some(ring.active_id().as_str()));
    assert_eq!(json["keys"].as_array().map(Vec::len), Some(2));
}

#[test]
fn key_ring_from_environment_value() {
    let hex_key = "8f".repeat(32);
    let ring = KeyRing::parse(&hex_key).unwrap();
    let bytes = encrypt_to_vec(&ring, b"env").unwrap();
    // A restart reading the same variable must find the same key id.
    assert_eq!(
        decrypt_to_vec(&KeyRing::parse(&format!("{hex_key}\n")).unwrap(), &bytes).unwrap(),
        b"env"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    KeyRing::create_file(&path).unwrap();
    let from_env = KeyRing::parse(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        from_env.active_id(),
        KeyRing::load_file(&path).unwrap().active_id()
    );
    let err = KeyRing::parse("not-a-key").unwrap_err().to_string();
    assert!(!err.contains("not-a-key"), "{err}");
}

#[test]
fn debug_output_never_contains_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    let mut ring = KeyRing::create_file(&path).unwrap();
    ring.rotate().unwrap();
    ring.save_file(&path).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let shown = format!(
        "{ring:?} {ring:#?} {:?}",
        KeyRing::load_file(&path).unwrap()
    );
    assert!(shown.contains("***"));
    for key in json["keys"].as_array().unwrap() {
        let secret = key["secret"].as_str().unwrap();
        assert_eq!(secret.len(), 64);
        assert!(!shown.contains(&secret[..12]), "secret leaked into {shown}");
    }
    let object = encrypt_to_vec(&ring, b"x").unwrap();
    let decryptor = Decryptor::new(&ring, &object[..]).unwrap();
    assert!(format!("{decryptor:?}").contains(ring.active_id().as_str()));
}

#[test]
fn sealed_values_bind_their_context() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    let mut ring = KeyRing::create_file(&path).unwrap();
    let sealed = seal_value(&ring, b"hf_token_abc", "integrations.token:1").unwrap();
    assert!(sealed.starts_with("v1."));
    assert!(!sealed.contains("hf_token"));
    assert_eq!(
        open_value(&ring, &sealed, "integrations.token:1").unwrap(),
        b"hf_token_abc"
    );
    assert!(matches!(
        open_value(&ring, &sealed, "integrations.token:2"),
        Err(CryptoError::ValueTampered)
    ));
    assert!(matches!(
        open_value(&ring, &sealed, "other.column:1"),
        Err(CryptoError::ValueTampered)
    ));

    ring.rotate().unwrap();
    ring.save_file(&path).unwrap();
    let ring = KeyRing::load_file(&path).unwrap();
    assert_eq!(
        open_value(&ring, &sealed, "integrations.token:1").unwrap(),
        b"hf_token_abc"
    );
    let resealed = seal_value(&ring, b"hf_token_abc", "integrations.token:1").unwrap();
    assert!(resealed.contains(ring.active_id().as_str()));
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}
