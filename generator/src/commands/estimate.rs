//! `microprocess estimate NAME --env ENV --items N [--latency-ms L]`: how long a run of N
//! items takes at the configured concurrency and rate cap, and what it costs in AWS, from
//! the model the `cost` benchmark holds against a local run ([`crate::estimate`]).

use std::fmt::Write as _;
use std::io::Write;

use clap::Args;

use super::{Exit, Output};
use crate::config::diagnostic::did_you_mean;
use crate::config::model::{Environment, Microprocess, ResultStorage};
use crate::config::Project;
use crate::estimate::fan_in::{fan_in, peak_units_per_key, PARTITION_WRITE_UNITS_PER_SECOND};
use crate::estimate::{self, prices, Bound, Estimate, Inputs, Workload};

#[derive(Debug, Args)]
pub struct EstimateArgs {
    /// The microprocess to estimate.
    #[arg(value_name = "NAME")]
    pub microprocess: String,
    #[command(flatten)]
    pub instance: super::InstanceArgs,
    /// Items the split returns.
    #[arg(long, value_name = "N")]
    pub items: u64,
    /// The service's time per process call, in milliseconds.
    #[arg(long, value_name = "L", default_value_t = 50)]
    pub latency_ms: u64,
    /// Fraction of process calls answered "retry later" (5xx, 429, timeouts), 0 to 0.99.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub retry_rate: f64,
    /// Bytes of a process answer (kept in the ledger up to 64 KiB, or in S3).
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub result_bytes: u64,
}

/// `--output json` (`docs/json-output.md`, "estimate"): the run's figures in seconds,
/// requests and dollars.
#[derive(Debug, serde::Serialize)]
struct Report {
    command: &'static str,
    environment: String,
    microprocess: String,
    items: u64,
    run_seconds: f64,
    split_seconds: f64,
    children_per_second: f64,
    /// What sets the pace: `concurrency`, `rate_cap` or `split`.
    bound: &'static str,
    attempts_per_child: f64,
    failed_fraction: f64,
    cost: Dollars,
    cost_per_million: Dollars,
    requests: Requests,
}

#[derive(Debug, serde::Serialize)]
struct Dollars {
    lambda: f64,
    sqs: f64,
    dynamodb: f64,
    s3: f64,
    total: f64,
}

impl From<&estimate::Cost> for Dollars {
    fn from(c: &estimate::Cost) -> Dollars {
        let cents = |x: f64| (x * 10_000.0).round() / 10_000.0;
        Dollars {
            lambda: cents(c.lambda),
            sqs: cents(c.sqs),
            dynamodb: cents(c.dynamodb),
            s3: cents(c.s3),
            total: cents(c.total()),
        }
    }
}

#[derive(Debug, serde::Serialize)]
struct Requests {
    sqs: u64,
    dynamodb: u64,
    dynamodb_write_units: u64,
    lambda_invocations: u64,
    s3_put: u64,
}

fn json_report(env: &Environment, mp: &Microprocess, e: &estimate::Estimate) -> Report {
    let round = |x: f64| (x * 10.0).round() / 10.0;
    Report {
        command: "estimate",
        environment: env.name.clone(),
        microprocess: mp.name.clone(),
        items: e.inputs.items,
        run_seconds: round(e.timing.run_seconds),
        split_seconds: round(e.timing.split_seconds),
        children_per_second: round(e.timing.children_per_second),
        bound: match e.timing.bound {
            estimate::Bound::Concurrency => "concurrency",
            estimate::Bound::RateCap => "rate_cap",
            estimate::Bound::Split => "split",
        },
        attempts_per_child: (e.attempts_per_child * 1000.0).round() / 1000.0,
        failed_fraction: e.failed_fraction,
        cost: Dollars::from(&e.cost),
        cost_per_million: Dollars::from(&e.per_million),
        requests: Requests {
            sqs: e.total.sqs_requests().round() as u64,
            dynamodb: e.total.dynamodb_requests().round() as u64,
            dynamodb_write_units: e.total.dynamodb_write_units.round() as u64,
            lambda_invocations: e.total.lambda_invocations.round() as u64,
            s3_put: e.total.s3_put.round() as u64,
        },
    }
}

pub fn run(
    project: &Project,
    args: &EstimateArgs,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    let env = match args.instance.load(project, err) {
        Ok(env) => env,
        Err(code) => return code,
    };
    let Some(mp) = env
        .microprocesses
        .iter()
        .find(|m| m.name == args.microprocess)
    else {
        let _ = writeln!(
            err,
            "error: environment `{}` has no microprocess `{}`\n  hint: {}",
            env.name,
            args.microprocess,
            names_hint(&env, &args.microprocess)
        );
        return Exit::Usage;
    };
    if let Err(why) = check(args, mp) {
        let _ = writeln!(err, "error: {why}");
        return Exit::Usage;
    }
    let workload = Workload {
        retry_rate: args.retry_rate,
        result_bytes: args.result_bytes,
        ..Workload::new(args.items, args.latency_ms as f64 / 1000.0)
    };
    let estimate = estimate::estimate(&Inputs::from_config(&env, mp, workload));
    match output {
        Output::Text => {
            let _ = out.write_all(report(&env, mp, &estimate).as_bytes());
        }
        Output::Json => super::print_json(out, &json_report(&env, mp, &estimate)),
    }
    Exit::Ok
}

