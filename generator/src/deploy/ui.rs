//! What deploy and teardown show while they work: change tables, stack events as plain
//! lines or as a progress bar on a terminal, and the yes/no question before acting.

use std::collections::BTreeSet;
use std::io::Write;

use indicatif::{ProgressBar, ProgressStyle};

use super::cfn::{ChangeRow, Event, Progress};

/// The streams and the terminal a command talks to.
pub struct Ui<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// Stack progress as a bar on stderr (a terminal) instead of plain lines on stdout.
    pub bars: bool,
    /// Asks a yes/no question; `None` when no one can answer (no terminal).
    pub ask: Option<&'a mut dyn FnMut(&str) -> bool>,
}

impl Ui<'_> {
    pub fn line(&mut self, text: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}", text.as_ref());
    }

    pub fn note(&mut self, text: impl AsRef<str>) {
        let _ = writeln!(self.err, "note: {}", text.as_ref());
    }

    pub fn confirm(&mut self, question: &str) -> bool {
        let _ = self.out.flush();
        match self.ask.as_mut() {
            Some(ask) => ask(question),
            None => false,
        }
    }

    /// Follows one stack operation: `total` resources are expected to change.
    pub fn progress(&mut self, stack: &str, total: usize) -> StackProgress<'_> {
        let bar = self.bars.then(|| {
            let bar = ProgressBar::new(total.max(1) as u64);
            bar.set_style(
                ProgressStyle::with_template("  {prefix} [{bar:30}] {pos}/{len} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(stack.to_string());
            bar
        });
        StackProgress {
            out: &mut *self.out,
            bar,
            done: BTreeSet::new(),
        }
    }
}

/// Stack events as they arrive.
pub struct StackProgress<'a> {
    out: &'a mut dyn Write,
    bar: Option<ProgressBar>,
    /// Resources that reached a final state.
    done: BTreeSet<String>,
}

impl Progress for StackProgress<'_> {
    fn event(&mut self, e: &Event) {
        let line = e.line();
        match &self.bar {
            Some(bar) => {
                if !e.is_stack && (e.status.ends_with("_COMPLETE") || e.status.ends_with("_FAILED"))
                {
                    self.done.insert(e.logical_id.clone());
                    bar.set_position(self.done.len() as u64);
                }
                if e.status.ends_with("_FAILED") {
                    bar.println(line.trim_start());
                }
                bar.set_message(format!("{} {}", e.status, e.logical_id));
            }
            None => {
                let _ = writeln!(self.out, "{line}");
            }
        }
    }
}

impl StackProgress<'_> {
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `  + add      Queue                 AWS::SQS::Queue`, one line per change.
pub fn change_table(rows: &[ChangeRow]) -> String {
    let id_width = rows.iter().map(|r| r.logical_id.len()).max().unwrap_or(0);
    let type_width = rows
        .iter()
        .map(|r| r.resource_type.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for r in rows {
        let (mark, verb) = r.verb();
        let mut line = format!(
            "  {mark} {verb:<13} {:<id_width$}  {:<type_width$}",
            r.logical_id, r.resource_type
        );
        if !r.scope.is_empty() {
            line.push_str(&format!("  ({})", r.scope.join(", ")));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `3 to add, 1 to change, 1 to replace, 0 to remove`.
pub fn change_counts(rows: &[ChangeRow]) -> String {
    let count = |verb: &str| rows.iter().filter(|r| r.verb().1 == verb).count();
    let mut parts = vec![
        format!("{} to add", count("add")),
        format!("{} to change", count("change")),
    ];
    let replace = count("replace") + count("may replace");
    if replace > 0 {
        parts.push(format!("{replace} to replace"));
    }
    parts.push(format!("{} to remove", count("remove")));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(action: &str, id: &str, ty: &str, replacement: Option<&str>) -> ChangeRow {
        ChangeRow {
            action: action.into(),
            logical_id: id.into(),
            resource_type: ty.into(),
            replacement: replacement.map(Into::into),
            scope: Vec::new(),
        }
    }

    #[test]
    fn the_table_marks_each_kind_of_change() {
        let mut modify = row(
            "Modify",
            "Forwarder",
            "AWS::Lambda::Function",
            Some("False"),
        );
        modify.scope = vec!["Properties".into()];
        let rows = vec![
            row("Add", "Queue", "AWS::SQS::Queue", None),
            modify,
            row("Modify", "Table", "AWS::DynamoDB::Table", Some("True")),
            row("Modify", "Topic", "AWS::SNS::Topic", Some("Conditional")),
            row("Remove", "Old", "AWS::SQS::Queue", None),
        ];
        assert_eq!(
            change_table(&rows),
            "  + add           Queue      AWS::SQS::Queue
  ~ change        Forwarder  AWS::Lambda::Function  (Properties)
  ! replace       Table      AWS::DynamoDB::Table
  ! may replace   Topic      AWS::SNS::Topic
  - remove        Old        AWS::SQS::Queue
"
        );
        assert_eq!(
            change_counts(&rows),
            "1 to add, 1 to change, 2 to replace, 1 to remove"
        );
    }
}
