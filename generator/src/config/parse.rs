//! Reading TOML into the raw types, with parse errors turned into pinned diagnostics.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::diagnostic::{did_you_mean, Diagnostic, Place, SourceFile};

/// Parses `file` strictly; an unknown key gets a did-you-mean hint from serde's list of
/// expected keys.
pub fn parse<T: DeserializeOwned>(file: &Arc<SourceFile>) -> Result<T, Diagnostic> {
    toml::from_str(&file.text).map_err(|e| {
        let message = e.message().trim().to_string();
        let span = e.span().unwrap_or(0..0);
        let place = Place::new(file, span);
        let (message, hint) = explain(&message);
        let d = Diagnostic::at(place, message);
        match hint {
            Some(h) => d.hint(h),
            None => d,
        }
    })
}

/// Rewrites serde's wording into the kit's, adding a hint where one helps.
fn explain(message: &str) -> (String, Option<String>) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        let hint = match did_you_mean(field, expected.iter().copied()) {
            Some(close) => format!("did you mean `{close}`?"),
            None if expected.is_empty() => "this table takes no keys".to_string(),
            None => format!(
                "the keys here are {}",
                expected
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return (format!("unknown key `{field}`"), Some(hint));
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return (
            format!("missing key `{field}`"),
            Some(format!(
                "add `{field} = ...` to this table (see the README's config reference)"
            )),
        );
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        return (
            format!("wrong type: {rest}"),
            Some("check the value's type against the README's config reference".to_string()),
        );
    }
    (message.to_string(), None)
}
