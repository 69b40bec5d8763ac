//! The stacks of one environment, in deploy order, with the names and parameters that tie
//! them together. Rendering and the manifest both read this, so they cannot disagree.

use serde::{Deserialize, Serialize};

use crate::config::model::{Environment, Microprocess, ResultStorage, Service};
pub use crate::names::{
    core_stack_name, function_name, functions_of, microprocess_names, microprocess_stack_name,
    name_limits, prefix, service_stack_name, MicroprocessNames, NameLimit, FUNCTIONS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StackKind {
    Core,
    Service,
    Microprocess,
}

/// Where a stack parameter's value comes from at deploy time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum ParameterSource {
    /// An output of a stack deployed earlier.
    Output { stack: String, output: String },
    /// The S3 key of a content-hashed asset uploaded to the assets bucket.
    Asset { asset: String },
    /// `"false"` while the stack is first created, `"true"` from then on: `deploy` arms
    /// deletion protection once the create has succeeded, so its rollback can always
    /// remove what it made (protected environments only).
    DeletionProtection,
}

/// The parameter that carries [`ParameterSource::DeletionProtection`].
pub const DELETION_PROTECTION_PARAMETER: &str = "DeletionProtection";

fn deletion_protection(env: &Environment) -> Vec<(String, ParameterSource)> {
    if env.protected {
        vec![(
            DELETION_PROTECTION_PARAMETER.to_string(),
            ParameterSource::DeletionProtection,
        )]
    } else {
        Vec::new()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StackPlan {
    /// The CloudFormation stack name.
    pub name: String,
    pub kind: StackKind,
    /// The microprocess a `Microprocess` stack holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub microprocess: Option<String>,
    /// File name of the template under `dist/ENV/`.
    pub template_file: String,
    /// Parameter name → source, sorted by name.
    pub parameters: Vec<(String, ParameterSource)>,
}

/// Outputs of the core stack that later stacks take as parameters.
pub const CORE_OUTPUTS: [&str; 8] = [
    "LedgerTableName",
    "LedgerTableArn",
    "BucketName",
    "BucketArn",
    "KmsKeyArn",
    "SigningSecretArn",
    "AlarmTopicArn",
    "LogsBucketName",
];

pub fn microprocess_template_file(m: &Microprocess) -> String {
    format!("mp-{}.template.json", m.name)
}

pub fn stacks(env: &Environment) -> Vec<StackPlan> {
    let core = core_stack_name(env);
    let from_core = |names: &[&str]| -> Vec<(String, ParameterSource)> {
        names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    ParameterSource::Output {
                        stack: core.clone(),
                        output: n.to_string(),
                    },
                )
            })
            .collect()
    };
    let mut plans = vec![StackPlan {
        name: core.clone(),
        kind: StackKind::Core,
        microprocess: None,
        template_file: "core.template.json".into(),
        parameters: deletion_protection(env),
    }];
    let fargate = matches!(env.service, Service::Fargate(_));
    if fargate {
        plans.push(StackPlan {
            name: service_stack_name(env),
            kind: StackKind::Service,
            microprocess: None,
            template_file: "service.template.json".into(),
            parameters: {
                let mut p = from_core(&[
                    "AlarmTopicArn",
                    "BucketArn",
                    "KmsKeyArn",
                    "LedgerTableArn",
                    "LogsBucketName",
                    "SigningSecretArn",
                ]);
                p.extend(deletion_protection(env));
                p.sort_by(|a, b| a.0.cmp(&b.0));
                p
            },
        });
    }
    for m in &env.microprocesses {
        let mut parameters = from_core(&[
            "AlarmTopicArn",
            "BucketName",
            "KmsKeyArn",
            "LedgerTableArn",
            "LedgerTableName",
            "SigningSecretArn",
        ]);
        if m.results.storage != ResultStorage::Discard {
            parameters.extend(from_core(&["BucketArn"]));
        }
        for f in functions_of(m) {
            parameters.push((
                code_key_parameter(f),
                ParameterSource::Asset {
                    asset: f.to_string(),
                },
            ));
        }
        if fargate {
            parameters.push((
                "FunctionsSecurityGroupId".into(),
                ParameterSource::Output {
                    stack: service_stack_name(env),
                    output: "FunctionsSecurityGroupId".into(),
                },
            ));
        }
        parameters.sort_by(|a, b| a.0.cmp(&b.0));
        plans.push(StackPlan {
            name: microprocess_stack_name(env, m),
            kind: StackKind::Microprocess,
            microprocess: Some(m.name.clone()),
            template_file: microprocess_template_file(m),
            parameters,
        });
    }
    plans
}

/// `SplitterCodeKey`, `ForwarderCodeKey`.
pub fn code_key_parameter(function: &str) -> String {
    let mut c = function.chars();
    let first = c.next().map(|f| f.to_ascii_uppercase()).unwrap_or_default();
    format!("{first}{}CodeKey", c.as_str())
}
