//! A hostile sandbox against the real `ghapp proxy`: each test is one hole of the hardening
//! issue, written as the requests an attacker sends (byte for byte, through the sandbox's own
//! CONNECT tunnel), and asserts what the sandbox saw, what the audit recorded, and what GitHub
//! (fakehub's request log) received: a refused request never arrives, with or without a token.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use ghapp_e2e::{HttpAnswer, ProxyProc, SECRET_A, SECRET_B, Sandbox, World};

fn sandboxes() -> String {
    ghapp_e2e::two_sandboxes(r#"rest = ["POST /repos/{owner}/{repo}/statuses/{sha}"]"#)
}

/// What fakehub received since `from` (an index into its log).
fn received_since(w: &World, from: usize) -> Vec<fakehub::Received> {
    w.hub.requests().into_iter().skip(from).collect()
}

/// One request through a fresh tunnel of agent-a to the emulator.
fn send(
    w: &World,
    p: &ProxyProc,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpAnswer {
    let mut t = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
    t.request(method, target, headers, body)
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

#[track_caller]
fn assert_denied_in_audit(p: &ProxyProc, path_part: &str) {
    let audit = p.audit();
    let e = audit
        .iter()
        .rev()
        .find(|e| e["path"].as_str().unwrap_or("").contains(path_part))
        .unwrap_or_else(|| panic!("no audit event for {path_part}: {audit:#?}"));
    assert_eq!(e["decision"], "deny", "{e}");
    assert_eq!(e["sandbox"], "agent-a", "{e}");
    assert!(
        e.get("token").is_none(),
        "no token for a refused request: {e}"
    );
}

/// Hole 1: a free path segment cannot smuggle another route past the allow-list.
fn rest_paths_are_decided_on_what_is_sent() {
    let w = World::new();
    let p = w.start_proxy(&sandboxes(), "");
    // A branch to open pull requests from.
    let sb = Sandbox::new(&w, &p, "agent-a", SECRET_A);
    sb.clone("octo-org", "widgets", "widgets", &[]).ok();
    sb.push_new_branch(&w.path("widgets"), "agent/x", "x.txt", b"x\n");
    let before = w.hub.requests().len();
    let mints = w.hub.mint_count();

    paths_read_two_ways_are_refused(&w, &p);
    bodies_the_proxy_cannot_read_are_refused(&w, &p);
    // Nothing of all that reached GitHub, with a token or without, and nothing was minted.
    let got = received_since(&w, before);
    assert!(got.is_empty(), "GitHub received: {got:#?}");
    assert_eq!(w.hub.mint_count(), mints);

    allowed_forms_arrive_normalised(&w, &p, before);
}

const PRE: &str = "/api/v3/repos/octo-org/widgets";
const JSON: [(&str, &str); 1] = [("Content-Type", "application/json")];
const STATUS_BODY: &[u8] = br#"{"state":"success","context":"ci"}"#;

/// Dot segments, encoded separators, backslashes, another spelling of a checked route, a key
/// given twice: each is a JSON 403 (or 400) from the proxy, audited as a denial.
fn paths_read_two_ways_are_refused(w: &World, p: &ProxyProc) {
    let head_main: &[u8] = br#"{"title":"t","head":"main","base":"agent/x"}"#;
    let (pre, json, status_body) = (PRE, JSON, STATUS_BODY);
    for (method, target, body) in [
        (
            "POST",
            format!("{pre}/statuses/..%2f..%2fmerges"),
            status_body,
        ),
        ("POST", format!("{pre}/statuses/../../merges"), status_body),
        (
            "POST",
            format!("{pre}/statuses/%2e%2e/%2E%2E/git/refs"),
            status_body,
        ),
        (
            "POST",
            format!("{pre}/statuses/.%2e/.%2e/merges"),
            status_body,
        ),
        (
            "POST",
            format!("{pre}/statuses/x%5c..%5c..%5cmerges"),
            status_body,
        ),
        (
            "POST",
            format!("{pre}/statuses/x%2f..%2f..%2fgit%2frefs"),
            status_body,
        ),
        ("POST", format!("{pre}/statuses/%252e%252e"), status_body),
        (
            "GET",
            format!("{pre}/branches/%2e%2e/%2e%2e/%2e%2e/installation/repositories"),
            b"",
        ),
        (
            "GET",
            format!("{pre}/branches/..%5c..%5c..%5cinstallation%5crepositories"),
            b"",
        ),
        (
            "GET",
            format!("{pre}/branches/a/../../../../installation/repositories"),
            b"",
        ),
        (
            "GET",
            format!("{pre}/branches/..\\..\\..\\installation\\repositories"),
            b"",
        ),
        // The head check cannot be skipped by another spelling of the route...
        ("POST", format!("{pre}/%70ulls"), head_main),
        ("POST", format!("{pre}/./pulls"), head_main),
        ("POST", format!("{pre}//pulls"), head_main),
        ("POST", format!("{pre}/pulls/"), head_main),
        // ...nor by a key given twice, or a head from another repository.
        (
            "POST",
            format!("{pre}/pulls"),
            br#"{"title":"t","head":"agent/x","head":"main","base":"main"}"#,
        ),
        (
            "POST",
            format!("{pre}/pulls"),
            br#"{"title":"t","head":"agent/x","head_repo":"evil","base":"main"}"#,
        ),
    ] {
        let a = send(w, p, method, &target, &json, body);
        assert!(
            a.status == 403 || a.status == 400,
            "{method} {target}: {a:#?}"
        );
        let v: serde_json::Value = serde_json::from_str(&a.body)
            .unwrap_or_else(|_| panic!("{method} {target}: JSON expected: {a:#?}"));
        assert!(
            v["message"].as_str().unwrap().contains("ghapp proxy"),
            "{a:#?}"
        );
        assert_denied_in_audit(p, &target[target.len() - 8..]);
    }
}

/// A body GitHub would decode but the proxy cannot check.
fn bodies_the_proxy_cannot_read_are_refused(w: &World, p: &ProxyProc) {
    let a = send(
        w,
        p,
        "POST",
        &format!("{PRE}/pulls"),
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        b"\x1f\x8b\x08\x00not really gzip",
    );
    assert_eq!(a.status, 415, "{a:#?}");
    assert!(a.body.contains("Content-Encoding gzip"), "{a:#?}");
}

/// What is allowed is sent in its normalised form, a checked body travels without the query it
/// came with, and method overrides are not forwarded.
fn allowed_forms_arrive_normalised(w: &World, p: &ProxyProc, before: usize) {
    let (pre, json, status_body) = (PRE, JSON, STATUS_BODY);
    let a = send(w, p, "GET", &format!("{pre}/branches/agent%2Fx"), &[], b"");
    assert!(a.status == 200 || a.status == 404, "{a:#?}");
    let a = send(
        w,
        p,
        "POST",
        &format!("{pre}/statuses/%61bc123"),
        // A method override rides along with an allowed POST: it is not forwarded.
        &[
            ("Content-Type", "application/json"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-HTTP-Method", "DELETE"),
        ],
        status_body,
    );
    assert!(a.status < 500, "{a:#?}");
    let a = send(
        w,
        p,
        "POST",
        &format!("{pre}/pulls?head=main"),
        &json,
        br#"{"title":"From the sandbox","head":"agent/x","base":"main"}"#,
    );
    assert_eq!(a.status, 201, "{a:#?}");
    let got: Vec<String> = received_since(w, before)
        .into_iter()
        .filter(|r| r.target.starts_with("/api/v3/repos"))
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert_eq!(
        got,
        vec![
            format!("GET {pre}/branches/agent/x"),
            format!("POST {pre}/statuses/abc123"),
            format!("POST {pre}/pulls"),
        ]
    );
    assert_eq!(w.hub.pulls().len(), 1);
    assert_eq!(w.hub.pulls()[0].head, "agent/x");
    let overridden: Vec<_> = received_since(w, before)
        .into_iter()
        .filter(|r| r.headers.iter().any(|h| h.contains("method")))
        .collect();
    assert!(
        overridden.is_empty(),
        "method overrides reached GitHub: {overridden:#?}"
    );
}

/// Hole 2: only GET info/refs and POST upload-pack/receive-pack pass; the push check cannot
/// be stepped around with another method.
fn git_routes_take_only_git_methods() {
    let w = World::new();
    let p = w.start_proxy(&sandboxes(), "");
    let before = w.hub.requests().len();
    let rp = "/octo-org/widgets.git/git-receive-pack";
    let up = "/octo-org/widgets.git/git-upload-pack";
    let refs = "/octo-org/widgets.git/info/refs?service=git-receive-pack";
    // A push of main in the body, sent with methods the push check does not look at.
    let mut push = commands(1);
    push.extend_from_slice(b"0000PACK");
    let main_before = w.hub_ref("octo-org", "widgets", "refs/heads/main");
    for (method, target) in [
        ("PUT", rp),
        ("PATCH", rp),
        ("TRACE", rp),
        ("OPTIONS", rp),
        ("DELETE", rp),
        ("post", rp),
        ("GET", rp),
        ("get", refs),
        ("HEAD", refs),
        ("POST", refs),
        ("PUT", up),
        ("GET", up),
    ] {
        let a = send(
            &w,
            &p,
            method,
            target,
            &[("Content-Type", "application/x-git-receive-pack-request")],
            &push,
        );
        assert_eq!(a.status, 405, "{method} {target}: {a:#?}");
        if method != "HEAD" {
            assert!(
                a.body.contains("git's smart HTTP uses only GET info/refs"),
                "{a:#?}"
            );
        }
        let audit = p.audit();
        let e = audit.last().unwrap();
        assert_eq!(e["method"], method);
        assert_eq!(e["decision"], "deny");
        assert!(
            e["reason"]
                .as_str()
                .unwrap()
                .contains("is not a git smart-HTTP method"),
            "{e}"
        );
    }
    // Dumb HTTP (info/refs without a service) is not served either.
    let a = send(&w, &p, "GET", "/octo-org/widgets.git/info/refs", &[], b"");
    assert_eq!(a.status, 403, "{a:#?}");
    let got = received_since(&w, before);
    assert!(got.is_empty(), "GitHub received: {got:#?}");
    assert_eq!(w.hub.mint_count(), 0);
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/main"),
        main_before
    );
}

/// Hole 3: connections without credentials cannot fill the proxy, and one sandbox's tunnels
/// cannot starve another's.
fn idle_connections_and_tunnel_floods_are_bounded() {
    let w = World::new();
    let p = w.start_proxy(
        &sandboxes(),
        "[limits]\nmax_unauthenticated = 8\nmax_tunnels_per_sandbox = 4\nheader_timeout = \"2s\"\n",
    );
    // Eight idle connections that never say a word take every unauthenticated slot...
    let idle: Vec<std::net::TcpStream> = (0..8)
        .map(|_| std::net::TcpStream::connect(&p.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // ...so the ninth is closed at once,
    let mut ninth = std::net::TcpStream::connect(&p.addr).unwrap();
    ninth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 1];
    assert_eq!(
        ninth.read(&mut b).unwrap_or(0),
        0,
        "closed without an answer"
    );
    // and the idle ones are closed at their deadline (2 s), freeing the slots.
    let start = Instant::now();
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(s.read(&mut b).unwrap_or(0), 0);
    }
    assert!(start.elapsed() < Duration::from_secs(9));
    // A trickle of bytes does not extend an unauthenticated connection's deadline.
    let mut slow = std::net::TcpStream::connect(&p.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    for c in b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n".iter().take(8) {
        if slow.write_all(&[*c]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_eq!(slow.read(&mut b).unwrap_or(0), 0);
    assert!(start.elapsed() < Duration::from_secs(6));

    // A tunnel opened with valid credentials that never starts TLS is closed at the handshake
    // deadline, and its slot given back.
    let (a, mut silent) = p
        .connect(Some(("agent-a", SECRET_A)), &w.hub.git_host())
        .unwrap();
    assert_eq!(a.status, 200);
    let start = Instant::now();
    assert_eq!(silent.read(&mut b).unwrap_or(0), 0);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );

    // agent-a opens its four tunnels and holds them; the fifth is refused with a reason...
    let held: Vec<_> = (0..4)
        .map(|_| p.tunnel("agent-a", SECRET_A, &w.hub.git_host()))
        .collect();
    let (a, _) = p
        .connect(Some(("agent-a", SECRET_A)), &w.hub.git_host())
        .unwrap();
    assert_eq!(a.status, 429, "{a:#?}");
    assert!(a.body.contains("max_tunnels_per_sandbox"), "{a:#?}");
    // ...while agent-b clones as usual.
    let b_sb = Sandbox::new(&w, &p, "agent-b", SECRET_B);
    b_sb.clone("octo-org", "gadgets", "g", &[]).ok();
    drop(held);
    let audit = p.audit();
    assert!(
        audit
            .iter()
            .any(|e| e["status"] == 429 && e["sandbox"] == "agent-a"),
        "{audit:#?}"
    );
}

/// Hole 3 (idle tunnels): an authenticated tunnel with no traffic is closed at the idle
/// timeout and its slot given back; a busy one stays open.
fn idle_tunnels_are_closed_and_busy_ones_kept() {
    let w = World::new();
    let p = w.start_proxy(
        &sandboxes(),
        "[limits]\nidle_timeout = \"2s\"\nmax_tunnels_per_sandbox = 1\n",
    );
    let mut idle = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
    let start = Instant::now();
    let mut b = [0u8; 1];
    assert!(matches!(idle_read(&mut idle, &mut b), Ok(0) | Err(_)));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    // The slot is free again; this tunnel sends a request every second for five seconds.
    let mut busy = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
    for _ in 0..5 {
        let target = "/octo-org/widgets.git/info/refs?service=git-upload-pack";
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n",
            w.hub.git_host()
        );
        busy.write(req.as_bytes()).unwrap();
        assert_eq!(busy.answer().unwrap().status, 200);
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn idle_read(t: &mut ghapp_e2e::Tunnel, b: &mut [u8]) -> std::io::Result<usize> {
    t.read(b)
}

/// Hole 3 (accept errors): out of file descriptors, the accept loop backs off instead of
/// spinning, and serves again once descriptors are free.
fn running_out_of_descriptors_does_not_spin() {
    let w = World::new();
    let p = w.start_proxy(&sandboxes(), "");
    ghapp_e2e::needs("prlimit");
    let limit = std::process::Command::new("prlimit")
        .args(["--pid", &p.pid().to_string(), "--nofile=48:"])
        .status();
    assert!(limit.is_ok_and(|s| s.success()), "prlimit (util-linux)");
    let flood: Vec<std::net::TcpStream> = (0..120)
        .filter_map(|_| std::net::TcpStream::connect(&p.addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = p.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let ticks = p.cpu_ticks() - before;
    // A spinning accept loop burns ~200 ticks (one core) in 2 s.
    assert!(
        ticks < 40,
        "the proxy used {ticks} ticks of CPU in 2 s while out of descriptors"
    );
    drop(flood);
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &p.pid().to_string(), "--nofile=4096:"])
        .status();
    let sb = Sandbox::new(&w, &p, "agent-a", SECRET_A);
    sb.clone("octo-org", "widgets", "w", &[]).ok();
}

/// A push request's head and body, sent through a raw tunnel in chunks.
fn push_head(len: Option<usize>) -> String {
    let framing = match len {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".into(),
    };
    format!(
        "POST /octo-org/widgets.git/git-receive-pack HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/x-git-receive-pack-request\r\n{framing}\r\n"
    )
}

/// A command section of `n` ref updates (to refs the policy refuses), without its flush.
fn commands(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let line = if i == 0 {
            format!(
                "{} {} refs/heads/main{i}\0report-status side-band-64k\n",
                "0".repeat(40),
                "1".repeat(40)
            )
        } else {
            format!("{} {} refs/heads/main{i}\n", "0".repeat(40), "1".repeat(40))
        };
        out.extend_from_slice(format!("{:04x}", line.len() + 4).as_bytes());
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// Hole 4: a 1 MiB command section dribbled in tiny chunks is parsed once, not once per chunk.
fn a_command_section_in_tiny_chunks_costs_linear_time() {
    let w = World::new();
    let p = w.start_proxy(&sandboxes(), "");
    let mut section = commands(9_000);
    section.extend_from_slice(b"0000");
    assert!(section.len() > 900_000);
    let mut t = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
    let head = push_head(None).replace("HOST", &w.hub.git_host());
    t.write(head.as_bytes()).unwrap();
    let before = p.cpu_ticks();
    // 64-byte chunks, each its own TLS record and HTTP chunk: ~15,000 reads by the proxy.
    let mut batch = Vec::new();
    for c in section.chunks(64) {
        batch.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        batch.extend_from_slice(c);
        batch.extend_from_slice(b"\r\n");
        t.write(&batch).unwrap();
        batch.clear();
    }
    t.write(b"0\r\n\r\n").unwrap();
    let a = t.answer().unwrap();
    let ticks = p.cpu_ticks() - before;
    assert_eq!(a.status, 200, "{a:#?}");
    assert!(
        a.body.contains("ng refs/heads/main0"),
        "refused the git way"
    );
    // Re-parsing the section after every chunk costs minutes of CPU; once costs well under 10 s.
    assert!(
        ticks < 1000,
        "the proxy used {ticks} ticks parsing the section"
    );
    // The audit names the 9,000 refused updates; GitHub received nothing.
    let push = p
        .audit()
        .into_iter()
        .rfind(|e| e["service"] == "git-receive-pack")
        .expect("push audited");
    assert_eq!(push["decision"], "deny", "{push}");
    assert_eq!(push["ref_updates"].as_array().map(Vec::len), Some(9_000));
    assert!(push.get("token").is_none(), "{push}");
    assert!(
        !w.hub
            .requests()
            .iter()
            .any(|r| r.target.contains("receive-pack")),
        "GitHub received a push"
    );
}

/// Hole 5: every read the proxy buffers has a deadline, and partial bodies share a bounded
/// budget: stalled pushes cannot pile up memory.
fn stalled_bodies_time_out_and_their_memory_is_bounded() {
    let w = World::new();
    let p = w.start_proxy(
        &sandboxes(),
        "[limits]\nbody_timeout = \"2s\"\nmax_buffered_bytes = 4194304\nmax_tunnels_per_sandbox = 100\n",
    );
    let before = w.hub.requests().len();
    // A push that stops inside its command section is answered 408 at the deadline.
    let section = commands(9_000);
    let mut t = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
    let head = push_head(Some(section.len() + 1000)).replace("HOST", &w.hub.git_host());
    t.write(head.as_bytes()).unwrap();
    t.write(&section).unwrap();
    let start = Instant::now();
    let a = t.answer().unwrap();
    assert_eq!(a.status, 408, "{a:#?}");
    assert!(a.body.contains("body_timeout"), "{a:#?}");
    assert!(start.elapsed() < Duration::from_secs(8));
    assert!(
        p.audit().iter().any(|e| e["status"] == 408
            && e["decision"] == "deny"
            && e["service"] == "git-receive-pack"),
        "{:#?}",
        p.audit()
    );
    // The same for a REST body that never arrives.
    let mut t = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
    t.write(
        format!(
            "POST /api/v3/repos/octo-org/widgets/pulls HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"title\":",
            w.hub.git_host()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(t.answer().unwrap().status, 408);

    // Sixty stalled pushes of ~950 KiB each (57 MiB in all): the first fill the 4 MiB budget,
    // the rest are refused at once with 503, and the proxy's memory grows by far less.
    let rss = || p.rss_kib();
    let rss_before = rss();
    let mut stalled = Vec::new();
    for _ in 0..60 {
        let mut t = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
        t.write(head.as_bytes()).unwrap();
        let _ = t.write(&section);
        stalled.push(t);
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown_kib = rss().saturating_sub(rss_before);
    let answers: Vec<u16> = stalled
        .iter_mut()
        .map(|t| t.answer().map(|a| a.status).unwrap_or(0))
        .collect();
    assert!(
        answers.iter().filter(|s| **s == 503).count() >= 40,
        "{answers:?}"
    );
    // Each is refused (503 or 408), or its connection closed while it was still sending (0).
    assert!(
        answers.iter().all(|s| [503, 408, 0].contains(s)),
        "{answers:?}"
    );
    assert!(grown_kib < 32 * 1024, "the proxy grew by {grown_kib} KiB");
    let got = received_since(&w, before);
    assert!(got.is_empty(), "GitHub received: {got:#?}");
}

/// Hole 6: a token GitHub revoked is dropped, a new one minted, and the request retried.
fn a_revoked_token_is_replaced_not_kept() {
    let w = World::new();
    let p = w.start_proxy(&sandboxes(), "");
    let sb = Sandbox::new(&w, &p, "agent-a", SECRET_A);
    sb.clone("octo-org", "widgets", "w", &[]).ok();
    assert_eq!(w.hub.mint_count(), 1);
    // An admin (or secret scanning) revokes the token the proxy cached.
    let token = w.hub.issued_tokens().pop().unwrap();
    w.revoke_at_github(&token);
    let work = w.path("w");
    sb.git(&work, &["fetch", "--quiet", "origin"]).ok();
    sb.push_new_branch(&work, "agent/after-revoke", "r.txt", b"r\n");
    assert_eq!(
        w.hub.mint_count(),
        2,
        "one new token, kept for what followed"
    );
    // GitHub saw the revoked token once, refused it, then only the new one.
    let revoked_fp = ghapp_core::secret::fingerprint(&token);
    let uses: Vec<_> = w
        .hub
        .requests()
        .into_iter()
        .filter(|r| r.credential.as_deref() == Some(revoked_fp.as_str()))
        .filter(|r| !r.target.contains("installation/token"))
        .collect();
    assert!(!uses.is_empty());
    let last_use = w
        .hub
        .requests()
        .iter()
        .rposition(|r| r.credential.as_deref() == Some(revoked_fp.as_str()))
        .unwrap();
    assert!(
        w.hub.requests().len() > last_use + 3,
        "the revoked token was not used for the later requests"
    );
    // The audit: the clone ran with the old token, the push after the revocation with the new
    // one, and was allowed; the proxy dropped exactly one token.
    let fps: Vec<String> = p
        .audit()
        .iter()
        .filter_map(|e| e["token"].as_str().map(str::to_owned))
        .collect();
    assert!(fps.contains(&revoked_fp), "{fps:?}");
    let push = p
        .audit()
        .into_iter()
        .rfind(|e| e["service"] == "git-receive-pack" && e["method"] == "POST")
        .expect("push audited");
    assert_eq!(push["decision"], "allow");
    assert_ne!(push["token"].as_str(), Some(revoked_fp.as_str()));
    let m = p.metrics();
    assert!(m.contains("ghapp_proxy_tokens_dropped_total 1\n"), "{m}");
    w.capture(p.log());
    w.assert_no_secrets();
}

/// Hole 7: a tunnel never reaches the proxy host's own services or internal networks.
fn tunnels_never_reach_internal_addresses() {
    let w = World::new();
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    let p = w.start_proxy(
        &sandboxes(),
        "egress = \"tunnel\"\negress_allow = [\"127.0.0.1:1\"]",
    );
    let metrics = p.metrics_addr.clone().unwrap();
    for target in [
        echo_addr.to_string(),
        format!("localhost:{}", echo_addr.port()),
        format!("[::1]:{}", echo_addr.port()),
        format!("127.1.2.3:{}", echo_addr.port()),
        "169.254.169.254:80".to_string(),
        "[::ffff:169.254.169.254]:80".to_string(),
        "10.0.0.1:443".to_string(),
        "192.168.0.1:443".to_string(),
        "0.0.0.0:80".to_string(),
        p.addr.clone(),
        metrics,
    ] {
        let (a, _) = p.connect(Some(("agent-a", SECRET_A)), &target).unwrap();
        assert_eq!(a.status, 403, "{target}: {a:#?}");
        assert!(a.body.contains("egress to"), "{target}: {a:#?}");
    }
    // Nothing connected to the loopback service.
    echo.set_nonblocking(true).unwrap();
    assert!(
        echo.accept().is_err(),
        "a tunnel reached the loopback service"
    );
    let audit = p.audit();
    assert!(
        audit
            .iter()
            .filter(|e| e["service"] == "connect" && e["decision"] == "deny")
            .count()
            >= 11,
        "{audit:#?}"
    );
}

/// Hole 9: wrong proxy credentials are audited (never the secret) and rate-limited per
/// source; no credentials at all (how git opens a tunnel) is neither.
fn wrong_proxy_credentials_are_audited_and_rate_limited() {
    let w = World::new();
    let p = w.start_proxy(&sandboxes(), "[limits]\nlogin_failures_per_minute = 5\n");
    for _ in 0..10 {
        let (a, _) = p.connect(None, &w.hub.git_host()).unwrap();
        assert_eq!(a.status, 407);
    }
    let (a, _) = p
        .connect(Some(("agent-a", SECRET_A)), &w.hub.git_host())
        .unwrap();
    assert_eq!(a.status, 200, "no credentials does not count: {a:#?}");
    for _ in 0..5 {
        let (a, _) = p
            .connect(Some(("agent-a", "guess-guess-guess-1")), &w.hub.git_host())
            .unwrap();
        assert_eq!(a.status, 407);
    }
    // The sixth attempt in the minute is refused without a check, even with the right secret.
    let (a, _) = p
        .connect(Some(("agent-a", SECRET_A)), &w.hub.git_host())
        .unwrap();
    assert_eq!(a.status, 429, "{a:#?}");
    assert_eq!(a.header("retry-after").as_deref(), Some("60"));
    let audit = std::fs::read_to_string(&p.audit_path).unwrap();
    assert!(
        !audit.contains("guess-guess"),
        "the secret tried is never audited"
    );
    let fails: Vec<serde_json::Value> = p
        .audit()
        .into_iter()
        .filter(|e| e["reason"] == "wrong proxy credentials")
        .collect();
    assert_eq!(fails.len(), 5);
    assert_eq!(fails[0]["sandbox"], "agent-a");
    assert_eq!(fails[0]["source"], "127.0.0.1");
    let m = p.metrics();
    assert!(
        m.contains("ghapp_proxy_auth_failures_total{kind=\"missing\"} 10"),
        "{m}"
    );
    assert!(
        m.contains("ghapp_proxy_auth_failures_total{kind=\"wrong\"} 5"),
        "{m}"
    );
}

/// Hole 9: the audit log is reopened on SIGHUP (logrotate) and each request is written once.
fn the_audit_log_is_reopened_on_sighup() {
    let w = World::new();
    let p = w.start_proxy(&sandboxes(), "");
    let sb = Sandbox::new(&w, &p, "agent-a", SECRET_A);
    sb.clone("octo-org", "widgets", "w1", &[]).ok();
    let n = p.audit().len();
    assert!(n >= 2);
    std::fs::rename(&p.audit_path, p.audit_path.with_extension("old")).unwrap();
    let st = std::process::Command::new("kill")
        .args(["-HUP", &p.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.log().contains("audit log was reopened") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    sb.clone("octo-org", "widgets", "w2", &[]).ok();
    let fresh = p.audit();
    assert!(!fresh.is_empty(), "events go to the new file");
    // Written once: to the audit file, not also to the log.
    assert!(
        !p.log().contains("octo-org/widgets.git/info/refs"),
        "{}",
        p.log()
    );
}

/// Round 2, finding 1: fragments that each spread the next one twice (`2^20` mutation fields
/// from a 1 KiB request) are counted before anything is expanded: an error at once, the
/// proxy's memory unmoved, and it serves on.
fn a_fan_out_of_graphql_fragments_costs_nothing() {
    let w = World::new();
    let p = w.start_proxy(&sandboxes(), "");
    let mut q = String::from("mutation { ...F0 }\n");
    for i in 0..20 {
        q.push_str(&format!(
            "fragment F{i} on Mutation {{ ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    q.push_str("fragment F20 on Mutation { addComment(input: {subjectId: \"x\", body: \"y\"}) { clientMutationId } }\n");
    let body = serde_json::json!({ "query": q }).to_string();
    assert!(body.len() < 1500, "{}", body.len());
    let before = w.hub.requests().len();
    // Warm the proxy's allocator on an ordinary refusal, then measure.
    send(
        &w,
        &p,
        "POST",
        "/api/graphql",
        &[("Content-Type", "application/json")],
        br#"{"query":"mutation { x }"}"#,
    );
    let peak = p.peak_rss_kib();
    let start = Instant::now();
    let a = send(
        &w,
        &p,
        "POST",
        "/api/graphql",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    let took = start.elapsed();
    assert!(
        a.body.contains("runs more than 64 fields"),
        "{a:#?} after {took:?}"
    );
    assert!(
        p.peak_rss_kib().saturating_sub(peak) < 64 << 10,
        "peak RSS grew from {peak} to {} KiB",
        p.peak_rss_kib()
    );
    assert!(
        received_since(&w, before)
            .iter()
            .all(|r| !r.target.contains("graphql")),
        "nothing reached GitHub"
    );
    // And it serves on.
    let a = send(&w, &p, "GET", "/api/v3/repos/octo-org/widgets", &[], b"");
    assert_eq!(a.status, 200, "{a:#?}");
}

/// Round 2, finding 4: the side listeners (admin API, webhooks, metrics) run out of
/// descriptors under a flood, back off instead of ending their accept loop, and serve again
/// once descriptors are free.
fn the_side_listeners_survive_running_out_of_descriptors() {
    let w = World::new();
    let token = w.path("admin-token");
    std::fs::write(&token, "side-admin-token-0123456789abcdef").unwrap();
    let hook = w.path("hook-secret");
    std::fs::write(&hook, "side-hook-secret-0123456789").unwrap();
    let p = w.start_proxy(
        &sandboxes(),
        &format!(
            "admin_listen = \"127.0.0.1:0\"\nadmin_token = {{ file = {:?} }}\nstate = \"sqlite:{}\"\nwebhook_listen = \"127.0.0.1:0\"\nwebhook_secret = {{ file = {:?} }}\n",
            token.display().to_string(),
            w.path("state.db").display(),
            hook.display().to_string()
        ),
    );
    let admin = p.admin_url.clone().unwrap();
    let hooks = p.webhook_url.clone().unwrap();
    let addr = |url: &str| -> std::net::SocketAddr {
        url.trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    ghapp_e2e::needs("prlimit");
    let limit = std::process::Command::new("prlimit")
        .args(["--pid", &p.pid().to_string(), "--nofile=64:"])
        .status();
    assert!(limit.is_ok_and(|s| s.success()), "prlimit (util-linux)");
    let mut flood = Vec::new();
    for target in [addr(&admin), addr(&hooks)] {
        flood.extend((0..120).filter_map(|_| std::net::TcpStream::connect(target).ok()));
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = p.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let ticks = p.cpu_ticks() - before;
    assert!(
        ticks < 40,
        "{ticks} ticks of CPU in 2 s while out of descriptors"
    );
    drop(flood);
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &p.pid().to_string(), "--nofile=4096:"])
        .status();
    std::thread::sleep(Duration::from_millis(1500));
    let code = |url: String| -> String {
        ghapp_e2e::curl_local([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "5",
            &url,
        ])
    };
    assert_eq!(
        code(format!("{admin}/v1/sandboxes")),
        "401",
        "the admin API answers again"
    );
    assert_eq!(code(hooks), "404", "the webhook listener answers again");
    assert!(!p.metrics().is_empty(), "metrics answer again");
}

fn a_body_over_the_limit_is_answered_and_the_client_reads_why() {
    let w = World::new();
    let p = w.start_proxy(&sandboxes(), "");
    let before = w.hub.requests().len();
    let big = vec![b'x'; 8 << 20];
    for _ in 0..10 {
        let a = send(
            &w,
            &p,
            "POST",
            "/api/v3/repos/octo-org/widgets/pulls",
            &[("Content-Type", "application/json")],
            &big,
        );
        assert_eq!(a.status, 413, "{a:#?}");
        assert!(
            a.body
                .contains("the request body of 8388608 bytes is over the 1024 KiB the proxy reads"),
            "{a:#?}"
        );
    }
    // A client that waits for 100 Continue is answered 413 at once, never told to go on.
    let mut t = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
    t.write(
        format!(
            "POST /api/v3/repos/octo-org/widgets/pulls HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 8388608\r\nExpect: 100-continue\r\n\r\n",
            w.hub.git_host()
        )
        .as_bytes(),
    )
    .unwrap();
    let a = t.answer().unwrap();
    assert_eq!(a.status, 413, "{a:#?}");
    assert!(received_since(&w, before).is_empty());
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "rest_paths_are_decided_on_what_is_sent",
        rest_paths_are_decided_on_what_is_sent,
    ),
    (
        "git_routes_take_only_git_methods",
        git_routes_take_only_git_methods,
    ),
    (
        "idle_connections_and_tunnel_floods_are_bounded",
        idle_connections_and_tunnel_floods_are_bounded,
    ),
    (
        "idle_tunnels_are_closed_and_busy_ones_kept",
        idle_tunnels_are_closed_and_busy_ones_kept,
    ),
    (
        "running_out_of_descriptors_does_not_spin",
        running_out_of_descriptors_does_not_spin,
    ),
    (
        "a_command_section_in_tiny_chunks_costs_linear_time",
        a_command_section_in_tiny_chunks_costs_linear_time,
    ),
    (
        "stalled_bodies_time_out_and_their_memory_is_bounded",
        stalled_bodies_time_out_and_their_memory_is_bounded,
    ),
    (
        "a_revoked_token_is_replaced_not_kept",
        a_revoked_token_is_replaced_not_kept,
    ),
    (
        "tunnels_never_reach_internal_addresses",
        tunnels_never_reach_internal_addresses,
    ),
    (
        "wrong_proxy_credentials_are_audited_and_rate_limited",
        wrong_proxy_credentials_are_audited_and_rate_limited,
    ),
    (
        "the_audit_log_is_reopened_on_sighup",
        the_audit_log_is_reopened_on_sighup,
    ),
    (
        "a_fan_out_of_graphql_fragments_costs_nothing",
        a_fan_out_of_graphql_fragments_costs_nothing,
    ),
    (
        "the_side_listeners_survive_running_out_of_descriptors",
        the_side_listeners_survive_running_out_of_descriptors,
    ),
    (
        "a_body_over_the_limit_is_answered_and_the_client_reads_why",
        a_body_over_the_limit_is_answered_and_the_client_reads_why,
    ),
];
