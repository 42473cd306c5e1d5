//! A `POST /graphql` body from a sandbox: never a panic or a stack overflow, whatever it holds;
//! what it resolves to is a query, a subscription or mutation calls, else a refusal.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ghapp_gitproto::graphql::classify(data);
    // The same bytes as the query text itself, wrapped as a client would send them.
    if let Ok(text) = std::str::from_utf8(data) {
        let body = serde_json::json!({ "query": text }).to_string();
        let _ = ghapp_gitproto::graphql::classify(body.as_bytes());
    }
});