fn names_hint(env: &Environment, name: &str) -> String {
    let names: Vec<&str> = env.microprocesses.iter().map(|m| m.name.as_str()).collect();
    let list = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match did_you_mean(name, names.iter().copied()) {
        Some(close) => format!("did you mean `{close}`? (microprocesses: {list})"),
        None if names.is_empty() => "the environment enables no microprocess".to_string(),
        None => format!("microprocesses: {list}"),
    }
}

fn check(args: &EstimateArgs, mp: &Microprocess) -> Result<(), String> {
    if args.items == 0 {
        return Err("`--items` must be at least 1".into());
    }
    if args.latency_ms == 0 {
        return Err("`--latency-ms` must be at least 1".into());
    }
    let timeout_ms = u64::from(mp.process.timeout_seconds) * 1000;
    if args.latency_ms > timeout_ms {
        return Err(format!(
            "`--latency-ms {}` is longer than the process timeout of `{}` ({} s): every call would time out\n  hint: raise `process.timeout_seconds`, or estimate a shorter latency",
            args.latency_ms, mp.name, mp.process.timeout_seconds
        ));
    }
    if !(0.0..1.0).contains(&args.retry_rate) {
        return Err(format!(
            "`--retry-rate {}` must be at least 0 and below 1",
            args.retry_rate
        ));
    }
    Ok(())
}

/// The estimate as the command prints it.
pub fn report(env: &Environment, mp: &Microprocess, e: &Estimate) -> String {
    let i = &e.inputs;
    let t = &e.timing;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "`{}` in `{}`: {} items, the service answering in {} ms",
        mp.name,
        env.name,
        grouped(i.items as f64),
        millis(i.latency_seconds)
    );
    let _ = writeln!(
        s,
        "  batches of {}, {} at a time, {}, {} attempts, pages of {}, {} counter shard{}, results {}, forwarder {} MB {}",
        i.batch_size,
        i.max_concurrency,
        match i.rate_limit_per_second {
            Some(r) => format!("at most {} calls/s", grouped(f64::from(r))),
            None => "no rate cap".into(),
        },
        i.max_attempts,
        i.page_size,
        i.counter_shards,
        if i.counter_shards == 1 { "" } else { "s" },
        match mp.results.storage {
            ResultStorage::Ledger => "in the ledger",
            ResultStorage::Bucket => "in S3",
            ResultStorage::Discard => "discarded",
        },
        i.forwarder_memory_mb,
        env.architecture,
    );
    let _ = writeln!(s);
    let bound = match t.bound {
        Bound::Concurrency => format!(
            "bound by concurrency: {} batches of {} at a time",
            i.max_concurrency, i.batch_size
        ),
        Bound::RateCap => "bound by the rate cap (`delivery.rate_limit_per_second`)".into(),
        Bound::Split => "bound by the split (`split.page_size` items a page)".into(),
    };
    let _ = writeln!(
        s,
        "duration: {} ({} children/s, {bound}; the split takes {})",
        span(t.run_seconds),
        grouped(t.children_per_second),
        span(t.split_seconds),
    );
    let _ = writeln!(
        s,
        "  one forwarder batch lasts {} ms{}",
        millis(t.batch_seconds),
        match i.rate_limit_per_second {
            Some(r) if t.cap_wait_seconds > WAIT_WORTH_SAYING => format!(
                ", {} ms of it waiting for the instance's share of the cap ({} calls/s)",
                millis(t.cap_wait_seconds),
                share(r, i.max_concurrency)
            ),
            _ => ", its calls made at once".into(),
        }
    );
    let _ = writeln!(s);
    let per_child = &e.per_child;
    let total = &e.total;
    let rows = [
        (
            "Lambda",
            format!(
                "{} invocations, {} GB-s",
                decimal(per_child.lambda_invocations),
                decimal(per_child.lambda_gb_seconds)
            ),
            format!("{} invocations", grouped(total.lambda_invocations)),
            e.cost.lambda,
            e.per_million.lambda,
        ),
        (
            "SQS",
            format!("{} requests", decimal(per_child.sqs_requests())),
            format!("{} requests", grouped(total.sqs_requests())),
            e.cost.sqs,
            e.per_million.sqs,
        ),
        (
            "DynamoDB",
            format!(
                "{} write + {} read units",
                decimal(per_child.dynamodb_write_units),
                decimal(per_child.dynamodb_read_units)
            ),
            format!("{} requests", grouped(total.dynamodb_requests())),
            e.cost.dynamodb,
            e.per_million.dynamodb,
        ),
        (
            "S3",
            format!("{} puts", decimal(per_child.s3_put)),
            format!("{} puts", grouped(total.s3_put)),
            e.cost.s3,
            e.per_million.s3,
        ),
    ];
    let _ = writeln!(
        s,
        "{:<9} {:<33} {:<22} {:>10} {:>12}",
        "service", "per child", "this run", "cost", "per million"
    );
    for (name, child, run, cost, million) in rows {
        let _ = writeln!(
            s,
            "{name:<9} {child:<33} {run:<22} {:>10} {:>12}",
            dollars(cost),
            dollars(million)
        );
    }
    let _ = writeln!(
        s,
        "{:<9} {:<33} {:<22} {:>10} {:>12}",
        "total",
        "",
        "",
        dollars(e.cost.total()),
        dollars(e.per_million.total())
    );
    if let Some(hint) = concurrency_hint(env, e) {
        let _ = writeln!(s, "{hint}");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", ledger_limit(e));
    let sf = &e.step_functions;
    let _ = writeln!(
        s,
        "Step Functions Distributed Map, per million children: Standard children {}; Express children {} (one item each) or {} ({} items each, at-least-once)",
        dollars(sf.standard_children),
        dollars(sf.express_children),
        dollars(sf.express_batched_children),
        i.batch_size,
    );
    let _ = writeln!(
        s,
        "idle, per month: {} for the queue's long polling ({} empty receives), {} for the five-minute sweep",
        dollars(e.idle_queue_cost_per_month),
        grouped(e.idle_queue_requests_per_month),
        dollars(e.sweep_cost_per_month),
    );
    let region_note = if env.region == prices::PRICES_REGION {
        String::new()
    } else {
        format!("; `{}` is in {}, whose prices differ", env.name, env.region)
    };
    let _ = writeln!(
        s,
        "prices: public on-demand, {}, free tiers left out{region_note}; the service's own compute is not included",
        prices::PRICES_REGION
    );
    s
}

