//! The local runner: runs an environment's shipped Lambda artifacts against the AWS
//! emulator, which stores functions but cannot execute them without Docker.
//!
//! It reads back what was deployed: the functions and their SQS event source mappings
//! from the emulator ([`discover`]), the schedules from the bundle's templates
//! ([`schedules`]; the emulator does not create them). It finds each function's zip by
//! its `CodeSha256` ([`code`]), makes the signing secret resolvable ([`secret`]), and
//! runs every function's `bootstrap` as warm child processes, each with its own Lambda
//! Runtime API on loopback ([`instance`], [`runtime_api`]) and the environment its
//! template gave it, pointed at the emulator. Mapped queues are polled with the mapping's
//! batch size, concurrency and partial batch semantics ([`poller`]); asynchronous and
//! synchronous invocations (schedule ticks, the splitter's hand-off to itself, runs
//! started by hand) go through the runner's own Lambda `Invoke` endpoint
//! ([`invoke_api`], [`function`], [`client`]). Every line the functions print reaches
//! the log sink ([`logs`]); stopping the runner stops every child.

pub mod client;
pub mod code;
mod controls;
pub mod discover;
mod environment;
pub mod function;
pub mod function_url;
pub mod instance;
pub mod invoke_api;
pub mod logs;
pub mod memory;
pub mod permissions;
pub mod poller;
pub mod roles;
pub mod runtime_api;
pub mod schedules;
pub mod secret;
pub mod state;
pub mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use axum::body::Bytes;
use chrono::Utc;
use serde_json::json;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use code::{Code, CodeError, ZipIndex};
use discover::{FunctionSpec, MappingSpec};
use function::{AsyncRetry, FunctionRuntime, Launcher};
use invoke_api::Registry;
use logs::LogSink;
use poller::{PollSettings, Poller};
use schedules::ScheduleSpec;
use secret::SigningSecret;
use stats::{FunctionStats, StatsSnapshot};

