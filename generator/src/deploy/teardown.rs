//! Removing an unprotected environment: its stacks in reverse deploy order, the kit's
//! buckets emptied of every object version first (CloudFormation cannot delete a bucket
//! that holds anything), then a search for whatever is left.
//!
//! Two searches look for leftovers, because neither sees everything: the tagging API lists
//! what still carries `microprocess:environment=NAME` (the emulator drops tags of some
//! kinds, and AWS lists a resource there only while it has tags), and each resource the
//! stacks held (queues, functions, tables, buckets, log groups) is looked up by name.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::{DateTime, Utc};

use aws_sdk_resourcegroupstagging::types::TagFilter;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::assets::s3_client;
use super::cfn::{Cfn, Resource, StackInfo};
use super::ui::Ui;
use super::{DeployError, Options, ENVIRONMENT_TAG, EXPIRES_AT_TAG, SERVICE_TAG};
use crate::aws::Aws;
use crate::config::model::Environment;
use crate::config::sandbox::{self, SANDBOX_OF_TAG};
use crate::plan::{self, StackKind};

/// What teardown needs to know about an environment, from its config.
#[derive(Debug, Clone)]
pub struct Target {
    pub env: String,
    /// `<service>-<env>`, the prefix of every stack and resource name.
    pub prefix: String,
    /// Stacks of the current config, in deploy order.
    pub stacks: Vec<(String, StackKind)>,
    /// Function and table names the config gives, looked up even when no stack names them.
    pub functions: Vec<String>,
    pub tables: Vec<String>,
}

impl Target {
    pub fn of(env: &Environment) -> Target {
        let prefix = plan::prefix(env);
        Target {
            env: env.name.clone(),
            stacks: plan::stacks(env)
                .into_iter()
                .map(|s| (s.name, s.kind))
                .collect(),
            functions: env
                .microprocesses
                .iter()
                .flat_map(|m| {
                    plan::functions_of(m)
                        .iter()
                        .map(move |f| plan::function_name(env, m, f))
                })
                .collect(),
            tables: vec![format!("{prefix}-ledger")],
            prefix,
        }
    }

    /// The order stacks go away in: microprocesses (last deployed first), service, core.
    fn rank(&self, name: &str) -> (u8, std::cmp::Reverse<usize>) {
        let known = self.stacks.iter().position(|(n, _)| n == name);
        let kind = known.map(|i| self.stacks[i].1).unwrap_or_else(|| {
            if name == format!("{}-core", self.prefix) {
                StackKind::Core
            } else if name == format!("{}-service", self.prefix) {
                StackKind::Service
            } else {
                StackKind::Microprocess
            }
        });
        let group = match kind {
            StackKind::Microprocess => 0,
            StackKind::Service => 1,
            StackKind::Core => 2,
        };
        (group, std::cmp::Reverse(known.unwrap_or(usize::MAX)))
    }
}

/// What teardown removed and what it found left.
#[derive(Debug, Default)]
pub struct TeardownReport {
    pub deleted: Vec<String>,
    /// Resources still there, each as `kind name`.
    pub leftovers: Vec<String>,
    /// Resources AWS removes after a waiting period (KMS keys, secrets).
    pub scheduled: Vec<String>,
}

/// Resource types whose deletion AWS schedules rather than performs at once.
const SCHEDULED_DELETION: [&str; 2] = ["AWS::KMS::Key", "AWS::SecretsManager::Secret"];

pub async fn stacks_of(cfn: &Cfn, target: &Target) -> Result<Vec<StackInfo>, DeployError> {
    let mut found: Vec<StackInfo> = cfn
        .tagged(ENVIRONMENT_TAG, &target.env)
        .await?
        .into_iter()
        .filter(|s| s.name.starts_with(&format!("{}-", target.prefix)))
        .collect();
    for (name, _) in &target.stacks {
        if found.iter().all(|s| &s.name != name) {
            if let Some(s) = cfn.describe(name).await? {
                found.push(s);
            }
        }
    }
    found.sort_by_key(|s| target.rank(&s.name));
    Ok(found)
}

/// A sandbox of an environment, found by its stacks' tags.
#[derive(Debug, Clone)]
pub struct FoundSandbox {
    /// The name given with `--sandbox` (`alice`).
    pub name: String,
    /// The environment's name (`sandbox-alice`).
    pub env: String,
    /// The latest expiry among its stacks: the sandbox has expired once all of them have.
    pub expires_at: DateTime<Utc>,
    /// Its stacks that carry an expiry tag.
    pub stacks: Vec<StackInfo>,
    /// Its stacks without a readable expiry tag, which `--expired` never touches.
    pub untagged: Vec<String>,
}

