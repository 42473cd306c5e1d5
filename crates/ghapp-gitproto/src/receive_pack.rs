//! The command section of a `git-receive-pack` request (git's
//! `Documentation/gitprotocol-pack.adoc`, "Reference Update Request and Packfile Transfer"):
//!
//! ```text
//! *shallow-line  ("shallow" SP obj-id)
//! command-list   (old SP new SP refname NUL capabilities, then old SP new SP refname ...)
//! flush-pkt
//! [push-options flush-pkt]   when the push-options capability was asked for
//! packfile ...
//! ```
//!
//! A body that is only `0000` is git's probe before a large push. The proxy reads just this
//! section, decides, and forwards it together with the rest of the stream untouched.

use crate::pktline::{self, Pkt};

/// One ref update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub old: String,
    pub new: String,
    pub refname: String,
}

impl Command {
    pub fn is_delete(&self) -> bool {
        is_zero(&self.new)
    }
    pub fn is_create(&self) -> bool {
        is_zero(&self.old)
    }
}

fn is_zero(oid: &str) -> bool {
    oid.bytes().all(|b| b == b'0')
}

/// A parsed command section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Commands {
    pub shallow: Vec<String>,
    pub commands: Vec<Command>,
    pub capabilities: Vec<String>,
    pub push_options: Vec<String>,
    /// Bytes of the request the section used; the pack follows.
    pub consumed: usize,
}

impl Commands {
    pub fn has_capability(&self, cap: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c == cap || c.split_once('=').is_some_and(|(k, _)| k == cap))
    }
    /// Whether the client asked for a side band (its report then travels in band 1, and a
    /// message may go in band 2).
    pub fn sideband(&self) -> bool {
        self.has_capability("side-band-64k") || self.has_capability("side-band")
    }
    /// The probe: no command at all (`0000` only).
    pub fn is_probe(&self) -> bool {
        self.commands.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("bad pkt-line in the push request: {0}")]
    Pkt(#[from] pktline::PktError),
    #[error("bad command line in the push request: {0}")]
    BadCommand(String),
    #[error("signed pushes (push-cert) are not supported through the proxy")]
    PushCert,
    #[error("the push request's command section is larger than {0} bytes")]
    TooLarge(usize),
}

/// Parses the command section at the front of `buf` in one go. `Ok(None)`: more bytes are
/// needed (and `buf` is still under `limit`).
pub fn parse(buf: &[u8], limit: usize) -> Result<Option<Commands>, ParseError> {
    Parser::new(limit).feed(buf)
}

/// Where the parser is in the section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Shallow lines and commands, until a flush.
    Commands,
    /// Push options, until a flush (only when the push-options capability was asked for).
    PushOptions,
    Done,
}

/// An incremental parser of the command section: it remembers how far it has read, so feeding
/// it a growing buffer costs time linear in the bytes, however small the chunks arrive.
#[derive(Debug, Clone)]
pub struct Parser {
    limit: usize,
    at: usize,
    stage: Stage,
    out: Commands,
}

