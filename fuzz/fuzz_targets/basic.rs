//! `Proxy-Authorization: Basic …`: never a panic, and what encodes parses back.
#![no_main]

use ghapp_gitproto::basic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = basic::parse(text);
    if let Some((user, pass)) = text.split_once('\u{0}')
        && !user.contains(':')
    {
        let h = basic::encode(user, pass);
        assert_eq!(basic::parse(&h), Some((user.to_owned(), pass.to_owned())));
    }
});
