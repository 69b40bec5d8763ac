use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use super::{selected, EnvSelection, Exit};
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
    for sel in names {
        let started = Instant::now();
        let result = generate_one(
            project,
            &renderer,
            &sel,
            &assets_dir,
            &out_dir.join(sel.name()),
            out,
            err,
        );
        match result {
            Ok(()) => {
                let _ = writeln!(out, "  generated in {} ms", started.elapsed().as_millis());
            }
            Err(code) => exit = code,
        }
    }
    exit
}

fn generate_one(
    project: &Project,
    renderer: &Renderer,
    selector: &Selector,
    assets_dir: &Path,
    dest: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Exit> {
    let env = super::load(project, selector, err)?;
    let name = env.name.as_str();
    let fail = |err: &mut dyn Write, msg: String| {
        let _ = writeln!(err, "error: {msg}");
        Exit::Failed
    };
    let stacks = renderer
        .render_environment(&env)
        .map_err(|e| fail(err, format!("environment `{name}`: {e}")))?;
    let assets = package::locate(assets_dir, &env.architecture)
        .map_err(|e| fail(err, format!("environment `{name}`: {e}")))?;
    let manifest = manifest::build(&env, &stacks, &assets);

    // A fresh folder each time: a removed microprocess must not leave its template behind.
    if dest.exists() {
        std::fs::remove_dir_all(dest)
            .map_err(|e| fail(err, format!("cannot clear `{}`: {e}", dest.display())))?;
    }
    std::fs::create_dir_all(dest.join("assets"))
        .map_err(|e| fail(err, format!("cannot create `{}`: {e}", dest.display())))?;
    for s in &stacks {
        let path = dest.join(&s.plan.template_file);
        std::fs::write(&path, &s.json)
            .map_err(|e| fail(err, format!("cannot write `{}`: {e}", path.display())))?;
    }
    for a in &assets {
        let path = dest.join(&a.file);
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
    let path = dest.join("manifest.json");
    std::fs::write(&path, manifest_json)
        .map_err(|e| fail(err, format!("cannot write `{}`: {e}", path.display())))?;

    let shown = dest.strip_prefix(&project.root).unwrap_or(dest);
    let _ = writeln!(
        out,
        "{}: {} stacks → {}",
        env.name,
        stacks.len(),
        shown.display()
    );
    for s in &stacks {
        let _ = writeln!(
            out,
            "  {:<40} {:>4} resources {:>8} bytes",
            s.plan.name,
            s.resource_count(),
            s.json.len()
        );
    }
    Ok(())
}
