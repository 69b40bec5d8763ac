//! Helpers shared by the cross-crate tests: where the project and its tools are, the
//! rendered stacks of every environment written out as a bundle would be, a moto server
//! per test ([`moto`]), the ledger table as the core template defines it
//! ([`ledger_table`]), a whole microprocess in process ([`pipeline`]), its bookkeeping
//! ([`audit`]) and AWS requests that fail on purpose ([`faults`]).

#[path = "support/audit.rs"]
pub mod audit;
#[path = "support/counter.rs"]
pub mod counter;
#[path = "support/deployed.rs"]
pub mod deployed;
#[path = "support/drive.rs"]
pub mod drive;
#[path = "support/faults.rs"]
pub mod faults;
#[path = "support/kit_project.rs"]
pub mod kit_project;
#[path = "support/ledger_table.rs"]
pub mod ledger_table;
#[path = "support/mapping.rs"]
pub mod mapping;
#[path = "support/moto.rs"]
pub mod moto;
#[path = "support/pipeline.rs"]
pub mod pipeline;

use std::path::{Path, PathBuf};
use std::process::Command;

use microprocess_kit::config::Project;
use microprocess_kit::render::{RenderedStack, Renderer};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A tool installed by `make setup` into the project's `.venv`.
pub fn venv_tool(name: &str) -> PathBuf {
    let path = root().join(".venv").join("bin").join(name);
    assert!(
        path.is_file(),
        "`{}` is missing: run `make setup` first",
        path.display()
    );
    path
}

/// Every environment rendered, architecture fixed so the output does not depend on the machine.
pub fn render_all() -> Vec<(String, Vec<RenderedStack>)> {
    let project = Project {
        root: root(),
        host_arch: "x86_64".into(),
    };
    let renderer = Renderer::load(&root().join("templates")).unwrap_or_else(|e| panic!("{e}"));
    project
        .environment_names()
        .unwrap_or_else(|d| panic!("{d}"))
        .into_iter()
        .map(|name| {
            let env = project.load(&name).unwrap_or_else(|d| panic!("{d}"));
            let stacks = renderer
                .render_environment(&env)
                .unwrap_or_else(|e| panic!("{e}"));
            (name, stacks)
        })
        .collect()
}

/// Writes `<dir>/<env>/<template>` for every stack; returns the files.
pub fn write_templates(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (env, stacks) in render_all() {
        std::fs::create_dir_all(dir.join(&env)).unwrap();
        for s in stacks {
            let path = dir.join(&env).join(&s.plan.template_file);
            std::fs::write(&path, &s.json).unwrap();
            files.push(path);
        }
    }
    files
}

/// Runs a command, returning (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
