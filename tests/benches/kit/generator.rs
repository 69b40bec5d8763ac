//! Generator (issue item 4): how long rendering every environment takes with 2, 100 and
//! 1,000 microprocesses, how big each stack gets, and whether adding one microprocess
//! touches only its own stack.
//!
//! Each size is a synthetic project ([`synthetic`]): the shipped environments and
//! templates, with entries modelled on the shipped microprocesses added. Every environment
//! is loaded and rendered in process through the generator's library (`Project::load`,
//! then `Renderer::render_environment`, which also runs the generator's own checks of
//! CloudFormation's limits), timed per environment. At the largest size one more
//! microprocess is added and every environment rendered again: the old stacks must come
//! out byte for byte the same, with exactly one new stack.
//!
//! `BENCH_GENERATOR_MICROPROCESSES` (a comma-separated list, default `2,100,1000`; `2,10`
//! at smoke size) sets the sizes.

mod cli_render;
mod synthetic;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use microprocess_kit::config::Project;
use microprocess_kit::plan::StackKind;
use microprocess_kit::render::check::{
    MAX_OUTPUTS, MAX_PARAMETERS, MAX_RESOURCES, MAX_TEMPLATE_BYTES,
};
use microprocess_kit::render::{RenderedStack, Renderer};
use serde_json::Value;
use synthetic::SyntheticProject;

use crate::table::{grouped, Table};
use crate::Size;

pub(crate) const AREA: &str = "generator";

/// Largest template `CreateStack` takes inline (`TemplateBody`); the core stack is always
/// deployed inline, since the bucket a larger template would go through is in it.
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html>
const MAX_INLINE_TEMPLATE_BYTES: usize = 51_200;

/// Default account quotas a large project meets before any template limit:
/// stacks per Region (<https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html>),
/// IAM roles per account (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html>),
/// Lambda concurrent executions per Region (<https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>).
const DEFAULT_STACKS_QUOTA: usize = 2_000;
const DEFAULT_ROLES_QUOTA: usize = 1_000;
const DEFAULT_CONCURRENCY_QUOTA: u64 = 1_000;

pub async fn run(size: Size, table: &mut Table) {
    let sizes = sizes(size);
    let largest = *sizes.iter().max().expect("at least one size");
    // The smallest size's renders, to compare the shared stacks with.
    let mut first: Option<(usize, Vec<EnvRender>)> = None;
    for &n in &sizes {
        let project = SyntheticProject::create(n, n + 1);
        let keep = n == largest;
        let renders = render_all(&project, keep);
        report_size(table, n, &renders);
        cli_render::report(table, &project, n);
        if keep {
            report_account(table, n, &renders);
            let (first_n, first_renders) = first
                .as_ref()
                .map_or((n, &renders[..]), |(m, r)| (*m, &r[..]));
            report_shared_stacks(table, (first_n, first_renders), n, &renders);
            report_adding_one(table, project, &renders);
        }
        if first.is_none() {
            first = Some((n, renders));
        }
    }
}

/// The microprocess counts to render, from `BENCH_GENERATOR_MICROPROCESSES` or the size.
fn sizes(size: Size) -> Vec<usize> {
    const VAR: &str = "BENCH_GENERATOR_MICROPROCESSES";
    if let Ok(list) = std::env::var(VAR) {
        let sizes: Vec<usize> = list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("{VAR}: `{s}` is not a count: {e}"))
            })
            .collect();
        assert!(
            sizes.iter().all(|&n| n >= synthetic::SHIPPED),
            "{VAR}: every size is at least the {} shipped microprocesses",
            synthetic::SHIPPED
        );
        return sizes;
    }
    match size {
        Size::Smoke => vec![2, 10],
        Size::Full => vec![2, 100, 1000],
    }
}

/// What one stack's template comes to.
struct StackFigures {
    env: String,
    name: String,
    kind: StackKind,
    resources: usize,
    bytes: usize,
    parameters: usize,
    outputs: usize,
}

