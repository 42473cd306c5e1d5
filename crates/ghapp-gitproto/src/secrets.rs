//! Credentials in pushed content: GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` with
//! their 36 characters, `github_pat_` with its 82), PEM private keys (the `BEGIN ... PRIVATE
//! KEY` line followed by key material) and AWS access key ids (`AKIA` and 16 upper-case letters
//! or digits, standing alone). A prefix in prose (`ghs_` alone, "AKIA" in a sentence) is not one.
//!
//! [`Scanner`] reads a file in pieces (never all of it at once) and reports the first credential
//! with its line; what it reports names the kind, never the value. Files git would call binary
//! (a NUL in the first 8000 bytes) are not scanned, as GitHub's secret scanning does not.
//!
//! ```
//! use ghapp_gitproto::secrets::Scanner;
//! let mut s = Scanner::new();
//! s.feed(b"# config\nTOKEN=ghs_");
//! s.feed(b"0123456789abcdefghijABCDEFGHIJ012345\n");
//! let f = s.finish().unwrap();
//! assert_eq!((f.kind, f.line), ("GitHub token", 2));
//! ```

use aho_corasick::AhoCorasick;
use std::sync::OnceLock;

/// A credential found: what kind, on which line (from 1). Never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub kind: &'static str,
    pub line: u64,
}

const PREFIXES: [&str; 8] = [
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "-----BEGIN ",
    "AKIA",
];

/// Bytes after a candidate's start needed to decide it.
const LOOKAHEAD: usize = 512;
/// git's binary test: a NUL in the first 8000 bytes.
const BINARY_PROBE: usize = 8000;

fn matcher() -> &'static AhoCorasick {
    static M: OnceLock<AhoCorasick> = OnceLock::new();
    M.get_or_init(|| AhoCorasick::new(PREFIXES).expect("fixed patterns"))
}

/// Scans one file's contents in pieces.
#[derive(Debug, Default)]
pub struct Scanner {
    /// The unscanned tail of what was fed (a candidate near the end of a piece waits here).
    carry: Vec<u8>,
    /// Newlines before `carry`.
    lines: u64,
    seen: u64,
    binary: bool,
    found: Option<Finding>,
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// Whether scanning can stop (a credential found, or the file is binary).
    pub fn done(&self) -> bool {
        self.found.is_some() || self.binary
    }

    pub fn feed(&mut self, piece: &[u8]) {
        if self.done() {
            return;
        }
        if self.seen < BINARY_PROBE as u64 {
            let probe = (BINARY_PROBE as u64 - self.seen) as usize;
            if memchr::memchr(0, &piece[..probe.min(piece.len())]).is_some() {
                self.binary = true;
                self.carry = Vec::new();
                return;
            }
        }
        self.seen += piece.len() as u64;
        if self.carry.is_empty() {
            let kept = self.scan(piece, false);
            self.carry.extend_from_slice(&piece[kept..]);
        } else {
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(piece);
            let kept = self.scan(&buf, false);
            buf.drain(..kept);
            self.carry = buf;
        }
    }

    /// The first credential in the file, once all of it has been fed.
    pub fn finish(mut self) -> Option<Finding> {
        if !self.done() {
            let buf = std::mem::take(&mut self.carry);
            self.scan(&buf, true);
        }
        self.found
    }

    /// Scans `buf`; returns where the unscanned rest starts (kept for the next piece). Counts
    /// the lines it passes.
    fn scan(&mut self, buf: &[u8], last: bool) -> usize {
        let mut from = 0;
        for m in matcher().find_overlapping_iter(buf) {
            let at = m.start();
            if at < from {
                continue;
            }
            if !last && buf.len() - at < LOOKAHEAD {
                // Not enough bytes yet to decide: keep from here on, with the byte before
                // (whether the candidate starts a word).
                let keep = at.saturating_sub(1).max(from);
                self.lines += count_lines(&buf[from..keep]);
                return keep;
            }
            if let Some(kind) = candidate(buf, at, m.pattern().as_usize()) {
                self.lines += count_lines(&buf[from..at]);
                self.found = Some(Finding {
                    kind,
                    line: self.lines + 1,
                });
                return buf.len();
            }
            self.lines += count_lines(&buf[from..at]);
            from = at;
        }
        // No candidate left: keep only what a prefix split across pieces could need (and the
        // byte before it).
        let keep = if last {
            0
        } else {
            PREFIXES.iter().map(|p| p.len()).max().unwrap_or(0)
        };
        let end = buf.len().saturating_sub(keep).max(from);
        self.lines += count_lines(&buf[from..end]);
        end
    }
}

