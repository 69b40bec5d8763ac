//! Validation of one microprocess: the shared entry with the environment's override laid
//! over it, key by key, each value remembering which file it came from.

use std::sync::Arc;

use microprocess_shared::queue_host;
use toml::Spanned;

use super::checks::{is_kebab_name, path_problem, Checker, Located};
use super::diagnostic::{Place, SourceFile};
use super::model::{
    Delivery, Microprocess, Overlap, Process, Reduce, ResultStorage, Results, Schedule, Split,
};
use super::raw::RawMicroprocess;
use super::result_limit;
use super::schedule::{check_expression, check_timezone};

/// Longest microprocess name: it becomes part of function names (64 characters at most)
/// such as `mp-<environment>-<name>-forwarder`.
pub const MAX_NAME_LEN: usize = 32;

/// How long the dead-letter queue keeps a letter: 14 days, the SQS maximum.
pub const DEAD_LETTER_RETENTION_DAYS: u32 = 14;

/// Seconds the forwarder keeps after the service's time is up, to record the outcome.
pub const FORWARDER_MARGIN_SECONDS: u32 = 3;

/// The entry and its override, override first.
pub struct Layers<'a> {
    pub layers: Vec<(&'a RawMicroprocess, &'a Arc<SourceFile>)>,
}

impl Layers<'_> {
    /// The value of one key from the first layer that sets it.
    pub(super) fn get<T: Clone>(
        &self,
        pick: impl Fn(&RawMicroprocess) -> Option<&Spanned<T>>,
    ) -> Option<Located<T>> {
        self.layers
            .iter()
            .find_map(|(entry, file)| pick(entry).map(|s| Located::from_spanned(s, file)))
    }

    /// Whether `place` is in the environment's override rather than the shared entry.
    fn is_override(&self, place: &Place) -> bool {
        self.layers.len() > 1 && Arc::ptr_eq(&place.file, self.layers[0].1)
    }

    /// Where to point when two values break a rule together: at `first`, unless only
    /// `second` comes from the environment's override, which is then what broke a rule the
    /// shared entry keeps in other environments.
    pub(super) fn blame<'p>(
        &self,
        first: Option<&'p Place>,
        second: Option<&'p Place>,
    ) -> Option<&'p Place> {
        match (first, second) {
            (Some(f), Some(s)) if self.is_override(s) && !self.is_override(f) => Some(s),
            (f, s) => f.or(s),
        }
    }
}

pub fn check_name(c: &mut Checker, name: &Located<String>) {
    if !is_kebab_name(&name.value, MAX_NAME_LEN) {
        c.error(
            &name.place,
            format!("`{}` is not a valid microprocess name", name.value),
            format!(
                "use 2 to {MAX_NAME_LEN} lowercase letters, digits and single hyphens, starting with a letter, e.g. `credit-scores`"
            ),
        );
    }
}

