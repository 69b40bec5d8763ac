//! What can go wrong in deploy, diff and teardown, each with the next step.

use thiserror::Error;

use super::bundle::BundleError;
use super::cfn::Failure;
use super::MAX_INLINE_TEMPLATE_BYTES;

#[derive(Debug, Error)]
pub enum DeployError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("stack `{stack}`: {action} failed: {detail}")]
    Aws {
        stack: String,
        action: String,
        detail: String,
    },
    #[error("stack `{stack}`: the change set could not be executed: {detail}\n  hint: fix what the reason names, `microprocess generate`, and deploy again")]
    ExecuteFailed { stack: String, detail: String },
    #[error("stack `{stack}`: the emulator failed on {action} (HTTP 500)\n  hint: its log names the resource and the property it cannot take (`make emulator-start` writes target/emulator.log); a failed change set leaves the emulator broken, so restart it (`make emulator-stop emulator-start`) once the template is fixed")]
    EmulatorFailed { stack: String, action: String },
    #[error("stack `{stack}`: CloudFormation could not compute the change set: {reason}\n  hint: fix the template or parameters it names, then `microprocess generate` and deploy again")]
    ChangeSetFailed { stack: String, reason: String },
    #[error("stack `{stack}`: parameter `{parameter}` comes from output `{output}` of stack `{source_stack}`, which {problem}\n  hint: {hint}")]
    MissingOutput {
        stack: String,
        parameter: String,
        source_stack: String,
        output: String,
        problem: String,
        hint: String,
    },
    #[error("stack `{stack}`: parameter `{parameter}` names asset `{asset}`, which the manifest does not list\n  hint: run `microprocess generate` again")]
    MissingAsset {
        stack: String,
        parameter: String,
        asset: String,
    },
    #[error("stack `{stack}`: its template is {bytes} bytes, but the core stack goes inline (at most {MAX_INLINE_TEMPLATE_BYTES} bytes) because the bucket that carries larger templates is in it\n  hint: move resources out of `templates/core.yaml`")]
    CoreTooLarge { stack: String, bytes: usize },
    #[error("stack `{stack}` is busy ({status})\n  hint: wait until CloudFormation has finished with it, then run the command again")]
    Busy { stack: String, status: String },
    #[error("the account is not ready for this environment; nothing was deployed:{}\n  hint: fix each of these in the account (or the environment file), then deploy again; the README's \"What the kit needs from your account\" lists them", kept_text(problems))]
    NotReady { problems: Vec<String> },
    #[error(
        "stack `{stack}` is held in {status}: it takes no change until it is freed\n  hint: {hint}"
    )]
    Held {
        stack: String,
        status: String,
        hint: String,
    },
    #[error("stack `{stack}`: the stack of the failed create was deleted; CloudFormation kept these, which it could not delete or which hold data:{}\n  hint: remove what stands in the way of the next create as each line says, then deploy again", kept_text(kept))]
    Kept { stack: String, kept: Vec<String> },
    #[error("stack `{stack}`: not executed; the change set was deleted and later stacks were left alone")]
    Declined { stack: String },
    #[error(
        "stack `{stack}` ended {status}{}\n  hint: {hint}",
        failures_text(failures)
    )]
    StackFailed {
        stack: String,
        status: String,
        failures: Vec<Failure>,
        hint: String,
    },
    #[error("cannot upload {what} to `s3://{bucket}/{key}`: {detail}")]
    Upload {
        what: String,
        bucket: String,
        key: String,
        detail: String,
    },
}

/// The useful part of an SDK error: the service's code and message, or the HTTP status, or
/// the whole chain when the request never got an answer.
pub fn sdk_detail<E>(e: &aws_sdk_cloudformation::error::SdkError<E>) -> String
where
    E: std::error::Error + aws_sdk_cloudformation::error::ProvideErrorMetadata + 'static,
{
    use aws_sdk_cloudformation::error::ProvideErrorMetadata;
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(text), None) | (None, Some(text)) => text.to_string(),
        (None, None) => match e.raw_response() {
            Some(r) => format!("HTTP {} with no error code", r.status().as_u16()),
            None => aws_sdk_cloudformation::error::DisplayErrorContext(e).to_string(),
        },
    }
}

fn failures_text(failures: &[Failure]) -> String {
    if failures.is_empty() {
        return String::new();
    }
    let mut text = String::from("; failing resources:");
    for f in failures {
        text.push_str(&format!(
            "\n  - {} ({}) {}: {}",
            f.logical_id,
            f.resource_type,
            f.status,
            if f.reason.is_empty() {
                "no reason given"
            } else {
                &f.reason
            }
        ));
    }
    text
}

fn kept_text(kept: &[String]) -> String {
    kept.iter().map(|k| format!("\n  - {k}")).collect()
}
