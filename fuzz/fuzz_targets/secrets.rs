//! A pushed file scanned for credentials in the pieces the first byte chooses: never a panic,
//! and the same finding (kind and line) however the file is cut.
#![no_main]

use ghapp_gitproto::secrets::Scanner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let scan = |piece: usize| {
        let mut s = Scanner::new();
        for p in body.chunks(piece) {
            s.feed(p);
        }
        s.finish()
    };
    assert_eq!(scan(body.len().max(1)), scan(usize::from(step) + 1));
});