impl Parser {
    /// A parser that refuses a section of `limit` bytes or more.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            at: 0,
            stage: Stage::Commands,
            out: Commands::default(),
        }
    }

    /// Reads on from where the last call stopped. `buf` is everything received so far (the
    /// same bytes as before, plus more). `Ok(None)`: more bytes are needed.
    pub fn feed(&mut self, buf: &[u8]) -> Result<Option<Commands>, ParseError> {
        if buf.len() < self.at {
            return Err(ParseError::BadCommand(
                "the push request shrank while it was read".into(),
            ));
        }
        while self.stage != Stage::Done {
            let Some((pkt, used)) = pktline::read(&buf[self.at..])? else {
                return need_more(buf, self.limit);
            };
            self.at += used;
            match self.stage {
                Stage::Commands => self.command_line(pkt)?,
                Stage::PushOptions => self.push_option(pkt)?,
                Stage::Done => {}
            }
        }
        let mut out = std::mem::take(&mut self.out);
        out.consumed = self.at;
        Ok(Some(out))
    }

    fn command_line(&mut self, pkt: Pkt<'_>) -> Result<(), ParseError> {
        let out = &mut self.out;
        let line = match pkt {
            Pkt::Flush => {
                if out.commands.is_empty() && !out.shallow.is_empty() {
                    return Err(ParseError::BadCommand(
                        "shallow lines without commands".into(),
                    ));
                }
                self.stage = if out.has_capability("push-options") && !out.commands.is_empty() {
                    Stage::PushOptions
                } else {
                    Stage::Done
                };
                return Ok(());
            }
            Pkt::Data(d) => d,
            Pkt::Delim | Pkt::ResponseEnd => {
                return Err(ParseError::BadCommand("unexpected delimiter".into()));
            }
        };
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if let Some(oid) = line.strip_prefix(b"shallow ") {
            if !out.commands.is_empty() {
                return Err(ParseError::BadCommand("shallow line after commands".into()));
            }
            out.shallow.push(oid_str(oid)?);
            return Ok(());
        }
        if line.starts_with(b"push-cert") {
            return Err(ParseError::PushCert);
        }
        let (cmd, caps) = match line.iter().position(|&b| b == 0) {
            Some(i) if out.commands.is_empty() => (&line[..i], Some(&line[i + 1..])),
            Some(_) => {
                return Err(ParseError::BadCommand(
                    "capabilities after the first command".into(),
                ));
            }
            None => (line, None),
        };
        if let Some(caps) = caps {
            let caps = std::str::from_utf8(caps)
                .map_err(|_| ParseError::BadCommand("capabilities are not UTF-8".into()))?;
            out.capabilities = caps
                .split(' ')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
        }
        let cmd = std::str::from_utf8(cmd)
            .map_err(|_| ParseError::BadCommand("command is not UTF-8".into()))?;
        let mut parts = cmd.splitn(3, ' ');
        let (Some(old), Some(new), Some(refname)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::BadCommand(format!(
                "expected 'old new ref', got {:?}",
                truncate(cmd)
            )));
        };
        let old = oid_str(old.as_bytes())?;
        let new = oid_str(new.as_bytes())?;
        if !valid_refname(refname) {
            return Err(ParseError::BadCommand(format!(
                "invalid ref name {:?}",
                truncate(refname)
            )));
        }
        out.commands.push(Command {
            old,
            new,
            refname: refname.to_owned(),
        });
        Ok(())
    }

    fn push_option(&mut self, pkt: Pkt<'_>) -> Result<(), ParseError> {
        match pkt {
            Pkt::Flush => self.stage = Stage::Done,
            Pkt::Data(d) => self
                .out
                .push_options
                .push(String::from_utf8_lossy(d.strip_suffix(b"\n").unwrap_or(d)).into_owned()),
            _ => {
                return Err(ParseError::BadCommand(
                    "unexpected delimiter in push options".into(),
                ));
            }
        }
        Ok(())
    }
}

