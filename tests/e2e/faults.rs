//! Faults through the real proxy: GitHub drops a push half-way, the proxy dies mid-push,
//! minting fails for a while. git must see a clear error, no ref may change, and sandboxes
//! recover by themselves.

use std::time::Duration;

use ghapp_e2e::{SECRET_A, Sandbox, World};

fn sandboxes() -> String {
    ghapp_e2e::two_sandboxes("")
}

/// Incompressible bytes (xorshift64), so the pack is as large as the file.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn github_dropping_a_push_half_way_changes_nothing() {
    let w = World::new();
    let p = w.start_proxy(&sandboxes(), "");
    let sb = Sandbox::new(&w, &p, "agent-a", SECRET_A);
    sb.clone("octo-org", "widgets", "w", &[]).ok();
    let work = w.path("w");
    sb.git(&work, &["switch", "--quiet", "-c", "agent/big"])
        .ok();
    sb.commit(&work, "big.bin", &noise(4 << 20, 1));
    w.hub.drop_push_after(1 << 20);
    let r = sb.git(&work, &["push", "origin", "agent/big"]);
    r.fails();
    assert!(
        r.stderr.contains("502")
            || r.stderr.contains("RPC failed")
            || r.stderr.contains("remote end hung up"),
        "a clear error: {r:#?}"
    );
    assert!(!r.stderr.contains("panicked"));
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/big"),
        None
    );
    let push = p
        .audit()
        .into_iter()
        .rfind(|e| e["service"] == "git-receive-pack" && e["method"] == "POST")
        .unwrap();
    assert_eq!(push["status"], 502, "{push}");
    // Once GitHub behaves, the same push goes through.
    w.hub.drop_push_after(0);
    sb.git(&work, &["push", "--quiet", "origin", "agent/big"])
        .ok();
    assert!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/big")
            .is_some()
    );
}

fn a_proxy_killed_mid_push_changes_nothing_and_restarts_clean() {
    let mut w = World::new();
    w.limit = Duration::from_secs(60);
    let p = w.start_proxy(&sandboxes(), "");
    let sb = Sandbox::new(&w, &p, "agent-a", SECRET_A);
    sb.clone("octo-org", "widgets", "w", &[]).ok();
    let work = w.path("w");
    sb.git(&work, &["switch", "--quiet", "-c", "agent/killed"])
        .ok();
    sb.commit(&work, "big.bin", &noise(24 << 20, 2));
    // GitHub is slow to read pushes, so the pack is still crossing the proxy when it dies.
    w.hub.stall_git(Some("octo-org/widgets"), 4_000);
    let r = std::thread::scope(|s| {
        let push = s.spawn(|| sb.git(&work, &["push", "origin", "agent/killed"]));
        std::thread::sleep(Duration::from_millis(1500));
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &p.pid().to_string()])
            .status();
        push.join().unwrap()
    });
    r.fails();
    assert!(!r.stderr.contains("panicked"), "{r:#?}");
    assert!(
        r.stderr.contains("fatal") || r.stderr.contains("error"),
        "git says it failed: {r:#?}"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/killed"),
        None
    );
    w.hub.stall_git(None, 0);
    // A new proxy on the same configuration: the sandbox pushes again.
    drop(p);
    let p = w.start_proxy(&sandboxes(), "");
    let sb = Sandbox::new(&w, &p, "agent-a", SECRET_A);
    sb.git(&work, &["push", "--quiet", "origin", "agent/killed"])
        .ok();
    assert!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/killed")
            .is_some()
    );
}

/// A `git index-pack` that stops reading its stdin (the proxy's `git` here: a wrapper that
/// sleeps in its place) refuses the push within the idle time instead of holding it open.
fn an_index_pack_that_stops_reading_refuses_the_push() {
    let mut w = World::new();
    w.limit = Duration::from_secs(60);
    let real = w.cmd("sh").args(&["-c", "command -v git"]).run();
    let bin = w.path("stalling-git");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("git");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = index-pack ] && exec sleep 300; done\nexec {} \"$@\"\n",
            real.stdout.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let p = w.start_proxy_with_env(
        &sandboxes(),
        "[limits]\nidle_timeout = \"3s\"\n",
        &[("PATH", path)],
    );
    let sb = Sandbox::new(&w, &p, "agent-a", SECRET_A);
    sb.clone("octo-org", "widgets", "w", &[]).ok();
    let work = w.path("w");
    sb.git(&work, &["switch", "--quiet", "-c", "agent/stalled"])
        .ok();
    sb.commit(&work, "big.bin", &noise(4 << 20, 3));
    let r = sb.git(&work, &["push", "origin", "agent/stalled"]);
    r.fails();
    assert!(!r.stderr.contains("panicked"), "{r:#?}");
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/stalled"),
        None,
        "GitHub never has the push"
    );
    let push = p
        .audit()
        .into_iter()
        .rfind(|e| e["service"] == "git-receive-pack" && e["method"] == "POST")
        .expect("the push's audit event");
    assert!(
        push["reason"]
            .as_str()
            .is_some_and(|r| r.contains("git index-pack stopped reading the pack")),
        "{push}\n{r:#?}"
    );
}

fn minting_failing_for_a_while_gives_503_with_retry_after_then_recovers() {
    let w = World::new();
    let p = w.start_proxy(&sandboxes(), "");
    // Every mint fails with 502 (GitHub's bad day), for longer than the proxy's 20 s deadline.
    w.hub.fail_next_mints(1_000_000, 502);
    let mut t = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
    let a = t
        .request("GET", "/api/v3/repos/octo-org/widgets", &[], b"")
        .unwrap();
    assert_eq!(a.status, 503, "{a:#?}");
    assert_eq!(a.header("retry-after").as_deref(), Some("10"));
    assert!(
        a.body.contains("ghapp proxy: cannot mint a token"),
        "{a:#?}"
    );
    let sb = Sandbox::new(&w, &p, "agent-a", SECRET_A);
    let r = sb.clone("octo-org", "widgets", "w1", &[]);
    r.fails();
    assert!(r.stderr.contains("503"), "{r:#?}");
    // GitHub recovers: so does the sandbox, with no restart.
    w.hub.fail_next_mints(0, 502);
    sb.clone("octo-org", "widgets", "w2", &[]).ok();
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "github_dropping_a_push_half_way_changes_nothing",
        github_dropping_a_push_half_way_changes_nothing,
    ),
    (
        "a_proxy_killed_mid_push_changes_nothing_and_restarts_clean",
        a_proxy_killed_mid_push_changes_nothing_and_restarts_clean,
    ),
    (
        "an_index_pack_that_stops_reading_refuses_the_push",
        an_index_pack_that_stops_reading_refuses_the_push,
    ),
    (
        "minting_failing_for_a_while_gives_503_with_retry_after_then_recovers",
        minting_failing_for_a_while_gives_503_with_retry_after_then_recovers,
    ),
];