/// The ledger's peak load per partition key at the run's pace, against DynamoDB's
/// ceiling, and the pace the layout holds before it throttles.
fn ledger_limit(e: &Estimate) -> String {
    let f = fan_in(&e.inputs);
    let pace = e.timing.children_per_second;
    let peak = peak_units_per_key(&f, pace);
    format!(
        "ledger: {} child partition key{} (`results.partitions`), {} write units a child; at {} children/s the busiest key takes {} write units/s of DynamoDB's {} ({:.0}%); the layout holds {} children/s before it throttles",
        f.partitions,
        if f.partitions == 1 { "" } else { "s" },
        decimal(f.units_per_child),
        grouped(pace),
        grouped(peak),
        grouped(PARTITION_WRITE_UNITS_PER_SECOND),
        100.0 * peak / PARTITION_WRITE_UNITS_PER_SECOND,
        grouped(f.children_per_second),
    )
}

/// Shorter waits for the cap are not worth a line: the model's AWS call times are rougher.
const WAIT_WORTH_SAYING: f64 = 0.001;

/// When forwarders wait for the rate cap inside their invocations (billed Lambda time),
/// the concurrency that reaches the cap without waiting, and what the run then costs.
fn concurrency_hint(env: &Environment, e: &Estimate) -> Option<String> {
    let i = &e.inputs;
    let t = &e.timing;
    let enough = t.forwarders_for_cap?;
    if t.cap_wait_seconds <= WAIT_WORTH_SAYING || enough >= i.max_concurrency {
        return None;
    }
    let sized = estimate::estimate(&Inputs {
        max_concurrency: enough,
        ..i.clone()
    });
    Some(format!(
        "hint: {} forwarders reach the cap of {} calls/s without waiting for it: with `delivery.max_concurrency = {enough}` in `{}` this run costs {} ({} per million, Lambda {} instead of {}) at the same pace, while the service answers in {} ms",
        enough,
        grouped(f64::from(i.rate_limit_per_second.unwrap_or_default())),
        env.name,
        dollars(sized.cost.total()),
        dollars(sized.per_million.total()),
        dollars(sized.per_million.lambda),
        dollars(e.per_million.lambda),
        millis(i.latency_seconds),
    ))
}

/// One forwarder's share of the cap, in calls a second.
fn share(rate: u32, forwarders: u32) -> String {
    let share = f64::from(rate) / f64::from(forwarders.max(1));
    if share >= 10.0 {
        grouped(share)
    } else {
        format!("{share:.1}")
    }
}

/// `$1.23`, or more digits for small amounts.
pub fn dollars(v: f64) -> String {
    if v >= 100.0 {
        format!("${}", grouped(v))
    } else if v >= 0.1 || v == 0.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.4}")
    }
}

fn decimal(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.5}")
    }
}

fn millis(seconds: f64) -> String {
    format!("{:.0}", seconds * 1000.0)
}

/// A whole number with thousands separators.
pub fn grouped(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `2 h 05 min`, `3 min 20 s`, `12.5 s`.
fn span(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    let (h, m, s) = (whole / 3600, (whole % 3600) / 60, whole % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else {
        format!("{m} min {s:02} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(1_234_567.4), "1,234,567");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(dollars(1.2345), "$1.23");
        assert_eq!(dollars(0.0123), "$0.0123");
        assert_eq!(dollars(1234.0), "$1,234");
        assert_eq!(span(12.46), "12.5 s");
        assert_eq!(span(200.0), "3 min 20 s");
        assert_eq!(span(7500.0), "2 h 05 min");
    }
}