fn need_more(buf: &[u8], limit: usize) -> Result<Option<Commands>, ParseError> {
    if buf.len() >= limit {
        Err(ParseError::TooLarge(limit))
    } else {
        Ok(None)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

fn oid_str(b: &[u8]) -> Result<String, ParseError> {
    let ok = (b.len() == 40 || b.len() == 64) && b.iter().all(|c| c.is_ascii_hexdigit());
    if !ok {
        return Err(ParseError::BadCommand(
            "object id is not 40 or 64 hex digits".into(),
        ));
    }
    Ok(String::from_utf8_lossy(b).to_ascii_lowercase())
}

/// A conservative form of git's `check-ref-format`: starts with `refs/`, no `..`, no control
/// characters, space, `~^:?*[\`, no `//`, no component starting with `.` or ending `.lock`.
pub fn valid_refname(r: &str) -> bool {
    r.starts_with("refs/")
        && !r.contains("..")
        && !r.contains("//")
        && !r.ends_with('/')
        && !r.ends_with('.')
        && !r.contains("@{")
        && r.bytes().all(|b| {
            b > 0x20 && b != 0x7f && !matches!(b, b'~' | b'^' | b':' | b'?' | b'*' | b'[' | b'\\')
        })
        && r.split('/')
            .all(|c| !c.is_empty() && !c.starts_with('.') && !c.ends_with(".lock"))
}

/// Builds git's report-status answer refusing every command, the way a server does, so that
/// git prints `! [remote rejected] REF (REASON)`. With `sideband`, the report travels in band 1
/// and `message` in band 2 (git prints it as `remote: ...`).
pub fn reject_report(rejected: &[(String, String)], sideband: bool, message: &str) -> Vec<u8> {
    let mut report = Vec::new();
    pktline::write(&mut report, b"unpack ok\n");
    for (refname, reason) in rejected {
        let reason: String = reason.chars().filter(|c| *c != '\n').collect();
        pktline::write(&mut report, format!("ng {refname} {reason}\n").as_bytes());
    }
    pktline::flush(&mut report);
    if !sideband {
        return report;
    }
    let mut out = Vec::new();
    if !message.is_empty() {
        let mut m = message.replace('\n', " ");
        m.push('\n');
        pktline::write_sideband(&mut out, 2, m.as_bytes());
    }
    pktline::write_sideband(&mut out, 1, &report);
    pktline::flush(&mut out);
    out
}

/// What receive-pack advertises, in the order `git-receive-pack` does: the capabilities a
/// push through the proxy may use (docs/guides/fleet.md, trust modes).
pub const RECEIVE_CAPABILITIES: &str =
    "report-status delete-refs side-band-64k quiet atomic ofs-delta push-options agent=ghapp-proxy";

/// The most refs [`advertisement_from_upload`] reads (GitHub's largest repositories have a few
/// hundred thousand; past this the advertisement is refused rather than held).
pub const MAX_ADVERTISED_REFS: usize = 500_000;

/// A receive-pack advertisement (`info/refs?service=git-receive-pack`, protocol v0) made from
/// an upload-pack one (protocol v0): the same refs, without `HEAD` and peeled tags (which
/// receive-pack does not list), with receive-pack's capabilities. For a token that may read but
/// not push: GitHub refuses it the receive-pack advertisement, and the push is answered by the
/// proxy (observe mode).
pub fn advertisement_from_upload(upload: &[u8]) -> Result<Vec<u8>, String> {
    let mut rest = upload;
    let mut next = || -> Result<Option<Pkt<'_>>, String> {
        match pktline::read(rest) {
            Ok(Some((p, n))) => {
                rest = &rest[n..];
                Ok(Some(p))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(format!("the upload-pack advertisement: {e}")),
        }
    };
    let mut refs: Vec<(String, String)> = Vec::new();
    let mut header = true;
    loop {
        let Some(p) = next()? else {
            return Err("the upload-pack advertisement ends before its flush".into());
        };
        let line = match p {
            Pkt::Flush if header => {
                header = false;
                continue;
            }
            Pkt::Flush => break,
            Pkt::Data(d) => d,
            _ => return Err("the upload-pack advertisement has a delimiter (protocol v2?)".into()),
        };
        if header {
            if line.starts_with(b"# service=") {
                continue;
            }
            // No "# service" header (a dumb reply): the refs start at once.
            header = false;
        }
        if line.starts_with(b"version ") {
            return Err("the upload-pack advertisement is protocol v2, not v0".into());
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.split(|b| *b == 0).next().unwrap_or_default();
        let text = std::str::from_utf8(line)
            .map_err(|_| "the upload-pack advertisement has a ref line that is not UTF-8")?;
        let Some((oid, name)) = text.split_once(' ') else {
            return Err(format!(
                "the upload-pack advertisement has a line without a ref: {text:?}"
            ));
        };
        if oid.len() != 40 || !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "the upload-pack advertisement has a bad object id {oid:?}"
            ));
        }
        if name == "HEAD" || name.ends_with("^{}") || name == "capabilities^{}" {
            continue;
        }
        if refs.len() >= MAX_ADVERTISED_REFS {
            return Err(format!(
                "the repository has over {MAX_ADVERTISED_REFS} refs"
            ));
        }
        refs.push((oid.to_owned(), name.to_owned()));
    }
    let mut out = Vec::new();
    pktline::write(&mut out, b"# service=git-receive-pack\n");
    pktline::flush(&mut out);
    if refs.is_empty() {
        refs.push(("0".repeat(40), "capabilities^{}".to_owned()));
    }
    for (i, (oid, name)) in refs.iter().enumerate() {
        let line = if i == 0 {
            format!("{oid} {name}\0{RECEIVE_CAPABILITIES}\n")
        } else {
            format!("{oid} {name}\n")
        };
        pktline::write(&mut out, line.as_bytes());
    }
    pktline::flush(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn pkt(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        pktline::write(&mut v, s.as_bytes());
        v
    }

    fn body(lines: &[&str], tail: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for l in lines {
            v.extend(pkt(l));
        }
        v.extend_from_slice(b"0000");
        v.extend_from_slice(tail);
        v
    }

    #[test]
    fn commands_and_pack() {
        let b = body(
            &[
                &format!(
                    "{A} {B} refs/heads/agent/x\0report-status side-band-64k atomic agent=git/2.47"
                ),
                &format!("{Z} {B} refs/heads/agent/y"),
                &format!("{A} {Z} refs/tags/old"),
            ],
            b"PACK....",
        );
        let c = parse(&b, 1 << 20).unwrap().unwrap();
        assert_eq!(c.commands.len(), 3);
        assert!(c.commands[1].is_create());
        assert!(c.commands[2].is_delete());
        assert!(c.has_capability("side-band-64k"));
        assert!(c.has_capability("atomic"));
        assert!(c.has_capability("agent"));
        assert_eq!(&b[c.consumed..], b"PACK....");
    }

    #[test]
    fn shallow_options_probe_and_partial() {
        let b = body(
            &[
                &format!("shallow {A}"),
                &format!("{A} {B} refs/heads/x\0report-status push-options"),
            ],
            b"",
        );
        let mut b2 = b.clone();
        b2.extend(pkt("ci.skip"));
        b2.extend_from_slice(b"0000PACK");
        let c = parse(&b2, 1 << 20).unwrap().unwrap();
        assert_eq!(c.shallow, vec![A.to_string()]);
        assert_eq!(c.push_options, vec!["ci.skip".to_string()]);
        assert_eq!(&b2[c.consumed..], b"PACK");
        // Not all there yet.
        assert_eq!(parse(&b, 1 << 20), Ok(None));
        assert_eq!(parse(&b[..10], 1 << 20), Ok(None));
        assert_eq!(parse(&b[..10], 10), Err(ParseError::TooLarge(10)));
        // git's probe.
        let p = parse(b"0000", 1 << 20).unwrap().unwrap();
        assert!(p.is_probe());
        assert_eq!(p.consumed, 4);
    }

    #[test]
    fn malformed() {
        let cases: Vec<Vec<u8>> = vec![
            body(&["not a command"], b""),
            body(&[&format!("{A} {B}")], b""),
            body(&[&format!("{A} xyz refs/heads/x")], b""),
            body(&[&format!("{A} {B} refs/heads/../x")], b""),
            body(&[&format!("{A} {B} HEAD")], b""),
            body(
                &[
                    &format!("{A} {B} refs/heads/x"),
                    &format!("{A} {B} refs/heads/y\0caps"),
                ],
                b"",
            ),
            b"zzzz".to_vec(),
        ];
        for c in cases {
            assert!(
                parse(&c, 1 << 20).is_err(),
                "{:?}",
                String::from_utf8_lossy(&c)
            );
        }
        assert_eq!(
            parse(&body(&["push-cert\0caps"], b""), 1 << 20),
            Err(ParseError::PushCert)
        );
    }

    #[test]
    fn refnames() {
        for ok in ["refs/heads/main", "refs/heads/agent/x-1", "refs/tags/v1.0"] {
            assert!(valid_refname(ok), "{ok}");
        }
        for bad in [
            "main",
            "refs/heads/",
            "refs//x",
            "refs/heads/a..b",
            "refs/heads/x.lock",
            "refs/heads/.x",
            "refs/heads/a b",
            "refs/heads/a:b",
            "refs/heads/a@{1}",
        ] {
            assert!(!valid_refname(bad), "{bad}");
        }
    }

    #[test]
    fn a_receive_advertisement_from_an_upload_one() {
        let mut up = Vec::new();
        pktline::write(&mut up, b"# service=git-upload-pack\n");
        pktline::flush(&mut up);
        pktline::write(
            &mut up,
            format!("{A} HEAD\0multi_ack thin-pack symref=HEAD:refs/heads/main\n").as_bytes(),
        );
        pktline::write(&mut up, format!("{A} refs/heads/main\n").as_bytes());
        pktline::write(&mut up, format!("{B} refs/tags/v1\n").as_bytes());
        pktline::write(&mut up, format!("{A} refs/tags/v1^{{}}\n").as_bytes());
        pktline::flush(&mut up);
        let out = advertisement_from_upload(&up).unwrap();
        let mut want = Vec::new();
        pktline::write(&mut want, b"# service=git-receive-pack\n");
        pktline::flush(&mut want);
        pktline::write(
            &mut want,
            format!("{A} refs/heads/main\0{RECEIVE_CAPABILITIES}\n").as_bytes(),
        );
        pktline::write(&mut want, format!("{B} refs/tags/v1\n").as_bytes());
        pktline::flush(&mut want);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want)
        );

        // An empty repository: the capabilities on the zero id.
        let mut empty = Vec::new();
        pktline::write(&mut empty, b"# service=git-upload-pack\n");
        pktline::flush(&mut empty);
        pktline::write(
            &mut empty,
            format!("{Z} capabilities^{{}}\0agent=x\n").as_bytes(),
        );
        pktline::flush(&mut empty);
        let out = String::from_utf8(advertisement_from_upload(&empty).unwrap()).unwrap();
        assert!(
            out.contains(&format!("{Z} capabilities^{{}}\0report-status")),
            "{out}"
        );

        // Broken or unexpected answers are errors, never a panic.
        for bad in [
            &b""[..],
            b"0000",
            b"zzzz",
            b"001e# service=git-upload-pack\n0000000eversion 2\n0000",
            b"0008abc\n0000",
        ] {
            assert!(advertisement_from_upload(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn report_status() {
        let r = reject_report(&[("refs/heads/main".into(), "denied".into())], false, "");
        assert_eq!(
            r,
            b"000eunpack ok\n001eng refs/heads/main denied\n0000".to_vec()
        );
        let s = reject_report(&[("refs/heads/main".into(), "denied".into())], true, "why");
        // band 2 message, band 1 carrying the report, final flush.
        let (p, n) = pktline::read(&s).unwrap().unwrap();
        assert_eq!(p, Pkt::Data(b"\x02why\n"));
        let (p, m) = pktline::read(&s[n..]).unwrap().unwrap();
        match p {
            Pkt::Data(d) => {
                assert_eq!(d[0], 1);
                assert_eq!(&d[1..], &r[..]);
            }
            _ => panic!(),
        }
        assert_eq!(&s[n + m..], b"0000");
    }

    #[test]
    fn feeding_byte_by_byte_is_linear_and_equal() {
        // A section near the limit, fed one byte at a time: each call reads on from where the
        // last stopped, so this is ~1 MiB of work, not ~1 MiB squared.
        let mut lines = vec![format!("{A} {B} refs/heads/agent/0\0report-status")];
        for i in 1..9000 {
            lines.push(format!("{A} {B} refs/heads/agent/{i}"));
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let b = body(&refs, b"PACK");
        assert!(b.len() > 800_000);
        let mut p = Parser::new(1 << 20);
        let mut got = None;
        for n in 1..=b.len() {
            if let Some(c) = p.feed(&b[..n]).unwrap() {
                got = Some(c);
                break;
            }
        }
        let got = got.unwrap();
        assert_eq!(got, parse(&b, 1 << 20).unwrap().unwrap());
        assert_eq!(got.commands.len(), 9000);
        assert_eq!(&b[got.consumed..], b"PACK");
    }

    proptest! {
        #[test]
        fn feeding_in_chunks_equals_parsing_whole(
            refs in proptest::collection::vec("[a-z]{1,8}", 1..6),
            cut in proptest::collection::vec(1usize..40, 0..20),
        ) {
            let lines: Vec<String> = refs.iter().enumerate().map(|(i, r)| {
                let l = format!("{A} {B} refs/heads/{r}");
                if i == 0 { format!("{l}\0report-status push-options") } else { l }
            }).collect();
            let refs_lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let mut b = body(&refs_lines, b"");
            b.extend(pkt("opt"));
            b.extend_from_slice(b"0000PACK");
            let whole = parse(&b, 1 << 20).unwrap().unwrap();
            let mut p = Parser::new(1 << 20);
            let mut n = 0;
            let mut it = cut.iter().cycle();
            let got = loop {
                n = (n + it.next().copied().unwrap_or(7)).min(b.len());
                if let Some(c) = p.feed(&b[..n]).unwrap() { break c; }
                prop_assert!(n < b.len());
            };
            prop_assert_eq!(got, whole);
        }

        #[test]
        fn parse_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&buf, 256);
        }

        #[test]
        fn parses_what_git_would_send(
            refs in proptest::collection::vec("[a-z]{1,8}(/[a-z0-9-]{1,8}){0,2}", 1..5),
            tail in proptest::collection::vec(any::<u8>(), 0..50),
        ) {
            let lines: Vec<String> = refs.iter().enumerate().map(|(i, r)| {
                let l = format!("{A} {B} refs/heads/{r}");
                if i == 0 { format!("{l}\0report-status") } else { l }
            }).collect();
            let refs_lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let b = body(&refs_lines, &tail);
            let c = parse(&b, 1 << 20).unwrap().unwrap();
            prop_assert_eq!(c.commands.len(), refs.len());
            prop_assert_eq!(&b[c.consumed..], &tail[..]);
            for (cmd, r) in c.commands.iter().zip(&refs) {
                prop_assert_eq!(&cmd.refname, &format!("refs/heads/{r}"));
            }
        }
    }
}
