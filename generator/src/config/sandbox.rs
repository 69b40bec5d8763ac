//! Sandboxes: one environment file deployed several times in one account, each copy under
//! its own name. `--env sandbox --sandbox alice` loads `environments/sandbox.toml` and
//! instantiates it as the environment `sandbox-alice`: that name is the environment's name
//! everywhere (stack and resource names, tags, `dist/sandbox-alice/`, the manifest), and the
//! service's host names get `-alice` on their first label so two copies never claim the
//! same DNS record. Only an unprotected environment with `expires_after_days` can be
//! instantiated, so every copy carries an expiry tag and `teardown --expired` can find it.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::diagnostic::{Diagnostic, Diagnostics, Place, SourceFile};
use super::model::{Environment, Service};
use super::raw::RawEnvironmentFile;
use crate::names;

/// The environment `--sandbox` instantiates when `--env` is not given.
pub const DEFAULT_ENVIRONMENT: &str = "sandbox";

/// Stack and resource tag naming the environment file a sandbox was instantiated from.
pub const SANDBOX_OF_TAG: &str = "microprocess:sandbox-of";

/// What makes an environment a sandbox: the file it came from and the name it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sandbox {
    /// The environment file's name (`sandbox` for `environments/sandbox.toml`).
    pub of: String,
    /// The name given with `--sandbox` (`alice`).
    pub name: String,
}

/// How the command line names an environment: `--env dev`, or a sandbox of an environment,
/// `--env sandbox --sandbox alice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The environment file, `environments/<file>.toml`.
    pub file: String,
    pub sandbox: Option<String>,
}

impl Selector {
    /// `--env` and `--sandbox` as given; `--env` defaults to [`DEFAULT_ENVIRONMENT`] when
    /// only `--sandbox` is given.
    pub fn new(env: Option<&str>, sandbox: Option<&str>) -> Selector {
        Selector {
            file: env.unwrap_or(DEFAULT_ENVIRONMENT).to_string(),
            sandbox: sandbox.map(str::to_string),
        }
    }

    /// The environment's name: the file's, or `<file>-<sandbox>`.
    pub fn name(&self) -> String {
        match &self.sandbox {
            Some(s) => instance_name(&self.file, s),
            None => self.file.clone(),
        }
    }
}

/// The command-line arguments that select this environment again, for hints.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--env {}", self.file)?;
        if let Some(s) = &self.sandbox {
            write!(f, " --sandbox {s}")?;
        }
        Ok(())
    }
}

impl Environment {
    /// The arguments that name this environment on the command line.
    pub fn selector(&self) -> Selector {
        match &self.sandbox {
            Some(s) => Selector {
                file: s.of.clone(),
                sandbox: Some(s.name.clone()),
            },
            None => Selector {
                file: self.name.clone(),
                sandbox: None,
            },
        }
    }
}

/// `sandbox` + `alice` → `sandbox-alice`.
pub fn instance_name(env: &str, sandbox: &str) -> String {
    format!("{env}-{sandbox}")
}

/// The rule a sandbox name follows, for messages.
pub const NAME_RULE: &str =
    "lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen";

/// Checks the characters of a sandbox name (its length depends on the environment: see
/// [`max_name_len`]).
pub fn check_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes[0].is_ascii_lowercase()
        && !name.ends_with('-')
        && !name.contains("--")
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid sandbox name: use {NAME_RULE}, e.g. `alice` or `pr-123`"
        ))
    }
}

/// The longest sandbox name an environment takes, and the generated name that sets it:
/// every name the templates give a resource contains the environment's name once, so the
/// tightest of their AWS limits bounds the sandbox name.
pub fn max_name_len(base: &Environment) -> (usize, names::NameLimit) {
    // With a one-character name, each name has exactly `limit - len + 1` characters to spare.
    let probe = instantiate(base, "x");
    names::name_limits(&probe)
        .into_iter()
        .map(|l| ((l.limit + 1).saturating_sub(l.name.len()), l))
        .min_by_key(|(room, _)| *room)
        .unwrap_or_else(|| {
            (
                0,
                names::NameLimit {
                    what: "environment name",
                    name: probe.name.clone(),
                    limit: 0,
                },
            )
        })
}

/// `base` under the name `<base>-<name>`: names, tags, host names. No checks: see
/// `Project::load_instance`, which makes them first.
pub fn instantiate(base: &Environment, name: &str) -> Environment {
    let mut env = base.clone();
    env.name = instance_name(&base.name, name);
    env.sandbox = Some(Sandbox {
        of: base.name.clone(),
        name: name.to_string(),
    });
    if let Service::Fargate(f) = &mut env.service {
        f.live_host = sandbox_host(&f.live_host, name);
        f.queue_host = sandbox_host(&f.queue_host, name);
    }
    env
}