impl FoundSandbox {
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }
}

/// When a stack expires, from its [`EXPIRES_AT_TAG`].
pub fn expires_at(stack: &StackInfo) -> Option<DateTime<Utc>> {
    stack
        .tags
        .get(EXPIRES_AT_TAG)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The sandboxes of `base` among `stacks`, sorted by name. A stack belongs to sandbox `N`
/// when it is tagged `microprocess:sandbox-of=<base>`, `microprocess:environment=<base>-N`
/// with a valid sandbox name `N`, and the base's service, and is named like the sandbox's
/// stacks; `other_environments` (names of environment files) are never sandboxes. A
/// sandbox none of whose stacks carries an expiry tag is left out.
pub fn sandboxes_of(
    base: &Environment,
    stacks: Vec<StackInfo>,
    other_environments: &[String],
) -> Vec<FoundSandbox> {
    let mut groups: BTreeMap<String, Vec<StackInfo>> = BTreeMap::new();
    for s in stacks {
        if s.tags.get(SANDBOX_OF_TAG) != Some(&base.name)
            || s.tags.get(SERVICE_TAG).map(String::as_str) != Some(base.service.name())
        {
            continue;
        }
        let Some(env) = s.tags.get(ENVIRONMENT_TAG).cloned() else {
            continue;
        };
        let Some(name) = env
            .strip_prefix(base.name.as_str())
            .and_then(|r| r.strip_prefix('-'))
        else {
            continue;
        };
        if sandbox::check_name(name).is_err()
            || other_environments.contains(&env)
            || !s
                .name
                .starts_with(&format!("{}-{env}-", base.service.name()))
        {
            continue;
        }
        groups.entry(name.to_string()).or_default().push(s);
    }
    groups
        .into_iter()
        .filter_map(|(name, stacks)| {
            let (tagged, untagged): (Vec<StackInfo>, Vec<StackInfo>) =
                stacks.into_iter().partition(|s| expires_at(s).is_some());
            let expires_at = tagged.iter().filter_map(expires_at).max()?;
            Some(FoundSandbox {
                env: sandbox::instance_name(&base.name, &name),
                name,
                expires_at,
                stacks: tagged,
                untagged: untagged.into_iter().map(|s| s.name).collect(),
            })
        })
        .collect()
}

/// Deletes the stacks of `target` (found by [`stacks_of`]) and looks for leftovers.
pub async fn teardown(
    target: &Target,
    stacks: &[StackInfo],
    aws: &Aws,
    opts: &Options,
    ui: &mut Ui<'_>,
) -> Result<TeardownReport, DeployError> {
    let started = Instant::now();
    let cfn = Cfn::new(&aws.config, opts.poll);
    let mut report = TeardownReport::default();
    let mut owned: Vec<(String, Resource)> = Vec::new();

    for stack in stacks {
        if stack.is_busy() {
            return Err(DeployError::Busy {
                stack: stack.name.clone(),
                status: stack.status.clone(),
            });
        }
        let resources = cfn.resources(stack).await?;
        for r in resources
            .iter()
            .filter(|r| r.resource_type == "AWS::S3::Bucket")
        {
            if !r.physical_id.is_empty() {
                let versions = empty_bucket(aws, &stack.name, &r.physical_id).await?;
                ui.line(format!(
                    "{}: emptied bucket `{}` ({versions} object versions)",
                    stack.name, r.physical_id
                ));
            }
        }
        owned.extend(resources.into_iter().map(|r| (stack.name.clone(), r)));

        let stack_started = Instant::now();
        ui.line(format!("{}: deleting", stack.name));
        let mut progress = ui.progress(&stack.name, 0);
        let mut finished = cfn.delete_stack(stack, &mut progress).await?;
        progress.finish();
        // Access logs (S3's, the load balancers') keep arriving for minutes after a bucket
        // was emptied, and a bucket that is not empty cannot be deleted: empty the ones
        // that failed again and retry, a bounded number of times.
        for _ in 0..LATE_OBJECT_RETRIES {
            let late: Vec<&Resource> = finished
                .failures
                .iter()
                .filter(|f| f.resource_type == "AWS::S3::Bucket")
                .filter_map(|f| owned_resource(&owned, &stack.name, &f.logical_id))
                .collect();
            if finished.succeeded() || late.is_empty() {
                break;
            }
            for r in late {
                let versions = empty_bucket(aws, &stack.name, &r.physical_id).await?;
                ui.line(format!(
                    "{}: bucket `{}` took {versions} more object versions after it was emptied (late access logs); emptied it again",
                    stack.name, r.physical_id
                ));
            }
            let mut progress = ui.progress(&stack.name, 0);
            finished = cfn.delete_stack(stack, &mut progress).await?;
            progress.finish();
        }
        if !finished.succeeded() {
            return Err(super::stack_failed(
                &stack.name,
                finished,
                "remove or empty what the reasons name, then run `microprocess teardown` again",
            ));
        }
        ui.line(format!(
            "{}: {} in {:.1} s",
            stack.name,
            finished.status,
            stack_started.elapsed().as_secs_f64()
        ));
        report.deleted.push(stack.name.clone());
    }

    // The tagging API's index trails deletions a little in AWS; look again before blaming.
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(opts.poll * 4).await;
        }
        report.leftovers.clear();
        report.scheduled.clear();
        leftovers(target, &owned, aws, &mut report).await?;
        if report.leftovers.is_empty() {
            break;
        }
    }
    for s in &report.scheduled {
        ui.line(format!("  scheduled for deletion by AWS: {s}"));
    }
    if report.leftovers.is_empty() {
        ui.line(format!(
            "tore down `{}` in {:.1} s: {} stacks deleted, nothing left",
            target.env,
            started.elapsed().as_secs_f64(),
            report.deleted.len()
        ));
    }
    Ok(report)
}

