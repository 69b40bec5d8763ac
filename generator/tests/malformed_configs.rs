//! Malformed configs: each case copies the shipped `environments/` and `templates/`, makes
//! one small edit to one file, loads one environment, and pins the first diagnostic: its
//! message, its exact place (`file:line:column`) and a fragment of its hint.

use std::path::Path;

use microprocess_kit::config::diagnostic::Diagnostic;
use microprocess_kit::config::Project;

mod common;
use common::copy_dir;

const MP: &str = "microprocesses.toml";

/// One textual edit to one file under `environments/`.
enum Edit {
    /// Replace `from`, which must occur exactly once, with `to`.
    Replace(&'static str, &'static str),
    /// Add text at the end of the file.
    Append(String),
}
use Edit::{Append, Replace};

fn project(root: &Path) -> Project {
    Project {
        root: root.to_path_buf(),
        host_arch: "x86_64".into(),
    }
}

/// Loads `env` from a copy of the real project with `edit` applied to `environments/<file>`
/// and returns the first diagnostic.
fn first_diagnostic(env: &str, file: &str, edit: Edit) -> Diagnostic {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root.join("environments"), &tmp.path().join("environments"));
    copy_dir(&root.join("templates"), &tmp.path().join("templates"));
    let path = tmp.path().join("environments").join(file);
    let mut text = std::fs::read_to_string(&path).unwrap();
    match edit {
        Replace(from, to) => {
            assert_eq!(
                text.matches(from).count(),
                1,
                "`{from}` must occur exactly once in {file}"
            );
            text = text.replacen(from, to, 1);
        }
        Append(more) => text.push_str(&more),
    }
    std::fs::write(&path, text).unwrap();
    match project(tmp.path()).load(env) {
        Ok(_) => panic!("`{env}` loaded despite the edit to {file}"),
        Err(d) => d.first().expect("at least one diagnostic").clone(),
    }
}

/// Asserts the first diagnostic of `env` after `edit`: message, place and hint fragment.
fn check(env: &str, file: &str, edit: Edit, message: &str, location: &str, hint: &str) {
    let d = first_diagnostic(env, file, edit);
    let got_hint = d.hint.clone().unwrap_or_default();
    let actual = (
        d.message.as_str(),
        d.location().unwrap_or_default(),
        got_hint.contains(hint),
    );
    assert_eq!(
        actual,
        (message, location.to_string(), true),
        "\n{d}full hint: {got_hint}"
    );
}

/// A complete, valid microprocess entry named `name`, for appending to microprocesses.toml
/// (whose last line is line 67, so the appended `[name]` is on line 69).
fn entry(name: &str) -> String {
    format!(
        r#"
[{name}]
schedule = {{ expression = "cron(0 9 ? * MON *)", timezone = "UTC" }}

[{name}.split]
path = "/microprocesses/nightly/split"

[{name}.process]
path = "/microprocesses/nightly/process"

[{name}.reduce]
path = "/microprocesses/nightly/reduce"
"#
    )
}

/// One `#[test]` per case:
/// `name: ENV, FILE, EDIT => MESSAGE at LOCATION, hint HINT_FRAGMENT;`
macro_rules! cases {
    ($($(#[$doc:meta])* $name:ident: $env:literal, $file:expr, $edit:expr
        => $message:literal at $location:literal, hint $hint:literal;)*) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                check($env, $file, $edit, $message, $location, $hint);
            }
        )*
    };
}