/// One environment rendered.
struct EnvRender {
    env: String,
    load: Duration,
    render: Duration,
    stacks: Vec<StackFigures>,
    /// Resources by type, over every stack.
    types: BTreeMap<String, usize>,
    /// `ReservedConcurrentExecutions` over every function.
    reserved_concurrency: u64,
    /// The core and service templates.
    shared: BTreeMap<String, String>,
    /// Every template (stack name → JSON), when kept for the comparison after adding one.
    templates: Option<BTreeMap<String, String>>,
}

fn render_all(project: &SyntheticProject, keep_templates: bool) -> Vec<EnvRender> {
    let config = Project {
        root: project.root().to_path_buf(),
        host_arch: "x86_64".into(),
    };
    let renderer =
        Renderer::load(&project.root().join("templates")).unwrap_or_else(|e| panic!("{e}"));
    config
        .environment_names()
        .unwrap_or_else(|d| panic!("{d}"))
        .into_iter()
        .map(|env| render_one(&config, &renderer, &env, keep_templates))
        .collect()
}

fn render_one(config: &Project, renderer: &Renderer, env: &str, keep: bool) -> EnvRender {
    let started = Instant::now();
    let loaded = config
        .load(env)
        .unwrap_or_else(|d| panic!("{env} does not load: {d}"));
    let load = started.elapsed();
    let started = Instant::now();
    let stacks = renderer
        .render_environment(&loaded)
        .unwrap_or_else(|e| panic!("{env} does not render: {e}"));
    let render = started.elapsed();
    eprintln!(
        "bench: generator: {env}, {} microprocesses: config {:.2} s, render {:.2} s, {} stacks",
        loaded.microprocesses.len(),
        load.as_secs_f64(),
        render.as_secs_f64(),
        stacks.len()
    );
    let mut types = BTreeMap::new();
    let mut reserved_concurrency = 0;
    for stack in &stacks {
        for resource in section(&stack.template, "Resources").values() {
            let kind = resource["Type"].as_str().unwrap_or("?").to_string();
            *types.entry(kind).or_default() += 1;
            reserved_concurrency += resource["Properties"]["ReservedConcurrentExecutions"]
                .as_u64()
                .unwrap_or(0);
        }
    }
    EnvRender {
        env: env.to_string(),
        load,
        render,
        stacks: stacks.iter().map(|s| figures(env, s)).collect(),
        types,
        reserved_concurrency,
        shared: stacks
            .iter()
            .filter(|s| s.plan.kind != StackKind::Microprocess)
            .map(|s| (s.plan.template_file.clone(), s.json.clone()))
            .collect(),
        templates: keep.then(|| stacks.into_iter().map(|s| (s.plan.name, s.json)).collect()),
    }
}

fn section<'a>(template: &'a Value, name: &str) -> &'a serde_json::Map<String, Value> {
    static EMPTY: std::sync::OnceLock<serde_json::Map<String, Value>> = std::sync::OnceLock::new();
    template
        .get(name)
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(serde_json::Map::new))
}

fn figures(env: &str, stack: &RenderedStack) -> StackFigures {
    StackFigures {
        env: env.to_string(),
        name: stack.plan.name.clone(),
        kind: stack.plan.kind,
        resources: stack.resource_count(),
        bytes: stack.json.len(),
        parameters: section(&stack.template, "Parameters").len(),
        outputs: section(&stack.template, "Outputs").len(),
    }
}