/// Checks one microprocess; `name_place` is where its table is named in microprocesses.toml.
pub fn validate(c: &mut Checker, name: &str, name_place: &Place, l: &Layers<'_>) -> Microprocess {
    let key = |k: &str| format!("{name}.{k}");
    let required_path = |c: &mut Checker, v: Option<Located<String>>, k: &str| -> String {
        match v {
            None => {
                c.error(
                    name_place,
                    format!("microprocess `{name}` has no `{k}`"),
                    format!(
                        "add `[{name}.{}]` with `path = \"/...\"`",
                        k.trim_end_matches(".path")
                    ),
                );
                String::new()
            }
            Some(p) => {
                if let Some(problem) = path_problem(&p.value) {
                    c.error(&p.place, format!("`{}` {problem}", key(k)), "write the path on the service's queue host, e.g. `/microprocesses/credit-scores/process`");
                } else {
                    let sent = queue_host::sent_path(&p.value);
                    if sent != p.value {
                        c.error(
                            &p.place,
                            format!("`{}` `{}` would be sent as `{sent}`", key(k), p.value),
                            format!("a URL carries the path encoded and without `.` segments, and the signature covers what is sent: write `{sent}`"),
                        );
                    }
                }
                p.value
            }
        }
    };

    let split_path = required_path(c, l.get(|m| m.split.as_ref()?.path.as_ref()), "split.path");
    let process_path = required_path(
        c,
        l.get(|m| m.process.as_ref()?.path.as_ref()),
        "process.path",
    );
    let reduce_path = required_path(
        c,
        l.get(|m| m.reduce.as_ref()?.path.as_ref()),
        "reduce.path",
    );

    let schedule = validate_schedule(c, name, name_place, l);
    let overlap = match l.get(|m| m.overlap.as_ref()) {
        None => Overlap::Skip,
        Some(v) => match c.choice(&v, &key("overlap"), &["skip", "allow"]) {
            Some("allow") => Overlap::Allow,
            _ => Overlap::Skip,
        },
    };

    let split = Split {
        path: split_path,
        page_size: c.int(l.get(|m| m.split.as_ref()?.page_size.as_ref()), &key("split.page_size"), 1000, 1, 10_000, "the split endpoint is asked for at most this many items a page"),
        max_attempts: c.int(l.get(|m| m.split.as_ref()?.max_attempts.as_ref()), &key("split.max_attempts"), 5, 1, 20, "attempts at one split page before the run ends `SPLIT_FAILED`"),
        timeout_seconds: c.int(l.get(|m| m.split.as_ref()?.timeout_seconds.as_ref()), &key("split.timeout_seconds"), 900, 30, 900, "a Lambda function runs at most 900 seconds; the splitter hands over to a fresh invocation before then"),
        memory_mb: c.int(l.get(|m| m.split.as_ref()?.memory_mb.as_ref()), &key("split.memory_mb"), 256, 128, 10_240, "Lambda memory is 128 to 10240 MB"),
        reserved_concurrency: c.int(l.get(|m| m.split.as_ref()?.reserved_concurrency.as_ref()), &key("split.reserved_concurrency"), 2, 2, 100, "the splitter needs 2: one run's hand-off to itself and the sweep"),
    };

    let process_timeout = l.get(|m| m.process.as_ref()?.timeout_seconds.as_ref());
    let process = Process {
        path: process_path,
        timeout_seconds: c.int(process_timeout.clone(), &key("process.timeout_seconds"), 25, 1, 900 - FORWARDER_MARGIN_SECONDS, "the service's time for one item; the forwarder Lambda that waits for it runs at most 900 seconds"),
        max_attempts: c.int(l.get(|m| m.process.as_ref()?.max_attempts.as_ref()), &key("process.max_attempts"), 5, 1, 999, "the queue's maxReceiveCount is one more, and SQS allows at most 1000"),
        max_retry_after_seconds: c.int(l.get(|m| m.process.as_ref()?.max_retry_after_seconds.as_ref()), &key("process.max_retry_after_seconds"), 3600, 0, 43_200, "a message's visibility can be extended to at most 12 hours (43200 s) from its receive"),
        completion: super::completion::completion(c, name, l),
        tolerated_failure_percent: l
            .get(|m| m.process.as_ref()?.tolerated_failure_percent.as_ref())
            .and_then(|v| c.int_at(&v, &key("process.tolerated_failure_percent"), 0, 99, "a run whose failed children pass this percentage of its total is cancelled; leave it out to never cancel")),
    };

    let delivery = validate_delivery(c, name, l, &process, process_timeout);
    check_retention(c, name, l, &process, &delivery);

    let storage = match l.get(|m| m.results.as_ref()?.storage.as_ref()) {
        None => ResultStorage::Ledger,
        Some(v) => match c.choice(
            &v,
            &key("results.storage"),
            &["ledger", "bucket", "discard"],
        ) {
            Some("bucket") => ResultStorage::Bucket,
            Some("discard") => ResultStorage::Discard,
            _ => ResultStorage::Ledger,
        },
    };
    let retention_v = l.get(|m| m.results.as_ref()?.retention_days.as_ref());
    let retention_days = c.int(
        retention_v.clone(),
        &key("results.retention_days"),
        90,
        1,
        3650,
        "ledger records and stored results expire after this many days",
    );
    // A child's letter lives up to 14 days in the dead-letter queue after its record was
    // last written, and a redrive then gives it the queue's retention again: its record
    // must outlive both, or the redriven child is counted as new (and twice).
    let outlives = DEAD_LETTER_RETENTION_DAYS + delivery.message_retention_days;
    if retention_days < outlives {
        if let Some(place) = l.blame(
            retention_v.as_ref().map(|v| &v.place),
            l.get(|m| m.delivery.as_ref()?.message_retention_days.as_ref())
                .as_ref()
                .map(|v| &v.place),
        ) {
            c.error(
                place,
                format!(
                    "`{}` ({retention_days}) ends before a dead letter can be redriven and retried: letters stay {DEAD_LETTER_RETENTION_DAYS} days and a redriven message up to {} more (`delivery.message_retention_days`)",
                    key("results.retention_days"),
                    delivery.message_retention_days
                ),
                format!("a redriven child whose record has expired would be counted again: keep records at least {outlives} days"),
            );
        }
    }
    super::completion::check_chain(c, name, l, &process, retention_days);
    let results = Results {
        storage,
        retention_days,
        counter_shards: c.int(
            l.get(|m| m.results.as_ref()?.counter_shards.as_ref()),
            &key("results.counter_shards"),
            1,
            1,
            64,
            "one run item takes about 1,000 writes a second; shards spread a run's completions",
        ),
        partitions: 1,
    };
    let results = Results {
        partitions: partitions(c, &key("results.partitions"), l, &results, &delivery),
        ..results
    };

    let expected_duration_minutes = l
        .get(|m| m.expected_duration_minutes.as_ref())
        .and_then(|v| c.int_at(&v, &key("expected_duration_minutes"), 1, 525_600, "how long a run is expected to take; the sweep warns on the alarm topic when a run will miss it"));
    Microprocess {
        expected_duration_minutes,
        name: name.to_string(),
        description: l
            .get(|m| m.description.as_ref())
            .map(|d| d.value)
            .unwrap_or_default(),
        schedule,
        overlap,
        split,
        process,
        reduce: Reduce { path: reduce_path },
        delivery,
        results,
    }
}

