//! The one table `make bench` prints: a row per measure, with the target it is held to.

use std::fmt::Write as _;

/// Whether a measure meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No target: the figure is reported.
    Info,
    Met,
    Missed,
}

#[derive(Debug, Clone)]
pub struct Row {
    /// The part measured: `cost`, `forwarder`, `splitter`, `generator`, `pipeline`, `fan-in`.
    pub area: &'static str,
    pub measure: String,
    /// The figure with its unit, as printed.
    pub value: String,
    /// The target in words (`≤ 32 MB`), empty when there is none.
    pub target: String,
    pub verdict: Verdict,
}

#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// A figure with no target.
    pub fn info(
        &mut self,
        area: &'static str,
        measure: impl Into<String>,
        value: impl Into<String>,
    ) {
        self.push(area, measure, value, String::new(), Verdict::Info);
    }

    /// A figure held to `target`; `met` says whether it holds.
    pub fn target(
        &mut self,
        area: &'static str,
        measure: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) {
        let verdict = if met { Verdict::Met } else { Verdict::Missed };
        self.push(area, measure, value, target.into(), verdict);
    }

    fn push(
        &mut self,
        area: &'static str,
        measure: impl Into<String>,
        value: impl Into<String>,
        target: String,
        verdict: Verdict,
    ) {
        let row = Row {
            area,
            measure: measure.into(),
            value: value.into(),
            target,
            verdict,
        };
        // Each row also goes to stderr as it is measured, so a long bench shows progress.
        eprintln!("bench: {} | {} | {}", row.area, row.measure, row.value);
        self.rows.push(row);
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn missed(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Missed)
            .count()
    }

    /// The table as Markdown, columns padded so it also reads as plain text.
    pub fn markdown(&self) -> String {
        let header = ["area", "measure", "value", "target", "ok"];
        let cells: Vec<[String; 5]> = self
            .rows
            .iter()
            .map(|r| {
                let ok = match r.verdict {
                    Verdict::Info => "",
                    Verdict::Met => "yes",
                    Verdict::Missed => "NO",
                };
                [
                    r.area.to_string(),
                    r.measure.clone(),
                    r.value.clone(),
                    r.target.clone(),
                    ok.to_string(),
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |row: &[String]| {
            let mut s = String::from("|");
            for (c, w) in row.iter().zip(widths) {
                let pad = w - c.chars().count();
                let _ = write!(s, " {c}{} |", " ".repeat(pad));
            }
            s.push('\n');
            s
        };
        let mut out = line(&header.map(String::from));
        out.push_str(&line(&widths.map(|w| "-".repeat(w))));
        for row in &cells {
            out.push_str(&line(row));
        }
        out
    }
}

/// A whole number with thousands separators: `1234567` as `1,234,567`.
pub fn grouped(n: impl std::fmt::Display) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