/// Instances per mapping when it sets no `MaximumConcurrency` and the function no
/// reserved concurrency (Lambda would scale much further).
const DEFAULT_MAPPING_CONCURRENCY: u32 = 5;
/// Workers for direct invocations at most, whatever the reserved concurrency.
const MAX_DIRECT_WORKERS: u32 = 10;
/// How often the runner checks that the emulator's own delivery stays off.
const MAPPING_GUARD_PERIOD: Duration = Duration::from_secs(15);
/// How long stopping may take before the runner stops waiting for its tasks.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum LocalError {
    #[error("cannot {action}: {detail}\n  hint: is the emulator running? (`make emulator-start`)")]
    Emulator { action: String, detail: String },
    #[error(
        "the emulator at {endpoint} has no function named `{prefix}*`\n  \
         hint: deploy the environment first (`microprocess deploy --env <env>`)"
    )]
    NoFunctions { endpoint: String, prefix: String },
    #[error(transparent)]
    Code(#[from] CodeError),
    #[error("cannot read the bundle's `{}`: {detail}\n  hint: run `make generate ENV=<env>`", path.display())]
    Bundle { path: PathBuf, detail: String },
    #[error("there is no schedule `{name}` to fire; the bundle has: {known}")]
    UnknownSchedule { name: String, known: String },
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Resolves once the runner is asked to stop (or its stop sender is gone). It holds no
/// borrow of the channel, so it can sit in a `select!` of a task that must be `Send`.
pub(crate) async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

pub(crate) fn emulator_error(action: &str, e: &dyn std::error::Error) -> LocalError {
    LocalError::Emulator {
        action: action.to_string(),
        detail: error_chain(e),
    }
}

/// An error and its sources, `: `-separated, without repeats.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// What the runner runs and how.
#[derive(Clone)]
pub struct RunnerConfig {
    /// SDK configuration that reaches the emulator.
    pub sdk: SdkConfig,
    /// The emulator's endpoint, the functions' `AWS_ENDPOINT_URL`.
    pub emulator_endpoint: String,
    /// Functions whose names start with this are run (`<service>-<env>-`).
    pub function_prefix: String,
    /// The bundle (`dist/<env>`): its templates hold the schedules. `None`: no schedules.
    pub bundle_dir: Option<PathBuf>,
    /// Folders searched for the zips the functions' `CodeSha256` names.
    pub code_dirs: Vec<PathBuf>,
    /// `--code-from-build`: run `<dir>/<splitter|forwarder>/bootstrap.zip` whatever the
    /// deployed hash.
    pub build_dir: Option<PathBuf>,
    /// `target/local-runner/<env>`: unpacked code and the state file.
    pub work_dir: PathBuf,
    /// Replaces every function's `QUEUE_BASE_URL`.
    pub queue_base_url: Option<String>,
    /// The signing secret's value to use (see [`secret`]).
    pub signing_secret: Option<String>,
    /// The secret the runner creates for functions whose own does not resolve.
    pub runner_secret_name: String,
    /// Fire `rate(...)` schedules on their period.
    pub fire_rate_schedules: bool,
    /// Schedules to fire once at start.
    pub fire_now: Vec<String>,
    /// Chance (0–1) that a mapped batch's process is killed in the middle of it.
    pub kill_forwarder_rate: f64,
    /// Port of the runner's Lambda endpoint; 0 picks a free one.
    pub lambda_port: u16,
    pub poll: PollSettings,
    pub async_retry: AsyncRetry,
    /// How long a process may take to ask for its first event.
    pub init_limit: Duration,
    pub logs: LogSink,
}

impl RunnerConfig {
    /// Defaults: long polling, Lambda's retries and init limit, no chaos, logs to stderr.
    pub fn new(
        sdk: SdkConfig,
        emulator_endpoint: impl Into<String>,
        function_prefix: impl Into<String>,
        work_dir: impl Into<PathBuf>,
    ) -> RunnerConfig {
        RunnerConfig {
            sdk,
            emulator_endpoint: emulator_endpoint.into(),
            function_prefix: function_prefix.into(),
            bundle_dir: None,
            code_dirs: Vec::new(),
            build_dir: None,
            work_dir: work_dir.into(),
            queue_base_url: None,
            signing_secret: None,
            runner_secret_name: "microprocesses-local-signing-secret".into(),
            fire_rate_schedules: true,
            fire_now: Vec::new(),
            kill_forwarder_rate: 0.0,
            lambda_port: 0,
            poll: PollSettings {
                wait_seconds: 20,
                idle_pause: Duration::from_secs(1),
                kill_rate: 0.0,
            },
            async_retry: AsyncRetry::default(),
            init_limit: instance::DEFAULT_INIT_LIMIT,
            logs: LogSink::stderr(),
        }
    }
}

/// What the runner found and runs.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub functions: Vec<FunctionSpec>,
    /// The mappings the runner polls.
    pub mappings: Vec<MappingSpec>,
    pub schedules: Vec<ScheduleSpec>,
    pub secrets: Vec<SigningSecret>,
    /// Function URLs and where the runner serves them.
    pub urls: Vec<function_url::FunctionUrl>,
}

/// A running local runner; [`LocalRunner::shutdown`] stops it and every child.
pub struct LocalRunner {
    lambda_endpoint: String,
    registry: Arc<Registry>,
    deployment: Deployment,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    work_dir: PathBuf,
    logs: LogSink,
}

