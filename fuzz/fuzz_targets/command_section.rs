//! A push's command section, parsed incrementally in the chunks the first byte chooses: never
//! a panic, and always the same verdict as parsing the whole buffer at once.
#![no_main]

use ghapp_gitproto::receive_pack::{Parser, parse};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 32) + 1;
    let whole = parse(body, LIMIT);
    let mut p = Parser::new(LIMIT);
    let mut n = 0;
    let chunked = loop {
        n = (n + step).min(body.len());
        match p.feed(&body[..n]) {
            Ok(None) if n < body.len() => continue,
            other => break other,
        }
    };
    match (&whole, &chunked) {
        (Ok(Some(a)), Ok(Some(b))) => {
            assert_eq!(a, b);
            assert!(a.consumed <= body.len());
        }
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        // A prefix can already be too large, or already broken, before the whole is seen.
        (_, Err(_)) => {}
        _ => panic!("whole {whole:?} but chunked {chunked:?}"),
    }
});
