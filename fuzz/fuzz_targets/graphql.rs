//! A `POST /graphql` body from a sandbox: never a panic or a stack overflow, whatever it holds;
//! what it resolves to is a query, a subscription or mutation calls, else a refusal; and a
//! mutation's re-printed body (what is forwarded) reads as the same calls.
#![no_main]

use libfuzzer_sys::fuzz_target;

use ghapp_gitproto::graphql::{Operation, classify};

/// What is forwarded is re-printed: that body must read the same (a query as a query, a
/// mutation as the same calls).
fn check(body: &[u8]) {
    match classify(body) {
        Ok(Operation::Mutation(m)) => match classify(&m.body) {
            Ok(Operation::Mutation(again)) => assert_eq!(again.calls, m.calls),
            other => panic!("the re-printed mutation reads as {other:?}"),
        },
        Ok(Operation::Query { body }) => assert!(
            matches!(classify(&body), Ok(Operation::Query { .. })),
            "the re-printed query reads otherwise"
        ),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // The same bytes as the query text itself, wrapped as a client would send them.
    if let Ok(text) = std::str::from_utf8(data) {
        let body = serde_json::json!({ "query": text }).to_string();
        check(body.as_bytes());
    }
});
