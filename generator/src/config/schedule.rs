//! Checks of EventBridge Scheduler expressions and IANA time zones, so a typo fails at
//! `validate` instead of at deploy time (or worse, never fires).
//!
//! `cron(minutes hours day-of-month month day-of-week year)`: six fields, one of
//! day-of-month and day-of-week must be `?`. `rate(value unit)`: a positive whole value and
//! `minute(s)`, `hour(s)` or `day(s)`, singular exactly when the value is 1.

/// What is wrong with an expression and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpressionError {
    pub message: String,
    pub hint: String,
}

fn err(message: impl Into<String>, hint: impl Into<String>) -> ExpressionError {
    ExpressionError {
        message: message.into(),
        hint: hint.into(),
    }
}

pub fn check_expression(expr: &str) -> Result<(), ExpressionError> {
    if let Some(body) = expr.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
        check_cron(body)
    } else if let Some(body) = expr.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        check_rate(body)
    } else {
        Err(err(
            format!("`{expr}` is not a schedule expression"),
            "write `cron(minutes hours day-of-month month day-of-week year)` or `rate(value unit)`, e.g. `cron(0 2 1 * ? *)` or `rate(1 day)`",
        ))
    }
}

fn check_rate(body: &str) -> Result<(), ExpressionError> {
    let parts: Vec<&str> = body.split_whitespace().collect();
    let hint = "write `rate(1 day)`, `rate(6 hours)` or `rate(30 minutes)`";
    let [value, unit] = parts.as_slice() else {
        return Err(err(
            format!("`rate({body})` needs a value and a unit"),
            hint,
        ));
    };
    let value: u32 = match value.parse() {
        Ok(v) if v > 0 => v,
        _ => {
            return Err(err(
                format!("rate value `{value}` is not a positive whole number"),
                hint,
            ))
        }
    };
    let (singular, plural) = match *unit {
        "minute" | "minutes" => ("minute", "minutes"),
        "hour" | "hours" => ("hour", "hours"),
        "day" | "days" => ("day", "days"),
        other => {
            return Err(err(
                format!("rate unit `{other}` is not minute(s), hour(s) or day(s)"),
                hint,
            ))
        }
    };
    let want = if value == 1 { singular } else { plural };
    if *unit != want {
        return Err(err(
            format!("`rate({body})` must say `{want}` for a value of {value}"),
            format!("write `rate({value} {want})`"),
        ));
    }
    Ok(())
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    extra: &'static [char],
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [Field; 6] = [
    Field {
        name: "minutes",
        min: 0,
        max: 59,
        names: &[],
        extra: &[],
    },
    Field {
        name: "hours",
        min: 0,
        max: 23,
        names: &[],
        extra: &[],
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        extra: &['?', 'L', 'W'],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
        extra: &[],
    },
    Field {
        name: "day-of-week",
        min: 1,
        max: 7,
        names: DAYS,
        extra: &['?', 'L', '#'],
    },
    Field {
        name: "year",
        min: 1970,
        max: 2199,
        names: &[],
        extra: &[],
    },
];

fn check_cron(body: &str) -> Result<(), ExpressionError> {
    let parts: Vec<&str> = body.split_whitespace().collect();
    let shape =
        "six fields: minutes hours day-of-month month day-of-week year, e.g. `cron(0 2 1 * ? *)`";
    if parts.len() != 6 {
        return Err(err(
            format!("`cron({body})` has {} fields, expected 6", parts.len()),
            format!("EventBridge cron has {shape}"),
        ));
    }
    for (value, field) in parts.iter().zip(FIELDS.iter()) {
        check_cron_field(value, field)?;
    }
    let (dom, dow) = (parts[2], parts[4]);
    if (dom == "?") == (dow == "?") {
        return Err(err(
            format!("`cron({body})` must have `?` in exactly one of day-of-month (`{dom}`) and day-of-week (`{dow}`)"),
            "for every day use `* ?` (e.g. `cron(0 2 * * ? *)`); for weekdays `? MON-FRI`",
        ));
    }
    Ok(())
}

fn check_cron_field(value: &str, field: &Field) -> Result<(), ExpressionError> {
    let bad = |why: String| {
        err(
            format!("cron {} field `{value}` {why}", field.name),
            format!(
                "{} takes {}-{}{}, `*`, lists `a,b`, ranges `a-b` and steps `a/n`{}",
                field.name,
                field.min,
                field.max,
                if field.names.is_empty() {
                    String::new()
                } else {
                    format!(
                        " or {}-{}",
                        field.names[0],
                        field.names[field.names.len() - 1]
                    )
                },
                if field.extra.is_empty() {
                    String::new()
                } else {
                    format!("; also {:?}", field.extra)
                },
            ),
        )
    };
    if value == "*" || (value == "?" && field.extra.contains(&'?')) {
        return Ok(());
    }
    for item in value.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(s) if s > 0 && s <= field.max => {}
                _ => return Err(bad(format!("has a bad step `{step}`"))),
            }
        }
        if range == "*" {
            continue;
        }
        if field.extra.contains(&'L') && (range == "L" || range.ends_with('L')) {
            let head = range.trim_end_matches('L');
            if head.is_empty() || atom(head, field).is_some() {
                continue;
            }
        }
        if field.extra.contains(&'W')
            && range.ends_with('W')
            && atom(range.trim_end_matches('W'), field).is_some()
        {
            continue;
        }
        if field.extra.contains(&'#') {
            if let Some((day, nth)) = range.split_once('#') {
                let nth_ok = matches!(nth.parse::<u32>(), Ok(1..=5));
                if atom(day, field).is_some() && nth_ok {
                    continue;
                }
                return Err(bad(format!("has a bad `#` item `{range}`")));
            }
        }
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (range, None),
        };
        let Some(lo) = atom(lo, field) else {
            let why = if lo == value {
                format!("is not a {} value", field.name)
            } else {
                format!("has `{lo}`, which is not a {} value", field.name)
            };
            return Err(bad(why));
        };
        if let Some(hi) = hi {
            let Some(hi) = atom(hi, field) else {
                return Err(bad(format!(
                    "has `{hi}`, which is not a {} value",
                    field.name
                )));
            };
            if hi < lo {
                return Err(bad(format!(
                    "has a range that runs backwards ({lo} to {hi})"
                )));
            }
        }
    }
    Ok(())
}

