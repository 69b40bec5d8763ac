//! Small reusable checks that push a pinned diagnostic and return a usable value, so one
//! pass reports every problem at once.

use std::sync::Arc;

use toml::Spanned;

use super::diagnostic::{Diagnostic, Diagnostics, Place, SourceFile};

/// A value together with the place it was written.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub place: Place,
}

impl<T: Clone> Located<T> {
    pub fn from_spanned(s: &Spanned<T>, file: &Arc<SourceFile>) -> Self {
        Located {
            value: s.get_ref().clone(),
            place: Place::new(file, s.span()),
        }
    }
}

/// Collects diagnostics while values are checked.
#[derive(Default)]
pub struct Checker {
    pub diagnostics: Diagnostics,
}

impl Checker {
    pub fn error(&mut self, place: &Place, message: impl Into<String>, hint: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::at(place.clone(), message).hint(hint));
    }

    /// A whole number in `min..=max`, or `default` when absent (the default is trusted).
    pub fn int(
        &mut self,
        value: Option<Located<i64>>,
        key: &str,
        default: u32,
        min: u32,
        max: u32,
        why: &str,
    ) -> u32 {
        match value {
            None => default,
            Some(v) => self.int_at(&v, key, min, max, why).unwrap_or(default),
        }
    }

    pub fn int_at(
        &mut self,
        v: &Located<i64>,
        key: &str,
        min: u32,
        max: u32,
        why: &str,
    ) -> Option<u32> {
        if v.value < i64::from(min) || v.value > i64::from(max) {
            self.error(
                &v.place,
                format!("`{key}` must be between {min} and {max}, got `{}`", v.value),
                why.to_string(),
            );
            None
        } else {
            Some(v.value as u32)
        }
    }

    /// One of a fixed set of words, with a did-you-mean hint.
    pub fn choice<'a>(
        &mut self,
        v: &Located<String>,
        key: &str,
        options: &[&'a str],
    ) -> Option<&'a str> {
        if let Some(o) = options.iter().find(|o| **o == v.value) {
            return Some(o);
        }
        let list = options
            .iter()
            .map(|o| format!("`{o}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let hint = match super::diagnostic::did_you_mean(&v.value, options.iter().copied()) {
            Some(close) => format!("did you mean `{close}`? (one of {list})"),
            None => format!("use one of {list}"),
        };
        self.error(&v.place, format!("`{key}` cannot be `{}`", v.value), hint);
        None
    }
}

/// Lowercase letters, digits and single inner hyphens, starting with a letter; used for
/// microprocess, service and environment names, which end up in AWS resource names.
pub fn is_kebab_name(s: &str, max_len: usize) -> bool {
    let bytes = s.as_bytes();
    (2..=max_len).contains(&s.len())
        && bytes[0].is_ascii_lowercase()
        && !s.ends_with('-')
        && !s.contains("--")
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// A URL path the kit calls: absolute, no query or fragment, no spaces.
pub fn path_problem(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        Some("must start with `/`")
    } else if p.contains(['?', '#']) {
        Some("must not carry a query or fragment (the kit adds its own query on split)")
    } else if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain spaces or control characters")
    } else if p.len() > 1024 {
        Some("must be at most 1024 bytes")
    } else {
        None
    }
}

/// A DNS host name such as `scores-queue.example.com`.
pub fn is_host_name(h: &str) -> bool {
    h.len() <= 253
        && h.contains('.')
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_kebab_name("credit-scores", 32));
        assert!(!is_kebab_name("Credit", 32));
        assert!(!is_kebab_name("a--b", 32));
        assert!(!is_kebab_name("ab-", 32));
        assert!(!is_kebab_name("1ab", 32));
    }

    #[test]
    fn hosts_and_paths() {
        assert!(is_host_name("scores-queue.example.com"));
        assert!(!is_host_name("localhost"));
        assert!(!is_host_name("Scores.example.com"));
        assert_eq!(path_problem("/a/b"), None);
        assert!(path_problem("a").is_some());
        assert!(path_problem("/a?b=1").is_some());
    }
}
