//! The first real deploy, on the emulator's CloudFormation, which rolls back and fails a
//! named resource on request (`POST /_kit/faults`): a first create that fails leaves
//! nothing in the way of the next deploy, a stack held in `ROLLBACK_FAILED` or
//! `UPDATE_ROLLBACK_FAILED` is named with what holds it and freed by the next deploy,
//! teardown survives access logs that arrive after a bucket was emptied, and deploy and
//! status say when nobody confirmed the alarm e-mail subscription.

use aws_config::SdkConfig;
use kit_tests::deployed::table_names;
use kit_tests::kit_project::{KitProject, Zips};
use kit_tests::moto::{sdk_config, MotoServer};
use serde_json::json;

const CORE: &str = "scores-local-core";

/// `local`, protected as `staging` and `prod` are: retained data, deletion protection.
fn protected_project() -> KitProject {
    let project = KitProject::new(Zips::Fake);
    project.replace("local.toml", "protected = false", "protected = true");
    project
}

async fn status_of(config: &SdkConfig, stack: &str) -> Option<String> {
    let out = aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .ok()?;
    out.stacks()
        .first()
        .and_then(|s| s.stack_status())
        .map(|s| s.as_str().to_string())
}

async fn parameter(config: &SdkConfig, stack: &str, name: &str) -> Option<String> {
    let out = aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .ok()?;
    out.stacks()
        .first()?
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some(name))
        .and_then(|p| p.parameter_value())
        .map(str::to_string)
}

fn deploy(project: &KitProject, moto: &MotoServer) -> (i32, String, String) {
    project.cli(moto.endpoint(), &["deploy", "--env", "local", "--yes"])
}

#[tokio::test]
async fn a_failed_first_create_leaves_nothing_in_the_way_of_the_next_deploy() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let project = protected_project();
    project.generate();
    // The last resource of the core stack fails: everything before it was created.
    moto.arm_fault(&json!({"stack": CORE, "resource": "Dashboard", "on": "create"}));

    let (code, out, err) = deploy(&project, &moto);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(
        err.contains(&format!("error: stack `{CORE}` ended ROLLBACK_COMPLETE; failing resources:\n  - Dashboard (AWS::CloudWatch::Dashboard) CREATE_FAILED: ")),
        "{err}"
    );
    // The rollback removed the data resources it made (RetainExceptOnCreate): under
    // `Retain` the ledger table and the secret would stay, and the next create would fail
    // on their fixed names.
    assert_eq!(table_names(&config).await, Vec::<String>::new());
    assert!(aws_sdk_secretsmanager::Client::new(&config)
        .describe_secret()
        .secret_id("scores-local/microprocesses/signing-secret")
        .send()
        .await
        .is_err());

    let (code, out, err) = deploy(&project, &moto);
    assert_eq!(code, 0, "{out}\n{err}\nemulator:\n{}", moto.log());
    assert!(
        out.contains(&format!(
            "{CORE}: removing the stack of a failed first creation (ROLLBACK_COMPLETE)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("{CORE}: deletion protection on in ")),
        "{out}"
    );
    assert_eq!(table_names(&config).await, ["scores-local-ledger"]);
    // Created with protection off, so the create could roll back; armed right after.
    assert_eq!(
        parameter(&config, CORE, "DeletionProtection")
            .await
            .as_deref(),
        Some("true")
    );
    let table = aws_sdk_dynamodb::Client::new(&config)
        .describe_table()
        .table_name("scores-local-ledger")
        .send()
        .await
        .unwrap();
    assert_eq!(
        table.table().unwrap().deletion_protection_enabled(),
        Some(true)
    );
}

#[tokio::test]
async fn a_stack_held_in_rollback_failed_is_named_and_deleted_keeping_what_cannot_go() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let project = protected_project();
    project.generate();
    moto.arm_fault(&json!({"stack": CORE, "resource": "Dashboard", "on": "create"}));
    // The rollback cannot delete the table, nor can the two deletes of the stack after it.
    moto.arm_fault(&json!({"stack": CORE, "resource": "LedgerTable", "on": "delete", "times": 3}));
    let (code, out, err) = deploy(&project, &moto);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(
        err.contains(&format!("stack `{CORE}` ended ROLLBACK_FAILED")),
        "{err}"
    );
    assert!(
        err.contains("run `microprocess deploy` again: it shows what holds the stack"),
        "{err}"
    );
    assert_eq!(
        status_of(&config, CORE).await.as_deref(),
        Some("ROLLBACK_FAILED")
    );

    let (code, out, err) = deploy(&project, &moto);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(
        out.contains(&format!("{CORE}: ROLLBACK_FAILED: a first create failed and its rollback could not remove everything it made\n  held by:\n  - LedgerTable (AWS::DynamoDB::Table) `scores-local-ledger` DELETE_FAILED: ")),
        "{out}"
    );
    assert!(out.contains("  the way out: delete the stack"), "{out}");
    assert!(
        err.contains(&format!("error: stack `{CORE}`: the stack of the failed create was deleted; CloudFormation kept these, which it could not delete or which hold data:\n"))
            && err.contains("\n  - LedgerTable (AWS::DynamoDB::Table) `scores-local-ledger`, may hold data")
            && err.contains("\n  - KmsKey (AWS::KMS::Key) `")
            && err.contains("it does not stand in the way of the next create"),
        "{err}"
    );
    assert!(
        err.contains("its fixed name fails the next create; once it holds nothing you need: `aws dynamodb update-table --table-name scores-local-ledger --no-deletion-protection-enabled` if it is protected, then `aws dynamodb delete-table --table-name scores-local-ledger`"),
        "{err}"
    );
    assert_eq!(status_of(&config, CORE).await, None, "the stack is gone");
    assert_eq!(table_names(&config).await, ["scores-local-ledger"], "kept");
}