/// A single value of a field: a number in range or a month/day name.
fn atom(s: &str, field: &Field) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return (field.min..=field.max).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    field
        .names
        .iter()
        .position(|n| *n == upper)
        .map(|i| field.min + i as u32)
}

/// An IANA time zone name, with the closest known name as the hint.
pub fn check_timezone(tz: &str) -> Result<(), ExpressionError> {
    if tz.parse::<chrono_tz::Tz>().is_ok() {
        return Ok(());
    }
    let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
    let hint = match super::diagnostic::did_you_mean(tz, names) {
        Some(close) => format!("did you mean `{close}`?"),
        None => "use an IANA time zone name such as `UTC`, `Europe/London` or `Australia/Sydney`"
            .to_string(),
    };
    Err(err(format!("`{tz}` is not an IANA time zone"), hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_expressions() {
        for e in [
            "cron(0 2 1 * ? *)",
            "cron(0/15 8-18 ? * MON-FRI *)",
            "cron(0 0 L * ? *)",
            "cron(0 0 15W * ? *)",
            "cron(30 1 ? * 2#1 2026-2030)",
            "cron(0 6 ? JAN,JUL 6L *)",
            "rate(1 day)",
            "rate(15 minutes)",
        ] {
            assert_eq!(check_expression(e), Ok(()), "{e}");
        }
    }

    #[test]
    fn rejects_invalid_expressions() {
        for (e, needle) in [
            ("cron(0 2 1 * *)", "has 5 fields"),
            ("cron(0 2 1 * * *)", "exactly one of day-of-month"),
            ("cron(0 2 ? * ? *)", "exactly one of day-of-month"),
            ("cron(61 2 1 * ? *)", "minutes field `61`"),
            ("cron(0 24 1 * ? *)", "hours field `24`"),
            ("cron(0 2 1 FOO ? *)", "month field `FOO`"),
            ("cron(0 2 ? * 1#6 *)", "bad `#` item"),
            ("cron(0 5-2 1 * ? *)", "runs backwards"),
            ("rate(1 days)", "must say `day`"),
            ("rate(0 hours)", "not a positive"),
            ("rate(5 weeks)", "rate unit `weeks`"),
            ("every day", "not a schedule expression"),
        ] {
            let got = check_expression(e).unwrap_err();
            assert!(got.message.contains(needle), "{e}: {}", got.message);
        }
    }

    #[test]
    fn timezones() {
        assert!(check_timezone("Australia/Sydney").is_ok());
        let e = check_timezone("Australia/Sydny").unwrap_err();
        assert_eq!(e.hint, "did you mean `Australia/Sydney`?");
    }
}
