//! The git-native refusal the proxy builds from (attacker-chosen) ref names and reasons: always
//! well-formed pkt-lines, inside side-band frames when asked, one `ng` per ref.
#![no_main]

use ghapp_gitproto::pktline::{self, Pkt};
use ghapp_gitproto::receive_pack::reject_report;
use libfuzzer_sys::fuzz_target;

fn frames(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        match pktline::read(b) {
            Ok(Some((Pkt::Data(d), n))) => {
                out.push(d.to_vec());
                b = &b[n..];
            }
            Ok(Some((Pkt::Flush, n))) => {
                b = &b[n..];
                if b.is_empty() {
                    return out;
                }
            }
            other => panic!("not pkt-lines: {other:?} before {b:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let sideband = data.first().is_some_and(|b| b & 1 == 1);
    let message = parts.next().unwrap_or("").to_owned();
    let refs: Vec<(String, String)> = parts
        .filter_map(|p| p.split_once('\u{2}'))
        .map(|(r, why)| {
            // The proxy refuses only parsed ref names: no newline, no NUL, bounded.
            let r: String = r.chars().filter(|c| !c.is_control()).take(200).collect();
            (r, why.chars().take(1000).collect())
        })
        .collect();
    let out = reject_report(&refs, sideband, &message);
    let report = if sideband {
        let mut report = Vec::new();
        for f in frames(&out) {
            match f.first() {
                Some(1) => report.extend_from_slice(&f[1..]),
                Some(2) => {}
                other => panic!("band {other:?}"),
            }
        }
        report
    } else {
        out
    };
    let lines = frames(&report);
    assert_eq!(lines[0], b"unpack ok\n");
    assert_eq!(lines.len(), refs.len() + 1);
    for (l, (r, _)) in lines[1..].iter().zip(&refs) {
        assert!(l.starts_with(format!("ng {r} ").as_bytes()));
        assert!(l.ends_with(b"\n") && !l[..l.len() - 1].contains(&b'\n'));
    }
});
