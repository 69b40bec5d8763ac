//! The way out of a stack that a failed rollback holds.
//!
//! CloudFormation takes no change set on a stack in `ROLLBACK_FAILED` (a first create whose
//! rollback could not remove everything it made) or `UPDATE_ROLLBACK_FAILED` (an update
//! whose rollback could not restore everything). `deploy` says which resources hold the
//! stack and why, then offers the one way out that loses nothing, behind a confirmation:
//! - `UPDATE_ROLLBACK_FAILED`: continue the rollback, so CloudFormation tries those
//!   resources again; skipping a resource (which leaves it as the failed update left it) is
//!   the user's call, and the hint says how.
//! - `ROLLBACK_FAILED`: the stack never existed, so it is deleted; what cannot be deleted
//!   is kept (`RetainResources`) and listed, and deploy stops there when anything was kept,
//!   since a kept resource under its fixed name would fail the next create.

use super::cfn::{Cfn, Resource, StackInfo};
use super::ui::Ui;
use super::{DeployError, Options};

/// What is left after [`release`].
#[derive(Debug)]
pub enum Released {
    /// The stack is gone: the deploy creates it.
    Deleted,
    /// The rollback finished: the deploy updates the stack.
    RolledBack(StackInfo),
}

/// Resource types that hold the environment's data; keeping one is reported as such.
const HOLDS_DATA: [&str; 6] = [
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::SecretsManager::Secret",
    "AWS::SQS::Queue",
    "AWS::Logs::LogGroup",
];

fn resource_line(r: &Resource) -> String {
    let physical = if r.physical_id.is_empty() {
        String::new()
    } else {
        format!(" `{}`", r.physical_id)
    };
    format!(
        "  - {} ({}){physical} {}: {}",
        r.logical_id,
        r.resource_type,
        r.status,
        r.reason.as_deref().unwrap_or("no reason given")
    )
}

/// Says what holds `stack` and, once confirmed, frees it.
pub async fn release(
    cfn: &Cfn,
    stack: &StackInfo,
    opts: &Options,
    ui: &mut Ui<'_>,
) -> Result<Released, DeployError> {
    let holding: Vec<Resource> = cfn
        .resources(stack)
        .await?
        .into_iter()
        .filter(Resource::failed)
        .collect();
    let update = stack.is_update_rollback_failed();
    ui.line(format!(
        "{}: {}: {}",
        stack.name,
        stack.status,
        if update {
            "an update failed and its rollback could not restore everything"
        } else {
            "a first create failed and its rollback could not remove everything it made"
        }
    ));
    if holding.is_empty() {
        ui.line("  no resource reports a failure; CloudFormation's events say more");
    } else {
        ui.line("  held by:");
        for r in &holding {
            ui.line(resource_line(r));
        }
    }
    let (way_out, question) = if update {
        (
            "continue the rollback: CloudFormation tries those resources again and the stack returns to its last good state",
            format!("continue the rollback of `{}`? [y/N] ", stack.name),
        )
    } else {
        (
            "delete the stack, which never finished its first create; what cannot be deleted is kept and listed",
            format!("delete stack `{}`? [y/N] ", stack.name),
        )
    };
    ui.line(format!("  the way out: {way_out}"));
    if !opts.execute {
        return Err(DeployError::Held {
            stack: stack.name.clone(),
            status: stack.status.clone(),
            hint: "`microprocess deploy` offers the way out above".into(),
        });
    }
    if !opts.yes && !ui.confirm(&question) {
        return Err(DeployError::Held {
            stack: stack.name.clone(),
            status: stack.status.clone(),
            hint: "nothing was changed; run deploy again and answer `y`, or free the stack in the console".into(),
        });
    }
    if update {
        continue_rollback(cfn, stack, ui).await
    } else {
        delete_never_created(cfn, stack, ui).await
    }
}