fn validate_schedule(c: &mut Checker, name: &str, name_place: &Place, l: &Layers<'_>) -> Schedule {
    let expression = match l.get(|m| m.schedule.as_ref()?.expression.as_ref()) {
        None => {
            c.error(
                name_place,
                format!("microprocess `{name}` has no `schedule.expression`"),
                "add `schedule = { expression = \"cron(0 2 1 * ? *)\", timezone = \"UTC\" }`",
            );
            String::new()
        }
        Some(e) => {
            if let Err(problem) = check_expression(&e.value) {
                c.error(&e.place, problem.message, problem.hint);
            }
            e.value
        }
    };
    let timezone = match l.get(|m| m.schedule.as_ref()?.timezone.as_ref()) {
        None => "UTC".to_string(),
        Some(tz) => {
            if let Err(problem) = check_timezone(&tz.value) {
                c.error(&tz.place, problem.message, problem.hint);
            }
            tz.value
        }
    };
    let enabled = l
        .get(|m| m.schedule.as_ref()?.enabled.as_ref())
        .is_none_or(|e| e.value);
    Schedule {
        expression,
        timezone,
        enabled,
    }
}

/// Longest wait the forwarder computes between two attempts (`lambdas/forwarder`'s
/// `MAX_BACKOFF`), before a `Retry-After`.
const MAX_BACKOFF_SECONDS: u64 = 900;

