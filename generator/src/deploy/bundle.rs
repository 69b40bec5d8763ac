//! A generated bundle (`dist/ENV/`) read back for deploying: the manifest, and each
//! template and asset checked against the hash the manifest recorded.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::manifest::{Manifest, ManifestStack};
use crate::package::Asset;
use crate::render::RenderedStack;

/// The manifest format this CLI reads.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("no bundle for `{env}` at `{}`\n  hint: run `microprocess generate --env {env}` first", dir.display())]
    Missing { env: String, dir: PathBuf },
    #[error("cannot read `{}`: {detail}\n  hint: run `microprocess generate --env {env}` to write the bundle again", path.display())]
    Unreadable {
        env: String,
        path: PathBuf,
        detail: String,
    },
    #[error("`{}` is for environment `{found}`, not `{env}`\n  hint: pass the bundle of `{env}` (`--dist dist/{env}`)", dir.display())]
    OtherEnvironment {
        env: String,
        found: String,
        dir: PathBuf,
    },
    #[error("`{}` has manifest version {found}; this CLI reads version {MANIFEST_VERSION}\n  hint: generate the bundle with this version of the kit", dir.display())]
    Version { dir: PathBuf, found: u32 },
    #[error("`{}` does not match the hash in the manifest: the bundle was changed after it was generated\n  hint: run `microprocess generate --env {env}` again", path.display())]
    Tampered { env: String, path: PathBuf },
    #[error("the bundle at `{}` is stale: {what}\n  hint: run `microprocess generate --env {env}` (or `make generate ENV={env}`) and deploy again", dir.display())]
    Stale {
        env: String,
        dir: PathBuf,
        what: String,
    },
}

#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Bundle {
    /// Reads `dir/manifest.json` of environment `env`.
    pub fn load(env: &str, dir: &Path) -> Result<Bundle, BundleError> {
        let path = dir.join("manifest.json");
        if !path.is_file() {
            return Err(BundleError::Missing {
                env: env.to_string(),
                dir: dir.to_path_buf(),
            });
        }
        let unreadable = |detail: String| BundleError::Unreadable {
            env: env.to_string(),
            path: path.clone(),
            detail,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| unreadable(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        let version = value
            .get("manifest_version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as u32;
        if version != MANIFEST_VERSION {
            return Err(BundleError::Version {
                dir: dir.to_path_buf(),
                found: version,
            });
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| unreadable(e.to_string()))?;
        if manifest.environment != env {
            return Err(BundleError::OtherEnvironment {
                env: env.to_string(),
                found: manifest.environment,
                dir: dir.to_path_buf(),
            });
        }
        Ok(Bundle {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn env(&self) -> &str {
        &self.manifest.environment
    }

    fn read_checked(&self, file: &str, sha256: &str) -> Result<Vec<u8>, BundleError> {
        let path = self.dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| BundleError::Unreadable {
            env: self.env().to_string(),
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            return Err(BundleError::Tampered {
                env: self.env().to_string(),
                path,
            });
        }
        Ok(bytes)
    }

    /// The template of `stack`, as generated.
    pub fn template(&self, stack: &ManifestStack) -> Result<String, BundleError> {
        let bytes = self.read_checked(&stack.template, &stack.template_sha256)?;
        String::from_utf8(bytes).map_err(|e| BundleError::Unreadable {
            env: self.env().to_string(),
            path: self.dir.join(&stack.template),
            detail: e.to_string(),
        })
    }

    /// The zip of `asset`, as generated.
    pub fn asset(&self, asset: &Asset) -> Result<Vec<u8>, BundleError> {
        self.read_checked(&asset.file, &asset.sha256)
    }

    /// Checks that the bundle holds what the config renders now: the same stacks with the
    /// same templates.
    pub fn check_current(&self, rendered: &[RenderedStack]) -> Result<(), BundleError> {
        let stale = |what: String| BundleError::Stale {
            env: self.env().to_string(),
            dir: self.dir.clone(),
            what,
        };
        let bundled: Vec<&str> = self
            .manifest
            .stacks
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let current: Vec<&str> = rendered.iter().map(|s| s.plan.name.as_str()).collect();
        if bundled != current {
            return Err(stale(format!(
                "the config now has stacks {}, the bundle {}",
                list(&current),
                list(&bundled)
            )));
        }
        for (b, r) in self.manifest.stacks.iter().zip(rendered) {
            if b.template_sha256 != hex::encode(Sha256::digest(r.json.as_bytes())) {
                return Err(stale(format!(
                    "`{}` differs from what the config renders now",
                    b.template
                )));
            }
        }
        Ok(())
    }
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
