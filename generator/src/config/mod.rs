//! Configuration: `environments/microprocesses.toml` (one entry per microprocess, shared by
//! every environment) and `environments/ENV.toml` (account, service, overrides).
//!
//! Parse, then validate: only the types of [`model`] leave this module, and every problem is
//! reported with its file, line, column and a hint.

mod checks;
pub mod completion;
pub mod diagnostic;
mod environment;
mod fargate;
pub mod ledger_layout;
mod microprocess;
pub mod model;
mod parse;
mod raw;
pub mod result_limit;
pub mod sandbox;
pub mod schedule;
mod service_access;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use checks::{Checker, Located};
use diagnostic::{did_you_mean, Diagnostic, Diagnostics, Place, SourceFile};
pub use microprocess::DEAD_LETTER_RETENTION_DAYS;
pub use model::Environment;
use raw::{RawEnvironmentFile, RawMicroprocesses};
pub use sandbox::Selector;

use crate::names;

/// The file holding the microprocess entries; not an environment.
pub const MICROPROCESSES_FILE: &str = "microprocesses.toml";

/// Where a project's config lives, and how architecture `host` resolves.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    /// Lambda's name for this machine's architecture, used for `architecture = "host"`.
    pub host_arch: String,
}

impl Project {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Project {
            root: root.into(),
            host_arch: host_architecture().to_string(),
        }
    }

    pub fn environments_dir(&self) -> PathBuf {
        self.root.join("environments")
    }

    /// Environment names: every `environments/*.toml` but the microprocesses file, sorted.
    pub fn environment_names(&self) -> Result<Vec<String>, Diagnostics> {
        let dir = self.environments_dir();
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            one(
                Diagnostic::general(format!("cannot read `{}`: {e}", dir.display()))
                    .hint("run the command from the project root, or pass `--root`"),
            )
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".toml")?;
                (name != MICROPROCESSES_FILE).then(|| stem.to_string())
            })
            .collect();
        names.sort();
        Ok(names)
    }

    fn read(&self, file_name: &str) -> Result<Arc<SourceFile>, Diagnostics> {
        let path = self.environments_dir().join(file_name);
        let display_path = format!("environments/{file_name}");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            one(Diagnostic::general(format!(
                "cannot read `{display_path}`: {e}"
            )))
        })?;
        Ok(Arc::new(SourceFile { display_path, text }))
    }

    /// Loads and validates one environment, reporting every problem found.
    pub fn load(&self, env: &str) -> Result<Environment, Diagnostics> {
        self.load_checked(env, false)
    }

    /// Loads an environment that sandboxes can be made of: unprotected, with
    /// `expires_after_days` (otherwise a diagnostic points at the file).
    pub fn load_sandbox_base(&self, env: &str) -> Result<Environment, Diagnostics> {
        self.load_checked(env, true)
    }

    fn load_checked(&self, env: &str, sandbox_base: bool) -> Result<Environment, Diagnostics> {
        let names = self.environment_names()?;
        if !names.iter().any(|n| n == env) {
            let list = names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            // `sandbox-alice` is a sandbox's name, not a file's.
            let sandbox_of = names.iter().find_map(|n| {
                let rest = env.strip_prefix(n.as_str())?.strip_prefix('-')?;
                sandbox::check_name(rest).ok().map(|()| (n, rest))
            });
            let hint = match (sandbox_of, did_you_mean(env, names.iter().map(String::as_str))) {
                (Some((file, name)), _) => format!(
                    "a sandbox is named by its environment and its name: `--env {file} --sandbox {name}` (environments: {list})"
                ),
                (None, Some(close)) => format!("did you mean `{close}`? (environments: {list})"),
                (None, None) => {
                    format!("environments: {list}; add `environments/{env}.toml` to create one")
                }
            };
            return Err(one(Diagnostic::general(format!(
                "unknown environment `{env}`"
            ))
            .hint(hint)));
        }
        let mp_file = self.read(MICROPROCESSES_FILE)?;
        let env_file = self.read(&format!("{env}.toml"))?;
        let entries: RawMicroprocesses = parse::parse(&mp_file).map_err(one)?;
        let raw_env: RawEnvironmentFile = parse::parse(&env_file).map_err(one)?;
        let loaded = validate(
            env,
            &entries,
            &mp_file,
            &raw_env,
            &env_file,
            &self.host_arch,
        )?;
        if sandbox_base {
            sandbox::check_allows(&loaded, &raw_env, &env_file)?;
        }
        Ok(loaded)
    }

    /// Loads the environment `env`, or with `sandbox` its copy `<env>-<sandbox>`: the file
    /// must allow sandboxes and the name must be valid and short enough that every name
    /// made from it fits its AWS limit.
    pub fn load_instance(
        &self,
        env: &str,
        sandbox: Option<&str>,
    ) -> Result<Environment, LoadError> {
        let Some(name) = sandbox else {
            return self.load(env).map_err(LoadError::Config);
        };
        sandbox::check_name(name).map_err(|m| {
            LoadError::Usage(
                Diagnostic::general(m).hint(
                    "the sandbox name becomes part of every stack and resource name of the copy",
                ),
            )
        })?;
        let base = self.load_sandbox_base(env).map_err(LoadError::Config)?;
        let instance = sandbox::instance_name(env, name);
        if self
            .environment_names()
            .is_ok_and(|n| n.contains(&instance))
        {
            return Err(LoadError::Usage(
                Diagnostic::general(format!(
                    "sandbox `{name}` of `{env}` would be named `{instance}`, which is the name of `environments/{instance}.toml`"
                ))
                .hint("choose another sandbox name"),
            ));
        }
        let (max, tightest) = sandbox::max_name_len(&base);
        if name.len() > max {
            let longest = sandbox::instantiate(&base, name);
            let example = names::name_limits(&longest)
                .into_iter()
                .find(|l| l.what == tightest.what && l.name.len() > l.limit)
                .map(|l| l.name)
                .unwrap_or_default();
            return Err(LoadError::Usage(
                Diagnostic::general(format!(
                    "sandbox name `{name}` is {} characters; sandboxes of `{env}` take at most {max}",
                    name.len()
                ))
                .hint(format!(
                    "it would make the {} `{example}` ({} characters; AWS takes at most {}): choose a shorter name",
                    tightest.what,
                    example.len(),
                    tightest.limit
                )),
            ));
        }
        Ok(sandbox::instantiate(&base, name))
    }
}