/// The stack's deletion keeps its data (`RetainExceptOnCreate` deletes only in the rollback
/// of the create that made it): deploy names what stands in the way, and once that is
/// removed the next deploy creates the stack.
#[tokio::test]
async fn after_rollback_failed_the_kept_data_is_named_and_the_next_deploy_creates_the_stack() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let project = protected_project();
    project.generate();
    moto.arm_fault(&json!({"stack": CORE, "resource": "Dashboard", "on": "create"}));
    // Only the rollback's delete fails (a dependency that has since let go).
    moto.arm_fault(&json!({"stack": CORE, "resource": "LedgerTable", "on": "delete"}));
    let (code, _, _) = deploy(&project, &moto);
    assert_eq!(code, 5);
    assert_eq!(
        status_of(&config, CORE).await.as_deref(),
        Some("ROLLBACK_FAILED")
    );

    let (code, out, err) = deploy(&project, &moto);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(
        err.contains("  - LedgerTable (AWS::DynamoDB::Table) `scores-local-ledger`, may hold data: its fixed name fails the next create"),
        "{err}"
    );
    assert_eq!(status_of(&config, CORE).await, None, "the stack is gone");
    assert_eq!(table_names(&config).await, ["scores-local-ledger"], "kept");

    aws_sdk_dynamodb::Client::new(&config)
        .delete_table()
        .table_name("scores-local-ledger")
        .send()
        .await
        .unwrap();
    let (code, out, err) = deploy(&project, &moto);
    assert_eq!(code, 0, "{out}\n{err}\nemulator:\n{}", moto.log());
    assert!(out.contains(&format!("{CORE}: create, ")), "{out}");
    assert_eq!(table_names(&config).await, ["scores-local-ledger"]);
}

#[tokio::test]
async fn a_stack_held_in_update_rollback_failed_is_rolled_back_then_updated() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let project = KitProject::new(Zips::Fake);
    project.generate();
    project.deploy(&moto);
    let stack = "scores-local-mp-credit-scores";

    // A change to the forwarder, whose update fails, and so does its rollback.
    project.replace(
        "local.toml",
        "max_concurrency = 4\n",
        "max_concurrency = 4\nforwarder_memory_mb = 512\n",
    );
    project.generate();
    moto.arm_fault(&json!({"stack": stack, "resource": "Forwarder", "on": "update", "times": 2}));
    let (code, out, err) = deploy(&project, &moto);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(
        err.contains(&format!("stack `{stack}` ended UPDATE_ROLLBACK_FAILED")),
        "{err}"
    );
    assert_eq!(
        status_of(&config, stack).await.as_deref(),
        Some("UPDATE_ROLLBACK_FAILED")
    );

    let (code, out, err) = deploy(&project, &moto);
    assert_eq!(code, 0, "{out}\n{err}\nemulator:\n{}", moto.log());
    assert!(
        out.contains(&format!("{stack}: UPDATE_ROLLBACK_FAILED: an update failed and its rollback could not restore everything\n  held by:\n  - Forwarder (AWS::Lambda::Function) `scores-local-credit-scores-forwarder` UPDATE_FAILED: ")),
        "{out}"
    );
    assert!(
        out.contains("  the way out: continue the rollback"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{stack}: rolled back to its last good state")),
        "{out}"
    );
    assert!(out.contains(&format!("{stack}: update, ")), "{out}");
    assert_eq!(
        status_of(&config, stack).await.as_deref(),
        Some("UPDATE_COMPLETE")
    );
    let memory = aws_sdk_lambda::Client::new(&config)
        .get_function_configuration()
        .function_name("scores-local-credit-scores-forwarder")
        .send()
        .await
        .unwrap()
        .memory_size();
    assert_eq!(
        memory,
        Some(512),
        "the update went through once the rollback was done"
    );
}

#[tokio::test]
async fn teardown_empties_a_bucket_again_when_late_logs_arrive() {
    let moto = MotoServer::start();
    let project = KitProject::new(Zips::Fake);
    project.generate();
    project.deploy(&moto);
    moto.arm_fault(&json!({"stack": CORE, "resource": "LogsBucket", "on": "delete", "late_object": "alb/AWSLogs/late.log"}));

    let (code, out, err) = project.cli(moto.endpoint(), &["teardown", "--env", "local", "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}\nemulator:\n{}", moto.log());
    assert!(
        out.contains(
            "took 1 more object versions after it was emptied (late access logs); emptied it again"
        ),
        "{out}"
    );
    assert!(out.contains("4 stacks deleted, nothing left"), "{out}");
}

#[tokio::test]
async fn deploy_and_status_say_when_no_one_confirmed_the_alarm_email() {
    let moto = MotoServer::start();
    let project = KitProject::new(Zips::Fake);
    project.replace(
        "local.toml",
        "protected = false\n",
        "protected = false\nalarm_email = \"oncall@example.com\"\n",
    );
    project.generate();
    let out = project.deploy(&moto);
    let warning = "alarms: the e-mail subscription of `oncall@example.com` is not confirmed, so no alarm reaches it";
    assert!(out.contains(warning), "{out}");
    let (code, out, err) = project.cli(moto.endpoint(), &["status", "--env", "local"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with(warning), "{out}");

    moto.confirm_subscriptions();
    let (code, out, err) = project.cli(moto.endpoint(), &["status", "--env", "local"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("alarms:"), "{out}");
}