/// How many times teardown empties a bucket again that objects reached after it was emptied.
const LATE_OBJECT_RETRIES: usize = 3;

fn owned_resource<'a>(
    owned: &'a [(String, Resource)],
    stack: &str,
    logical_id: &str,
) -> Option<&'a Resource> {
    owned
        .iter()
        .find(|(s, r)| s == stack && r.logical_id == logical_id && !r.physical_id.is_empty())
        .map(|(_, r)| r)
}

/// Deletes every object version and delete marker of `bucket`; returns how many.
async fn empty_bucket(aws: &Aws, stack: &str, bucket: &str) -> Result<usize, DeployError> {
    let s3 = s3_client(&aws.config);
    let failed = |action: &str, detail: String| DeployError::Aws {
        stack: stack.to_string(),
        action: format!("{action} on bucket `{bucket}`"),
        detail,
    };
    let mut removed = 0;
    loop {
        let out = match s3.list_object_versions().bucket(bucket).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.meta().code() == Some("NoSuchBucket")) =>
            {
                return Ok(removed)
            }
            Err(e) => return Err(failed("ListObjectVersions", super::sdk_detail(&e))),
        };
        let ids: Vec<ObjectIdentifier> = out
            .versions()
            .iter()
            .filter_map(|v| Some((v.key()?, v.version_id())))
            .chain(
                out.delete_markers()
                    .iter()
                    .filter_map(|m| Some((m.key()?, m.version_id()))),
            )
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key)
                    .set_version_id(version.map(str::to_string))
                    .build()
                    .ok()
            })
            .take(1000)
            .collect();
        if ids.is_empty() {
            return Ok(removed);
        }
        let count = ids.len();
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .quiet(true)
            .build()
            .map_err(|e| failed("DeleteObjects", e.to_string()))?;
        let out = s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| failed("DeleteObjects", super::sdk_detail(&e)))?;
        if let Some(e) = out.errors().first() {
            return Err(failed(
                "DeleteObjects",
                format!(
                    "`{}`: {}",
                    e.key().unwrap_or_default(),
                    e.message().unwrap_or_default()
                ),
            ));
        }
        removed += count;
    }
}