/// Why [`Project::load_instance`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The config has problems, each with its place.
    Config(Diagnostics),
    /// The command line asked for something the config cannot give (a bad sandbox name).
    Usage(Diagnostic),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Config(d) => write!(f, "{d}"),
            LoadError::Usage(d) => write!(f, "{d}"),
        }
    }
}

impl std::error::Error for LoadError {}

fn one(d: Diagnostic) -> Diagnostics {
    Diagnostics(vec![d])
}

/// Lambda's name for the architecture this binary runs on.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "x86_64",
    }
}

fn validate(
    env: &str,
    entries: &RawMicroprocesses,
    mp_file: &Arc<SourceFile>,
    raw_env: &RawEnvironmentFile,
    env_file: &Arc<SourceFile>,
    host_arch: &str,
) -> Result<Environment, Diagnostics> {
    let mut c = Checker::default();
    if !checks::is_kebab_name(env, 16) {
        c.diagnostics.push(
            Diagnostic::general(format!("`{env}` is not a valid environment name"))
                .hint(format!("rename `environments/{env}.toml`: 2 to 16 lowercase letters, digits and single hyphens, starting with a letter")),
        );
    }
    if entries.is_empty() {
        c.error(
            &Place::new(mp_file, 0..0),
            "no microprocess is defined",
            "add a `[NAME]` table per microprocess (see the README)",
        );
    }
    for name in raw_env.microprocesses.keys() {
        if !entries.keys().any(|k| k.get_ref() == name.get_ref()) {
            let hint =
                match did_you_mean(name.get_ref(), entries.keys().map(|k| k.get_ref().as_str())) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!(
                    "overrides name microprocesses defined in `environments/{MICROPROCESSES_FILE}`"
                ),
                };
            c.error(
                &Place::new(env_file, name.span()),
                format!("override for unknown microprocess `{}`", name.get_ref()),
                hint,
            );
        }
    }

    let settings =
        environment::validate_settings(&mut c, raw_env.environment.get_ref(), env_file, host_arch);
    let mut microprocesses = Vec::new();
    for (name, entry) in entries {
        let name_l = Located::from_spanned(name, mp_file);
        microprocess::check_name(&mut c, &name_l);
        let ovr = raw_env
            .microprocesses
            .iter()
            .find(|(k, _)| k.get_ref() == name.get_ref())
            .map(|(_, v)| v);
        let mut layers = Vec::new();
        if let Some(o) = ovr {
            layers.push((o, env_file));
        }
        layers.push((entry, mp_file));
        let enabled = ovr
            .and_then(|o| o.enabled.as_ref())
            .or(entry.enabled.as_ref())
            .is_none_or(|e| *e.get_ref());
        let layers = microprocess::Layers { layers };
        let m = microprocess::validate(&mut c, name.get_ref(), &name_l.place, &layers);
        if enabled {
            microprocesses.push(m);
        }
    }

    let service =
        environment::validate_service(&mut c, &raw_env.service, env_file, &microprocesses);
    let env_table = Place::new(env_file, raw_env.environment.span());
    environment::check_concurrency(
        &mut c,
        &settings,
        raw_env.environment.get_ref(),
        &env_table,
        env_file,
        &microprocesses,
    );

    if !c.diagnostics.is_empty() {
        return Err(c.diagnostics);
    }
    Ok(Environment {
        name: env.to_string(),
        account_id: settings.account_id,
        region: settings.region,
        protected: settings.protected,
        architecture: settings.architecture,
        lambda_concurrency_limit: settings.lambda_concurrency_limit,
        log_retention_days: settings.log_retention_days,
        alarm_email: settings.alarm_email,
        expires_after_days: settings.expires_after_days,
        service,
        microprocesses,
        sandbox: None,
    })
}

/// Resolves the project root: the given path, or the nearest ancestor of the current
/// directory that has an `environments/` folder.
pub fn find_root(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        // Absolute, so paths derived from it stay right in child processes started in
        // another directory (the local runner's functions).
        return std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors()
        .find(|a| a.join("environments").is_dir())
        .map(Path::to_path_buf)
        .unwrap_or(cwd)
}
