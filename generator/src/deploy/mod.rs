//! Deploying a bundle and tearing an environment down.
//!
//! `deploy` reads `dist/ENV/manifest.json`: the core stack first (inline, since the bucket
//! that could carry its template is in it), then the assets into the core stack's bucket by
//! content hash, then every other stack in the manifest's order with its parameters read
//! from earlier stacks' outputs and the asset keys. Each stack goes through a change set
//! that is shown, confirmed and executed while its events stream; an empty change set is
//! deleted and reported as "no change". `diff` computes the same change sets and deletes
//! them. [`teardown`] removes an unprotected environment and checks that nothing is left.

pub mod assets;
pub mod bundle;
pub mod cfn;
mod error;
mod parameters;
pub mod preflight;
pub mod recover;
pub mod teardown;
pub mod ui;

use std::time::{Duration, Instant};

use crate::aws::Aws;
use crate::manifest::ManifestStack;
use crate::plan::{StackKind, DELETION_PROTECTION_PARAMETER};
use assets::{Bucket, Upload};
use bundle::Bundle;
use cfn::{Cfn, ChangeRow, ChangeSetRequest, Planned, StackInfo, Template};
pub use error::{sdk_detail, DeployError};
use parameters::{output_missing, resolve_parameters};
use ui::Ui;

/// The largest template CloudFormation takes inline; larger ones go by URL from the bucket.
pub const MAX_INLINE_TEMPLATE_BYTES: usize = 51_200;
/// The core stack output naming the bucket that holds assets and large templates.
pub const BUCKET_OUTPUT: &str = "BucketName";
/// Stack tag telling when a sandbox may be removed (RFC 3339, UTC).
pub const EXPIRES_AT_TAG: &str = "microprocess:expires-at";
/// Manifest tag of unprotected environments that expire.
pub const EXPIRES_AFTER_DAYS_TAG: &str = "microprocess:expires-after-days";
/// The tag every stack and resource of an environment carries.
pub const ENVIRONMENT_TAG: &str = "microprocess:environment";
/// The tag naming the service every stack and resource belongs to.
pub const SERVICE_TAG: &str = "microprocess:service";

/// How deploy behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Execute the change sets (`deploy`) or only show them (`diff`).
    pub execute: bool,
    /// Execute without asking.
    pub yes: bool,
    /// Pause between polls of CloudFormation.
    pub poll: Duration,
}

