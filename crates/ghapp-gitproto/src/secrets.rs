//! Credentials in pushed content, by their documented shapes:
//!
//! - GitHub's tokens: classic `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` with 36 letters and
//!   digits; fine-grained `github_pat_` with 82; and, since 2026, the stateless installation
//!   token `ghs_APPID_JWT` (the app id, `_`, then a JWT: three base64url parts joined by dots,
//!   about 520 characters in all, of no fixed length);
//! - PEM private keys: the `BEGIN … PRIVATE KEY` line followed by key material, as files hold
//!   them (indented in a YAML block, or with `\n` escapes in a JSON string, as a cloud
//!   service-account file has it; key lines of any length);
//! - AWS access key ids: `AKIA` (long-lived) or `ASIA` (temporary) and 16 upper-case letters or
//!   digits, standing alone.
//!
//! A prefix in prose (`ghs_` alone, "AKIA" in a sentence) is not one. [`redact`] replaces
//! every one in a text, for logs and errors.
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

const PREFIXES: [&str; 9] = [
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "-----BEGIN ",
    "AKIA",
    "ASIA",
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

    /// Whether scanning can stop: the file is binary, or a credential was found and the file
    /// can no longer turn out binary (a NUL later in the first 8000 bytes still clears it, so
    /// the answer does not depend on how the file was cut).
    pub fn done(&self) -> bool {
        self.binary || (self.found.is_some() && self.seen >= BINARY_PROBE as u64)
    }

    /// The credential found, once it is certain ([`Scanner::done`]).
    pub fn found(&self) -> Option<Finding> {
        if self.done() { self.found } else { None }
    }

    pub fn feed(&mut self, piece: &[u8]) {
        if self.done() {
            return;
        }
        if self.seen < BINARY_PROBE as u64 {
            let probe = (BINARY_PROBE as u64 - self.seen) as usize;
            if memchr::memchr(0, &piece[..probe.min(piece.len())]).is_some() {
                self.binary = true;
                self.found = None;
                self.carry = Vec::new();
                return;
            }
        }
        self.seen += piece.len() as u64;
        if self.found.is_some() {
            // Found early: only the binary probe is left to finish.
            return;
        }
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
        if !self.binary && self.found.is_none() {
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
            if let Some((kind, _)) = candidate(buf, at, m.pattern().as_usize()) {
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

/// Whether the prefix matched at `at` starts a credential: its kind and how many bytes it
/// takes from `at`.
fn candidate(buf: &[u8], at: usize, pattern: usize) -> Option<(&'static str, usize)> {
    let prefix = PREFIXES[pattern];
    if at > 0 && is_word(buf[at - 1]) && !prefix.starts_with('-') {
        return None;
    }
    let p = prefix.len();
    let rest = &buf[at + p..];
    let run = |from: &[u8], ok: fn(u8) -> bool| from.iter().take_while(|c| ok(**c)).count();
    match prefix {
        "github_pat_" => {
            let n = run(rest, is_word);
            (n >= 82).then_some(("GitHub token", p + n))
        }
        "-----BEGIN " => private_key(rest).map(|n| ("private key", p + n)),
        "AKIA" | "ASIA" => {
            let n = run(rest, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
            (n == 16 && !rest.get(16).copied().is_some_and(is_word))
                .then_some(("AWS access key id", p + n))
        }
        "ghs_" => stateless(rest)
            .map(|n| ("GitHub token", p + n))
            .or_else(|| classic(rest).map(|n| ("GitHub token", p + n))),
        _ => classic(rest).map(|n| ("GitHub token", p + n)),
    }
}

/// A classic token's tail: 36 letters and digits (or more).
fn classic(rest: &[u8]) -> Option<usize> {
    let n = rest
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    (n >= 36).then_some(n)
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// A stateless installation token's tail, `APPID_JWT`: the app id's digits, `_`, then a JWT
/// (`eyJ…` header, `.`, payload, and the signature when it is within reach); its length.
fn stateless(rest: &[u8]) -> Option<usize> {
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 20 || rest.get(digits) != Some(&b'_') {
        return None;
    }
    let jwt = &rest[digits + 1..];
    if !jwt.starts_with(b"eyJ") {
        return None;
    }
    let mut at = 0;
    let mut parts = 0;
    loop {
        let n = jwt[at..].iter().take_while(|c| is_b64url(**c)).count();
        if n < 8 {
            break;
        }
        parts += 1;
        at += n;
        if parts == 3 || jwt.get(at) != Some(&b'.') {
            break;
        }
        at += 1;
    }
    // Header and payload at least; the signature, past the look-ahead, need not be seen.
    (parts >= 2).then_some(digits + 1 + at)
}

/// After `-----BEGIN `: `[TYPE ]PRIVATE KEY-----` then key material on the following line (a
/// header such as `Proc-Type:` or a run of base64), whether the line break is a real one
/// (leading spaces allowed: a YAML block) or a `\n` escape (a JSON string). Returns how many
/// bytes the block takes (to its `END` line, or the armour line and the next when no end is
/// in reach), so a line that only names the format is not one.
fn private_key(rest: &[u8]) -> Option<usize> {
    let armour = memchr::memmem::find(rest, b"-----")?;
    let label = &rest[..armour];
    if !label.ends_with(b"PRIVATE KEY")
        || label.len() > 40
        || !label.iter().all(|c| c.is_ascii_uppercase() || *c == b' ')
    {
        return None;
    }
    let after = &rest[armour + 5..];
    // The line break after the armour: real (`\r\n`, `\n`) or escaped (`\\r\\n`, `\\n`).
    let skip = [&b"\\r\\n"[..], b"\\n", b"\r\n", b"\n"]
        .iter()
        .find(|nl| after.starts_with(nl))
        .map(|nl| nl.len())?;
    let next = &after[skip..];
    let next = &next[next
        .iter()
        .take_while(|c| **c == b' ' || **c == b'\t')
        .count()..];
    let material = next
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
        .count();
    if !(next.starts_with(b"Proc-Type:") || material >= 8) {
        return None;
    }
    let start = armour + 5 + skip;
    let end = memchr::memmem::find(&rest[start..], b"-----END ")
        .map(|e| {
            let tail = &rest[start + e + 9..];
            let close = memchr::memmem::find(tail, b"-----").map_or(0, |c| c + 5);
            start + e + 9 + close
        })
        .unwrap_or(start + material);
    Some(end)
}

/// `text` with every credential [`Scanner`] knows replaced by `<redacted KIND>`: for what is
/// logged, audited or shown in an error, whatever it quotes.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut from = 0;
    for m in matcher().find_overlapping_iter(b) {
        if m.start() < from {
            continue;
        }
        if let Some((kind, len)) = candidate(b, m.start(), m.pattern().as_usize()) {
            // Whole characters: a token is ASCII, its end lands on a boundary.
            let end = (m.start() + len).min(b.len());
            if !text.is_char_boundary(m.start()) || !text.is_char_boundary(end) {
                continue;
            }
            out.push_str(&text[from..m.start()]);
            out.push_str(&format!("<redacted {kind}>"));
            from = end;
        }
    }
    if from == 0 {
        return std::borrow::Cow::Borrowed(text);
    }
    out.push_str(&text[from..]);
    std::borrow::Cow::Owned(out)
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
        let cases: [(String, Option<(&str, u64)>); 13] = [
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
            (format!("TOKEN={TOKEN}\n...\0"), None),
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

    /// GitHub's stateless installation token as it looks: `ghs_`, the app id, `_`, a JWT.
    fn stateless_token() -> String {
        let b64 = |n: usize, seed: u8| -> String {
            (0..n)
                .map(|i| {
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                        [(i * 7 + seed as usize) % 64] as char
                })
                .collect()
        };
        format!(
            "ghs_123456_eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}",
            b64(140, 3),
            b64(342, 5)
        )
    }

    #[test]
    fn every_token_shape_and_key_as_files_hold_them() {
        let key_lines = "MIIEowIBAAKCAQEAx4fakefakefakefakefakefakefakefakefakefake";
        let cases: Vec<(String, &str)> = vec![
            (format!("TOKEN={}\n", stateless_token()), "GitHub token"),
            (format!("t: \"{}\"", stateless_token()), "GitHub token"),
            (
                format!(
                    "config:\n  key: |\n    {}\n    {key_lines}\n    {}\n",
                    armour("BEGIN", "RSA "),
                    armour("END", "RSA ")
                ),
                "private key",
            ),
            (
                format!(
                    "{{\"private_key\": \"{}\\n{key_lines}\\n{}\\n\"}}",
                    armour("BEGIN", ""),
                    armour("END", "")
                ),
                "private key",
            ),
            (
                format!(
                    "{}\nMIIBOgIBAAJBAK\nshort\n{}\n",
                    armour("BEGIN", "EC "),
                    armour("END", "EC ")
                ),
                "private key",
            ),
            ("aws = ASIAY34FZKBOKMUTVV7A\n".into(), "AWS access key id"),
        ];
        for (text, kind) in cases {
            for piece in [1, 5, 100_000] {
                assert_eq!(
                    scan(text.as_bytes(), piece).map(|f| f.kind),
                    Some(kind),
                    "{text:?} in {piece}"
                );
            }
        }
        // Not a token: the prefix, or an app id without a JWT after it.
        for text in ["ghs_123_notajwt\n", "see ghs_123456_ for the shape\n"] {
            assert_eq!(scan(text.as_bytes(), 7), None, "{text}");
        }
    }

    #[test]
    fn redaction_knows_every_shape() {
        let pat = format!("github_pat_{}", "B".repeat(82));
        let text = format!(
            "a {TOKEN} b {} c {pat} d AKIAIOSFODNN7EXAMPLE e {} f",
            stateless_token(),
            pem()
        );
        let r = redact(&text);
        for secret in [
            TOKEN.to_owned(),
            stateless_token(),
            pat,
            "AKIAIOSFODNN7EXAMPLE".into(),
        ] {
            assert!(!r.contains(&secret), "{r}");
        }
        assert!(!r.contains("PRIVATE KEY"), "{r}");
        assert!(
            r.starts_with("a <redacted GitHub token> b <redacted GitHub token> c"),
            "{r}"
        );
        assert!(r.ends_with(" f"), "{r}");
        assert!(matches!(
            redact("nothing here"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(redact("é ghs_ é"), "é ghs_ é");
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