fn count_lines(b: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', b).count() as u64
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Whether the prefix matched at `at` starts a credential, and its kind.
fn candidate(buf: &[u8], at: usize, pattern: usize) -> Option<&'static str> {
    let prefix = PREFIXES[pattern];
    if at > 0 && is_word(buf[at - 1]) && !prefix.starts_with('-') {
        return None;
    }
    let rest = &buf[at + prefix.len()..];
    let run = |ok: fn(u8) -> bool| rest.iter().take_while(|c| ok(**c)).count();
    match prefix {
        "github_pat_" => (run(is_word) >= 82).then_some("GitHub token"),
        "-----BEGIN " => private_key(rest).then_some("private key"),
        "AKIA" => {
            let n = run(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            (n == 16 && !rest.get(16).copied().is_some_and(is_word)).then_some("AWS access key id")
        }
        _ => (run(|c| c.is_ascii_alphanumeric()) >= 36).then_some("GitHub token"),
    }
}

/// `-----BEGIN [TYPE ]PRIVATE KEY-----` then, on a following line, key material (a header line
/// such as `Proc-Type:` or a run of base64), so a line that only names the format is not one.
fn private_key(rest: &[u8]) -> bool {
    let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    let line = &rest[..line_end];
    let Some(label) = line
        .strip_suffix(b"\r")
        .unwrap_or(line)
        .strip_suffix(b"-----")
    else {
        return false;
    };
    if !label.ends_with(b"PRIVATE KEY")
        || label.len() > 40
        || !label.iter().all(|c| c.is_ascii_uppercase() || *c == b' ')
    {
        return false;
    }
    let next = rest.get(line_end + 1..).unwrap_or_default();
    let next = &next[..memchr::memchr(b'\n', next).unwrap_or(next.len())];
    let next = next.strip_suffix(b"\r").unwrap_or(next);
    next.starts_with(b"Proc-Type:")
        || (next.len() >= 40
            && next
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan(text: &[u8], piece: usize) -> Option<Finding> {
        let mut s = Scanner::new();
        for p in text.chunks(piece.max(1)) {
            s.feed(p);
        }
        s.finish()
    }

    const TOKEN: &str = "ghs_16C7e42F292c6912E7710c838347Ae178B4a";
    /// A PEM block's armour line, put together at run time (no key-looking text is committed).
    fn armour(edge: &str, kind: &str) -> String {
        format!("-----{edge} {kind}{}-----", "PRIVATE KEY")
    }

    /// A PEM-shaped block with made-up key material.
    fn pem() -> String {
        let body: String = (0..64u32)
            .map(|i| (b'A' + (i * 7 % 26) as u8) as char)
            .collect();
        format!(
            "{}\n{body}\n{}\n",
            armour("BEGIN", "RSA "),
            armour("END", "RSA ")
        )
    }

    #[test]
    fn credentials_are_found_with_their_line() {
        let cases: [(String, Option<(&str, u64)>); 12] = [
            (format!("a\nb\nTOKEN={TOKEN}\n"), Some(("GitHub token", 3))),
            (TOKEN.to_string(), Some(("GitHub token", 1))),
            (format!("x\n{}", pem()), Some(("private key", 2))),
            (
                "id = AKIAIOSFODNN7EXAMPLE\n".into(),
                Some(("AWS access key id", 1)),
            ),
            (
                format!("t: github_pat_{}\n", "A".repeat(82)),
                Some(("GitHub token", 1)),
            ),
            ("Tokens start with ghs_ and are short-lived.\n".into(), None),
            ("ghs_tooshort\n".into(), None),
            (format!("x{TOKEN}\n"), None),
            ("AKIAIOSFODNN7EXAMPLEX\n".into(), None),
            (
                format!("the {} line starts a key\n", armour("BEGIN", "RSA ")),
                None,
            ),
            (format!("{}\nsee the docs\n", armour("BEGIN", "RSA ")), None),
            (format!("\0binary {TOKEN}"), None),
        ];
        for (text, want) in cases {
            for piece in [1, 3, 64, 100_000] {
                assert_eq!(
                    scan(text.as_bytes(), piece).map(|f| (f.kind, f.line)),
                    want,
                    "{text:?} in pieces of {piece}"
                );
            }
        }
    }

    #[test]
    fn lines_count_across_pieces_and_long_files() {
        let mut text = "line\n".repeat(100_000);
        text.push_str(TOKEN);
        assert_eq!(scan(text.as_bytes(), 8191).map(|f| f.line), Some(100_001));
        let prose = "ghs_ ".repeat(50_000);
        assert_eq!(scan(prose.as_bytes(), 4096), None);
    }

    proptest! {
        #[test]
        fn pieces_do_not_change_the_answer(
            words in proptest::collection::vec(prop_oneof![
                Just("ghs_".to_string()), Just("\n".to_string()), Just("AKIA".to_string()),
                Just(TOKEN.to_string()), Just("AKIAIOSFODNN7EXAMPLE".to_string()), "[a-z ]{0,20}",
            ], 0..40),
            piece in 1usize..700,
        ) {
            let text = words.concat();
            prop_assert_eq!(scan(text.as_bytes(), piece), scan(text.as_bytes(), text.len().max(1)));
        }
    }
}