async fn continue_rollback(
    cfn: &Cfn,
    stack: &StackInfo,
    ui: &mut Ui<'_>,
) -> Result<Released, DeployError> {
    let mut progress = ui.progress(&stack.name, 0);
    let finished = cfn.continue_update_rollback(stack, &mut progress).await?;
    progress.finish();
    if finished.status == "UPDATE_ROLLBACK_COMPLETE" {
        ui.line(format!(
            "{}: rolled back to its last good state",
            stack.name
        ));
        let info = cfn
            .describe(&stack.name)
            .await?
            .unwrap_or_else(|| stack.clone());
        return Ok(Released::RolledBack(info));
    }
    let skip: Vec<&str> = finished
        .failures
        .iter()
        .map(|f| f.logical_id.as_str())
        .collect();
    Err(DeployError::StackFailed {
        stack: stack.name.clone(),
        status: finished.status,
        failures: finished.failures.clone(),
        hint: format!(
            "fix what the reasons name and deploy again, which continues the rollback once more; a resource that cannot be restored can be skipped with `aws cloudformation continue-update-rollback --stack-name {} --resources-to-skip {}`, which leaves it as the failed update left it until the next deploy changes it",
            stack.name,
            skip.join(" ")
        ),
    })
}

async fn delete_never_created(
    cfn: &Cfn,
    stack: &StackInfo,
    ui: &mut Ui<'_>,
) -> Result<Released, DeployError> {
    let mut progress = ui.progress(&stack.name, 0);
    let mut finished = cfn.delete_stack(stack, &mut progress).await?;
    progress.finish();
    if finished.status == "DELETE_FAILED" {
        // A second try keeps what could not be deleted, which CloudFormation only allows
        // for the resources whose deletion failed.
        let retain: Vec<String> = cfn
            .resources(stack)
            .await?
            .into_iter()
            .filter(|r| r.status == "DELETE_FAILED")
            .map(|r| r.logical_id)
            .collect();
        let mut progress = ui.progress(&stack.name, 0);
        finished = cfn
            .delete_stack_retaining(stack, &retain, &mut progress)
            .await?;
        progress.finish();
    }
    if !finished.succeeded() {
        return Err(DeployError::StackFailed {
            stack: stack.name.clone(),
            status: finished.status,
            failures: finished.failures,
            hint: "delete it in the console, keeping the resources it names, then deploy again"
                .into(),
        });
    }
    // Kept: what could not be deleted, and data the stack's deletion retains
    // (`RetainExceptOnCreate` deletes only in the rollback of the create that made it, and
    // that rollback is what failed).
    let kept: Vec<Resource> = cfn
        .resources(stack)
        .await?
        .into_iter()
        .filter(|r| r.status == "DELETE_SKIPPED" && !r.physical_id.is_empty())
        .collect();
    if kept.is_empty() {
        ui.line(format!(
            "{}: deleted; nothing of the failed create is left",
            stack.name
        ));
        return Ok(Released::Deleted);
    }
    Err(DeployError::Kept {
        stack: stack.name.clone(),
        kept: kept.iter().map(kept_line).collect(),
    })
}

/// A kept resource, whether it stands in the way of the next create, and how to remove it.
fn kept_line(r: &Resource) -> String {
    let id = &r.physical_id;
    let removal = match r.resource_type.as_str() {
        "AWS::DynamoDB::Table" => Some(format!("`aws dynamodb update-table --table-name {id} --no-deletion-protection-enabled` if it is protected, then `aws dynamodb delete-table --table-name {id}`")),
        "AWS::SecretsManager::Secret" => Some(format!("`aws secretsmanager delete-secret --secret-id {id} --force-delete-without-recovery`")),
        "AWS::SQS::Queue" => Some(format!("`aws sqs delete-queue --queue-url {id}`")),
        "AWS::Logs::LogGroup" => Some(format!("`aws logs delete-log-group --log-group-name {id}`")),
        _ => None,
    };
    let what = if HOLDS_DATA.contains(&r.resource_type.as_str()) {
        "may hold data"
    } else {
        "holds no data"
    };
    let why = r
        .reason
        .as_deref()
        .map(|reason| format!(" ({reason})"))
        .unwrap_or_default();
    match removal {
        Some(command) => format!(
            "{} ({}) `{id}`, {what}{why}: its fixed name fails the next create; once it holds nothing you need: {command}",
            r.logical_id, r.resource_type
        ),
        None => format!(
            "{} ({}) `{id}`, {what}{why}: it does not stand in the way of the next create",
            r.logical_id, r.resource_type
        ),
    }
}
