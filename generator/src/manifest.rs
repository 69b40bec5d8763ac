//! `dist/ENV/manifest.json`: what a pipeline needs to deploy the bundle without the source
//! tree: stacks in deploy order, each parameter's source, and the assets with their hashes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::model::Environment;
use crate::package::Asset;
use crate::plan::{ParameterSource, StackKind};
use crate::render::context::base_tags;
use crate::render::RenderedStack;
use crate::KIT_VERSION;

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub kit_version: String,
    pub environment: String,
    pub region: String,
    pub account_id: Option<String>,
    pub protected: bool,
    pub architecture: String,
    pub tags: serde_json::Map<String, serde_json::Value>,
    pub stacks: Vec<ManifestStack>,
    pub assets: Vec<Asset>,
    /// What deploy checks in the account first (Fargate environments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<crate::deploy::preflight::Preflight>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestStack {
    pub name: String,
    pub kind: StackKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub microprocess: Option<String>,
    pub template: String,
    pub template_sha256: String,
    pub template_bytes: usize,
    pub resources: usize,
    /// Parameter name → where its value comes from; asset sources carry the S3 key.
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    /// The core stack, which every other stack takes outputs from.
    pub fn core(&self) -> Option<&ManifestStack> {
        self.stacks.iter().find(|s| s.kind == StackKind::Core)
    }
}

pub fn build(env: &Environment, stacks: &[RenderedStack], assets: &[Asset]) -> Manifest {
    let entries = stacks.iter().map(|s| stack_entry(s, assets)).collect();
    from_entries(env, entries, assets)
}

/// A rendered stack's line of the manifest: what `generate` keeps of a stack once it is
/// written, so an environment of 1,000 microprocesses is never all in memory at once.
pub fn stack_entry(s: &RenderedStack, assets: &[Asset]) -> ManifestStack {
    let parameters = s
        .plan
        .parameters
        .iter()
        .map(|(name, source)| {
            let mut v = serde_json::to_value(source).unwrap_or_default();
            if let (ParameterSource::Asset { asset }, Some(obj)) = (source, v.as_object_mut()) {
                if let Some(a) = assets.iter().find(|a| &a.name == asset) {
                    obj.insert("key".into(), a.key.clone().into());
                }
            }
            (name.clone(), v)
        })
        .collect();
    ManifestStack {
        name: s.plan.name.clone(),
        kind: s.plan.kind,
        microprocess: s.plan.microprocess.clone(),
        template: s.plan.template_file.clone(),
        template_sha256: hex::encode(Sha256::digest(s.json.as_bytes())),
        template_bytes: s.json.len(),
        resources: s.resource_count(),
        parameters,
    }
}

/// The manifest of `env` from its stacks' entries, in deploy order.
pub fn from_entries(env: &Environment, stacks: Vec<ManifestStack>, assets: &[Asset]) -> Manifest {
    Manifest {
        manifest_version: 1,
        kit_version: KIT_VERSION.to_string(),
        environment: env.name.clone(),
        region: env.region.clone(),
        account_id: env.account_id.clone(),
        protected: env.protected,
        architecture: env.architecture.clone(),
        tags: base_tags(env)
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect(),
        stacks,
        assets: assets.to_vec(),
        preflight: crate::deploy::preflight::Preflight::of(env),
    }
}