impl LocalRunner {
    /// Reads the deployment, starts every function and begins polling and ticking.
    pub async fn start(config: RunnerConfig) -> Result<LocalRunner, LocalError> {
        let logs = config.logs.clone();
        let lambda = aws_sdk_lambda::Client::new(&config.sdk);
        let sqs = aws_sdk_sqs::Client::new(&config.sdk);
        let secrets_client = aws_sdk_secretsmanager::Client::new(&config.sdk);

        let functions = discover::functions(&lambda, &config.function_prefix).await?;
        if functions.is_empty() {
            return Err(LocalError::NoFunctions {
                endpoint: config.emulator_endpoint.clone(),
                prefix: config.function_prefix.clone(),
            });
        }
        let all_mappings = discover::mappings(&lambda, &sqs, &functions).await?;
        let function_names: Vec<String> = functions.iter().map(|f| f.name.clone()).collect();
        let mut url_listeners = Vec::new();
        let mut urls = Vec::new();
        for (function, (deployed, auth)) in function_url::discover(&lambda, &function_names).await?
        {
            if auth != "NONE" {
                logs.note(format!("`{function}`: its function URL takes {auth} auth, which the runner does not check"));
            }
            let listener = TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|source| LocalError::Io {
                    what: format!("listen on loopback for the function URL of `{function}`"),
                    source,
                })?;
            let port = listener
                .local_addr()
                .map_err(|source| LocalError::Io {
                    what: "read a function URL's address".into(),
                    source,
                })?
                .port();
            urls.push(function_url::FunctionUrl {
                arn: functions
                    .iter()
                    .find(|f| f.name == function)
                    .map(|f| f.arn.clone())
                    .unwrap_or_default(),
                function: function.clone(),
                deployed,
                local: format!("http://127.0.0.1:{port}/"),
            });
            url_listeners.push((function, listener));
        }
        let (region, account) = (functions[0].region.clone(), functions[0].account.clone());
        let schedules = match &config.bundle_dir {
            Some(dir) => schedules::from_bundle(dir, &region, &account)?
                .into_iter()
                .filter(|s| functions.iter().any(|f| f.name == s.function))
                .collect(),
            None => Vec::new(),
        };
        for name in &config.fire_now {
            if !schedules.iter().any(|s| &s.name == name) {
                return Err(LocalError::UnknownSchedule {
                    name: name.clone(),
                    known: names(schedules.iter().map(|s| s.name.as_str())),
                });
            }
        }
        // Every function runs as its own role (see `roles`).
        let sts = aws_sdk_sts::Client::new(&config.sdk);
        let mut sessions = BTreeMap::new();
        for f in &functions {
            sessions.insert(f.name.clone(), roles::assume(&sts, f).await?);
        }
        let resolution = secret::resolve(
            &secrets_client,
            &functions,
            config.signing_secret.as_deref(),
            &config.runner_secret_name,
        )
        .await?;
        let codes = locate_code(&config, &functions)?;
        let zips: BTreeMap<String, PathBuf> = codes
            .iter()
            .map(|(name, code)| (name.clone(), code.zip.clone()))
            .collect();

        let listener = TcpListener::bind(("127.0.0.1", config.lambda_port))
            .await
            .map_err(|source| LocalError::Io {
                what: format!(
                    "listen on 127.0.0.1:{} for the Lambda endpoint (another runner? \
                     `--lambda-port 0` picks a free port)",
                    config.lambda_port
                ),
                source,
            })?;
        let lambda_endpoint = format!(
            "http://{}",
            listener.local_addr().map_err(|source| LocalError::Io {
                what: "read the Lambda endpoint's address".into(),
                source,
            })?
        );

        let mut state = state::read(&config.work_dir);
        let mut mappings = Vec::new();
        for mapping in all_mappings {
            if mapping.state.eq_ignore_ascii_case("Enabled") {
                discover::disable_in_emulator(&lambda, &mapping).await?;
                state.taken_over_mappings.insert(mapping.uuid.clone());
                mappings.push(mapping);
            } else if state.taken_over_mappings.contains(&mapping.uuid) {
                mappings.push(mapping);
            } else {
                logs.note(format!(
                    "queue `{}` → `{}`: the mapping is {} in the emulator; not polled",
                    queue_name(&mapping.queue_arn),
                    mapping.function,
                    mapping.state
                ));
            }
        }
        state.pid = Some(std::process::id());
        state.denied.clear();
        state.lambda_endpoint = Some(lambda_endpoint.clone());
        state.emulator = Some(config.emulator_endpoint.clone());
        state::write(&config.work_dir, &state).map_err(|source| LocalError::Io {
            what: format!("write `{}`", state::path(&config.work_dir).display()),
            source,
        })?;

