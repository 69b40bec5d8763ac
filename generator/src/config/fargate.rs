//! Validation of a `mode = "fargate"` service: image, network, hosts and certificates,
//! and the sizes of its live and queue sides.

use std::sync::Arc;

use toml::Spanned;

use super::checks::{is_host_name, Checker, Located};
use super::diagnostic::{Place, SourceFile};
use super::model::{AlbLayout, BusinessHours, FargateService, Microprocess, Tasks};
use super::raw::RawService;
use super::schedule::{check_expression, check_timezone};
use super::service_access;

fn loc<T: Clone>(s: &Spanned<T>, file: &Arc<SourceFile>) -> Located<T> {
    Located::from_spanned(s, file)
}

pub(super) fn fargate_keys_present(
    raw: &RawService,
    file: &Arc<SourceFile>,
) -> Vec<(&'static str, Place)> {
    let spans = [
        ("image", raw.image.as_ref().map(|s| s.span())),
        (
            "container_port",
            raw.container_port.as_ref().map(|s| s.span()),
        ),
        (
            "health_check_path",
            raw.health_check_path.as_ref().map(|s| s.span()),
        ),
        ("vpc_id", raw.vpc_id.as_ref().map(|s| s.span())),
        (
            "public_subnet_ids",
            raw.public_subnet_ids.as_ref().map(|s| s.span()),
        ),
        (
            "private_subnet_ids",
            raw.private_subnet_ids.as_ref().map(|s| s.span()),
        ),
        (
            "certificate_arn",
            raw.certificate_arn.as_ref().map(|s| s.span()),
        ),
        (
            "hosted_zone_id",
            raw.hosted_zone_id.as_ref().map(|s| s.span()),
        ),
        ("live_host", raw.live_host.as_ref().map(|s| s.span())),
        ("queue_host", raw.queue_host.as_ref().map(|s| s.span())),
        ("layout", raw.layout.as_ref().map(|s| s.span())),
        (
            "queue_idle_timeout_seconds",
            raw.queue_idle_timeout_seconds.as_ref().map(|s| s.span()),
        ),
        ("live", raw.live.as_ref().map(|s| s.span())),
        ("queue", raw.queue.as_ref().map(|s| s.span())),
        (
            "queue_certificate_arn",
            raw.queue_certificate_arn.as_ref().map(|s| s.span()),
        ),
        (
            "queue_hosted_zone_id",
            raw.queue_hosted_zone_id.as_ref().map(|s| s.span()),
        ),
        ("network", raw.network.as_ref().map(|s| s.span())),
        ("container", raw.container.as_ref().map(|s| s.span())),
        ("task_role", raw.task_role.as_ref().map(|s| s.span())),
    ];
    spans
        .into_iter()
        .filter_map(|(k, span)| span.map(|s| (k, Place::new(file, s))))
        .collect()
}

fn required<T: Clone>(
    c: &mut Checker,
    v: &Option<Spanned<T>>,
    file: &Arc<SourceFile>,
    table: &Place,
    key: &str,
    example: &str,
) -> Option<Located<T>> {
    match v {
        Some(s) => Some(loc(s, file)),
        None => {
            c.error(
                table,
                format!("`service` with `mode = \"fargate\"` has no `{key}`"),
                format!("add `{key} = {example}`"),
            );
            None
        }
    }
}

