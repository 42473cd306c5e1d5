//! A pushed file scanned for credentials in the pieces the first byte chooses: never a panic,
//! and the same finding (kind and line) however the file is cut; and the same text redacted:
//! never a panic, and nothing left that the scanner would find.
#![no_main]

use ghapp_gitproto::secrets::{Scanner, redact};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let scan = |text: &[u8], piece: usize| {
        let mut s = Scanner::new();
        for p in text.chunks(piece.max(1)) {
            s.feed(p);
        }
        s.finish()
    };
    assert_eq!(scan(body, body.len()), scan(body, usize::from(step) + 1));
    if let Ok(text) = std::str::from_utf8(body) {
        let clean = redact(text);
        assert_eq!(scan(clean.as_bytes(), clean.len()), None, "{clean:?}");
    }
});
