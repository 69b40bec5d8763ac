//! A temporary copy of the project (config and templates) driven through the `microprocess`
//! binary, as a user would: for the end-to-end tests against the kit's emulator.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::moto::MotoServer;
use crate::{root, run};

/// The `microprocess` binary, built once per test binary.
pub fn cli() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let (code, _, stderr) = run(Command::new(cargo).current_dir(root()).args([
                "build",
                "--quiet",
                "-p",
                "microprocess-kit",
                "--bin",
                "microprocess",
            ]));
            assert_eq!(code, 0, "cannot build the CLI:\n{stderr}");
            root().join("target").join("debug").join("microprocess")
        })
        .clone()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Which Lambda zips the copy deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zips {
    /// Small fake files: enough to deploy, nothing runs them.
    Fake,
    /// The zips `make build` packaged for this machine, which the local runner executes.
    Built,
}

/// A copy of the project's config and templates, with zips for this machine.
pub struct KitProject {
    dir: tempfile::TempDir,
}

impl KitProject {
    pub fn new(zips: Zips) -> KitProject {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &root().join("environments"),
            &dir.path().join("environments"),
        );
        copy_dir(&root().join("templates"), &dir.path().join("templates"));
        let arch = microprocess_kit::config::host_architecture();
        for f in microprocess_kit::plan::FUNCTIONS {
            let d = dir.path().join("assets").join(arch).join(f);
            std::fs::create_dir_all(&d).unwrap();
            let zip = d.join("bootstrap.zip");
            match zips {
                Zips::Fake => std::fs::write(zip, format!("fake {f} zip")).unwrap(),
                Zips::Built => {
                    let built = root()
                        .join("target")
                        .join("lambda")
                        .join(arch)
                        .join(f)
                        .join("bootstrap.zip");
                    std::fs::copy(&built, zip).unwrap_or_else(|e| {
                        panic!(
                            "`{}` cannot be read ({e}): run `make build` first (it packages the Lambda zips the local runner executes)",
                            built.display()
                        )
                    });
                }
            }
        }
        KitProject { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces `from`, which must be in `environments/<file>`, with `to`.
    pub fn replace(&self, file: &str, from: &str, to: &str) {
        let path = self.path().join("environments").join(file);
        let all = std::fs::read_to_string(&path).unwrap();
        assert!(all.contains(from), "`{from}` is not in {file}");
        std::fs::write(path, all.replacen(from, to, 1)).unwrap();
    }

    /// Appends `text` to `environments/<file>`.
    pub fn append(&self, file: &str, text: &str) {
        let path = self.path().join("environments").join(file);
        let mut all = std::fs::read_to_string(&path).unwrap();
        all.push_str(text);
        std::fs::write(path, all).unwrap();
    }

    /// The CLI with `args` against `endpoint` and no other AWS settings.
    pub fn command(&self, endpoint: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(cli());
        cmd.arg("--root").arg(self.path()).args(args);
        for var in [
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "MICROPROCESS_QUEUE_BASE_URL",
            "MICROPROCESS_SIGNING_SECRET",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the CLI to its end; (code, stdout, stderr).
    pub fn cli(&self, endpoint: &str, args: &[&str]) -> (i32, String, String) {
        run(&mut self.command(endpoint, args))
    }

    /// Starts the CLI in the background (`local run`), its output into `log`.
    pub fn spawn(&self, endpoint: &str, args: &[&str], log: &Path) -> Background {
        let file = std::fs::File::create(log).unwrap();
        let child = self
            .command(endpoint, args)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the CLI: {e}"));
        Background {
            child,
            log: log.to_path_buf(),
        }
    }

    /// `local run --env local` against the service at `queue_base_url` (no schedules, any
    /// free Lambda port, log in `runner.log`), once it has written its Lambda endpoint
    /// (where `start` finds it); panics if it stops or takes over a minute.
    pub fn run_locally(&self, endpoint: &str, queue_base_url: &str, secret: &str) -> Background {
        let log = self.path().join("runner.log");
        let args = [
            "local",
            "run",
            "--env",
            "local",
            "--lambda-port",
            "0",
            "--no-schedules",
            "--queue-base-url",
            queue_base_url,
            "--signing-secret",
            secret,
        ];
        let mut runner = self.spawn(endpoint, &args, &log);
        let work_dir = microprocess_kit::local::work_dir(self.path(), "local");
        let started = Instant::now();
        while microprocess_kit::local::state::read(&work_dir)
            .lambda_endpoint
            .is_none()
        {
            assert!(
                runner.running(),
                "the local runner stopped:\n{}",
                runner.log()
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the local runner did not start within 60 s:\n{}",
                runner.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        runner
    }

    /// `generate --env local` with the copy's zips; panics unless it succeeds.
    pub fn generate(&self) {
        let assets = self.path().join("assets");
        let (code, out, err) = self.cli(
            "http://127.0.0.1:9",
            &[
                "generate",
                "--env",
                "local",
                "--assets-dir",
                assets.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "generate failed:\n{out}{err}");
    }

    /// `deploy --env local --yes`; panics unless it succeeds; returns stdout.
    pub fn deploy(&self, moto: &MotoServer) -> String {
        let (code, out, err) = self.cli(moto.endpoint(), &["deploy", "--env", "local", "--yes"]);
        assert_eq!(
            code,
            0,
            "deploy failed:\n{out}\n{err}\nemulator:\n{}",
            moto.log()
        );
        out
    }
}

/// A CLI process in the background, killed when dropped.
pub struct Background {
    child: Child,
    log: PathBuf,
}

impl Background {
    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id (benchmarks read the CPU time of it and its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