/// The longest a message can live through its attempts, which SQS's retention must
/// cover: SQS deletes a message at its queue's retention with no dead letter, and the run
/// would wait for that child for good. Between two receives a message stays invisible for
/// at most the larger of the visibility timeout (a forwarder that stopped) and the
/// longest wait before a retry (the backoff cap, or the longest `Retry-After` honoured).
/// `results.partitions`: the default derived from the rate cap, or the set value when it
/// keeps each key at or under half of a partition's ceiling at the cap.
fn partitions(
    c: &mut Checker,
    key: &str,
    l: &Layers<'_>,
    results: &Results,
    delivery: &Delivery,
) -> u32 {
    use super::ledger_layout as layout;
    let units = layout::write_units_per_child(
        results.storage,
        delivery.batch_size,
        layout::ASSUMED_RESULT_BYTES,
    );
    let peak = layout::peak_children_per_second(delivery);
    let minimum = layout::minimum_partitions(peak, units);
    let Some(set) = l.get(|m| m.results.as_ref()?.partitions.as_ref()) else {
        return layout::default_partitions(peak, units);
    };
    let max = microprocess_shared::ledger_keys::MAX_PARTITIONS;
    let Some(value) = c.int_at(
        &set,
        key,
        1,
        max,
        "a run's blocks spread over this many ledger partition keys",
    ) else {
        return minimum;
    };
    if value < minimum {
        c.error(
            &set.place,
            format!(
                "`{key}` = {value} puts {:.0} write units a second on each key at {peak:.0} \
                 children a second, over half of DynamoDB's 1,000 a key",
                peak * units / f64::from(value)
            ),
            format!(
                "use at least {minimum}, or leave it out for the default of {}",
                layout::default_partitions(peak, units)
            ),
        );
        return minimum;
    }
    value
}

pub fn longest_message_life_seconds(process: &Process, delivery: &Delivery) -> u64 {
    let between = u64::from(delivery.visibility_timeout_seconds)
        .max(MAX_BACKOFF_SECONDS)
        .max(u64::from(process.max_retry_after_seconds));
    u64::from(process.max_attempts) * between + u64::from(delivery.forwarder_timeout_seconds)
}

fn check_retention(
    c: &mut Checker,
    name: &str,
    l: &Layers<'_>,
    process: &Process,
    delivery: &Delivery,
) {
    let key = |k: &str| format!("{name}.{k}");
    let life = longest_message_life_seconds(process, delivery);
    let retention = u64::from(delivery.message_retention_days) * 86_400;
    if life <= retention {
        return;
    }
    let attempts_v = l.get(|m| m.process.as_ref()?.max_attempts.as_ref());
    let retention_v = l.get(|m| m.delivery.as_ref()?.message_retention_days.as_ref());
    let retry_after_v = l.get(|m| m.process.as_ref()?.max_retry_after_seconds.as_ref());
    let Some(place) = l
        .blame(
            attempts_v.as_ref().map(|v| &v.place),
            retention_v.as_ref().map(|v| &v.place),
        )
        .or(retry_after_v.as_ref().map(|v| &v.place))
    else {
        return;
    };
    let between = life.saturating_sub(u64::from(delivery.forwarder_timeout_seconds))
        / u64::from(process.max_attempts.max(1));
    let fitting = (retention.saturating_sub(u64::from(delivery.forwarder_timeout_seconds))
        / between.max(1))
    .max(1);
    c.error(
        place,
        format!(
            "`{}` ({}) with up to {between} s between attempts can keep a message {:.1} days, past the queue's retention of {} days (`{}`)",
            key("process.max_attempts"),
            process.max_attempts,
            life as f64 / 86_400.0,
            delivery.message_retention_days,
            key("delivery.message_retention_days"),
        ),
        format!(
            "SQS deletes a message at its retention with no dead letter, and the run would wait for that child for good: allow at most {fitting} attempts, lower `process.max_retry_after_seconds`, or keep messages longer (`delivery.message_retention_days`, at most 13)"
        ),
    );
}