/// `scores.sandbox.example.com` → `scores-alice.sandbox.example.com`: one label deeper
/// would fall outside a wildcard certificate for `*.sandbox.example.com`.
pub fn sandbox_host(host: &str, name: &str) -> String {
    match host.split_once('.') {
        Some((first, rest)) => format!("{first}-{name}.{rest}"),
        None => format!("{host}-{name}"),
    }
}

/// Whether `env` may be instantiated: unprotected and with `expires_after_days`, so every
/// copy is tagged to expire. Points at the file's `protected` key or `[environment]` table.
pub fn check_allows(
    env: &Environment,
    raw: &RawEnvironmentFile,
    file: &Arc<SourceFile>,
) -> Result<(), Diagnostics> {
    let table = raw.environment.get_ref();
    let d = if env.protected {
        Diagnostic::at(
            Place::new(file, table.protected.span()),
            format!("`{}` is protected, so it cannot have sandboxes", env.name),
        )
        .hint(format!(
            "sandboxes are throw-away copies that `teardown --expired` removes; instantiate an unprotected environment with `expires_after_days`, e.g. `--env {DEFAULT_ENVIRONMENT}`"
        ))
    } else if env.expires_after_days.is_none() {
        Diagnostic::at(
            Place::new(file, raw.environment.span()),
            format!(
                "`{}` has no `expires_after_days`, so it cannot have sandboxes",
                env.name
            ),
        )
        .hint(format!(
            "every sandbox is tagged to expire so `teardown --expired` can find it: add `expires_after_days = 7` under `[environment]`, or use `--env {DEFAULT_ENVIRONMENT}`"
        ))
    } else {
        return Ok(());
    };
    Err(Diagnostics(vec![d]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadError;
    use crate::plan;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["alice", "a", "pr-123", "b2", "x-y-z"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Alice", "1abc", "-a", "a-", "a--b", "a_b", "a.b", "ä"] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains("is not a valid sandbox name"), "{bad}: {e}");
        }
    }

    #[test]
    fn hosts_get_the_name_on_their_first_label() {
        assert_eq!(
            sandbox_host("scores.sandbox.dev.example.com", "alice"),
            "scores-alice.sandbox.dev.example.com"
        );
        assert_eq!(sandbox_host("localhost", "bob"), "localhost-bob");
    }

    fn project() -> crate::config::Project {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace root");
        crate::config::Project {
            root: root.to_path_buf(),
            host_arch: "x86_64".into(),
        }
    }

    #[test]
    fn a_sandbox_is_the_environment_under_its_own_name() {
        let base = project().load("sandbox").unwrap();
        let env = project().load_instance("sandbox", Some("alice")).unwrap();
        assert_eq!(env.name, "sandbox-alice");
        assert_eq!(
            env.sandbox,
            Some(Sandbox {
                of: "sandbox".into(),
                name: "alice".into()
            })
        );
        assert_eq!(env.selector().to_string(), "--env sandbox --sandbox alice");
        assert_eq!(plan::prefix(&env), "scores-sandbox-alice");
        let stacks: Vec<String> = plan::stacks(&env).into_iter().map(|s| s.name).collect();
        assert_eq!(
            stacks,
            [
                "scores-sandbox-alice-core",
                "scores-sandbox-alice-service",
                "scores-sandbox-alice-mp-abn-refresh",
                "scores-sandbox-alice-mp-annual-report",
                "scores-sandbox-alice-mp-credit-scores",
            ]
        );
        let m = &env.microprocesses[2];
        assert_eq!(
            plan::function_name(&env, m, "forwarder"),
            "scores-sandbox-alice-credit-scores-forwarder"
        );
        let tags = crate::render::context::base_tags(&env);
        for tag in [
            ("microprocess:environment", "sandbox-alice"),
            ("microprocess:expires-after-days", "7"),
            (SANDBOX_OF_TAG, "sandbox"),
        ] {
            assert!(
                tags.contains(&(tag.0.to_string(), tag.1.to_string())),
                "{tags:?}"
            );
        }
        let (Service::Fargate(f), Service::Fargate(b)) = (&env.service, &base.service) else {
            panic!("the sandbox runs on Fargate");
        };
        assert_eq!(f.live_host, "scores-alice.sandbox.dev.example.com");
        assert_eq!(f.queue_host, "scores-queue-alice.sandbox.dev.example.com");
        // Everything else is the file's.
        assert_eq!(f.image, b.image);
        assert_eq!(env.microprocesses.len(), base.microprocesses.len());
        assert_eq!(env.expires_after_days, Some(7));
        // The environment itself is no sandbox and carries no sandbox tag.
        assert_eq!(base.sandbox, None);
        assert!(crate::render::context::base_tags(&base)
            .iter()
            .all(|(k, _)| k != SANDBOX_OF_TAG));
    }

    #[test]
    fn the_longest_name_fits_every_aws_limit_and_one_more_is_refused() {
        let base = project().load("sandbox").unwrap();
        let (max, tightest) = max_name_len(&base);
        // scores-sandbox-<NAME>-credit-scores-forwarder, at most 64 characters.
        assert_eq!(max, 64 - "scores-sandbox--credit-scores-forwarder".len());
        assert_eq!(tightest.what, "Lambda function name");

        let longest = "a".repeat(max);
        let env = project().load_instance("sandbox", Some(&longest)).unwrap();
        for l in plan::name_limits(&env) {
            assert!(l.name.len() <= l.limit, "{l:?}");
        }
        assert!(plan::name_limits(&env)
            .iter()
            .any(|l| l.name.len() == l.limit));

        let too_long = "a".repeat(max + 1);
        let e = project()
            .load_instance("sandbox", Some(&too_long))
            .unwrap_err();
        let LoadError::Usage(d) = e else {
            panic!("a bad name is a usage error: {e}");
        };
        assert_eq!(
            d.to_string(),
            format!(
                "error: sandbox name `{too_long}` is {} characters; sandboxes of `sandbox` take at most {max}\n = hint: it would make the Lambda function name `scores-sandbox-{too_long}-annual-report-forwarder` (65 characters; AWS takes at most 64): choose a shorter name\n",
                max + 1
            )
        );
    }

    #[test]
    fn bad_names_and_names_of_environment_files_are_usage_errors() {
        let e = project()
            .load_instance("sandbox", Some("Alice"))
            .unwrap_err();
        assert!(matches!(e, LoadError::Usage(_)), "{e}");
        assert!(e.to_string().contains("is not a valid sandbox name"), "{e}");

        let p = project();
        let dir = tempfile::tempdir().unwrap();
        let envs = dir.path().join("environments");
        std::fs::create_dir_all(&envs).unwrap();
        for f in ["microprocesses.toml", "sandbox.toml"] {
            std::fs::copy(p.environments_dir().join(f), envs.join(f)).unwrap();
        }
        std::fs::copy(
            p.environments_dir().join("sandbox.toml"),
            envs.join("sandbox-eu.toml"),
        )
        .unwrap();
        let copy = crate::config::Project {
            root: dir.path().to_path_buf(),
            host_arch: "x86_64".into(),
        };
        let e = copy.load_instance("sandbox", Some("eu")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "error: sandbox `eu` of `sandbox` would be named `sandbox-eu`, which is the name of `environments/sandbox-eu.toml`\n = hint: choose another sandbox name\n"
        );
    }

    #[test]
    fn only_unprotected_expiring_environments_have_sandboxes_and_the_error_points_at_the_file() {
        let e = project().load_instance("prod", Some("alice")).unwrap_err();
        let LoadError::Config(d) = &e else {
            panic!("a config that allows no sandbox is a config error: {e}");
        };
        assert_eq!(d.len(), 1);
        assert_eq!(
            d.first().unwrap().location().as_deref(),
            Some("environments/prod.toml:6:13")
        );
        assert!(
            e.to_string()
                .starts_with("error: `prod` is protected, so it cannot have sandboxes\n"),
            "{e}"
        );

        let e = project().load_instance("dev", Some("alice")).unwrap_err();
        let LoadError::Config(d) = &e else {
            panic!("{e}");
        };
        assert!(
            d.first()
                .unwrap()
                .location()
                .unwrap()
                .starts_with("environments/dev.toml:"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("`dev` has no `expires_after_days`, so it cannot have sandboxes"),
            "{e}"
        );
        assert!(e
            .to_string()
            .contains("add `expires_after_days = 7` under `[environment]`"));
    }

    #[test]
    fn a_sandbox_name_given_as_an_environment_gets_a_hint() {
        let e = project().load("sandbox-alice").unwrap_err();
        assert_eq!(
            e.to_string(),
            "error: unknown environment `sandbox-alice`\n = hint: a sandbox is named by its environment and its name: `--env sandbox --sandbox alice` (environments: `dev`, `local`, `prod`, `sandbox`, `staging`)\n"
        );
    }

    #[test]
    fn a_selector_prints_the_arguments_that_name_it() {
        let s = Selector::new(None, Some("alice"));
        assert_eq!(s.name(), "sandbox-alice");
        assert_eq!(s.to_string(), "--env sandbox --sandbox alice");
        let s = Selector::new(Some("dev"), None);
        assert_eq!(
            (s.name(), s.to_string()),
            ("dev".into(), "--env dev".into())
        );
    }
}