pub(super) fn validate_fargate(
    c: &mut Checker,
    raw: &RawService,
    table: &Place,
    file: &Arc<SourceFile>,
    name: String,
    microprocesses: &[Microprocess],
) -> FargateService {
    let text = |v: Option<Located<String>>| v.map(|l| l.value).unwrap_or_default();
    let image = text(required(
        c,
        &raw.image,
        file,
        table,
        "image",
        "\"<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>\"",
    ));
    let vpc_id = required(
        c,
        &raw.vpc_id,
        file,
        table,
        "vpc_id",
        "\"vpc-0123456789abcdef0\"",
    );
    if let Some(v) = &vpc_id {
        if !v.value.starts_with("vpc-") {
            c.error(
                &v.place,
                format!("`vpc_id` `{}` is not a VPC id", v.value),
                "VPC ids look like `vpc-0123456789abcdef0`",
            );
        }
    }
    let mut subnets = |key: &str, v: &Option<Spanned<Vec<Spanned<String>>>>| -> Vec<String> {
        let Some(list) = v else {
            c.error(table, format!("`service` with `mode = \"fargate\"` has no `{key}`"), format!("add `{key} = [\"subnet-...\", \"subnet-...\"]` (two or more, in different zones)"));
            return Vec::new();
        };
        if list.get_ref().len() < 2 {
            c.error(
                &Place::new(file, list.span()),
                format!("`{key}` needs at least two subnets"),
                "an ALB needs subnets in at least two availability zones",
            );
        }
        for s in list.get_ref() {
            if !s.get_ref().starts_with("subnet-") {
                c.error(
                    &Place::new(file, s.span()),
                    format!("`{}` is not a subnet id", s.get_ref()),
                    "subnet ids look like `subnet-0123456789abcdef0`",
                );
            }
        }
        list.get_ref().iter().map(|s| s.get_ref().clone()).collect()
    };
    let public_subnet_ids = subnets("public_subnet_ids", &raw.public_subnet_ids);
    let private_subnet_ids = subnets("private_subnet_ids", &raw.private_subnet_ids);
    let certificate_arn = required(
        c,
        &raw.certificate_arn,
        file,
        table,
        "certificate_arn",
        "\"arn:aws:acm:<region>:<account>:certificate/<id>\"",
    );
    if let Some(v) = &certificate_arn {
        if !v.value.starts_with("arn:aws:acm:") {
            c.error(
                &v.place,
                "`certificate_arn` is not an ACM certificate ARN",
                "it starts with `arn:aws:acm:` and covers both hosts",
            );
        }
    }
    let queue_certificate_arn = raw.queue_certificate_arn.as_ref().map(|v| loc(v, file));
    if let Some(v) = &queue_certificate_arn {
        if !v.value.starts_with("arn:aws:acm:") {
            c.error(
                &v.place,
                "`queue_certificate_arn` is not an ACM certificate ARN",
                "it starts with `arn:aws:acm:` and covers `queue_host`; leave it out to use `certificate_arn` for both hosts",
            );
        }
    }
    let hosted_zone_id = required(
        c,
        &raw.hosted_zone_id,
        file,
        table,
        "hosted_zone_id",
        "\"Z0123456789ABCDEFGHIJ\"",
    );
    let zone_id_ok = |c: &mut Checker, v: &Located<String>, key: &str| {
        if !v.value.starts_with('Z') || !v.value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            c.error(
                &v.place,
                format!("`{key}` `{}` is not a Route 53 zone id", v.value),
                "zone ids look like `Z0123456789ABCDEFGHIJ`",
            );
        }
    };
    if let Some(v) = &hosted_zone_id {
        zone_id_ok(c, v, "hosted_zone_id");
    }
    let queue_hosted_zone_id = raw.queue_hosted_zone_id.as_ref().map(|v| loc(v, file));
    if let Some(v) = &queue_hosted_zone_id {
        zone_id_ok(c, v, "queue_hosted_zone_id");
    }
    let mut host = |key: &str, v: &Option<Spanned<String>>| -> String {
        let Some(h) = required(c, v, file, table, key, "\"scores.example.com\"") else {
            return String::new();
        };
        if !is_host_name(&h.value) {
            c.error(
                &h.place,
                format!("`{key}` `{}` is not a DNS host name", h.value),
                "write a lowercase name such as `scores-queue.example.com`, without scheme or path",
            );
        }
        h.value
    };
    let live_host = host("live_host", &raw.live_host);
    let queue_host = host("queue_host", &raw.queue_host);
    if !live_host.is_empty() && live_host == queue_host {
        if let Some(q) = &raw.queue_host {
            c.error(&Place::new(file, q.span()), "`queue_host` must differ from `live_host`", "background traffic goes to its own host rule, target group and ECS service so it never starves live traffic");
        }
    }
    let layout = match &raw.layout {
        None => AlbLayout::InternalQueue,
        Some(l) => match c.choice(
            &loc(l, file),
            "service.layout",
            &["internal-queue", "shared-public"],
        ) {
            Some("shared-public") => AlbLayout::SharedPublic,
            _ => AlbLayout::InternalQueue,
        },
    };
    // The internal queue ALB has private addresses: its record belongs in a private zone of
    // the VPC, where only the functions resolve it, never in the live host's public zone.
    let queue_hosted_zone_id = match (layout, queue_hosted_zone_id) {
        (AlbLayout::InternalQueue, None) => {
            c.error(table, "the internal queue host has no `queue_hosted_zone_id`", "with `layout = \"internal-queue\"` the queue host's record goes to a private hosted zone associated with `vpc_id` (its ALB has private addresses, which a public zone would publish); add `queue_hosted_zone_id = \"Z...\"`, which deploy checks is private and attached to the VPC");
            String::new()
        }
        (AlbLayout::InternalQueue, Some(q)) => {
            if hosted_zone_id.as_ref().is_some_and(|h| h.value == q.value) {
                c.error(&q.place, "`queue_hosted_zone_id` is the live host's zone", "the live host's zone is public (its ALB faces the internet); the internal queue host's record goes to a private zone of the VPC");
            }
            q.value
        }
        (AlbLayout::SharedPublic, Some(q)) => q.value,
        (AlbLayout::SharedPublic, None) => hosted_zone_id
            .as_ref()
            .map(|h| h.value.clone())
            .unwrap_or_default(),
    };
    let container_port = c.int(
        raw.container_port.as_ref().map(|v| loc(v, file)),
        "service.container_port",
        8080,
        1,
        65_535,
        "the port the container listens on",
    ) as u16;
    let health_check_path = match &raw.health_check_path {
        None => "/healthz".to_string(),
        Some(p) => {
            let p = loc(p, file);
            if let Some(problem) = super::checks::path_problem(&p.value) {
                c.error(
                    &p.place,
                    format!("`service.health_check_path` {problem}"),
                    "the ALB health check asks this path, e.g. `/healthz`",
                );
            }
            p.value
        }
    };

    // The queue ALB must keep a request open for as long as any forwarder waits on it.
    let longest_forwarder = microprocesses
        .iter()
        .map(|m| m.delivery.forwarder_timeout_seconds)
        .max()
        .unwrap_or(0);
    let queue_idle_timeout_seconds = match &raw.queue_idle_timeout_seconds {
        None => longest_forwarder.max(60),
        Some(v) => {
            let v = loc(v, file);
            let idle = c
                .int_at(
                    &v,
                    "service.queue_idle_timeout_seconds",
                    1,
                    4000,
                    "ALB idle timeouts are 1 to 4000 seconds",
                )
                .unwrap_or(4000);
            if let Some(m) = microprocesses
                .iter()
                .find(|m| m.delivery.forwarder_timeout_seconds > idle)
            {
                c.error(&v.place, format!("`service.queue_idle_timeout_seconds` ({idle} s) is shorter than the forwarder timeout of `{}` ({} s)", m.name, m.delivery.forwarder_timeout_seconds), format!("the ALB would cut requests the forwarder still waits on: use at least {longest_forwarder}, or leave the key out to derive it"));
            }
            idle
        }
    };

    let live = raw.live.as_ref().map(|t| {
        validate_tasks(
            c,
            "service.live",
            &t.get_ref().cpu,
            &t.get_ref().memory_mb,
            &t.get_ref().min_tasks,
            &t.get_ref().max_tasks,
            &t.get_ref().target_cpu_percent,
            file,
        )
    });
    if raw.live.is_none() {
        c.error(
            table,
            "`service` with `mode = \"fargate\"` has no `[service.live]`",
            "add `[service.live]` with cpu, memory_mb, min_tasks, max_tasks and target_cpu_percent",
        );
    }
    let queue = raw.queue.as_ref().map(|t| {
        let q = t.get_ref();
        validate_tasks(
            c,
            "service.queue",
            &q.cpu,
            &q.memory_mb,
            &q.min_tasks,
            &q.max_tasks,
            &q.target_cpu_percent,
            file,
        )
    });
    if raw.queue.is_none() {
        c.error(table, "`service` with `mode = \"fargate\"` has no `[service.queue]`", "add `[service.queue]` with cpu, memory_mb, min_tasks, max_tasks and target_cpu_percent");
    }
    let business_hours = raw.queue.as_ref().and_then(|q| q.get_ref().business_hours.as_ref()).map(|b| {
        let b = b.get_ref();
        let tz = loc(&b.timezone, file);
        if let Err(p) = check_timezone(&tz.value) {
            c.error(&tz.place, p.message, p.hint);
        }
        for e in [&b.start, &b.end] {
            let e = loc(e, file);
            if !e.value.starts_with("cron(") {
                c.error(&e.place, "business-hours scaling takes a `cron(...)` expression", "e.g. `cron(0 8 ? * MON-FRI *)` for 08:00 on weekdays");
            } else if let Err(p) = check_expression(&e.value) {
                c.error(&e.place, p.message, p.hint);
            }
        }
        let min = c.int_at(&loc(&b.min_tasks, file), "service.queue.business_hours.min_tasks", 0, 1000, "tasks of the queue side during business hours").unwrap_or(0);
        let max = c.int_at(&loc(&b.max_tasks, file), "service.queue.business_hours.max_tasks", 1, 1000, "tasks of the queue side during business hours").unwrap_or(1);
        if min > max {
            c.error(&Place::new(file, b.min_tasks.span()), format!("`service.queue.business_hours.min_tasks` ({min}) is above `max_tasks` ({max})"), "swap them or raise max_tasks");
        }
        BusinessHours { timezone: tz.value, start: b.start.get_ref().clone(), end: b.end.get_ref().clone(), min_tasks: min, max_tasks: max }
    });
    let fallback = Tasks {
        cpu: 256,
        memory_mb: 512,
        min_tasks: 1,
        max_tasks: 1,
        target_cpu_percent: 60,
    };

    FargateService {
        name,
        image,
        container_port,
        health_check_path,
        vpc_id: vpc_id.map(|v| v.value).unwrap_or_default(),
        public_subnet_ids,
        private_subnet_ids,
        queue_certificate_arn: queue_certificate_arn
            .or_else(|| certificate_arn.clone())
            .map(|v| v.value)
            .unwrap_or_default(),
        certificate_arn: certificate_arn.map(|v| v.value).unwrap_or_default(),
        hosted_zone_id: hosted_zone_id.map(|v| v.value).unwrap_or_default(),
        queue_hosted_zone_id,
        live_host,
        queue_host,
        layout,
        queue_idle_timeout_seconds,
        live: live.unwrap_or_else(|| fallback.clone()),
        queue: queue.unwrap_or(fallback),
        business_hours,
        network: service_access::network(c, &raw.network, table, file),
        container: service_access::container(c, &raw.container, file),
        task_role: service_access::task_role(c, &raw.task_role, file),
    }
}

