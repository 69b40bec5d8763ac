use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use super::{print_json, selected, EnvSelection, Exit, Output};
use crate::config::{Project, Selector};
use crate::manifest;
use crate::package;
use crate::render::{to_json, Renderer};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub envs: EnvSelection,
    /// Where the built Lambda zips are (`<dir>/<architecture>/<function>/bootstrap.zip`);
    /// defaults to `target/lambda`, where `make build` puts them.
    #[arg(long, value_name = "DIR")]
    pub assets_dir: Option<PathBuf>,
    /// Output folder; each environment goes to `<dir>/<env>/`. Defaults to `dist`.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

pub fn run(
    project: &Project,
    args: &GenerateArgs,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    let Some(names) = selected(project, &args.envs, err) else {
        return Exit::InvalidConfig;
    };
    let renderer = match Renderer::load(&project.root.join("templates")) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return Exit::Failed;
        }
    };
    let assets_dir = args
        .assets_dir
        .clone()
        .unwrap_or_else(|| package::default_assets_dir(&project.root));
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| project.root.join("dist"));
    let mut exit = Exit::Ok;
    let mut report = Report {
        command: "generate",
        environments: Vec::new(),
    };
    for sel in names {
        let started = Instant::now();
        let dest = out_dir.join(sel.name());
        let result = generate_one(project, &renderer, &sel, &assets_dir, &dest, err);
        let manifest = match result {
            Ok(m) => m,
            Err(code) => {
                exit = code;
                continue;
            }
        };
        let milliseconds = started.elapsed().as_millis() as u64;
        match output {
            Output::Text => {
                let shown = dest.strip_prefix(&project.root).unwrap_or(&dest);
                let _ = writeln!(
                    out,
                    "{}: {} stacks → {}",
                    manifest.environment,
                    manifest.stacks.len(),
                    shown.display()
                );
                for s in &manifest.stacks {
                    let _ = writeln!(
                        out,
                        "  {:<40} {:>4} resources {:>8} bytes",
                        s.name, s.resources, s.template_bytes
                    );
                }
                let _ = writeln!(out, "  generated in {milliseconds} ms");
            }
            Output::Json => report.environments.push(Bundle {
                name: manifest.environment.clone(),
                dir: dest.display().to_string(),
                milliseconds,
                stacks: manifest
                    .stacks
                    .iter()
                    .map(|s| BundleStack {
                        name: s.name.clone(),
                        kind: s.kind,
                        microprocess: s.microprocess.clone(),
                        template: s.template.clone(),
                        resources: s.resources,
                        bytes: s.template_bytes,
                        sha256: s.template_sha256.clone(),
                    })
                    .collect(),
                assets: manifest.assets.iter().map(|a| a.file.clone()).collect(),
            }),
        }
    }
    if output == Output::Json {
        print_json(out, &report);
    }
    exit
}

/// `--output json` (`docs/json-output.md`, "generate"): each bundle written.
#[derive(Debug, serde::Serialize)]
struct Report {
    command: &'static str,
    environments: Vec<Bundle>,
}

#[derive(Debug, serde::Serialize)]
struct Bundle {
    name: String,
    /// The bundle's folder (`dist/ENV` unless `--out-dir`).
    dir: String,
    milliseconds: u64,
    stacks: Vec<BundleStack>,
    /// Files under `assets/`.
    assets: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
struct BundleStack {
    name: String,
    kind: crate::plan::StackKind,
    microprocess: Option<String>,
    template: String,
    resources: usize,
    bytes: usize,
    sha256: String,
}

fn generate_one(
    project: &Project,
    renderer: &Renderer,
    selector: &Selector,
    assets_dir: &Path,
    dest: &Path,
    err: &mut dyn Write,
) -> Result<manifest::Manifest, Exit> {
    let env = super::load(project, selector, err)?;
    let name = env.name.as_str();
    let fail = |err: &mut dyn Write, msg: String| {
        let _ = writeln!(err, "error: {msg}");
        Exit::Failed
    };
    let assets = package::locate(assets_dir, &env.architecture)
        .map_err(|e| fail(err, format!("environment `{name}`: {e}")))?;

    // The bundle is written into a fresh folder beside `dest` and swapped in once whole, so
    // a render error leaves the old bundle as it was and a removed microprocess leaves no
    // template behind. Stacks are written as they render, one in memory at a time, so 1,000
    // microprocesses take the memory of one.
    let staging = dest.with_file_name(format!(
        "{}.partial",
        dest.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("bundle")
    ));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .map_err(|e| fail(err, format!("cannot clear `{}`: {e}", staging.display())))?;
    }
    std::fs::create_dir_all(staging.join("assets"))
        .map_err(|e| fail(err, format!("cannot create `{}`: {e}", staging.display())))?;
    let mut entries = Vec::new();
    let rendered = renderer.render_each(&env, |s| {
        let path = staging.join(&s.plan.template_file);
        std::fs::write(&path, &s.json)
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        entries.push(manifest::stack_entry(&s, &assets));
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    if let Err(e) = rendered {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(fail(err, format!("environment `{name}`: {e}")));
    }
    let manifest = manifest::from_entries(&env, entries, &assets);
    for a in &assets {
        let path = staging.join(&a.file);
        std::fs::copy(&a.source, &path).map_err(|e| {
            fail(
                err,
                format!(
                    "cannot copy `{}` to `{}`: {e}",
                    a.source.display(),
                    path.display()
                ),
            )
        })?;
    }
    let manifest_json = to_json(&serde_json::to_value(&manifest).unwrap_or_default());
    let path = staging.join("manifest.json");
    std::fs::write(&path, manifest_json)
        .map_err(|e| fail(err, format!("cannot write `{}`: {e}", path.display())))?;

    if dest.exists() {
        std::fs::remove_dir_all(dest)
            .map_err(|e| fail(err, format!("cannot clear `{}`: {e}", dest.display())))?;
    }
    std::fs::rename(&staging, dest).map_err(|e| {
        fail(
            err,
            format!(
                "cannot move `{}` to `{}`: {e}",
                staging.display(),
                dest.display()
            ),
        )
    })?;

    Ok(manifest)
}