        let (stop, shutdown) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut runtimes = BTreeMap::new();
        let mut mapping_controls = BTreeMap::new();
        for spec in &functions {
            let spec = Arc::new(spec.clone());
            let code = codes[&spec.name].clone();
            let session = &sessions[&spec.name];
            let environment = environment::environment(
                &spec,
                &config,
                &code,
                &lambda_endpoint,
                resolution.overrides.get(&spec.name),
                session,
                &urls,
            );
            // Lambda polls a mapped queue, and dead-letters failed asynchronous events,
            // with the function's own role.
            let role_sqs = aws_sdk_sqs::Client::new(&session.sdk_config(&config.sdk));
            let launcher = Arc::new(Launcher {
                short_name: short_name(&spec.name, &config.function_prefix),
                spec: spec.clone(),
                code,
                environment,
                init_limit: config.init_limit,
                logs: logs.clone(),
                shutdown: shutdown.clone(),
            });
            let stats = Arc::new(FunctionStats::default());
            let mut next_index = 1;
            for mapping in mappings.iter().filter(|m| m.function == spec.name) {
                let concurrency = mapping
                    .maximum_concurrency
                    .or(spec.reserved_concurrency)
                    .unwrap_or(DEFAULT_MAPPING_CONCURRENCY)
                    .max(1);
                // A `throttle` may raise the concurrency up to the function's reserve.
                let pollers = spec
                    .reserved_concurrency
                    .unwrap_or(concurrency)
                    .max(concurrency);
                let control = Arc::new(poller::MappingControl::new(pollers));
                control
                    .concurrency
                    .store(concurrency, std::sync::atomic::Ordering::Relaxed);
                // As AWS keeps a mapping's state, a pause or concurrency set before the
                // runner started (`microprocess pause`, `throttle`) holds.
                controls::restore(&config.sdk, &spec, &control, &logs).await;
                mapping_controls.insert(
                    mapping.uuid.clone(),
                    (mapping.clone(), control.clone(), spec.arn.clone()),
                );
                for index in 0..pollers {
                    let instance =
                        launcher
                            .instance(next_index)
                            .await
                            .map_err(|source| LocalError::Io {
                                what: format!("open a Runtime API for `{}`", spec.name),
                                source,
                            })?;
                    next_index += 1;
                    let poller = Poller {
                        control: control.clone(),
                        index,
                        mapping: Arc::new(mapping.clone()),
                        region: spec.region.clone(),
                        timeout: spec.timeout,
                        instance,
                        sqs: role_sqs.clone(),
                        settings: PollSettings {
                            kill_rate: config.kill_forwarder_rate,
                            ..config.poll.clone()
                        },
                        stats: stats.clone(),
                        logs: logs.clone(),
                    };
                    tasks.push(tokio::spawn(poller.run(shutdown.clone())));
                }
            }
            let workers = if next_index > 1 {
                1
            } else {
                spec.reserved_concurrency
                    .unwrap_or(1)
                    .clamp(1, MAX_DIRECT_WORKERS)
            };
            let (runtime, worker_tasks) = FunctionRuntime::start(
                launcher,
                workers as usize,
                next_index,
                config.async_retry.clone(),
                role_sqs,
                stats,
            );
            tasks.extend(worker_tasks);
            runtimes.insert(spec.name.clone(), Arc::new(runtime));
        }