/// Valid Fargate task sizes: memory (MB) allowed for each CPU value.
fn fargate_memory_ok(cpu: u32, memory: u32) -> bool {
    match cpu {
        256 => [512, 1024, 2048].contains(&memory),
        512 => (1024..=4096).contains(&memory) && memory % 1024 == 0,
        1024 => (2048..=8192).contains(&memory) && memory % 1024 == 0,
        2048 => (4096..=16_384).contains(&memory) && memory % 1024 == 0,
        4096 => (8192..=30_720).contains(&memory) && memory % 1024 == 0,
        8192 => (16_384..=61_440).contains(&memory) && memory % 4096 == 0,
        16_384 => (32_768..=122_880).contains(&memory) && memory % 8192 == 0,
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn validate_tasks(
    c: &mut Checker,
    key: &str,
    cpu: &Spanned<i64>,
    memory: &Spanned<i64>,
    min: &Spanned<i64>,
    max: &Spanned<i64>,
    target: &Spanned<i64>,
    file: &Arc<SourceFile>,
) -> Tasks {
    let cpu_l = loc(cpu, file);
    let cpu_v = u32::try_from(cpu_l.value).unwrap_or(0);
    let mem_l = loc(memory, file);
    let mem_v = u32::try_from(mem_l.value).unwrap_or(0);
    if ![256, 512, 1024, 2048, 4096, 8192, 16_384].contains(&cpu_v) {
        c.error(
            &cpu_l.place,
            format!("`{key}.cpu` cannot be `{}`", cpu_l.value),
            "Fargate CPU units are 256, 512, 1024, 2048, 4096, 8192 or 16384",
        );
    } else if !fargate_memory_ok(cpu_v, mem_v) {
        c.error(&mem_l.place, format!("`{key}.memory_mb` `{}` does not go with cpu {cpu_v}", mem_l.value), "see the Fargate task size table: e.g. cpu 256 takes 512, 1024 or 2048; cpu 1024 takes 2048 to 8192 in steps of 1024");
    }
    let min_v = c
        .int_at(
            &loc(min, file),
            &format!("{key}.min_tasks"),
            0,
            1000,
            "ECS service tasks",
        )
        .unwrap_or(1);
    let max_v = c
        .int_at(
            &loc(max, file),
            &format!("{key}.max_tasks"),
            1,
            1000,
            "ECS service tasks",
        )
        .unwrap_or(1);
    if min_v > max_v {
        c.error(
            &Place::new(file, min.span()),
            format!("`{key}.min_tasks` ({min_v}) is above `max_tasks` ({max_v})"),
            "swap them or raise max_tasks",
        );
    }
    let target_v = c
        .int_at(
            &loc(target, file),
            &format!("{key}.target_cpu_percent"),
            10,
            90,
            "autoscaling tracks this average CPU",
        )
        .unwrap_or(60);
    Tasks {
        cpu: cpu_v,
        memory_mb: mem_v,
        min_tasks: min_v,
        max_tasks: max_v,
        target_cpu_percent: target_v,
    }
}
