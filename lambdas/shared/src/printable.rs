//! Text from a service, made safe to show and to store: a reason quoted from a response
//! body ends up in an SQS message attribute (which refuses control characters), in the
//! ledger and on an operator's terminal (where an escape sequence can clear the screen,
//! retitle the window or hide what follows).

use crate::contract::sqs_carries;

/// `text` without terminal escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL/ST`,
/// two-byte `ESC x`, and the 8-bit CSI U+009B), control characters and characters SQS
/// cannot carry; runs of whitespace become one space.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']') => skip_osc(&mut chars),
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            c if c.is_whitespace() => {
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
            }
            c if c.is_control() || !sqs_carries(c) => {}
            c => out.push(c),
        }
    }
    out.trim_end().to_owned()
}

/// Skips a CSI sequence's parameters and its final byte (`@` to `~`).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('@'..='~').contains(&c) {
            break;
        }
    }
}

/// Skips an OSC sequence up to its BEL or ST (`ESC \`).
fn skip_osc(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        if c == '\u{7}' {
            break;
        }
        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
            chars.next();
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_controls_are_stripped() {
        assert_eq!(
            printable(
                "\u{1b}[2J\u{1b}[31mrefused\u{7}\u{0}\u{1}\u{9b}31m for good\u{1b}]0;owned\u{7}"
            ),
            "refused for good"
        );
        assert_eq!(printable("a\n\t b\r\nc"), "a b c");
        assert_eq!(printable("bad \u{FFFF}char é ✓"), "bad char é ✓");
        assert_eq!(printable("\u{1b}]2;title\u{1b}\\ok"), "ok");
        assert_eq!(printable("plain"), "plain");
    }
}
