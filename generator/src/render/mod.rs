//! Rendering: tera fills the CloudFormation YAML templates, the result is parsed back into
//! JSON, checked, and serialized deterministically.

pub mod check;
pub mod context;
pub mod function_environment;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tera::Tera;
use thiserror::Error;

use crate::config::model::Environment;
use crate::plan::{self, StackKind, StackPlan};

#[derive(Debug, Error)]
pub enum RenderError {
    #[error("cannot load the templates in `{dir}`: {source}\n  hint: run from the project root, or pass `--root`")]
    Load {
        dir: PathBuf,
        #[source]
        source: tera::Error,
    },
    #[error("template `{template}` failed to render for stack `{stack}`: {detail}")]
    Template {
        template: String,
        stack: String,
        detail: String,
    },
    #[error("template `{template}` rendered invalid YAML for stack `{stack}`: {source}")]
    Yaml {
        template: String,
        stack: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("stack `{stack}` failed its checks:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Check {
        stack: String,
        problems: Vec<String>,
    },
}

/// One rendered stack: its plan, the template as JSON value and as the bytes written.
#[derive(Debug, Clone)]
pub struct RenderedStack {
    pub plan: StackPlan,
    pub template: Value,
    pub json: String,
}

impl RenderedStack {
    pub fn resource_count(&self) -> usize {
        self.template
            .get("Resources")
            .and_then(Value::as_object)
            .map_or(0, |r| r.len())
    }
}

pub struct Renderer {
    tera: Tera,
}

impl Renderer {
    /// Loads every `*.yaml` template under `dir`.
    pub fn load(dir: &Path) -> Result<Self, RenderError> {
        let glob = format!("{}/**/*.yaml", dir.display());
        let mut tera = Tera::new(&glob).map_err(|source| RenderError::Load {
            dir: dir.to_path_buf(),
            source,
        })?;
        tera.autoescape_on(vec![]);
        Ok(Renderer { tera })
    }

    /// Renders every stack of the environment, in deploy order.
    pub fn render_environment(&self, env: &Environment) -> Result<Vec<RenderedStack>, RenderError> {
        plan::stacks(env)
            .into_iter()
            .map(|stack| self.render_stack(env, stack))
            .collect()
    }

    /// Renders the stacks one at a time, in deploy order, handing each to `each` before the
    /// next is rendered, so only one is in memory (`generate` writes and drops it).
    pub fn render_each<E: From<RenderError>>(
        &self,
        env: &Environment,
        mut each: impl FnMut(RenderedStack) -> Result<(), E>,
    ) -> Result<(), E> {
        for stack in plan::stacks(env) {
            each(self.render_stack(env, stack)?)?;
        }
        Ok(())
    }

    fn render_stack(
        &self,
        env: &Environment,
        stack: StackPlan,
    ) -> Result<RenderedStack, RenderError> {
        let (template, ctx) = match stack.kind {
            StackKind::Core => ("core.yaml", context::core(env, &stack)),
            StackKind::Service => ("service.yaml", context::service(env, &stack)),
            StackKind::Microprocess => {
                let name = stack.microprocess.as_deref().unwrap_or_default();
                let m = env
                    .microprocesses
                    .iter()
                    .find(|m| m.name == name)
                    .ok_or_else(|| RenderError::Check {
                        stack: stack.name.clone(),
                        problems: vec![format!("no microprocess `{name}` in the environment")],
                    })?;
                ("microprocess.yaml", context::microprocess(env, &stack, m))
            }
        };
        let ctx = tera::Context::from_value(ctx).map_err(|e| RenderError::Template {
            template: template.into(),
            stack: stack.name.clone(),
            detail: e.to_string(),
        })?;
        let yaml = self
            .tera
            .render(template, &ctx)
            .map_err(|e| RenderError::Template {
                template: template.into(),
                stack: stack.name.clone(),
                detail: error_chain(&e),
            })?;
        let value: Value = serde_yaml::from_str(&yaml).map_err(|source| RenderError::Yaml {
            template: template.into(),
            stack: stack.name.clone(),
            source,
        })?;
        let json = to_json(&value);
        let problems = check::check(&value, &stack, json.len());
        if !problems.is_empty() {
            return Err(RenderError::Check {
                stack: stack.name,
                problems,
            });
        }
        Ok(RenderedStack {
            plan: stack,
            template: value,
            json,
        })
    }
}

/// Pretty JSON with a trailing newline; key order is the template's own.
pub fn to_json(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

/// tera hides the useful part of an error in its sources.
fn error_chain(e: &tera::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}
