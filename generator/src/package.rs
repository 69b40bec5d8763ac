//! The Lambda zips a bundle ships: found where `make build` leaves them, named and keyed by
//! the SHA-256 of their bytes so an unchanged function is never uploaded or updated twice.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::plan::FUNCTIONS;

#[derive(Debug, Error)]
pub enum PackageError {
    #[error("the `{function}` zip for {architecture} is missing at `{}`\n  hint: run `make build` (it builds every architecture the environments name), or pass `--assets-dir`", path.display())]
    Missing {
        function: String,
        architecture: String,
        path: PathBuf,
    },
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Asset {
    /// The function the zip holds (`splitter`, `forwarder`).
    pub name: String,
    pub architecture: String,
    pub sha256: String,
    pub bytes: u64,
    /// Path of the copy inside the bundle, relative to `dist/ENV/`.
    pub file: String,
    /// Key in the assets bucket, which the stacks' code-key parameters take.
    pub key: String,
    #[serde(skip)]
    pub source: PathBuf,
}

/// Where `make build` writes the zips: `target/lambda/<architecture>/<function>/bootstrap.zip`.
pub fn default_assets_dir(root: &Path) -> PathBuf {
    root.join("target").join("lambda")
}

/// Finds and hashes every function's zip for `architecture` under `assets_dir`.
pub fn locate(assets_dir: &Path, architecture: &str) -> Result<Vec<Asset>, PackageError> {
    FUNCTIONS
        .iter()
        .map(|function| {
            let path = assets_dir
                .join(architecture)
                .join(function)
                .join("bootstrap.zip");
            if !path.is_file() {
                return Err(PackageError::Missing {
                    function: function.to_string(),
                    architecture: architecture.to_string(),
                    path,
                });
            }
            let bytes = std::fs::read(&path).map_err(|source| PackageError::Read {
                path: path.clone(),
                source,
            })?;
            let sha256 = hex::encode(Sha256::digest(&bytes));
            Ok(Asset {
                name: function.to_string(),
                architecture: architecture.to_string(),
                file: format!("assets/{function}-{architecture}-{}.zip", &sha256[..16]),
                key: format!("lambda/{function}/{architecture}/{sha256}.zip"),
                sha256,
                bytes: bytes.len() as u64,
                source: path,
            })
        })
        .collect()
}
