//! stdout, for the commands that write their output there. A reader that went away
//! (`ghapp installations | head -1`) ends the process quietly with status 141, as a process
//! killed by SIGPIPE reports it: never a panic, never a message.

use std::io::Write;

/// `println!` for command output: `outln!("{x}")`.
macro_rules! outln {
    () => {
        $crate::out::bytes(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::out::bytes(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}
pub(crate) use outln;

/// Writes `b` to stdout and flushes it.
pub fn bytes(b: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(b).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        let _ = writeln!(std::io::stderr(), "ghapp: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// Text someone else controls (a sandbox's titles, bodies, commit messages, paths and ref
/// names; GitHub's account names and events), made safe to print as one field of a line:
/// control characters (C0 and C1, DEL: escape sequences, OSC 52 clipboard writes, screen
/// clears, carriage returns, fake tab and newline columns) and the bidirectional overrides
/// that reorder what a terminal shows are written as escapes (`\x1b`, `\r`, `\n`, `\t`,
/// `\u{202e}`). `--json` output is left exact.
pub(crate) fn field(s: &str) -> std::borrow::Cow<'_, str> {
    shown(s, false)
}

/// As [`field`] for a block of lines (a body, a diff): newlines and tabs are kept, everything
/// else escaped the same way.
pub(crate) fn block(s: &str) -> std::borrow::Cow<'_, str> {
    shown(s, true)
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fn shown(s: &str, lines: bool) -> std::borrow::Cow<'_, str> {
    let keep = |c: char| lines && (c == '\n' || c == '\t');
    if !s.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if keep(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && is_unsafe(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Starts a list the same way everywhere: its tab-separated header row, or, when it is empty,
/// one line saying so (`no approvals`). Returns whether rows follow.
pub(crate) fn list_head(len: usize, header: &str, none: &str) -> bool {
    if len == 0 {
        outln!("{none}");
        false
    } else {
        outln!("{header}");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_someone_else_wrote_cannot_steer_the_terminal() {
        let title = "fix\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J\rapproved\tby\nadmin \u{202e}gnp.exe";
        assert_eq!(
            field(title),
            "fix\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\rapproved\\tby\\nadmin \\u{202e}gnp.exe"
        );
        assert_eq!(block("a\n\tb\r\u{9b}c"), "a\n\tb\\r\\x9bc");
        assert!(matches!(field("plain text"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(field("naïve résumé"), "naïve résumé");
    }
}