        for (function, listener) in url_listeners {
            let (Some(runtime), Some(spec)) = (
                runtimes.get(&function),
                functions.iter().find(|f| f.name == function),
            ) else {
                continue;
            };
            let mut url_shutdown = shutdown.clone();
            let server = axum::serve(
                listener,
                function_url::router(
                    function_url::invoke_runtime(runtime.clone()),
                    spec.arn.clone(),
                ),
            )
            .with_graceful_shutdown(async move {
                stop_requested(&mut url_shutdown).await;
            });
            let url_logs = logs.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = server.await {
                    url_logs.note(format!("the function URL of `{function}` stopped: {e}"));
                }
            }));
        }
        let deployment = Deployment {
            functions,
            mappings,
            schedules,
            secrets: resolution.secrets,
            urls,
        };
        let denied = Arc::new(Mutex::new(Vec::new()));
        let registry = Arc::new(Registry {
            mappings: mapping_controls,
            urls: deployment
                .urls
                .iter()
                .map(|u| (u.function.clone(), u.clone()))
                .collect(),
            functions: runtimes,
            denied: denied.clone(),
            description: json!({
                "emulator": config.emulator_endpoint,
                "lambda_endpoint": lambda_endpoint,
                "functions": deployment.functions,
                "mappings": deployment.mappings,
                "schedules": deployment.schedules,
                "function_urls": deployment.urls,
            }),
        });
        let mut server_shutdown = shutdown.clone();
        let server = axum::serve(listener, invoke_api::router(registry.clone()))
            .with_graceful_shutdown(async move {
                stop_requested(&mut server_shutdown).await;
            });
        let server_logs = logs.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = server.await {
                server_logs.note(format!("the Lambda endpoint stopped: {e}"));
            }
        }));

        tasks.push(tokio::spawn(permissions::watch(
            config.emulator_endpoint.clone(),
            config.work_dir.clone(),
            denied,
            stop.clone(),
            logs.clone(),
            shutdown.clone(),
        )));
        let runner = LocalRunner {
            lambda_endpoint,
            registry,
            deployment,
            stop,
            tasks,
            work_dir: config.work_dir.clone(),
            logs: logs.clone(),
        };
        runner.describe(&config, &zips);
        let mut runner = runner;
        runner.start_schedules(&config, &region, &account, &shutdown);
        runner.tasks.push(tokio::spawn(guard_mappings(
            lambda,
            runner.deployment.mappings.clone(),
            logs,
            shutdown,
        )));
        Ok(runner)
    }

    /// The runner's Lambda endpoint (`Invoke`), the functions' `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn lambda_endpoint(&self) -> &str {
        &self.lambda_endpoint
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The counters of function `name`.
    pub fn stats(&self, name: &str) -> Option<StatsSnapshot> {
        self.registry
            .functions
            .get(name)
            .map(|f| f.stats.snapshot())
    }

    /// What `GET /local/status` serves.
    pub fn status(&self) -> serde_json::Value {
        self.registry.status()
    }

    /// Queues an asynchronous invocation of `function`, as Lambda `Invoke` with
    /// `InvocationType: Event` would.
    pub fn invoke_event(&self, function: &str, payload: &serde_json::Value) -> Result<(), String> {
        let runtime = self
            .registry
            .resolve(function)
            .ok_or_else(|| format!("the local runner runs no function `{function}`"))?;
        runtime
            .invoke_event(Bytes::from(serde_json::to_vec(payload).unwrap_or_default()))
            .map_err(|e| e.to_string())
    }

    /// Stops polling and ticking, stops every child and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let tasks = self.tasks;
        let all = async move {
            for task in tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
            self.logs
                .note("some tasks did not stop in time; their processes are killed on exit");
        }
        let mut state = state::read(&self.work_dir);
        state.pid = None;
        state.lambda_endpoint = None;
        let _ = state::write(&self.work_dir, &state);
        self.logs.note("stopped");
    }

    /// Requests the emulator denied a function so far (see [`permissions`]).
    pub fn denials(&self) -> Vec<permissions::Denial> {
        self.registry.denials()
    }

    /// Runs until Ctrl-C or SIGTERM, or until the emulator denies a function a request,
    /// then stops; returns the denials (none after a signal alone).
    pub async fn run_until_signalled(self) -> Vec<permissions::Denial> {
        let mut stopped = self.stop.subscribe();
        tokio::select! {
            () = wait_for_signal() => self.logs.note("stopping (signal received)"),
            () = stop_requested(&mut stopped) => {}
        }
        let denials = self.denials();
        self.shutdown().await;
        denials
    }

    fn describe(&self, config: &RunnerConfig, zips: &BTreeMap<String, PathBuf>) {
        let logs = &self.logs;
        let d = &self.deployment;
        logs.note(format!(
            "emulator {}; {} function(s) named `{}*`",
            config.emulator_endpoint,
            d.functions.len(),
            config.function_prefix
        ));
        for f in &d.functions {
            logs.note(format!(
                "function `{}`: timeout {} s, {} MB, code `{}`",
                f.name,
                f.timeout.as_secs(),
                f.memory_mb,
                zips.get(&f.name)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ));
        }
        for s in &d.secrets {
            let origin = match s.origin {
                secret::Origin::Given => "as given",
                secret::Origin::Stored => "as stored in the emulator",
                secret::Origin::Generated => "generated now",
            };
            logs.note(format!(
                "signing secret `{}` ({origin}) for {}; the service must use the same key: \
                 MICROPROCESS_SIGNING_SECRET='{}' (demo-service --secret '{}')",
                s.arn,
                names(s.functions.iter().map(String::as_str)),
                s.value,
                s.value
            ));
        }
        if let Some(url) = &config.queue_base_url {
            logs.note(format!("QUEUE_BASE_URL of every function: {url}"));
        }
        for u in &d.urls {
            logs.note(format!(
                "function URL of `{}` ({} in the emulator) served at {}",
                u.function, u.deployed, u.local
            ));
        }
        for m in &d.mappings {
            logs.note(format!(
                "queue `{}` → `{}`: batch {}, {} concurrent, partial batch responses {}; \
                 the emulator's own delivery is off (it would raise receive counts without \
                 delivering), the runner polls it",
                queue_name(&m.queue_arn),
                m.function,
                m.batch_size,
                m.maximum_concurrency
                    .map_or_else(|| "default".to_string(), |c| c.to_string()),
                if m.report_batch_item_failures {
                    "on"
                } else {
                    "off"
                }
            ));
        }
        for s in &d.schedules {
            let now = if config.fire_now.contains(&s.name) {
                "one tick now (`--fire-now`); then "
            } else {
                ""
            };
            let when = match (s.enabled, s.period(), config.fire_rate_schedules) {
                (false, _, _) => "disabled".to_string(),
                (true, Some(p), true) => format!("fires every {} s", p.as_secs()),
                (true, Some(_), false) => "not fired (--no-schedules)".to_string(),
                (true, None, _) => format!(
                    "not fired locally (`--fire-now {}` fires one tick at start)",
                    s.name
                ),
            };
            logs.note(format!(
                "schedule `{}` {} ({}) → `{}`: {now}{when}",
                s.name, s.expression, s.timezone, s.function
            ));
        }
        if config.kill_forwarder_rate > 0.0 {
            logs.note(format!(
                "chaos: a mapped batch's process is killed in the middle with probability {}",
                config.kill_forwarder_rate
            ));
        }
        logs.note(format!(
            "Lambda endpoint {} (the functions' AWS_ENDPOINT_URL_LAMBDA); start a run by hand: \
             curl -X POST -H 'X-Amz-Invocation-Type: Event' -d '{{\"run\": \"<id>\"}}' \
             {}/2015-03-31/functions/<splitter>/invocations",
            self.lambda_endpoint, self.lambda_endpoint
        ));
    }

    fn start_schedules(
        &mut self,
        config: &RunnerConfig,
        region: &str,
        account: &str,
        shutdown: &watch::Receiver<bool>,
    ) {
        for schedule in &self.deployment.schedules {
            let Some(runtime) = self.registry.functions.get(&schedule.function).cloned() else {
                continue;
            };
            let arn = schedule.arn(region, account);
            if config.fire_now.contains(&schedule.name) {
                tick(schedule, &arn, &runtime, &self.logs);
            }
            let Some(period) = schedule.period() else {
                continue;
            };
            if !schedule.enabled || !config.fire_rate_schedules {
                continue;
            }
            let schedule = schedule.clone();
            let logs = self.logs.clone();
            let mut shutdown = shutdown.clone();
            self.tasks.push(tokio::spawn(async move {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = ticks.tick() => tick(&schedule, &arn, &runtime, &logs),
                        () = stop_requested(&mut shutdown) => return,
                    }
                }
            }));
        }
    }
}

