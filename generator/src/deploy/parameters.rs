//! Stack parameters, resolved at deploy time from the manifest's sources: earlier stacks'
//! outputs, uploaded assets, and the deletion-protection switch.

use std::collections::BTreeMap;

use super::bundle::Bundle;
use super::cfn::{Cfn, StackInfo};
use super::DeployError;
use crate::aws::Aws;
use crate::manifest::ManifestStack;

/// Parameter values from the manifest's sources. `create` says whether this change set
/// creates the stack: deletion protection stays off until a create has succeeded.
pub(super) async fn resolve_parameters(
    cfn: &Cfn,
    bundle: &Bundle,
    stack: &ManifestStack,
    aws: &Aws,
    create: bool,
) -> Result<Vec<(String, String)>, DeployError> {
    let mut outputs: BTreeMap<String, StackInfo> = BTreeMap::new();
    let mut values = Vec::new();
    for (name, source) in &stack.parameters {
        let from = source
            .get("from")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let value = match from {
            "deletion_protection" => (!create).to_string(),
            "output" => {
                let source_stack = source
                    .get("stack")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                let output = source
                    .get("output")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                if !outputs.contains_key(&source_stack) {
                    let Some(info) = cfn.describe(&source_stack).await? else {
                        return Err(DeployError::MissingOutput {
                            stack: stack.name.clone(),
                            parameter: name.clone(),
                            source_stack: source_stack.clone(),
                            output: output.to_string(),
                            problem: "does not exist".into(),
                            hint: format!(
                                "deploy the whole environment in order: `microprocess deploy {}`",
                                bundle.selector
                            ),
                        });
                    };
                    outputs.insert(source_stack.clone(), info);
                }
                let info = &outputs[&source_stack];
                match info.outputs.get(output) {
                    Some(v) => v.clone(),
                    None => {
                        return Err(output_missing(
                            &stack.name,
                            name,
                            &source_stack,
                            output,
                            info,
                            aws,
                        ))
                    }
                }
            }
            _ => {
                let asset = source
                    .get("asset")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                match bundle.manifest.assets.iter().find(|a| a.name == asset) {
                    Some(a) => a.key.clone(),
                    None => {
                        return Err(DeployError::MissingAsset {
                            stack: stack.name.clone(),
                            parameter: name.clone(),
                            asset: asset.to_string(),
                        })
                    }
                }
            }
        };
        values.push((name.clone(), value));
    }
    Ok(values)
}

pub(super) fn output_missing(
    stack: &str,
    parameter: &str,
    source: &str,
    output: &str,
    info: &StackInfo,
    aws: &Aws,
) -> DeployError {
    let hint = if info.outputs.is_empty() && aws.endpoint.is_some() {
        "the emulator returned no outputs at all: moto 5.2.5 drops the outputs of stacks made by change sets; run it as `make emulator-start` does (`tools/emulator.py`), which fixes that".to_string()
    } else {
        format!("check stack `{source}` in the console; deploy it again if its template changed")
    };
    DeployError::MissingOutput {
        stack: stack.to_string(),
        parameter: parameter.to_string(),
        source_stack: source.to_string(),
        output: output.to_string(),
        problem: format!("has no such output ({})", info.status),
        hint,
    }
}
