//! A config error pinned to a place in a file, rendered like a compiler error:
//!
//! ```text
//! error: `max_concurrency` must be between 2 and 1000, got `5000`
//!   --> environments/prod.toml:12:19
//!    |
//! 12 | max_concurrency = 5000
//!    |                   ^^^^
//!    = hint: the event source mapping's MaximumConcurrency is 2 to 1000
//! ```

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// One source file the config was read from, kept whole so errors can quote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as the user should see it (relative to the project root).
    pub display_path: String,
    pub text: String,
}

/// A value's place: which file and which byte range of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: Arc<SourceFile>,
    pub span: Range<usize>,
}

impl Place {
    pub fn new(file: &Arc<SourceFile>, span: Range<usize>) -> Self {
        Place {
            file: Arc::clone(file),
            span,
        }
    }

    /// 1-based line and column (in characters) of the start of the span.
    pub fn line_col(&self) -> (usize, usize) {
        let text = &self.file.text;
        let start = self.span.start.min(text.len());
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = text[line_start..start].chars().count() + 1;
        (line, col)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    /// Where the problem is; `None` for problems of the project as a whole
    /// (a missing file, an unknown environment name given on the command line).
    pub place: Option<Place>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn at(place: Place, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            place: Some(place),
            hint: None,
        }
    }

    pub fn general(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            place: None,
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `file:line:col` of the problem, when it has a place.
    pub fn location(&self) -> Option<String> {
        self.place.as_ref().map(|p| {
            let (line, col) = p.line_col();
            format!("{}:{line}:{col}", p.file.display_path)
        })
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        if let Some(place) = &self.place {
            let (line, col) = place.line_col();
            let text = &place.file.text;
            let line_text = text.lines().nth(line - 1).unwrap_or("");
            let gutter = line.to_string().len();
            let pad = " ".repeat(gutter);
            // The caret covers the span on its first line, at least one character.
            let span_text = &text[place.span.start.min(text.len())..place.span.end.min(text.len())];
            let first_line_of_span = span_text.lines().next().unwrap_or("");
            let width = first_line_of_span.chars().count().max(1);
            writeln!(f, "{pad}--> {}:{line}:{col}", place.file.display_path)?;
            writeln!(f, "{pad} |")?;
            writeln!(f, "{line} | {line_text}")?;
            writeln!(f, "{pad} | {}{}", " ".repeat(col - 1), "^".repeat(width))?;
        }
        if let Some(hint) = &self.hint {
            let pad = self
                .place
                .as_ref()
                .map_or(0, |p| p.line_col().0.to_string().len());
            writeln!(f, "{} = hint: {hint}", " ".repeat(pad))?;
        }
        Ok(())
    }
}

/// All the problems found in one pass, so the user can fix them together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn first(&self) -> Option<&Diagnostic> {
        self.0.first()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate by edit distance, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(given, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            display_path: "environments/dev.toml".into(),
            text: text.into(),
        })
    }

    #[test]
    fn renders_place_caret_and_hint() {
        let f = file("[environment]\nregion = \"mars-1\"\n");
        let d =
            Diagnostic::at(Place::new(&f, 23..31), "unknown region `mars-1`").hint("use eu-west-1");
        assert_eq!(
            d.to_string(),
            "error: unknown region `mars-1`\n --> environments/dev.toml:2:10\n  |\n2 | region = \"mars-1\"\n  |          ^^^^^^^^\n  = hint: use eu-west-1\n"
        );
        assert_eq!(d.location().unwrap(), "environments/dev.toml:2:10");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("max_concurency", ["max_attempts", "max_concurrency"]),
            Some("max_concurrency")
        );
        assert_eq!(
            did_you_mean("zzz", ["max_attempts", "max_concurrency"]),
            None
        );
    }
}
