//! CloudFormation as deploy and teardown use it: stacks, change sets, events.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, StackEvent, Tag,
};
use aws_sdk_cloudformation::Client;

use super::DeployError;

/// A stack as DescribeStacks shows it.
#[derive(Debug, Clone)]
pub struct StackInfo {
    pub name: String,
    pub id: String,
    pub status: String,
    pub parameters: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl StackInfo {
    /// A stack that holds nothing and only takes a `CREATE` change set.
    pub fn is_review(&self) -> bool {
        self.status == "REVIEW_IN_PROGRESS"
    }

    /// A first creation that failed and rolled back: it must be deleted before retrying.
    pub fn is_failed_creation(&self) -> bool {
        self.status == "ROLLBACK_COMPLETE"
    }

    /// A first creation whose rollback could not remove everything it made.
    pub fn is_rollback_failed(&self) -> bool {
        self.status == "ROLLBACK_FAILED"
    }

    /// An update whose rollback could not restore everything; the stack takes no change
    /// until the rollback is continued.
    pub fn is_update_rollback_failed(&self) -> bool {
        self.status == "UPDATE_ROLLBACK_FAILED"
    }

    pub fn is_busy(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS") && !self.is_review()
    }
}

/// One line of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    /// `Add`, `Modify`, `Remove`, `Import`, `Dynamic`.
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// `True`, `False` or `Conditional` for a `Modify`.
    pub replacement: Option<String>,
    /// What changes: `Properties`, `Tags`, …
    pub scope: Vec<String>,
}

impl ChangeRow {
    /// The mark and verb shown in the change table.
    pub fn verb(&self) -> (char, &'static str) {
        match (self.action.as_str(), self.replacement.as_deref()) {
            ("Add", _) | ("Import", _) => ('+', "add"),
            ("Remove", _) => ('-', "remove"),
            ("Modify", Some("True")) => ('!', "replace"),
            ("Modify", Some("Conditional")) => ('!', "may replace"),
            _ => ('~', "change"),
        }
    }
}

/// A change set that has changes.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub id: String,
    pub create: bool,
    pub rows: Vec<ChangeRow>,
}

/// What creating a change set found.
#[derive(Debug)]
pub enum Planned {
    /// CloudFormation found nothing to do; the empty change set was deleted.
    NoChange,
    Changes(ChangeSet),
}

/// Where the events of a stack operation go as they come: the client reports them and
/// knows nothing of how they are shown (`ui::StackProgress` draws them as a bar or lines).
pub trait Progress {
    fn event(&mut self, e: &Event);
}

/// One stack event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub time: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
    /// An event of the stack itself rather than one of its resources.
    pub is_stack: bool,
}

impl Event {
    fn from_sdk(e: &StackEvent, stack_name: &str) -> Event {
        let logical_id = e.logical_resource_id().unwrap_or_default().to_string();
        let resource_type = e.resource_type().unwrap_or_default().to_string();
        Event {
            id: e.event_id().unwrap_or_default().to_string(),
            time: e
                .timestamp()
                .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default(),
            is_stack: resource_type == "AWS::CloudFormation::Stack" && logical_id == stack_name,
            logical_id,
            resource_type,
            status: e
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            reason: e
                .resource_status_reason()
                .filter(|r| !r.is_empty())
                .map(str::to_string),
        }
    }

    /// `  21:07:24  CREATE_COMPLETE     LedgerTable (AWS::DynamoDB::Table): reason`.
    pub fn line(&self) -> String {
        let mut line = format!(
            "    {}  {:<20} {} ({})",
            self.time, self.status, self.logical_id, self.resource_type
        );
        if let Some(r) = &self.reason {
            if self.status.ends_with("_FAILED") || !self.is_stack {
                line.push_str(&format!(": {r}"));
            }
        }
        line
    }
}

/// A resource that failed, with CloudFormation's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

/// How a stack operation ended.
#[derive(Debug)]
pub struct Finished {
    pub status: String,
    pub failures: Vec<Failure>,
}

impl Finished {
    pub fn succeeded(&self) -> bool {
        matches!(
            self.status.as_str(),
            "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "DELETE_COMPLETE" | "IMPORT_COMPLETE"
        )
    }
}

fn is_final(status: &str) -> bool {
    (status.ends_with("_COMPLETE") || status.ends_with("_FAILED")) && status != "REVIEW_IN_PROGRESS"
}