/// Delivery numbers and the timeout chain:
/// process timeout + margin ≤ forwarder timeout, visibility ≥ 6 × forwarder timeout,
/// reserved concurrency ≥ MaximumConcurrency.
fn validate_delivery(
    c: &mut Checker,
    name: &str,
    l: &Layers<'_>,
    process: &Process,
    process_timeout: Option<Located<i64>>,
) -> Delivery {
    let key = |k: &str| format!("{name}.{k}");
    let forwarder_default = (process.timeout_seconds + FORWARDER_MARGIN_SECONDS + 2).min(900);
    let forwarder_v = l.get(|m| m.delivery.as_ref()?.forwarder_timeout_seconds.as_ref());
    let forwarder_timeout = c.int(
        forwarder_v.clone(),
        &key("delivery.forwarder_timeout_seconds"),
        forwarder_default,
        3,
        900,
        "a Lambda function runs at most 900 seconds",
    );
    if process.timeout_seconds + FORWARDER_MARGIN_SECONDS > forwarder_timeout {
        if let Some(place) = l.blame(
            process_timeout.as_ref().map(|p| &p.place),
            forwarder_v.as_ref().map(|f| &f.place),
        ) {
            c.error(
                place,
                format!(
                    "`{}` ({} s) does not fit inside the forwarder timeout ({} s)",
                    key("process.timeout_seconds"),
                    process.timeout_seconds,
                    forwarder_timeout
                ),
                format!(
                    "the forwarder needs {FORWARDER_MARGIN_SECONDS} s after the service's time to record the outcome: set `delivery.forwarder_timeout_seconds` to at least {}",
                    process.timeout_seconds + FORWARDER_MARGIN_SECONDS
                ),
            );
        }
    }

    let visibility_min = 6 * forwarder_timeout;
    let visibility_v = l.get(|m| m.delivery.as_ref()?.visibility_timeout_seconds.as_ref());
    let visibility = c.int(
        visibility_v.clone(),
        &key("delivery.visibility_timeout_seconds"),
        visibility_min.min(43_200),
        0,
        43_200,
        "SQS visibility timeouts are 0 to 43200 seconds",
    );
    if visibility < visibility_min {
        if let Some(place) = l.blame(
            visibility_v.as_ref().map(|v| &v.place),
            forwarder_v.as_ref().map(|f| &f.place),
        ) {
            c.error(
                place,
                format!(
                    "`{}` ({visibility} s) is less than 6 × the forwarder timeout ({forwarder_timeout} s)",
                    key("delivery.visibility_timeout_seconds")
                ),
                format!("AWS advises at least 6 × the function timeout so retried batches are not delivered twice at once: use at least {visibility_min}"),
            );
        }
    }

    let max_concurrency_v = l.get(|m| m.delivery.as_ref()?.max_concurrency.as_ref());
    let max_concurrency = c.int(
        max_concurrency_v.clone(),
        &key("delivery.max_concurrency"),
        10,
        2,
        1000,
        "the event source mapping's MaximumConcurrency is 2 to 1000",
    );
    let reserved_v = l.get(|m| m.delivery.as_ref()?.reserved_concurrency.as_ref());
    let reserved = c.int(
        reserved_v.clone(),
        &key("delivery.reserved_concurrency"),
        max_concurrency,
        1,
        1000,
        "reserved concurrency of the forwarder function",
    );
    if let Some(r) = &reserved_v {
        if reserved < max_concurrency {
            c.error(
                l.blame(Some(&r.place), max_concurrency_v.as_ref().map(|m| &m.place)).unwrap_or(&r.place),
                format!("`{}` ({reserved}) is below `delivery.max_concurrency` ({max_concurrency})", key("delivery.reserved_concurrency")),
                "Lambda throttles the mapping's extra pollers and every throttle burns a receive, sending messages to the DLQ early: reserve at least max_concurrency",
            );
        }
    }

    let batch_size = c.int(l.get(|m| m.delivery.as_ref()?.batch_size.as_ref()), &key("delivery.batch_size"), 10, 1, 10, "the forwarder calls a batch's messages concurrently; larger batches need a batching window, so raise max_concurrency instead");
    let forwarder_memory_mb = c.int(
        l.get(|m| m.delivery.as_ref()?.forwarder_memory_mb.as_ref()),
        &key("delivery.forwarder_memory_mb"),
        128,
        128,
        10_240,
        "Lambda memory is 128 to 10240 MB",
    );
    let result_limit_kib = match l.get(|m| m.delivery.as_ref()?.result_limit_kib.as_ref()) {
        None => result_limit::default_kib(forwarder_memory_mb, batch_size),
        Some(v) => {
            let set = c
                .int_at(
                    &v,
                    &key("delivery.result_limit_kib"),
                    1,
                    1_048_576,
                    "the largest process answer read, 1 KiB to 1 GiB",
                )
                .unwrap_or(1);
            if set > result_limit::fits_kib(forwarder_memory_mb, batch_size) {
                c.error(
                    &v.place,
                    format!(
                        "`{}` ({set} KiB) does not fit a batch of {batch_size} in the forwarder's {forwarder_memory_mb} MB",
                        key("delivery.result_limit_kib")
                    ),
                    format!(
                        "a batch's answers are held at once, each twice: set `delivery.forwarder_memory_mb = {}`, or lower the limit to {} KiB",
                        result_limit::memory_needed_mb(set, batch_size),
                        result_limit::fits_kib(forwarder_memory_mb, batch_size)
                    ),
                );
            }
            set
        }
    };
    let rate_v = l.get(|m| m.delivery.as_ref()?.rate_limit_per_second.as_ref());
    let rate_limit_per_second = rate_v.clone().and_then(|v| {
        c.int_at(
            &v,
            &key("delivery.rate_limit_per_second"),
            1,
            100_000,
            "requests a second to the process endpoint, across all forwarders",
        )
    });
    if let (Some(rate), Some(v)) = (rate_limit_per_second, &rate_v) {
        // Each forwarder's share starts empty and refills one call every
        // `max_concurrency / rate` seconds: its batch's last call starts that many
        // intervals in, and must still end, and be recorded, before the invocation does.
        let pacing = f64::from(batch_size) * f64::from(max_concurrency) / f64::from(rate);
        let needed = pacing.ceil() as u64
            + u64::from(process.timeout_seconds)
            + u64::from(FORWARDER_MARGIN_SECONDS);
        if needed > u64::from(forwarder_timeout) {
            let lowest_rate = (f64::from(batch_size) * f64::from(max_concurrency)
                / f64::from(
                    forwarder_timeout
                        .saturating_sub(process.timeout_seconds + FORWARDER_MARGIN_SECONDS)
                        .max(1),
                ))
            .ceil() as u64;
            c.error(
                &v.place,
                format!(
                    "`{}` ({rate}) cannot send a batch within one forwarder invocation: each of {max_concurrency} forwarders gets a call every {:.2} s, so its batch of {batch_size} takes {pacing:.1} s before the last call's {} s and the forwarder's {} s run out",
                    key("delivery.rate_limit_per_second"),
                    f64::from(max_concurrency) / f64::from(rate),
                    process.timeout_seconds,
                    forwarder_timeout,
                ),
                format!(
                    "raise the cap to at least {lowest_rate}, lower `delivery.max_concurrency` or `delivery.batch_size`, or set `delivery.forwarder_timeout_seconds` to at least {needed}"
                ),
            );
        }
    }
    Delivery {
        batch_size,
        max_concurrency,
        reserved_concurrency: reserved,
        rate_limit_per_second,
        forwarder_timeout_seconds: forwarder_timeout,
        forwarder_memory_mb,
        visibility_timeout_seconds: visibility,
        message_retention_days: c.int(l.get(|m| m.delivery.as_ref()?.message_retention_days.as_ref()), &key("delivery.message_retention_days"), 4, 1, 13, "the dead-letter queue keeps messages 14 days, the SQS maximum, and must keep them longer than the queue"),
        result_limit_kib,
    }
}