/// Fills `report.leftovers` and `report.scheduled`.
async fn leftovers(
    target: &Target,
    owned: &[(String, Resource)],
    aws: &Aws,
    report: &mut TeardownReport,
) -> Result<(), DeployError> {
    let fail = |action: &str, detail: String| DeployError::Aws {
        stack: format!("{} (leftover check)", target.env),
        action: action.to_string(),
        detail,
    };
    let mut left: BTreeSet<String> = BTreeSet::new();

    // Everything still tagged with the environment.
    let tagging = aws_sdk_resourcegroupstagging::Client::new(&aws.config);
    let mut token: Option<String> = None;
    loop {
        let out = tagging
            .get_resources()
            .tag_filters(
                TagFilter::builder()
                    .key(ENVIRONMENT_TAG)
                    .values(&target.env)
                    .build(),
            )
            .set_pagination_token(token.clone())
            .send()
            .await
            .map_err(|e| fail("GetResources", super::sdk_detail(&e)))?;
        for m in out.resource_tag_mapping_list() {
            let Some(arn) = m.resource_arn() else {
                continue;
            };
            let scheduled = owned.iter().any(|(_, r)| {
                SCHEDULED_DELETION.contains(&r.resource_type.as_str())
                    && !r.physical_id.is_empty()
                    && arn.ends_with(&r.physical_id)
            });
            if scheduled {
                report.scheduled.push(arn.to_string());
            } else {
                left.insert(format!("tagged {arn}"));
            }
        }
        token = out
            .pagination_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if token.is_none() {
            break;
        }
    }

    // The kit's own kinds, by name.
    let mut functions: BTreeSet<String> = target.functions.iter().cloned().collect();
    let mut tables: BTreeSet<String> = target.tables.iter().cloned().collect();
    let mut queues = BTreeSet::new();
    let mut buckets = BTreeSet::new();
    let mut log_groups: BTreeSet<String> = target
        .functions
        .iter()
        .map(|f| format!("/aws/lambda/{f}"))
        .collect();
    for (_, r) in owned {
        if r.physical_id.is_empty() {
            continue;
        }
        let id = r.physical_id.clone();
        match r.resource_type.as_str() {
            "AWS::Lambda::Function" => {
                functions.insert(id);
            }
            "AWS::DynamoDB::Table" => {
                tables.insert(id);
            }
            "AWS::SQS::Queue" => {
                queues.insert(id.rsplit('/').next().unwrap_or_default().to_string());
            }
            "AWS::S3::Bucket" => {
                buckets.insert(id);
            }
            "AWS::Logs::LogGroup" => {
                log_groups.insert(id);
            }
            _ => {}
        }
    }

    let lambda = aws_sdk_lambda::Client::new(&aws.config);
    for f in &functions {
        match lambda.get_function().function_name(f).send().await {
            Ok(_) => {
                left.insert(format!("function {f}"));
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => return Err(fail("GetFunction", super::sdk_detail(&e))),
        }
    }
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws.config);
    for t in &tables {
        match dynamodb.describe_table().table_name(t).send().await {
            Ok(_) => {
                left.insert(format!("table {t}"));
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => return Err(fail("DescribeTable", super::sdk_detail(&e))),
        }
    }
    let sqs = aws_sdk_sqs::Client::new(&aws.config);
    for q in &queues {
        match sqs.get_queue_url().queue_name(q).send().await {
            Ok(_) => {
                left.insert(format!("queue {q}"));
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_queue_does_not_exist()) => {}
            Err(e) => return Err(fail("GetQueueUrl", super::sdk_detail(&e))),
        }
    }
    let s3 = s3_client(&aws.config);
    for b in &buckets {
        match s3.head_bucket().bucket(b).send().await {
            Ok(_) => {
                left.insert(format!("bucket {b}"));
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
            Err(e) => return Err(fail("HeadBucket", super::sdk_detail(&e))),
        }
    }
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws.config);
    for g in &log_groups {
        let out = logs
            .describe_log_groups()
            .log_group_name_prefix(g)
            .send()
            .await
            .map_err(|e| fail("DescribeLogGroups", super::sdk_detail(&e)))?;
        if out
            .log_groups()
            .iter()
            .any(|lg| lg.log_group_name() == Some(g.as_str()))
        {
            left.insert(format!("log group {g}"));
        }
    }
    report.leftovers = left.into_iter().collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox_env() -> Environment {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace root");
        crate::config::Project {
            root: root.to_path_buf(),
            host_arch: "x86_64".into(),
        }
        .load("sandbox")
        .unwrap()
    }

    fn stack(name: &str, tags: &[(&str, &str)]) -> StackInfo {
        StackInfo {
            name: name.into(),
            id: format!("arn:aws:cloudformation:::stack/{name}/1"),
            status: "CREATE_COMPLETE".into(),
            parameters: Default::default(),
            outputs: Default::default(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The tags a sandbox's stack gets, expiring at `expires`.
    fn sandbox_stack(env: &str, kind: &str, expires: Option<&str>) -> StackInfo {
        let mut tags = vec![
            (ENVIRONMENT_TAG, env),
            (SERVICE_TAG, "scores"),
            (SANDBOX_OF_TAG, "sandbox"),
        ];
        if let Some(e) = expires {
            tags.push((EXPIRES_AT_TAG, e));
        }
        stack(&format!("scores-{env}-{kind}"), &tags)
    }

    #[test]
    fn sandboxes_are_found_by_their_tags_and_grouped_by_environment() {
        let base = sandbox_env();
        let past = "2026-03-09T00:00:00Z";
        let future = "2026-04-01T00:00:00Z";
        let stacks = vec![
            sandbox_stack("sandbox-alice", "core", Some(past)),
            sandbox_stack("sandbox-alice", "mp-abn-refresh", Some(past)),
            sandbox_stack("sandbox-alice", "mp-by-hand", None),
            sandbox_stack("sandbox-bob", "core", Some(past)),
            sandbox_stack("sandbox-bob", "mp-abn-refresh", Some(future)),
            // Only untagged stacks: nothing to judge by.
            sandbox_stack("sandbox-carol", "core", None),
            // An environment file's stacks, even when tagged like a sandbox.
            sandbox_stack("sandbox-eu", "core", Some(past)),
            // The base environment itself.
            stack(
                "scores-sandbox-core",
                &[
                    (ENVIRONMENT_TAG, "sandbox"),
                    (SERVICE_TAG, "scores"),
                    (EXPIRES_AT_TAG, past),
                ],
            ),
            // Another service, another base, a bad name, a foreign stack name.
            stack(
                "billing-sandbox-dave-core",
                &[
                    (ENVIRONMENT_TAG, "sandbox-dave"),
                    (SERVICE_TAG, "billing"),
                    (SANDBOX_OF_TAG, "sandbox"),
                    (EXPIRES_AT_TAG, past),
                ],
            ),
            stack(
                "scores-dev-erin-core",
                &[
                    (ENVIRONMENT_TAG, "dev-erin"),
                    (SERVICE_TAG, "scores"),
                    (SANDBOX_OF_TAG, "dev"),
                    (EXPIRES_AT_TAG, past),
                ],
            ),
            sandbox_stack("sandbox-Frank", "core", Some(past)),
            stack(
                "other-stack",
                &[
                    (ENVIRONMENT_TAG, "sandbox-gina"),
                    (SERVICE_TAG, "scores"),
                    (SANDBOX_OF_TAG, "sandbox"),
                    (EXPIRES_AT_TAG, past),
                ],
            ),
        ];
        let found = sandboxes_of(&base, stacks, &["sandbox-eu".to_string()]);
        let summary: Vec<(&str, &str, usize, Vec<&str>)> = found
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.env.as_str(),
                    s.stacks.len(),
                    s.untagged.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "alice",
                    "sandbox-alice",
                    2,
                    vec!["scores-sandbox-alice-mp-by-hand"]
                ),
                ("bob", "sandbox-bob", 2, vec![]),
            ]
        );
        let now: DateTime<Utc> = "2026-03-10T00:00:00Z".parse().unwrap();
        assert!(found[0].expired(now));
        // One of bob's stacks was deployed later: bob lives until it expires.
        assert_eq!(
            found[1].expires_at.to_rfc3339(),
            "2026-04-01T00:00:00+00:00"
        );
        assert!(!found[1].expired(now));
    }

    #[test]
    fn stacks_go_in_reverse_deploy_order_with_core_last() {
        let target = Target {
            env: "dev".into(),
            prefix: "scores-dev".into(),
            stacks: vec![
                ("scores-dev-core".into(), StackKind::Core),
                ("scores-dev-service".into(), StackKind::Service),
                ("scores-dev-mp-a".into(), StackKind::Microprocess),
                ("scores-dev-mp-b".into(), StackKind::Microprocess),
            ],
            functions: vec![],
            tables: vec![],
        };
        let mut names = vec![
            "scores-dev-core",
            "scores-dev-mp-a",
            "scores-dev-service",
            "scores-dev-mp-removed",
            "scores-dev-mp-b",
        ];
        names.sort_by_key(|n| target.rank(n));
        assert_eq!(
            names,
            [
                "scores-dev-mp-removed",
                "scores-dev-mp-b",
                "scores-dev-mp-a",
                "scores-dev-service",
                "scores-dev-core"
            ]
        );
    }
}