/// What happened to each stack.
#[derive(Debug, Default)]
pub struct Report {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Deploys (or diffs) every stack of the bundle, in the manifest's order.
pub async fn deploy(
    bundle: &Bundle,
    aws: &Aws,
    opts: &Options,
    ui: &mut Ui<'_>,
) -> Result<Report, DeployError> {
    let started = Instant::now();
    let cfn = Cfn::new(&aws.config, opts.poll);
    let tags = stack_tags(&bundle.manifest.tags, chrono::Utc::now());
    let mut report = Report::default();
    let mut bucket: Option<Bucket> = None;
    let mut assets_done = false;
    if let (true, Some(p)) = (opts.execute, &bundle.manifest.preflight) {
        let problems = preflight::check(&aws.config, p).await?;
        if !problems.is_empty() {
            return Err(DeployError::NotReady { problems });
        }
        ui.line(format!(
            "account checks: {} private subnets route to AWS ({}), {} certificates cover their hosts{}",
            p.private_subnet_ids.len(),
            match p.egress {
                crate::config::model::Egress::Nat => "through a NAT",
                crate::config::model::Egress::VpcEndpoints => "through the endpoint route tables",
            },
            p.certificates.len(),
            if p.private_zone_id.is_some() {
                ", the queue host's zone is private to the VPC"
            } else {
                ""
            }
        ));
    }

    for stack in &bundle.manifest.stacks {
        let template = bundle.template(stack)?;
        if stack.kind == StackKind::Core && template.len() > MAX_INLINE_TEMPLATE_BYTES {
            return Err(DeployError::CoreTooLarge {
                stack: stack.name.clone(),
                bytes: template.len(),
            });
        }
        if stack.kind != StackKind::Core && bucket.is_none() {
            bucket = core_bucket(&cfn, bundle, aws).await?;
        }
        if opts.execute && stack.kind != StackKind::Core && !assets_done {
            if let Some(b) = &bucket {
                upload_assets(bundle, b, ui).await?;
                assets_done = true;
            }
        }

        let mut existing = cfn.describe(&stack.name).await?;
        if let Some(s) = &existing {
            if s.is_busy() {
                return Err(DeployError::Busy {
                    stack: s.name.clone(),
                    status: s.status.clone(),
                });
            }
        }
        if let Some(s) = existing
            .as_ref()
            .filter(|s| s.is_rollback_failed() || s.is_update_rollback_failed())
        {
            existing = match recover::release(&cfn, s, opts, ui).await? {
                recover::Released::Deleted => None,
                recover::Released::RolledBack(info) => Some(info),
            };
        }
        let create = existing
            .as_ref()
            .is_none_or(|s| s.is_review() || s.is_failed_creation());
        if !opts.execute && create {
            let rows = template_rows(&template);
            ui.line(format!(
                "{}: create, {} resources to add",
                stack.name,
                rows.len()
            ));
            ui.line(ui::change_table(&rows).trim_end_matches('\n'));
            report.created.push(stack.name.clone());
            continue;
        }
        if let Some(s) = existing.as_ref().filter(|s| s.is_failed_creation()) {
            ui.line(format!(
                "{}: removing the stack of a failed first creation ({})",
                s.name, s.status
            ));
            let mut progress = ui.progress(&s.name, 0);
            let finished = cfn.delete_stack(s, &mut progress).await?;
            progress.finish();
            if !finished.succeeded() {
                return Err(stack_failed(&s.name, finished, "delete it in the console or with `aws cloudformation delete-stack`, then deploy again"));
            }
            existing = None;
        }

        let parameters = resolve_parameters(&cfn, bundle, stack, aws, create).await?;
        let template = if template.len() > MAX_INLINE_TEMPLATE_BYTES {
            let b = bucket.as_ref().ok_or_else(|| missing_core(bundle, stack))?;
            let key = format!("templates/{}/{}.json", stack.name, stack.template_sha256);
            b.put_once(
                &key,
                template.into_bytes(),
                &format!("template `{}`", stack.template),
            )
            .await?;
            Template::Url(b.url(&key))
        } else {
            Template::Body(template)
        };
        let planned = cfn
            .plan(&ChangeSetRequest {
                stack: &stack.name,
                template: template.clone(),
                parameters: &parameters,
                tags: &tags,
                create,
            })
            .await?;
        let change_set = match planned {
            Planned::NoChange => {
                ui.line(format!("{}: no change", stack.name));
                report.unchanged.push(stack.name.clone());
                continue;
            }
            Planned::Changes(cs) => cs,
        };
        let changed_parameters = existing
            .as_ref()
            .map(|s| changed_parameters(s, &parameters))
            .unwrap_or_default();
        show_change_set(
            ui,
            &stack.name,
            &change_set.rows,
            create,
            &changed_parameters,
        );

        if !opts.execute {
            cfn.delete_change_set(&stack.name, &change_set.id).await?;
            if create {
                report.created.push(stack.name.clone());
            } else {
                report.updated.push(stack.name.clone());
            }
            continue;
        }
        if !opts.yes
            && !ui.confirm(&format!(
                "execute this change set on `{}`? [y/N] ",
                stack.name
            ))
        {
            cfn.delete_change_set(&stack.name, &change_set.id).await?;
            if create {
                // The stack CloudFormation made to hold the change set holds nothing.
                if let Some(s) = cfn
                    .describe(&stack.name)
                    .await?
                    .filter(StackInfo::is_review)
                {
                    let mut progress = ui.progress(&s.name, 0);
                    let _ = cfn.delete_stack(&s, &mut progress).await;
                    progress.finish();
                }
            }
            return Err(DeployError::Declined {
                stack: stack.name.clone(),
            });
        }
        let stack_started = Instant::now();
        let mut progress = ui.progress(&stack.name, change_set.rows.len());
        let finished = cfn.execute(&stack.name, &change_set, &mut progress).await?;
        progress.finish();
        if !finished.succeeded() {
            let hint = if finished.status.ends_with("ROLLBACK_FAILED") {
                "CloudFormation could not roll the stack back; run `microprocess deploy` again: it shows what holds the stack and offers the way out"
            } else {
                "fix what the reasons name, `microprocess generate`, and deploy again; CloudFormation rolled the stack back"
            };
            return Err(stack_failed(&stack.name, finished, hint));
        }
        ui.line(format!(
            "{}: {} in {:.1} s",
            stack.name,
            finished.status,
            stack_started.elapsed().as_secs_f64()
        ));
        if create && stack.parameters.contains_key(DELETION_PROTECTION_PARAMETER) {
            arm_deletion_protection(&cfn, bundle, stack, aws, template, &tags, ui).await?;
        }
        if create {
            report.created.push(stack.name.clone());
        } else {
            report.updated.push(stack.name.clone());
        }
    }
    if opts.execute {
        alarm_subscription_note(&cfn, bundle, aws, ui).await?;
    }
    let verb = if opts.execute { "deployed" } else { "diff of" };
    let (c, u) = if opts.execute {
        ("created", "updated")
    } else {
        ("to create", "to update")
    };
    ui.line(format!(
        "{verb} `{}` in {:.1} s: {} {c}, {} {u}, {} no change",
        bundle.env(),
        started.elapsed().as_secs_f64(),
        report.created.len(),
        report.updated.len(),
        report.unchanged.len()
    ));
    Ok(report)
}

/// The update after a successful first create that turns deletion protection on: the
/// create ran with it off, so that its rollback could have removed everything.
async fn arm_deletion_protection(
    cfn: &Cfn,
    bundle: &Bundle,
    stack: &ManifestStack,
    aws: &Aws,
    template: Template,
    tags: &[(String, String)],
    ui: &mut Ui<'_>,
) -> Result<(), DeployError> {
    let started = Instant::now();
    let parameters = resolve_parameters(cfn, bundle, stack, aws, false).await?;
    let planned = cfn
        .plan(&ChangeSetRequest {
            stack: &stack.name,
            template,
            parameters: &parameters,
            tags,
            create: false,
        })
        .await?;
    let Planned::Changes(change_set) = planned else {
        return Ok(());
    };
    let mut progress = ui.progress(&stack.name, change_set.rows.len());
    let finished = cfn.execute(&stack.name, &change_set, &mut progress).await?;
    progress.finish();
    if !finished.succeeded() {
        return Err(stack_failed(
            &stack.name,
            finished,
            "the stack was created, but deletion protection could not be turned on; fix what the reasons name and deploy again, which turns it on",
        ));
    }
    ui.line(format!(
        "{}: deletion protection on in {:.1} s",
        stack.name,
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Says when nobody hears the alarms yet: an e-mail subscription awaits confirmation.
async fn alarm_subscription_note(
    cfn: &Cfn,
    bundle: &Bundle,
    aws: &Aws,
    ui: &mut Ui<'_>,
) -> Result<(), DeployError> {
    let Some(core) = bundle.manifest.core() else {
        return Ok(());
    };
    let Some(topic) = cfn
        .describe(&core.name)
        .await?
        .and_then(|s| s.outputs.get("AlarmTopicArn").cloned())
    else {
        return Ok(());
    };
    let pending = crate::alarm_subscriptions::unconfirmed(&aws.config, &topic)
        .await
        .map_err(|detail| DeployError::Aws {
            stack: core.name.clone(),
            action: "ListSubscriptionsByTopic".into(),
            detail,
        })?;
    if let Some(line) = crate::alarm_subscriptions::warning(&pending) {
        ui.line(line);
    }
    Ok(())
}

fn stack_failed(stack: &str, finished: cfn::Finished, hint: &str) -> DeployError {
    DeployError::StackFailed {
        stack: stack.to_string(),
        status: finished.status,
        failures: finished.failures,
        hint: hint.to_string(),
    }
}

fn missing_core(bundle: &Bundle, stack: &ManifestStack) -> DeployError {
    let core = bundle
        .manifest
        .core()
        .map(|s| s.name.clone())
        .unwrap_or_default();
    DeployError::MissingOutput {
        stack: stack.name.clone(),
        parameter: "(template URL)".into(),
        source_stack: core,
        output: BUCKET_OUTPUT.into(),
        problem: "does not exist yet".into(),
        hint: format!(
            "deploy the core stack first: `microprocess deploy {}`",
            bundle.selector
        ),
    }
}

/// The core stack's bucket, once the core stack exists.
async fn core_bucket(cfn: &Cfn, bundle: &Bundle, aws: &Aws) -> Result<Option<Bucket>, DeployError> {
    let Some(core) = bundle.manifest.core() else {
        return Ok(None);
    };
    let Some(info) = cfn.describe(&core.name).await? else {
        return Ok(None);
    };
    if info.is_review() {
        return Ok(None);
    }
    match info.outputs.get(BUCKET_OUTPUT) {
        Some(name) => Ok(Some(Bucket::new(&aws.config, name, &aws.region))),
        None => Err(output_missing(
            &core.name,
            "(assets)",
            &core.name,
            BUCKET_OUTPUT,
            &info,
            aws,
        )),
    }
}

async fn upload_assets(
    bundle: &Bundle,
    bucket: &Bucket,
    ui: &mut Ui<'_>,
) -> Result<(), DeployError> {
    let mut uploaded = 0;
    for asset in &bundle.manifest.assets {
        let bytes = bundle.asset(asset)?;
        let size = bytes.len();
        let what = format!("asset `{}`", asset.file);
        if bucket.put_once(&asset.key, bytes, &what).await? == Upload::Uploaded {
            ui.line(format!("  uploaded {} ({size} bytes)", asset.key));
            uploaded += 1;
        }
    }
    ui.line(format!(
        "assets: {uploaded} uploaded, {} already in `{}`",
        bundle.manifest.assets.len() - uploaded,
        bucket.name
    ));
    Ok(())
}

fn show_change_set(
    ui: &mut Ui<'_>,
    stack: &str,
    rows: &[ChangeRow],
    create: bool,
    changed_parameters: &[String],
) {
    let verb = if create { "create" } else { "update" };
    let summary = if rows.is_empty() {
        "parameters only".to_string()
    } else {
        ui::change_counts(rows)
    };
    ui.line(format!("{stack}: {verb}, {summary}"));
    if !rows.is_empty() {
        ui.line(ui::change_table(rows).trim_end_matches('\n'));
    }
    if !changed_parameters.is_empty() {
        ui.line(format!("  parameters: {}", changed_parameters.join(", ")));
    }
}

fn changed_parameters(existing: &StackInfo, new: &[(String, String)]) -> Vec<String> {
    new.iter()
        .filter(|(k, v)| existing.parameters.get(k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Every resource of a template, as a change table of additions.
fn template_rows(template: &str) -> Vec<ChangeRow> {
    let value: serde_json::Value = serde_json::from_str(template).unwrap_or_default();
    value
        .get("Resources")
        .and_then(|r| r.as_object())
        .map(|r| {
            r.iter()
                .map(|(id, res)| ChangeRow {
                    action: "Add".into(),
                    logical_id: id.clone(),
                    resource_type: res
                        .get("Type")
                        .and_then(|t| t.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    replacement: None,
                    scope: Vec::new(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The manifest's tags as stack tags; an environment that expires gets
/// [`EXPIRES_AT_TAG`]: `expires_after_days` from now, rounded up to the next midnight UTC
/// so that deploys on one day leave it unchanged.
pub fn stack_tags(
    manifest_tags: &serde_json::Map<String, serde_json::Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = manifest_tags
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect();
    let days = manifest_tags
        .get(EXPIRES_AFTER_DAYS_TAG)
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse::<i64>().ok());
    if let Some(days) = days {
        let expires = (now.date_naive() + chrono::Days::new(days as u64 + 1))
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc();
        tags.push((
            EXPIRES_AT_TAG.to_string(),
            expires.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ));
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::cfn::Failure;
    use super::*;

    #[test]
    fn sandboxes_expire_at_a_midnight_that_stays_put_for_a_day() {
        let mut tags = serde_json::Map::new();
        tags.insert(ENVIRONMENT_TAG.into(), "sandbox".into());
        tags.insert(EXPIRES_AFTER_DAYS_TAG.into(), "7".into());
        let morning = "2026-03-01T00:00:01Z".parse().unwrap();
        let night = "2026-03-01T23:59:59Z".parse().unwrap();
        let expected = (
            "microprocess:expires-at".to_string(),
            "2026-03-09T00:00:00Z".to_string(),
        );
        assert!(stack_tags(&tags, morning).contains(&expected));
        assert_eq!(stack_tags(&tags, morning), stack_tags(&tags, night));
    }

    #[test]
    fn other_environments_do_not_expire() {
        let mut tags = serde_json::Map::new();
        tags.insert(ENVIRONMENT_TAG.into(), "prod".into());
        let t = stack_tags(&tags, chrono::Utc::now());
        assert_eq!(t, vec![(ENVIRONMENT_TAG.to_string(), "prod".to_string())]);
    }

    #[test]
    fn a_failure_names_each_resource_and_its_reason() {
        let e = DeployError::StackFailed {
            stack: "scores-dev-core".into(),
            status: "ROLLBACK_COMPLETE".into(),
            failures: vec![Failure {
                logical_id: "Bucket".into(),
                resource_type: "AWS::S3::Bucket".into(),
                status: "CREATE_FAILED".into(),
                reason: "Access Denied".into(),
            }],
            hint: "fix it".into(),
        };
        assert_eq!(
            e.to_string(),
            "stack `scores-dev-core` ended ROLLBACK_COMPLETE; failing resources:\n  - Bucket (AWS::S3::Bucket) CREATE_FAILED: Access Denied\n  hint: fix it"
        );
    }
}