/// One tick of a schedule: an asynchronous invocation with its input.
fn tick(schedule: &ScheduleSpec, arn: &str, runtime: &FunctionRuntime, logs: &LogSink) {
    let input = schedules::render_input(&schedule.input, Utc::now(), arn, &instance::request_id());
    logs.note(format!("schedule `{}` fires: {input}", schedule.name));
    if let Err(e) = runtime.invoke_event(Bytes::from(input)) {
        logs.note(format!("schedule `{}`: {e}", schedule.name));
    }
}

/// Turns the emulator's own delivery off again whenever it comes back on (a redeploy
/// re-enables the mappings).
async fn guard_mappings(
    lambda: aws_sdk_lambda::Client,
    mappings: Vec<MappingSpec>,
    logs: LogSink,
    mut shutdown: watch::Receiver<bool>,
) {
    if mappings.is_empty() {
        return;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(MAPPING_GUARD_PERIOD) => {}
            () = stop_requested(&mut shutdown) => return,
        }
        let Ok(states) = discover::mapping_states(&lambda).await else {
            continue;
        };
        for mapping in &mappings {
            if states
                .get(&mapping.uuid)
                .is_some_and(|s| s.eq_ignore_ascii_case("Enabled"))
            {
                match discover::disable_in_emulator(&lambda, mapping).await {
                    Ok(()) => logs.note(format!(
                        "queue `{}`: the emulator's own delivery was on again (a redeploy?); turned it off",
                        queue_name(&mapping.queue_arn)
                    )),
                    Err(e) => logs.note(e),
                }
            }
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The code of every function, unpacked under `<work_dir>/code`.
fn locate_code(
    config: &RunnerConfig,
    functions: &[FunctionSpec],
) -> Result<BTreeMap<String, Code>, LocalError> {
    let code_root = config.work_dir.join("code");
    let index = match &config.build_dir {
        Some(_) => None,
        None => Some(ZipIndex::scan(&config.code_dirs)?),
    };
    let mut codes = BTreeMap::new();
    for f in functions {
        let zip = match (&config.build_dir, &index) {
            (Some(build), _) => code::built_zip(build, &f.name)?,
            (None, Some(index)) => index.find(&f.name, &f.code_sha256)?.to_path_buf(),
            (None, None) => unreachable!("an index is built without a build dir"),
        };
        codes.insert(f.name.clone(), code::unpack(&zip, &code_root)?);
    }
    Ok(codes)
}

/// `scores-local-credit-scores-forwarder` → `credit-scores-forwarder`.
fn short_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .filter(|s| !s.is_empty())
        .unwrap_or(name)
        .to_string()
}

fn queue_name(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let list: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// `<root>/target/local-runner/<env>`.
pub fn work_dir(root: &Path, env: &str) -> PathBuf {
    root.join("target").join("local-runner").join(env)
}
