//! Where a deployed environment's parts are: the ledger table from the core stack's
//! outputs, and each microprocess's queue, dead-letter queue and functions from its own
//! stack's. Reading them back (rather than rebuilding names from the config) means the
//! commands act on what is deployed, and say so when it is not.

use std::time::Duration;

use aws_config::SdkConfig;

use super::RunsError;
use crate::config::Environment;
use crate::deploy::cfn::{Cfn, StackInfo};
use crate::plan;

/// One microprocess as deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedMicroprocess {
    pub name: String,
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    pub splitter: String,
    pub forwarder: String,
    /// Callback completion only: where services report (`CallbackReportUrl`).
    pub callback_url: Option<String>,
}

/// A deployed environment.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub env: String,
    pub ledger_table: String,
    /// The topic alarms and run announcements go to.
    pub alarm_topic_arn: String,
    /// Enabled microprocesses, sorted by name, as the config lists them.
    pub microprocesses: Vec<DeployedMicroprocess>,
}

impl Deployed {
    /// Reads the outputs of the core stack and every microprocess stack of `env`.
    pub async fn discover(config: &SdkConfig, env: &Environment) -> Result<Deployed, RunsError> {
        let cfn = Cfn::new(config, Duration::from_secs(1));
        let core = stack(&cfn, env, &plan::core_stack_name(env)).await?;
        let ledger_table = output(env, &core, "LedgerTableName")?;
        let alarm_topic_arn = output(env, &core, "AlarmTopicArn")?;
        let mut microprocesses = Vec::new();
        for m in &env.microprocesses {
            let s = stack(&cfn, env, &plan::microprocess_stack_name(env, m)).await?;
            microprocesses.push(DeployedMicroprocess {
                name: m.name.clone(),
                queue_url: output(env, &s, "QueueUrl")?,
                dead_letter_queue_url: output(env, &s, "DeadLetterQueueUrl")?,
                splitter: output(env, &s, "SplitterFunctionName")?,
                forwarder: output(env, &s, "ForwarderFunctionName")?,
                callback_url: match m.process.completion.lease_seconds() {
                    Some(_) => Some(output(env, &s, "CallbackReportUrl")?),
                    None => None,
                },
            });
        }
        Ok(Deployed {
            env: env.name.clone(),
            ledger_table,
            alarm_topic_arn,
            microprocesses,
        })
    }

    /// The microprocess `name`, or an error listing the deployed ones.
    pub fn microprocess(&self, name: &str) -> Result<&DeployedMicroprocess, RunsError> {
        self.microprocesses
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| RunsError::UnknownMicroprocess {
                env: self.env.clone(),
                name: name.to_string(),
                hint: self.names_hint(name),
            })
    }

    /// The microprocesses a `--microprocess` filter selects (all when `None`).
    pub fn selected(&self, name: Option<&str>) -> Result<Vec<&DeployedMicroprocess>, RunsError> {
        match name {
            Some(n) => Ok(vec![self.microprocess(n)?]),
            None => Ok(self.microprocesses.iter().collect()),
        }
    }

    fn names_hint(&self, name: &str) -> String {
        let names: Vec<&str> = self
            .microprocesses
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        let list = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match crate::config::diagnostic::did_you_mean(name, names.iter().copied()) {
            Some(close) => format!("did you mean `{close}`? (deployed: {list})"),
            None if names.is_empty() => "the environment enables no microprocess".to_string(),
            None => format!("deployed: {list}"),
        }
    }
}

async fn stack(cfn: &Cfn, env: &Environment, name: &str) -> Result<StackInfo, RunsError> {
    match cfn.describe(name).await {
        Ok(Some(s)) if !s.is_review() => Ok(s),
        Ok(_) => Err(RunsError::NotDeployed {
            stack: name.to_string(),
            env: env.name.clone(),
        }),
        Err(e) => Err(RunsError::Other(e.to_string())),
    }
}

fn output(env: &Environment, stack: &StackInfo, name: &str) -> Result<String, RunsError> {
    stack
        .outputs
        .get(name)
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or_else(|| RunsError::MissingOutput {
            stack: stack.name.clone(),
            output: name.to_string(),
            status: stack.status.clone(),
            env: env.name.clone(),
        })
}
