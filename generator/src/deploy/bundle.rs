//! A generated bundle (`dist/ENV/`) read back for deploying: the manifest, and each
//! template and asset checked against the hash the manifest recorded.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::config::Selector;
use crate::manifest::{Manifest, ManifestStack};
use crate::package::Asset;
use crate::render::RenderedStack;

/// The manifest format this CLI reads.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("no bundle for `{env}` at `{}`\n  hint: run `microprocess generate {args}` first", dir.display())]
    Missing {
        env: String,
        args: Selector,
        dir: PathBuf,
    },
    #[error("cannot read `{}`: {detail}\n  hint: run `microprocess generate {args}` to write the bundle again", path.display())]
    Unreadable {
        args: Selector,
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
    #[error("`{}` does not match the hash in the manifest: the bundle was changed after it was generated\n  hint: run `microprocess generate {args}` again", path.display())]
    Tampered { args: Selector, path: PathBuf },
    #[error("the bundle at `{}` is stale: {what}\n  hint: run `microprocess generate {args}`{} and deploy again", dir.display(), make_hint(args))]
    Stale {
        args: Selector,
        dir: PathBuf,
        what: String,
    },
}

/// ` (or `make generate ENV=dev`)` for an environment the Makefile can name.
fn make_hint(args: &Selector) -> String {
    match args.sandbox {
        None => format!(" (or `make generate ENV={}`)", args.file),
        Some(_) => String::new(),
    }
}

#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The arguments that name the environment, for hints.
    pub selector: Selector,
}

impl Bundle {
    /// Reads `dir/manifest.json` of the environment `selector` names.
    pub fn load(selector: &Selector, dir: &Path) -> Result<Bundle, BundleError> {
        let env = selector.name();
        let path = dir.join("manifest.json");
        if !path.is_file() {
            return Err(BundleError::Missing {
                env,
                args: selector.clone(),
                dir: dir.to_path_buf(),
            });
        }
        let unreadable = |detail: String| BundleError::Unreadable {
            args: selector.clone(),
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
                env,
                found: manifest.environment,
                dir: dir.to_path_buf(),
            });
        }
        Ok(Bundle {
            dir: dir.to_path_buf(),
            manifest,
            selector: selector.clone(),
        })
    }

    pub fn env(&self) -> &str {
        &self.manifest.environment
    }

    fn read_checked(&self, file: &str, sha256: &str) -> Result<Vec<u8>, BundleError> {
        let path = self.dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| BundleError::Unreadable {
            args: self.selector.clone(),
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            return Err(BundleError::Tampered {
                args: self.selector.clone(),
                path,
            });
        }
        Ok(bytes)
    }

    /// The template of `stack`, as generated.
    pub fn template(&self, stack: &ManifestStack) -> Result<String, BundleError> {
        let bytes = self.read_checked(&stack.template, &stack.template_sha256)?;
        String::from_utf8(bytes).map_err(|e| BundleError::Unreadable {
            args: self.selector.clone(),
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
            args: self.selector.clone(),
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
