//! Git routes, Git LFS routes and bodies, and REST paths: never a panic, and whatever passes is sent in a form an URL
//! parser leaves alone, decoding to exactly the segments that were decided on.
#![no_main]

use ghapp_gitproto::{lfs, rest, route};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (method, path) = text.split_once(' ').unwrap_or(("GET", text));
    if let Some(r) = route::parse(path) {
        let up = r.upstream_path();
        assert_eq!(
            route::parse(&up).map(|x| (x.owner, x.repo, x.endpoint)),
            Some((r.owner, r.repo, r.endpoint))
        );
    }
    if let Some(r) = lfs::parse(path) {
        assert_eq!(lfs::parse(&r.upstream_path()), Some(r));
    }
    let _ = lfs::operation(data);
    let _ = lfs::actions(data);
    let extra = vec![(
        "POST".to_string(),
        "/repos/{owner}/{repo}/statuses/{sha}".to_string(),
    )];
    if let Ok(r) = rest::route(method, path, &extra) {
        for seg in r.path.split('/').skip(1) {
            assert!(seg != "." && seg != ".." && !seg.contains('\\'));
            assert!(!seg.to_ascii_lowercase().contains("%2e%2e"));
        }
        let again = rest::route(method, &r.path, &extra).expect("the normalised path passes");
        assert_eq!(again, r);
    }
});