/// A resource of a stack.
#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    pub physical_id: String,
    pub resource_type: String,
    /// `CREATE_COMPLETE`, `DELETE_FAILED`, …
    pub status: String,
    pub reason: Option<String>,
}

impl Resource {
    pub fn failed(&self) -> bool {
        self.status.ends_with("_FAILED")
    }
}

/// What a change set is made of.
pub struct ChangeSetRequest<'a> {
    pub stack: &'a str,
    pub template: Template,
    pub parameters: &'a [(String, String)],
    pub tags: &'a [(String, String)],
    pub create: bool,
}

/// A template inline or by URL (over 51,200 bytes).
#[derive(Debug, Clone)]
pub enum Template {
    Body(String),
    Url(String),
}

pub struct Cfn {
    client: Client,
    /// Pause between polls of a change set or a stack.
    poll: Duration,
    /// Talking to an emulator (an endpoint is set).
    emulator: bool,
}

impl Cfn {
    /// An error of a call about `stack`. The emulator answers HTTP 500 when its own code
    /// fails, which no retry mends.
    fn err<E>(
        &self,
        stack: &str,
        action: &str,
        e: &aws_sdk_cloudformation::error::SdkError<E>,
    ) -> DeployError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        if self.emulator && status.is_some_and(|s| s >= 500) {
            return DeployError::EmulatorFailed {
                stack: stack.to_string(),
                action: action.to_string(),
            };
        }
        DeployError::Aws {
            stack: stack.to_string(),
            action: action.to_string(),
            detail: super::sdk_detail(e),
        }
    }

    pub fn new(config: &aws_config::SdkConfig, poll: Duration) -> Cfn {
        Cfn {
            client: Client::new(config),
            poll,
            emulator: config.endpoint_url().is_some(),
        }
    }

    /// The stack named `name`, if it exists (deleted stacks do not).
    pub async fn describe(&self, name: &str) -> Result<Option<StackInfo>, DeployError> {
        self.describe_labelled(name, name).await
    }

    /// [`Cfn::describe`] by name or id; errors name the stack `label`.
    async fn describe_labelled(
        &self,
        name_or_id: &str,
        label: &str,
    ) -> Result<Option<StackInfo>, DeployError> {
        match self
            .client
            .describe_stacks()
            .stack_name(name_or_id)
            .send()
            .await
        {
            Ok(out) => Ok(out.stacks().first().map(stack_info)),
            Err(e) if e.message().is_some_and(|m| m.contains("does not exist")) => Ok(None),
            Err(e) => Err(self.err(label, "DescribeStacks", &e)),
        }
    }

    /// Every live stack whose tag `key` is `value`.
    pub async fn tagged(&self, key: &str, value: &str) -> Result<Vec<StackInfo>, DeployError> {
        self.stacks_where(|s| s.tags.get(key).map(String::as_str) == Some(value))
            .await
    }

    /// Every stack that carries tag `key`, whatever its value.
    pub async fn with_tag(&self, key: &str) -> Result<Vec<StackInfo>, DeployError> {
        self.stacks_where(|s| s.tags.contains_key(key)).await
    }

    /// Every stack of the account and region that `keep` keeps, deleted ones left out.
    async fn stacks_where(
        &self,
        keep: impl Fn(&StackInfo) -> bool,
    ) -> Result<Vec<StackInfo>, DeployError> {
        let mut stacks = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stacks()
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| self.err("*", "DescribeStacks", &e))?;
            stacks.extend(
                out.stacks()
                    .iter()
                    .map(stack_info)
                    .filter(|s| keep(s))
                    .filter(|s| s.status != "DELETE_COMPLETE"),
            );
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(stacks);
            }
        }
    }

    /// Creates a change set and waits until CloudFormation has computed it. An empty one is
    /// deleted and reported as [`Planned::NoChange`].
    pub async fn plan(&self, req: &ChangeSetRequest<'_>) -> Result<Planned, DeployError> {
        let name = format!(
            "microprocess-{}",
            chrono::Utc::now().format("%Y%m%d-%H%M%S-%3f")
        );
        let mut call = self
            .client
            .create_change_set()
            .stack_name(req.stack)
            .change_set_name(&name)
            .change_set_type(if req.create {
                ChangeSetType::Create
            } else {
                ChangeSetType::Update
            })
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam)
            .description("microprocess deploy");
        call = match &req.template {
            Template::Body(body) => call.template_body(body),
            Template::Url(url) => call.template_url(url),
        };
        for (k, v) in req.parameters {
            call = call.parameters(
                Parameter::builder()
                    .parameter_key(k)
                    .parameter_value(v)
                    .build(),
            );
        }
        for (k, v) in req.tags {
            call = call.tags(Tag::builder().key(k).value(v).build());
        }
        let created = match call.send().await {
            Ok(out) => out,
            // What UpdateStack says, and what moto answers for an identical template.
            Err(e)
                if e.message()
                    .is_some_and(|m| m.contains("No updates are to be performed")) =>
            {
                return Ok(Planned::NoChange)
            }
            Err(e) => return Err(self.err(req.stack, "CreateChangeSet", &e)),
        };
        let id = created.id().unwrap_or(&name).to_string();

        let mut rows = Vec::new();
        let mut token: Option<String> = None;
        let mut waited = Duration::ZERO;
        loop {
            let out = self
                .client
                .describe_change_set()
                .change_set_name(&id)
                .stack_name(req.stack)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| self.err(req.stack, "DescribeChangeSet", &e))?;
            match out.status() {
                Some(ChangeSetStatus::CreateComplete) => {}
                Some(ChangeSetStatus::Failed) => {
                    let reason = out.status_reason().unwrap_or_default().to_string();
                    if reason.contains("didn't contain changes")
                        || reason.contains("No updates are to be performed")
                    {
                        self.delete_change_set(req.stack, &id).await?;
                        return Ok(Planned::NoChange);
                    }
                    return Err(DeployError::ChangeSetFailed {
                        stack: req.stack.to_string(),
                        reason,
                    });
                }
                _ => {
                    // Still being computed.
                    let pause = self.poll.min(Duration::from_millis(500) + waited / 4);
                    tokio::time::sleep(pause).await;
                    waited += pause;
                    continue;
                }
            }
            rows.extend(out.changes().iter().filter_map(|c| {
                let r = c.resource_change()?;
                Some(ChangeRow {
                    action: r
                        .action()
                        .map(|a| a.as_str().to_string())
                        .unwrap_or_default(),
                    logical_id: r.logical_resource_id().unwrap_or_default().to_string(),
                    resource_type: r.resource_type().unwrap_or_default().to_string(),
                    replacement: r.replacement().map(|x| x.as_str().to_string()),
                    scope: r.scope().iter().map(|s| s.as_str().to_string()).collect(),
                })
            }));
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(Planned::Changes(ChangeSet {
            id,
            create: req.create,
            rows,
        }))
    }

    pub async fn delete_change_set(&self, stack: &str, id: &str) -> Result<(), DeployError> {
        self.client
            .delete_change_set()
            .change_set_name(id)
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| self.err(stack, "DeleteChangeSet", &e))?;
        Ok(())
    }

    /// Executes `change_set` and follows the stack's events until it settles.
    pub async fn execute(
        &self,
        stack: &str,
        change_set: &ChangeSet,
        progress: &mut dyn Progress,
    ) -> Result<Finished, DeployError> {
        let info = self.describe(stack).await?;
        let stack_id = info.map(|s| s.id).unwrap_or_else(|| stack.to_string());
        let seen = self.latest_event(&stack_id).await?;
        self.client
            .execute_change_set()
            .change_set_name(&change_set.id)
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| match self.err(stack, "ExecuteChangeSet", &e) {
                DeployError::Aws { stack, detail, .. } => {
                    DeployError::ExecuteFailed { stack, detail }
                }
                other => other,
            })?;
        self.follow(stack, &stack_id, seen, progress).await
    }

    /// Deletes the stack and follows its events until it is gone or its deletion failed.
    pub async fn delete_stack(
        &self,
        stack: &StackInfo,
        progress: &mut dyn Progress,
    ) -> Result<Finished, DeployError> {
        self.delete_stack_retaining(stack, &[], progress).await
    }

    /// [`Cfn::delete_stack`], keeping the resources `retain` names (logical ids); CloudFormation
    /// takes them only from a stack whose deletion failed, and only those that failed.
    pub async fn delete_stack_retaining(
        &self,
        stack: &StackInfo,
        retain: &[String],
        progress: &mut dyn Progress,
    ) -> Result<Finished, DeployError> {
        let seen = self.latest_event(&stack.id).await?;
        self.client
            .delete_stack()
            .stack_name(&stack.id)
            .set_retain_resources((!retain.is_empty()).then(|| retain.to_vec()))
            .send()
            .await
            .map_err(|e| self.err(&stack.name, "DeleteStack", &e))?;
        self.follow(&stack.name, &stack.id, seen, progress).await
    }

    /// Continues the rollback of a stack in `UPDATE_ROLLBACK_FAILED`: CloudFormation tries
    /// again to restore what it could not. Follows the events until it settles.
    pub async fn continue_update_rollback(
        &self,
        stack: &StackInfo,
        progress: &mut dyn Progress,
    ) -> Result<Finished, DeployError> {
        let seen = self.latest_event(&stack.id).await?;
        self.client
            .continue_update_rollback()
            .stack_name(&stack.id)
            .send()
            .await
            .map_err(|e| self.err(&stack.name, "ContinueUpdateRollback", &e))?;
        self.follow(&stack.name, &stack.id, seen, progress).await
    }

    async fn latest_event(&self, stack_id: &str) -> Result<Option<String>, DeployError> {
        match self
            .client
            .describe_stack_events()
            .stack_name(stack_id)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .stack_events()
                .first()
                .and_then(|e| e.event_id())
                .map(str::to_string)),
            Err(e) if e.message().is_some_and(|m| m.contains("does not exist")) => Ok(None),
            Err(e) => Err(self.err(stack_label(stack_id), "DescribeStackEvents", &e)),
        }
    }

    /// Events newer than `seen`, oldest first.
    async fn new_events(
        &self,
        stack: &str,
        stack_id: &str,
        seen: Option<&str>,
    ) -> Result<Vec<Event>, DeployError> {
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        'pages: loop {
            let out = self
                .client
                .describe_stack_events()
                .stack_name(stack_id)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| self.err(stack, "DescribeStackEvents", &e))?;
            for e in out.stack_events() {
                if seen.is_some() && e.event_id() == seen {
                    break 'pages;
                }
                events.push(Event::from_sdk(e, stack));
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        events.reverse();
        Ok(events)
    }

    async fn follow(
        &self,
        stack: &str,
        stack_id: &str,
        mut seen: Option<String>,
        progress: &mut dyn Progress,
    ) -> Result<Finished, DeployError> {
        let mut all = Vec::new();
        loop {
            let status = match self.describe_labelled(stack_id, stack).await? {
                Some(s) => s.status,
                None => "DELETE_COMPLETE".to_string(),
            };
            let events = self.new_events(stack, stack_id, seen.as_deref()).await?;
            for e in &events {
                progress.event(e);
            }
            if let Some(last) = events.last() {
                seen = Some(last.id.clone());
            }
            all.extend(events);
            if is_final(&status) {
                let failures = all
                    .iter()
                    .filter(|e| e.status.ends_with("_FAILED") && !e.is_stack)
                    .map(|e| Failure {
                        logical_id: e.logical_id.clone(),
                        resource_type: e.resource_type.clone(),
                        status: e.status.clone(),
                        reason: e.reason.clone().unwrap_or_default(),
                    })
                    .collect();
                return Ok(Finished { status, failures });
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Every resource of a stack, with its physical id.
    pub async fn resources(&self, stack: &StackInfo) -> Result<Vec<Resource>, DeployError> {
        let mut resources = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_stack_resources()
                .stack_name(&stack.id)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| self.err(&stack.name, "ListStackResources", &e))?;
            resources.extend(out.stack_resource_summaries().iter().filter_map(|r| {
                Some(Resource {
                    logical_id: r.logical_resource_id()?.to_string(),
                    physical_id: r.physical_resource_id().unwrap_or_default().to_string(),
                    resource_type: r.resource_type()?.to_string(),
                    status: r
                        .resource_status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    reason: r
                        .resource_status_reason()
                        .filter(|r| !r.is_empty())
                        .map(str::to_string),
                })
            }));
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(resources);
            }
        }
    }
}

/// `name` of `arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>`.
fn stack_label(id: &str) -> &str {
    id.split('/').nth(1).unwrap_or(id)
}

fn stack_info(s: &aws_sdk_cloudformation::types::Stack) -> StackInfo {
    StackInfo {
        name: s.stack_name().unwrap_or_default().to_string(),
        id: s.stack_id().unwrap_or_default().to_string(),
        status: s
            .stack_status()
            .map(|x| x.as_str().to_string())
            .unwrap_or_default(),
        parameters: s
            .parameters()
            .iter()
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_string(),
                    p.parameter_value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        outputs: s
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
            .collect(),
        tags: s
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
    }
}
