//! A function's code: the zip its `CodeSha256` names, found among the bundle's assets and
//! the zips `make build` left, and unpacked once per content hash.
//!
//! The emulator keeps each function's `CodeSha256` (the SHA-256 of its zip, base64) but
//! cannot hand the zip back (its `Code.Location` is not a real URL), so the runner looks
//! for a local file with that hash: what runs is exactly what was deployed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// The file a `provided.al2023` function starts, at the root of its zip.
pub const BOOTSTRAP: &str = "bootstrap";

#[derive(Debug, Error)]
pub enum CodeError {
    #[error(
        "function `{function}`: no zip with its code (CodeSha256 `{sha}`) under {searched}\n  \
         hint: run `make build` and deploy again (`make generate ENV=local` writes the bundle's \
         zips), or pass `--code-from-build` to run the zips in `target/lambda/<arch>/` as they are"
    )]
    NotFound {
        function: String,
        sha: String,
        searched: String,
    },
    #[error(
        "function `{function}`: `{}` is missing\n  hint: run `make build`",
        path.display()
    )]
    BuildMissing { function: String, path: PathBuf },
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}` is not a readable zip: {detail}", path.display())]
    Zip { path: PathBuf, detail: String },
    #[error(
        "`{}` has no `bootstrap` at its root; a `provided.al2023` function starts that file",
        path.display()
    )]
    NoBootstrap { path: PathBuf },
    #[error("cannot unpack `{}` into `{}`: {source}", zip.display(), dir.display())]
    Unpack {
        zip: PathBuf,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A function's unpacked code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The zip it came from.
    pub zip: PathBuf,
    /// The folder it was unpacked into (the function's `LAMBDA_TASK_ROOT`).
    pub dir: PathBuf,
    /// `<dir>/bootstrap`.
    pub bootstrap: PathBuf,
}

/// The zips under some folders, by the base64 SHA-256 Lambda reports as `CodeSha256`.
#[derive(Debug, Default)]
pub struct ZipIndex {
    by_sha: BTreeMap<String, PathBuf>,
    searched: Vec<PathBuf>,
}

impl ZipIndex {
    /// Hashes every `*.zip` up to three levels under each of `dirs` (missing ones are
    /// skipped).
    pub fn scan(dirs: &[PathBuf]) -> Result<ZipIndex, CodeError> {
        let mut index = ZipIndex {
            searched: dirs.to_vec(),
            ..ZipIndex::default()
        };
        for dir in dirs {
            let mut zips = Vec::new();
            collect_zips(dir, 3, &mut zips);
            zips.sort();
            for zip in zips {
                let bytes = std::fs::read(&zip).map_err(|source| CodeError::Read {
                    path: zip.clone(),
                    source,
                })?;
                index
                    .by_sha
                    .entry(base64(&Sha256::digest(&bytes)))
                    .or_insert(zip);
            }
        }
        Ok(index)
    }

    /// The zip whose SHA-256 is `code_sha256` (base64, as Lambda reports it).
    pub fn find(&self, function: &str, code_sha256: &str) -> Result<&Path, CodeError> {
        self.by_sha
            .get(code_sha256)
            .map(PathBuf::as_path)
            .ok_or_else(|| CodeError::NotFound {
                function: function.to_string(),
                sha: code_sha256.to_string(),
                searched: self
                    .searched
                    .iter()
                    .map(|d| format!("`{}`", d.display()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

fn collect_zips(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if depth > 0 {
                collect_zips(&path, depth - 1, out);
            }
        } else if path.extension().is_some_and(|e| e == "zip") {
            out.push(path);
        }
    }
}

/// `target/lambda/<arch>/<kind>/bootstrap.zip` for a function named `...-<kind>`
/// (`--code-from-build`).
pub fn built_zip(build_dir: &Path, function: &str) -> Result<PathBuf, CodeError> {
    let kind = crate::plan::FUNCTIONS
        .iter()
        .find(|kind| function.ends_with(&format!("-{kind}")))
        .copied()
        .unwrap_or(function);
    let path = build_dir.join(kind).join("bootstrap.zip");
    if path.is_file() {
        Ok(path)
    } else {
        Err(CodeError::BuildMissing {
            function: function.to_string(),
            path,
        })
    }
}

/// Unpacks `zip` into `<code_root>/<first 16 hex of its SHA-256>/` (once: an unpacked
/// copy is reused) and returns where `bootstrap` is.
pub fn unpack(zip: &Path, code_root: &Path) -> Result<Code, CodeError> {
    let bytes = std::fs::read(zip).map_err(|source| CodeError::Read {
        path: zip.to_path_buf(),
        source,
    })?;
    let hex = hex::encode(Sha256::digest(&bytes));
    let dir = code_root.join(&hex[..16]);
    let bootstrap = dir.join(BOOTSTRAP);
    if !bootstrap.is_file() {
        let staging = code_root.join(format!(".{}-{}", &hex[..16], std::process::id()));
        let unpack_error = |source| CodeError::Unpack {
            zip: zip.to_path_buf(),
            dir: dir.clone(),
            source,
        };
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(unpack_error)?;
        extract(zip, &staging)?;
        if !staging.join(BOOTSTRAP).is_file() {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(CodeError::NoBootstrap {
                path: zip.to_path_buf(),
            });
        }
        match std::fs::rename(&staging, &dir) {
            Ok(()) => {}
            // Another runner unpacked the same zip first.
            Err(_) if bootstrap.is_file() => {
                let _ = std::fs::remove_dir_all(&staging);
            }
            Err(e) => return Err(unpack_error(e)),
        }
    }
    Ok(Code {
        zip: zip.to_path_buf(),
        dir,
        bootstrap,
    })
}

fn extract(zip: &Path, dir: &Path) -> Result<(), CodeError> {
    let zip_error = |detail: String| CodeError::Zip {
        path: zip.to_path_buf(),
        detail,
    };
    let file = File::open(zip).map_err(|source| CodeError::Read {
        path: zip.to_path_buf(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| zip_error(e.to_string()))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| zip_error(e.to_string()))?;
        // Entries that would land outside the folder are skipped.
        let Some(relative) = entry.enclosed_name() else {
            continue;
        };
        let target = dir.join(&relative);
        let unpack_error = |source| CodeError::Unpack {
            zip: zip.to_path_buf(),
            dir: dir.to_path_buf(),
            source,
        };
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(unpack_error)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(unpack_error)?;
        }
        let mut out = File::create(&target).map_err(unpack_error)?;
        io::copy(&mut entry, &mut out).map_err(unpack_error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Lambda runs `bootstrap` whatever mode the zip recorded.
            let mode = if relative == Path::new(BOOTSTRAP) {
                0o755
            } else {
                entry.unix_mode().unwrap_or(0o644) & 0o777
            };
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                .map_err(unpack_error)?;
        }
    }
    Ok(())
}

/// Standard base64 with padding, as Lambda prints `CodeSha256`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    fn write_zip(path: &Path, files: &[(&str, &[u8])]) {
        let mut writer = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, body) in files {
            writer
                .start_file(
                    *name,
                    zip::write::SimpleFileOptions::default()
                        .compression_method(zip::CompressionMethod::Stored),
                )
                .unwrap();
            writer.write_all(body).unwrap();
        }
        writer.finish().unwrap();
    }

    #[test]
    fn finds_a_zip_by_its_lambda_hash_and_unpacks_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let assets = dir.path().join("lambda/x86_64/forwarder");
        std::fs::create_dir_all(&assets).unwrap();
        let zip = assets.join("bootstrap.zip");
        write_zip(
            &zip,
            &[("bootstrap", b"#!/bin/sh\n"), ("lib/data.txt", b"x")],
        );
        let sha = base64(&Sha256::digest(std::fs::read(&zip).unwrap()));

        let index =
            ZipIndex::scan(&[dir.path().join("lambda/x86_64"), dir.path().join("none")]).unwrap();
        assert_eq!(index.find("fwd", &sha).unwrap(), zip.as_path());
        let missing = index.find("fwd", "AAAA").unwrap_err().to_string();
        assert!(missing.contains("function `fwd`: no zip with its code (CodeSha256 `AAAA`)"));
        assert!(missing.contains("make build"));

        let code = unpack(&zip, &dir.path().join("code")).unwrap();
        assert!(code.bootstrap.is_file());
        assert_eq!(
            std::fs::read_to_string(code.dir.join("lib/data.txt")).unwrap(),
            "x"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&code.bootstrap)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o755);
        }
        assert_eq!(unpack(&zip, &dir.path().join("code")).unwrap(), code);
    }

    #[test]
    fn a_zip_without_bootstrap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("f.zip");
        write_zip(&zip, &[("handler.py", b"")]);
        let error = unpack(&zip, &dir.path().join("code")).unwrap_err();
        assert!(error.to_string().contains("has no `bootstrap` at its root"));
    }

    #[test]
    fn built_zips_are_found_by_the_function_kind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("splitter")).unwrap();
        std::fs::write(dir.path().join("splitter/bootstrap.zip"), b"").unwrap();
        assert_eq!(
            built_zip(dir.path(), "scores-local-credit-scores-splitter").unwrap(),
            dir.path().join("splitter/bootstrap.zip")
        );
        let error = built_zip(dir.path(), "scores-local-credit-scores-forwarder").unwrap_err();
        assert!(error.to_string().contains("run `make build`"));
    }
}
