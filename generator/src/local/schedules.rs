//! The schedules of a bundle, read from its templates: the emulator accepts
//! `AWS::Scheduler::Schedule` but does not create it, so `ListSchedules` knows none.
//!
//! Locally, a `rate(...)` schedule (the sweep's `rate(5 minutes)`) fires on its period,
//! first one period after the runner starts; a `cron(...)` schedule (the monthly run) is
//! shown but only fires when asked (`--fire-now NAME`, one tick at start). A tick is an
//! asynchronous invocation of the target with the schedule's input, the Scheduler
//! placeholders filled in as EventBridge Scheduler fills them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use super::LocalError;

/// A schedule of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleSpec {
    pub name: String,
    pub expression: String,
    pub timezone: String,
    /// `State: ENABLED`.
    pub enabled: bool,
    /// The target function's name.
    pub function: String,
    /// The input, with `${AWS::...}` resolved and the Scheduler placeholders left in.
    pub input: String,
    /// The template it came from.
    pub template: PathBuf,
}

impl ScheduleSpec {
    /// The period of a `rate(...)` schedule; `None` for `cron(...)`.
    pub fn period(&self) -> Option<Duration> {
        rate_period(&self.expression)
    }

    /// The schedule's ARN, as Scheduler names it.
    pub fn arn(&self, region: &str, account: &str) -> String {
        format!(
            "arn:aws:scheduler:{region}:{account}:schedule/default/{}",
            self.name
        )
    }
}

/// `rate(5 minutes)` → 300 s.
pub fn rate_period(expression: &str) -> Option<Duration> {
    let body = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (value, unit) = body.trim().split_once(char::is_whitespace)?;
    let value: u64 = value.parse().ok().filter(|v| *v > 0)?;
    let unit_seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(value * unit_seconds))
}