/// Per size: render times, and the largest stack against CloudFormation's limits.
fn report_size(table: &mut Table, n: usize, renders: &[EnvRender]) {
    let total: Duration = renders.iter().map(|r| r.load + r.render).sum();
    let load: Duration = renders.iter().map(|r| r.load).sum();
    let stacks: usize = renders.iter().map(|r| r.stacks.len()).sum();
    let per_env = renders
        .iter()
        .map(|r| format!("{} {:.2}", r.env, (r.load + r.render).as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ");
    table.info(
        AREA,
        format!("render every environment, {n} microprocesses"),
        format!(
            "{:.2} s ({per_env} s; config {:.2} s of it; {:.1} ms a stack)",
            total.as_secs_f64(),
            load.as_secs_f64(),
            total.as_secs_f64() * 1000.0 / stacks as f64
        ),
    );

    let all = || renders.iter().flat_map(|r| &r.stacks);
    let most_resources = all().max_by_key(|s| s.resources).expect("a stack");
    let most_bytes = all().max_by_key(|s| s.bytes).expect("a stack");
    table.target(
        AREA,
        format!("largest stack, {n} microprocesses"),
        format!(
            "{} resources ({} {}), {} bytes ({} {})",
            most_resources.resources,
            most_resources.env,
            short_name(most_resources),
            grouped(most_bytes.bytes),
            most_bytes.env,
            short_name(most_bytes)
        ),
        format!(
            "≤ {MAX_RESOURCES} resources, ≤ {} bytes",
            grouped(MAX_TEMPLATE_BYTES)
        ),
        most_resources.resources <= MAX_RESOURCES && most_bytes.bytes <= MAX_TEMPLATE_BYTES,
    );
}

/// `core`, `service` or `mp-<name>`: the stack name without `<service>-<env>-`.
fn short_name(stack: &StackFigures) -> &str {
    let name = stack.name.as_str();
    match stack.kind {
        StackKind::Core => "core",
        StackKind::Service => "service",
        StackKind::Microprocess => name.find("-mp-").map_or(name, |at| &name[at + 1..]),
    }
}

/// What one environment of the largest size asks of its account, against the defaults.
fn report_account(table: &mut Table, n: usize, renders: &[EnvRender]) {
    let all = || renders.iter().flat_map(|r| &r.stacks);
    let parameters = all().map(|s| s.parameters).max().unwrap_or(0);
    let outputs = all().map(|s| s.outputs).max().unwrap_or(0);
    table.target(
        AREA,
        format!("most parameters / outputs in a stack, {n} microprocesses"),
        format!("{parameters} / {outputs}"),
        format!("≤ {MAX_PARAMETERS} / ≤ {MAX_OUTPUTS}"),
        parameters <= MAX_PARAMETERS && outputs <= MAX_OUTPUTS,
    );

    let prod = renders
        .iter()
        .find(|r| r.env == "prod")
        .unwrap_or(&renders[0]);
    let count = |kind: &str| prod.types.get(kind).copied().unwrap_or(0);
    let stacks = prod.stacks.len();
    let roles = count("AWS::IAM::Role");
    let over: Vec<String> = [
        (stacks > DEFAULT_STACKS_QUOTA)
            .then(|| format!("stacks > {}", grouped(DEFAULT_STACKS_QUOTA))),
        (roles > DEFAULT_ROLES_QUOTA).then(|| format!("roles > {}", grouped(DEFAULT_ROLES_QUOTA))),
        (prod.reserved_concurrency > DEFAULT_CONCURRENCY_QUOTA).then(|| {
            format!(
                "reserved executions > {}",
                grouped(DEFAULT_CONCURRENCY_QUOTA as usize)
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    table.info(
        AREA,
        format!("{} account, {n} microprocesses", prod.env),
        format!(
            "{} stacks, {} IAM roles, {} functions, {} queues, {} alarms, {} schedules, {} reserved executions{}",
            grouped(stacks),
            grouped(roles),
            grouped(count("AWS::Lambda::Function")),
            grouped(count("AWS::SQS::Queue")),
            grouped(count("AWS::CloudWatch::Alarm")),
            grouped(count("AWS::Scheduler::Schedule")),
            grouped(prod.reserved_concurrency as usize),
            if over.is_empty() {
                String::new()
            } else {
                format!(" (over the default quotas: {})", over.join(", "))
            }
        ),
    );
}

/// The core and service stacks at the largest size against the smallest: they must not
/// grow with the number of microprocesses, and core must fit inline.
fn report_shared_stacks(
    table: &mut Table,
    (first_n, first): (usize, &[EnvRender]),
    n: usize,
    last: &[EnvRender],
) {
    for (kind, file) in [
        (StackKind::Core, "core.template.json"),
        (StackKind::Service, "service.template.json"),
    ] {
        let mut changed = Vec::new();
        let mut present = 0;
        for (a, b) in first.iter().zip(last) {
            match (a.shared.get(file), b.shared.get(file)) {
                (Some(x), Some(y)) => {
                    present += 1;
                    if x != y {
                        changed.push(b.env.clone());
                    }
                }
                (None, None) => {}
                _ => changed.push(b.env.clone()),
            }
        }
        let stacks: Vec<&StackFigures> = last
            .iter()
            .flat_map(|r| &r.stacks)
            .filter(|s| s.kind == kind)
            .collect();
        let resources = stacks.iter().map(|s| s.resources).max().unwrap_or(0);
        let bytes = stacks.iter().map(|s| s.bytes).max().unwrap_or(0);
        let name = if kind == StackKind::Core {
            "core"
        } else {
            "service"
        };
        let same = if changed.is_empty() {
            format!("byte-identical to {first_n} microprocesses' in all {present} environments")
        } else {
            format!("changed in {}", changed.join(", "))
        };
        let (target, met) = if kind == StackKind::Core {
            (
                format!(
                    "unchanged by N; ≤ {} bytes (inline TemplateBody)",
                    grouped(MAX_INLINE_TEMPLATE_BYTES)
                ),
                changed.is_empty() && bytes <= MAX_INLINE_TEMPLATE_BYTES,
            )
        } else {
            ("unchanged by N".to_string(), changed.is_empty())
        };
        table.target(
            AREA,
            format!("{name} stack, {n} microprocesses"),
            format!(
                "at most {resources} resources, {} bytes; {same}",
                grouped(bytes)
            ),
            target,
            met,
        );
    }
}

/// Adds one microprocess to the largest project and renders every environment again.
fn report_adding_one(table: &mut Table, mut project: SyntheticProject, before: &[EnvRender]) {
    let n = project.total();
    let added = project.add_one();
    let after = render_all(&project, true);
    let mut changed = Vec::new();
    let mut compared = 0;
    let mut wrong_additions = Vec::new();
    for (old, new) in before.iter().zip(&after) {
        let old_templates = old.templates.as_ref().expect("templates kept");
        let new_templates = new.templates.as_ref().expect("templates kept");
        for (name, json) in old_templates {
            compared += 1;
            if new_templates.get(name) != Some(json) {
                changed.push(name.clone());
            }
        }
        let extra: Vec<&String> = new_templates
            .keys()
            .filter(|k| !old_templates.contains_key(*k))
            .collect();
        let expected = format!("-mp-{added}");
        if extra.len() != 1 || !extra[0].ends_with(&expected) {
            wrong_additions.push(format!("{}: {extra:?}", new.env));
        }
    }
    let seconds: f64 = after
        .iter()
        .map(|r| (r.load + r.render).as_secs_f64())
        .sum();
    let value = if changed.is_empty() && wrong_additions.is_empty() {
        format!(
            "+1 stack in each of {} environments; 0 of {} other stacks changed (render {seconds:.2} s)",
            after.len(),
            grouped(compared)
        )
    } else {
        format!(
            "{} of {} other stacks changed ({}); stacks added: {}",
            changed.len(),
            grouped(compared),
            changed
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if wrong_additions.is_empty() {
                "one each".to_string()
            } else {
                wrong_additions.join("; ")
            }
        )
    };
    table.target(
        AREA,
        format!("adding microprocess {} to {n}", n + 1),
        value,
        "only its own stack: +1, the rest byte-identical",
        changed.is_empty() && wrong_additions.is_empty(),
    );
}