cases! {
    // ---- parse errors: unknown keys, wrong types, missing keys ----

    unknown_key_in_microprocesses_file: "prod", MP, Replace("page_size = 1000", "page_sise = 1000")
        => "unknown key `page_sise`" at "environments/microprocesses.toml:12:1", hint "did you mean `page_size`?";

    unknown_key_in_environment_file: "prod", "prod.toml", Replace("log_retention_days = 400", "log_retension_days = 400")
        => "unknown key `log_retension_days`" at "environments/prod.toml:9:1", hint "did you mean `log_retention_days`?";

    unknown_key_in_service_live: "prod", "prod.toml", Replace("min_tasks = 3", "min_task = 3")
        => "unknown key `min_task`" at "environments/prod.toml:32:1", hint "did you mean `min_tasks`?";

    unknown_key_in_microprocess_override: "prod", "prod.toml", Replace("max_concurrency = 40", "max_concurency = 40")
        => "unknown key `max_concurency`" at "environments/prod.toml:79:1", hint "did you mean `max_concurrency`?";

    string_where_integer_expected: "prod", "prod.toml", Replace("container_port = 8080", "container_port = \"8080\"")
        => "wrong type: string \"8080\", expected i64" at "environments/prod.toml:16:18", hint "README's config reference";

    /// A missing required key points at the table that lacks it.
    missing_required_environment_key: "prod", "prod.toml", Replace("protected = true\n", "")
        => "missing key `protected`" at "environments/prod.toml:3:1", hint "add `protected = ...`";

    // ---- names ----

    /// Points at the name inside `[microprocesses.NAME.delivery]`.
    override_for_unknown_microprocess: "prod", "prod.toml", Replace("[microprocesses.abn-refresh.delivery]", "[microprocesses.abn-refesh.delivery]")
        => "override for unknown microprocess `abn-refesh`" at "environments/prod.toml:78:17", hint "did you mean `abn-refresh`?";

    microprocess_name_with_uppercase: "prod", MP, Append(entry("Nightly"))
        => "`Nightly` is not a valid microprocess name" at "environments/microprocesses.toml:69:2", hint "lowercase letters, digits and single hyphens";

    microprocess_name_with_double_hyphen: "prod", MP, Append(entry("nightly--export"))
        => "`nightly--export` is not a valid microprocess name" at "environments/microprocesses.toml:69:2", hint "single hyphens";

    // ---- schedules ----

    cron_with_five_fields: "prod", MP, Replace("cron(0 2 1 * ? *)", "cron(0 2 1 * ?)")
        => "`cron(0 2 1 * ?)` has 5 fields, expected 6" at "environments/microprocesses.toml:7:27", hint "EventBridge cron has six fields";

    cron_with_question_mark_in_both_day_fields: "prod", MP, Replace("cron(30 4 * * ? *)", "cron(30 4 ? * ? *)")
        => "`cron(30 4 ? * ? *)` must have `?` in exactly one of day-of-month (`?`) and day-of-week (`?`)" at "environments/microprocesses.toml:33:27", hint "for every day use `* ?`";

    cron_minute_61: "prod", MP, Replace("cron(0 2 1 * ? *)", "cron(61 2 1 * ? *)")
        => "cron minutes field `61` is not a minutes value" at "environments/microprocesses.toml:7:27", hint "minutes takes 0-59";

    rate_with_plural_unit_for_one: "prod", MP, Replace("cron(30 4 * * ? *)", "rate(1 days)")
        => "`rate(1 days)` must say `day` for a value of 1" at "environments/microprocesses.toml:33:27", hint "write `rate(1 day)`";

    bad_time_zone: "prod", MP, Replace("1 * ? *)\", timezone = \"Australia/Sydney\"", "1 * ? *)\", timezone = \"Australia/Sydny\"")
        => "`Australia/Sydny` is not an IANA time zone" at "environments/microprocesses.toml:7:59", hint "did you mean `Australia/Sydney`?";

    business_hours_cron_without_question_mark: "prod", "prod.toml", Replace("cron(0 7 ? * MON-FRI *)", "cron(0 7 * * MON-FRI *)")
        => "`cron(0 7 * * MON-FRI *)` must have `?` in exactly one of day-of-month (`*`) and day-of-week (`MON-FRI`)" at "environments/prod.toml:47:9", hint "for weekdays `? MON-FRI`";

    // ---- microprocess paths ----

    /// A missing key points at the microprocess's `[NAME]` header.
    missing_process_path: "prod", MP, Replace("path = \"/microprocesses/abn-refresh/process\"\n", "")
        => "microprocess `abn-refresh` has no `process.path`" at "environments/microprocesses.toml:31:2", hint "add `[abn-refresh.process]` with `path = \"/...\"`";

    path_without_leading_slash: "prod", MP, Replace("\"/microprocesses/credit-scores/split\"", "\"microprocesses/credit-scores/split\"")
        => "`credit-scores.split.path` must start with `/`" at "environments/microprocesses.toml:11:8", hint "the service's queue host";

    path_with_query: "prod", MP, Replace("/abn-refresh/process\"", "/abn-refresh/process?full=1\"")
        => "`abn-refresh.process.path` must not carry a query or fragment (the kit adds its own query on split)" at "environments/microprocesses.toml:41:8", hint "the service's queue host";

    /// The URL parser would send `%7Bname%7D`: the signature and the service's router
    /// would see another path than the one configured.
    path_that_is_sent_re_encoded: "prod", MP, Replace("\"/microprocesses/credit-scores/split\"", "\"/microprocesses/{name}/split\"")
        => "`credit-scores.split.path` `/microprocesses/{name}/split` would be sent as `/microprocesses/%7Bname%7D/split`" at "environments/microprocesses.toml:11:8", hint "write `/microprocesses/%7Bname%7D/split`";

    path_with_dot_segment: "prod", MP, Replace("\"/microprocesses/credit-scores/split\"", "\"/microprocesses/./credit-scores/split\"")
        => "`credit-scores.split.path` `/microprocesses/./credit-scores/split` would be sent as `/microprocesses/credit-scores/split`" at "environments/microprocesses.toml:11:8", hint "without `.` segments";

    // ---- delivery numbers ----

    /// A failed child's letter can be redriven 14 days after its record was last written,
    /// and then lives up to the queue's 4 days: a record kept 7 days would be gone, and
    /// the redriven child counted again.
    retention_shorter_than_a_dead_letter_and_its_redrive: "prod", MP, Replace("retention_days = 30", "retention_days = 7")
        => "`abn-refresh.results.retention_days` (7) ends before a dead letter can be redriven and retried: letters stay 14 days and a redriven message up to 4 more (`delivery.message_retention_days`)" at "environments/microprocesses.toml:54:18", hint "keep records at least 18 days";

    /// Dev's 5 forwarders sharing one call a second get one call each every 5 s: a batch
    /// of 10 takes 50 s, far past a 30 s invocation.
    rate_cap_too_low_for_one_batch_per_invocation: "dev", MP, Replace("rate_limit_per_second = 500", "rate_limit_per_second = 1")
        => "`credit-scores.delivery.rate_limit_per_second` (1) cannot send a batch within one forwarder invocation: each of 5 forwarders gets a call every 5.00 s, so its batch of 10 takes 50.0 s before the last call's 25 s and the forwarder's 30 s run out" at "environments/microprocesses.toml:25:25", hint "raise the cap to at least 25";

    /// Ten answers of 8 MiB, each held twice, do not fit 128 MB.
    result_limit_over_forwarder_memory: "sandbox", MP, Replace("batch_size = 10\nmax_concurrency = 50", "batch_size = 10\nmax_concurrency = 50\nresult_limit_kib = 8192")
        => "`credit-scores.delivery.result_limit_kib` (8192 KiB) does not fit a batch of 10 in the forwarder's 128 MB" at "environments/microprocesses.toml:25:20", hint "set `delivery.forwarder_memory_mb = 200`";

    max_concurrency_1: "prod", "prod.toml", Replace("max_concurrency = 40", "max_concurrency = 1")
        => "`abn-refresh.delivery.max_concurrency` must be between 2 and 1000, got `1`" at "environments/prod.toml:79:19", hint "MaximumConcurrency is 2 to 1000";

    max_concurrency_5000: "prod", "prod.toml", Replace("max_concurrency = 200", "max_concurrency = 5000")
        => "`credit-scores.delivery.max_concurrency` must be between 2 and 1000, got `5000`" at "environments/prod.toml:75:19", hint "MaximumConcurrency is 2 to 1000";

    batch_size_11: "prod", MP, Replace("batch_size = 10\nmax_concurrency = 50", "batch_size = 11\nmax_concurrency = 50")
        => "`credit-scores.delivery.batch_size` must be between 1 and 10, got `11`" at "environments/microprocesses.toml:23:14", hint "raise max_concurrency instead";

    max_attempts_0: "prod", MP, Replace("max_attempts = 5", "max_attempts = 0")
        => "`credit-scores.process.max_attempts` must be between 1 and 999, got `0`" at "environments/microprocesses.toml:17:16", hint "SQS allows at most 1000";

    reserved_concurrency_below_max_concurrency: "prod", "prod.toml", Replace("max_concurrency = 200\n", "max_concurrency = 200\nreserved_concurrency = 150\n")
        => "`credit-scores.delivery.reserved_concurrency` (150) is below `delivery.max_concurrency` (200)" at "environments/prod.toml:76:24", hint "reserve at least max_concurrency";

    /// The shared entry's reservation suits every environment but prod, whose override of
    /// max_concurrency is what breaks the rule: the place is that override.
    shared_reserved_concurrency_below_overridden_max: "prod", MP, Replace("max_concurrency = 50\n", "max_concurrency = 50\nreserved_concurrency = 60\n")
        => "`credit-scores.delivery.reserved_concurrency` (60) is below `delivery.max_concurrency` (200)" at "environments/prod.toml:75:19", hint "reserve at least max_concurrency";

    // ---- the timeout chain ----

    /// Both values in one file: the place is the process timeout the message names.
    process_timeout_does_not_fit_inside_forwarder_timeout: "prod", MP, Replace("max_concurrency = 20\n", "max_concurrency = 20\nforwarder_timeout_seconds = 12\n")
        => "`abn-refresh.process.timeout_seconds` (10 s) does not fit inside the forwarder timeout (12 s)" at "environments/microprocesses.toml:42:19", hint "set `delivery.forwarder_timeout_seconds` to at least 13";

    /// The environment's forwarder override breaks the chain: the place is the override,
    /// not the shared process timeout that fits everywhere else.
    overridden_forwarder_timeout_below_process_timeout: "prod", "prod.toml", Replace("max_concurrency = 200\n", "max_concurrency = 200\nforwarder_timeout_seconds = 20\n")
        => "`credit-scores.process.timeout_seconds` (25 s) does not fit inside the forwarder timeout (20 s)" at "environments/prod.toml:76:29", hint "set `delivery.forwarder_timeout_seconds` to at least 28";

    visibility_below_six_times_forwarder: "prod", MP, Replace("rate_limit_per_second = 500\n", "rate_limit_per_second = 500\nvisibility_timeout_seconds = 100\n")
        => "`credit-scores.delivery.visibility_timeout_seconds` (100 s) is less than 6 × the forwarder timeout (30 s)" at "environments/microprocesses.toml:26:30", hint "use at least 180";

    /// SQS deletes a message at its retention with no dead letter: a retry schedule that
    /// can outlive it would leave the run waiting for that child for good.
    retry_schedule_longer_than_the_queue_retention: "prod", MP, Replace("timeout_seconds = 25\nmax_attempts = 5\n", "timeout_seconds = 25\nmax_attempts = 100\n")
        => "`credit-scores.process.max_attempts` (100) with up to 3600 s between attempts can keep a message 4.2 days, past the queue's retention of 4 days (`credit-scores.delivery.message_retention_days`)" at "environments/microprocesses.toml:17:16", hint "allow at most 95 attempts";

    /// Two keys at prod's 2,000 calls a second: 550 write units a second each, over half
    /// of a partition's 1,000.
    too_few_ledger_partitions_for_the_rate_cap: "prod", "prod.toml", Append("\n[microprocesses.credit-scores.results]\npartitions = 2\n".into())
        => "`credit-scores.results.partitions` = 2 puts 550 write units a second on each key at 2000 children a second, over half of DynamoDB's 1,000 a key" at "environments/prod.toml:87:14", hint "use at least 3, or leave it out for the default of 6";

    queue_idle_timeout_shorter_than_a_forwarder_timeout: "prod", "prod.toml", Replace("layout = \"internal-queue\"\n", "layout = \"internal-queue\"\nqueue_idle_timeout_seconds = 20\n")
        => "`service.queue_idle_timeout_seconds` (20 s) is shorter than the forwarder timeout of `credit-scores` (30 s)" at "environments/prod.toml:26:30", hint "use at least 30";

    // ---- account concurrency ----

    reserved_concurrency_over_explicit_limit: "prod", "prod.toml", Replace("lambda_concurrency_limit = 1000", "lambda_concurrency_limit = 300")
        => "the microprocesses reserve 266 concurrent executions, but only 200 of the account's 300 can be reserved" at "environments/prod.toml:8:28", hint "`credit-scores` reserves 200";

    /// Without `lambda_concurrency_limit` the place is the `[environment]` table.
    reserved_concurrency_over_default_limit: "dev", "dev.toml", Replace("max_concurrency = 5", "max_concurrency = 1000\nrate_limit_per_second = 5000")
        => "the microprocesses reserve 1046 concurrent executions, but only 900 of the account's 1000 can be reserved" at "environments/dev.toml:3:1", hint "`credit-scores` reserves 1000";

    // ---- choices ----

    overlap_typo: "prod", MP, Replace("overlap = \"skip\"\n\n[credit-scores.split]", "overlap = \"skp\"\n\n[credit-scores.split]")
        => "`credit-scores.overlap` cannot be `skp`" at "environments/microprocesses.toml:8:11", hint "did you mean `skip`?";

    results_storage_bad_value: "prod", MP, Replace("storage = \"discard\"", "storage = \"s3\"")
        => "`abn-refresh.results.storage` cannot be `s3`" at "environments/microprocesses.toml:53:11", hint "use one of `ledger`, `bucket`, `discard`";

    // ---- environment settings ----

    bad_region: "prod", "prod.toml", Replace("region = \"ap-southeast-2\"", "region = \"ap-southeast\"")
        => "`ap-southeast` is not an AWS region name" at "environments/prod.toml:5:10", hint "such as `eu-west-1`";

    account_id_not_12_digits: "prod", "prod.toml", Replace("\"333333333333\"", "\"33333333333\"")
        => "`account_id` must be 12 digits, got `33333333333`" at "environments/prod.toml:4:14", hint "aws sts get-caller-identity";

    bad_architecture: "prod", "prod.toml", Replace("architecture = \"arm64\"", "architecture = \"x86-64\"")
        => "`architecture` cannot be `x86-64`" at "environments/prod.toml:7:16", hint "did you mean `x86_64`?";

    log_retention_days_10: "prod", "prod.toml", Replace("log_retention_days = 400", "log_retention_days = 10")
        => "`log_retention_days` cannot be `10`" at "environments/prod.toml:9:22", hint "nearest is 7";

    expires_after_days_on_protected_environment: "prod", "prod.toml", Replace("log_retention_days = 400\n", "log_retention_days = 400\nexpires_after_days = 7\n")
        => "`expires_after_days` is only for unprotected environments" at "environments/prod.toml:10:22", hint "a protected environment never expires";

    // ---- service ----

    service_mode_typo: "prod", "prod.toml", Replace("mode = \"fargate\"", "mode = \"fargat\"")
        => "`service.mode` cannot be `fargat`" at "environments/prod.toml:14:8", hint "did you mean `fargate`?";

    external_service_over_plain_http: "local", "local.toml", Replace("http://127.0.0.1:8081", "http://scores.internal:8081")
        => "`queue_base_url` `http://scores.internal:8081` is plain http to `scores.internal`, which is not a loopback address" at "environments/local.toml:14:18", hint "only over TLS";

    /// A loopback prefix test used to let this through: the host is `evil.com`.
    external_service_with_userinfo: "local", "local.toml", Replace("http://127.0.0.1:8081", "http://127.0.0.1@evil.com")
        => "`queue_base_url` `http://127.0.0.1@evil.com` has a user name or password; the kit authenticates by signing, never by URL" at "environments/local.toml:14:18", hint "remove the `user@` part";

    external_service_with_query: "local", "local.toml", Replace("http://127.0.0.1:8081", "http://127.0.0.1:8081/svc?team=scores")
        => "`queue_base_url` `http://127.0.0.1:8081/svc?team=scores` has a query or fragment; the kit adds its own query on split" at "environments/local.toml:14:18", hint "https://host[:port][/prefix]";

    fargate_key_on_external_service: "local", "local.toml", Replace(":8081\"\n", ":8081\"\nvpc_id = \"vpc-0a1b2c3d4e5f60001\"\n")
        => "`service.vpc_id` only applies to `mode = \"fargate\"`" at "environments/local.toml:15:10", hint "reached at `queue_base_url`; remove the key";

    /// A missing service key points at the `[service]` header.
    missing_queue_host_for_fargate: "prod", "prod.toml", Replace("queue_host = \"scores-queue.example.com\"\n", "")
        => "`service` with `mode = \"fargate\"` has no `queue_host`" at "environments/prod.toml:12:1", hint "add `queue_host = ";

    queue_host_equal_to_live_host: "prod", "prod.toml", Replace("\"scores-queue.example.com\"", "\"scores.example.com\"")
        => "`queue_host` must differ from `live_host`" at "environments/prod.toml:24:14", hint "never starves live traffic";

    fargate_cpu_memory_mismatch: "prod", "prod.toml", Replace("memory_mb = 2048\nmin_tasks = 2", "memory_mb = 1024\nmin_tasks = 2")
        => "`service.queue.memory_mb` `1024` does not go with cpu 1024" at "environments/prod.toml:38:13", hint "Fargate task size table";

    min_tasks_above_max_tasks: "prod", "prod.toml", Replace("min_tasks = 3", "min_tasks = 13")
        => "`service.live.min_tasks` (13) is above `max_tasks` (12)" at "environments/prod.toml:32:13", hint "swap them or raise max_tasks";

    // ---- callback completion ----

    tolerance_of_100_percent: "prod", MP, Replace("tolerated_failure_percent = 2", "tolerated_failure_percent = 100")
        => "`annual-report.process.tolerated_failure_percent` must be between 0 and 99, got `100`" at "environments/microprocesses.toml:64:175", hint "leave it out to never cancel";

    lease_without_callback_completion: "prod", MP, Replace("completion = \"callback\", lease_seconds = 900", "lease_seconds = 900")
        => "`annual-report.process.lease_seconds` applies only to callback completion" at "environments/microprocesses.toml:64:117", hint "set `annual-report.process.completion = \"callback\"`";

    completion_typo: "prod", MP, Replace("completion = \"callback\"", "completion = \"callbak\"")
        => "`annual-report.process.completion` cannot be `callbak`" at "environments/microprocesses.toml:64:114", hint "did you mean `callback`?";

    lease_too_short: "prod", MP, Replace("lease_seconds = 900", "lease_seconds = 5")
        => "`annual-report.process.lease_seconds` must be between 10 and 86400, got `5`" at "environments/microprocesses.toml:64:142", hint "counts as lost";

    /// Every attempt's lease running out must end inside the run's records.
    leases_outlive_the_records: "prod", MP, Replace("max_attempts = 3, completion = \"callback\", lease_seconds = 900, tolerated_failure_percent = 2 }\nreduce = { path = \"/microprocesses/annual-report/reduce\" }\ndelivery = { batch_size = 5, max_concurrency = 10 }\nresults = { retention_days = 365 }", "max_attempts = 19, completion = \"callback\", lease_seconds = 86400, tolerated_failure_percent = 2 }\nreduce = { path = \"/microprocesses/annual-report/reduce\" }\ndelivery = { batch_size = 5, max_concurrency = 10 }\nresults = { retention_days = 18 }")
        => "`annual-report.process.max_attempts` (19) leases of 86400 s after calls of up to 15 s can keep a child in progress 19.0 days, past its run's records (`annual-report.results.retention_days` = 18)" at "environments/microprocesses.toml:64:143", hint "a report after the records expire would count the child again";


    /// The private subnets must reach AWS one way or the other.
    fargate_without_network: "staging", "staging.toml", Replace("[service.network]\negress = \"nat\"\n", "")
        => "`service` with `mode = \"fargate\"` has no `[service.network]`" at "environments/staging.toml:11:1", hint "egress = \"vpc-endpoints\"";
    endpoints_without_route_tables: "prod", "prod.toml", Replace("private_route_table_ids = [\"rtb-0c1b2c3d4e5f60021\", \"rtb-0c1b2c3d4e5f60022\", \"rtb-0c1b2c3d4e5f60023\"]\n", "")
        => "`egress = \"vpc-endpoints\"` needs `private_route_table_ids`" at "environments/prod.toml:53:1", hint "gateway endpoints join the private subnets' route tables";
    egress_typo: "staging", "staging.toml", Replace("egress = \"nat\"", "egress = \"nat-gateway\"")
        => "`service.network.egress` cannot be `nat-gateway`" at "environments/staging.toml:47:10", hint "`vpc-endpoints`";

    /// The service's own permissions follow the kit's rule: no wildcard action in an Allow.
    task_statement_with_a_wildcard: "prod", "prod.toml", Replace("\"dynamodb:Query\"]", "\"dynamodb:*\"]")
        => "`service.task_role.statements`: `dynamodb:*` allows a wildcard action" at "environments/prod.toml:71:32", hint "the kit grants no wildcard action";
    aws_managed_task_policy: "prod", "prod.toml", Replace("[service.task_role]\n", "[service.task_role]\nmanaged_policy_arns = [\"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess\"]\n")
        => "`service.task_role.managed_policy_arns`: `arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess` is an AWS managed policy" at "environments/prod.toml:69:24", hint "allow wildcard actions";
    container_variable_of_the_kit: "prod", "prod.toml", Replace("LOG_LEVEL = \"info\"", "MICROPROCESS_SIDE = \"info\"")
        => "`service.container.environment`: `MICROPROCESS_SIDE` is one of the kit's own variables" at "environments/prod.toml:65:17", hint "set by the kit";
    container_secret_not_an_arn: "prod", "prod.toml", Replace("DATABASE_URL = \"arn:aws:ssm:ap-southeast-2:333333333333:parameter/scores/database-url\"", "DATABASE_URL = \"scores/database-url\"")
        => "`service.container.secrets.DATABASE_URL` is not a Secrets Manager secret or SSM parameter ARN" at "environments/prod.toml:66:28", hint "execution role may read exactly these";
    task_egress_to_everywhere: "prod", "prod.toml", Replace("security_group_id = \"sg-0c1b2c3d4e5f60032\"", "cidr = \"0.0.0.0/0\"")
        => "`service.network.task_egress.cidr` `0.0.0.0/0` opens the port to every address" at "environments/prod.toml:62:8", hint "name the network";

    /// The internal queue ALB's record belongs in a private zone, never the public one.
    internal_queue_host_without_a_private_zone: "dev", "dev.toml", Replace("queue_hosted_zone_id = \"Z0DEVINTERNAL00000001\"\n", "")
        => "the internal queue host has no `queue_hosted_zone_id`" at "environments/dev.toml:11:1", hint "private hosted zone associated with `vpc_id`";
    internal_queue_host_in_the_public_zone: "dev", "dev.toml", Replace("queue_hosted_zone_id = \"Z0DEVINTERNAL00000001\"", "queue_hosted_zone_id = \"Z0DEV0000000000000001\"")
        => "`queue_hosted_zone_id` is the live host's zone" at "environments/dev.toml:25:24", hint "private zone of the VPC";

}

/// An environment name given on the command line has no place in any file.
#[test]
fn unknown_environment_name() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let d = project(root)
        .load("prd")
        .unwrap_err()
        .first()
        .unwrap()
        .clone();
    assert_eq!(
        (d.message.as_str(), d.location()),
        ("unknown environment `prd`", None)
    );
    let hint = d.hint.unwrap();
    assert!(hint.starts_with("did you mean `prod`?"), "{hint}");
}

/// The shipped config itself is valid, so every failure above comes from its edit.
#[test]
fn shipped_environments_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for env in ["dev", "local", "prod", "sandbox", "staging"] {
        project(root)
            .load(env)
            .unwrap_or_else(|d| panic!("{env}: {d}"));
    }
}