/// The input of one tick: Scheduler's context placeholders filled in.
pub fn render_input(
    input: &str,
    scheduled_time: DateTime<Utc>,
    schedule_arn: &str,
    execution_id: &str,
) -> String {
    input
        .replace(
            "<aws.scheduler.scheduled-time>",
            &scheduled_time.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
        .replace("<aws.scheduler.execution-id>", execution_id)
        .replace("<aws.scheduler.schedule-arn>", schedule_arn)
        .replace("<aws.scheduler.attempt-number>", "1")
}

/// Every schedule of the bundle in `bundle_dir` (the stacks its `manifest.json` lists).
pub fn from_bundle(
    bundle_dir: &Path,
    region: &str,
    account: &str,
) -> Result<Vec<ScheduleSpec>, LocalError> {
    let manifest_path = bundle_dir.join("manifest.json");
    let manifest: Value = read_json(&manifest_path)?;
    let mut schedules = Vec::new();
    let templates = manifest
        .get("stacks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("template").and_then(Value::as_str));
    for template in templates {
        let path = bundle_dir.join(template);
        schedules.extend(from_template(&path, &read_json(&path)?, region, account)?);
    }
    schedules.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(schedules)
}

fn read_json(path: &Path) -> Result<Value, LocalError> {
    let text = std::fs::read_to_string(path).map_err(|e| LocalError::Bundle {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| LocalError::Bundle {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// The schedules of one rendered template.
pub fn from_template(
    path: &Path,
    template: &Value,
    region: &str,
    account: &str,
) -> Result<Vec<ScheduleSpec>, LocalError> {
    let bad = |detail: String| LocalError::Bundle {
        path: path.to_path_buf(),
        detail,
    };
    let Some(resources) = template.get("Resources").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for (logical_id, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Scheduler::Schedule") {
            continue;
        }
        let properties = &resource["Properties"];
        let text = |key: &str| {
            properties
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let target = &properties["Target"];
        let function = target_function(resources, &target["Arn"]).ok_or_else(|| {
            bad(format!(
                "schedule `{logical_id}`: its target is not a function of the same template"
            ))
        })?;
        let input = match target.get("Input") {
            None => "{}".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => match other.get("Fn::Sub").and_then(Value::as_str) {
                Some(s) => substitute(s, region, account),
                None => {
                    return Err(bad(format!(
                        "schedule `{logical_id}`: its input is neither a string nor an `Fn::Sub` string"
                    )))
                }
            },
        };
        found.push(ScheduleSpec {
            name: text("Name").unwrap_or_else(|| logical_id.clone()),
            expression: text("ScheduleExpression")
                .ok_or_else(|| bad(format!("schedule `{logical_id}` has no expression")))?,
            timezone: text("ScheduleExpressionTimezone").unwrap_or_else(|| "UTC".into()),
            enabled: text("State").as_deref() != Some("DISABLED"),
            function,
            input,
            template: path.to_path_buf(),
        });
    }
    Ok(found)
}

/// The `FunctionName` of the function a `Fn::GetAtt [Logical, Arn]` points at.
fn target_function(resources: &serde_json::Map<String, Value>, arn: &Value) -> Option<String> {
    let logical = arn.get("Fn::GetAtt")?.get(0)?.as_str()?;
    let resource = resources.get(logical)?;
    (resource.get("Type")?.as_str()? == "AWS::Lambda::Function")
        .then(|| {
            resource["Properties"]["FunctionName"]
                .as_str()
                .map(str::to_string)
        })
        .flatten()
}

fn substitute(text: &str, region: &str, account: &str) -> String {
    text.replace("${AWS::AccountId}", account)
        .replace("${AWS::Region}", region)
        .replace("${AWS::Partition}", "aws")
        .replace("${AWS::URLSuffix}", "amazonaws.com")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn rate_periods() {
        assert_eq!(
            rate_period("rate(5 minutes)"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(rate_period("rate(1 hour)"), Some(Duration::from_secs(3600)));
        assert_eq!(
            rate_period("rate(2 days)"),
            Some(Duration::from_secs(172_800))
        );
        assert_eq!(rate_period("cron(0 2 1 * ? *)"), None);
        assert_eq!(rate_period("rate(0 minutes)"), None);
        assert_eq!(rate_period("rate(5 weeks)"), None);
    }

    fn template() -> Value {
        json!({"Resources": {
            "Splitter": {"Type": "AWS::Lambda::Function",
                         "Properties": {"FunctionName": "scores-local-credit-scores-splitter"}},
            "Schedule": {"Type": "AWS::Scheduler::Schedule", "Properties": {
                "Name": "scores-local-credit-scores",
                "ScheduleExpression": "cron(0 2 1 * ? *)",
                "ScheduleExpressionTimezone": "Australia/Sydney",
                "State": "ENABLED",
                "Target": {"Arn": {"Fn::GetAtt": ["Splitter", "Arn"]},
                           "Input": {"Fn::Sub": "{\"account\":\"${AWS::AccountId}\",\"region\":\"${AWS::Region}\",\"time\":\"<aws.scheduler.scheduled-time>\",\"id\":\"<aws.scheduler.execution-id>\"}"}}}},
            "SweepSchedule": {"Type": "AWS::Scheduler::Schedule", "Properties": {
                "Name": "scores-local-credit-scores-sweep",
                "ScheduleExpression": "rate(5 minutes)",
                "State": "ENABLED",
                "Target": {"Arn": {"Fn::GetAtt": ["Splitter", "Arn"]},
                           "Input": "{\"sweep\": true}"}}}
        }})
    }

    #[test]
    fn schedules_are_read_from_the_template_with_their_target_and_input() {
        let found = from_template(
            Path::new("mp.template.json"),
            &template(),
            "us-east-1",
            "123456789012",
        )
        .unwrap();
        assert_eq!(found.len(), 2);
        let monthly = &found[0];
        assert_eq!(monthly.name, "scores-local-credit-scores");
        assert_eq!(monthly.function, "scores-local-credit-scores-splitter");
        assert_eq!(monthly.timezone, "Australia/Sydney");
        assert!(monthly.enabled);
        assert_eq!(monthly.period(), None);
        let tick = render_input(
            &monthly.input,
            Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 0).unwrap(),
            &monthly.arn("us-east-1", "123456789012"),
            "e-1",
        );
        assert_eq!(
            serde_json::from_str::<Value>(&tick).unwrap(),
            json!({"account": "123456789012", "region": "us-east-1",
                   "time": "2026-11-01T02:00:00Z", "id": "e-1"})
        );
        let sweep = &found[1];
        assert_eq!(sweep.period(), Some(Duration::from_secs(300)));
        assert_eq!(sweep.input, "{\"sweep\": true}");
        assert_eq!(sweep.timezone, "UTC");
    }

    #[test]
    fn a_schedule_aimed_elsewhere_is_reported_with_its_template() {
        let mut t = template();
        t["Resources"]["SweepSchedule"]["Properties"]["Target"]["Arn"] = json!("arn:aws:sqs:x");
        let error = from_template(Path::new("mp.template.json"), &t, "r", "a")
            .unwrap_err()
            .to_string();
        assert!(error.contains("mp.template.json"), "{error}");
        assert!(error.contains("schedule `SweepSchedule`"), "{error}");
    }
}
