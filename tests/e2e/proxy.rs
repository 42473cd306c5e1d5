//! `ghapp proxy` end to end: real git in a "sandbox" whose whole environment is HTTPS_PROXY and
//! the proxy's CA, the real proxy binary, fakehub upstream.

use std::io::{Read, Write};

use ghapp_e2e::{GH_PLACEHOLDER, ProxyProc, Run, SECRET_A, SECRET_B, Sandbox as Sb, World};

fn sandboxes() -> String {
    ghapp_e2e::two_sandboxes("")
}

/// The proxy with both sandboxes, and sandbox agent-a's view of the world.
fn setup(w: &World) -> (ProxyProc, Sb<'_>) {
    let p = w.start_proxy(&sandboxes(), "");
    let sb = Sb::new(w, &p, "agent-a", SECRET_A);
    (p, sb)
}

#[track_caller]
fn assert_clean(w: &World, p: &ProxyProc) {
    // Nothing the sandbox saw, nothing the proxy logged or audited, holds a token.
    w.capture(p.log());
    w.capture(std::fs::read_to_string(&p.audit_path).unwrap_or_default());
    w.assert_no_secrets();
}

fn a_sandbox_clones_fetches_and_pushes_its_branch_with_no_credentials() {
    let w = World::new();
    let (p, sb) = setup(&w);
    assert!(!sb.env.iter().any(|(k, _)| k.starts_with("GHAPP")));
    sb.clone("octo-org", "widgets", "widgets", &[]).ok();
    let work = w.path("widgets");
    let before = w
        .hub
        .counters()
        .requests
        .get("git POST git-upload-pack")
        .copied()
        .unwrap_or(0);
    sb.git(
        &work,
        &["-c", "protocol.version=2", "fetch", "--quiet", "origin"],
    )
    .ok();
    assert!(w.hub.counters().requests["git POST git-upload-pack"] > before);
    sb.push_new_branch(&work, "agent/one", "a.txt", b"from the sandbox\n");
    let mints = w.hub.counters().mints;
    assert_eq!(
        mints.len(),
        1,
        "one token for the sandbox's scope: {mints:?}"
    );
    assert_eq!(mints[0].repositories, Some(vec!["widgets".to_string()]));

    // The audit log: one line per request, the push with its ref update, a fingerprint.
    let audit = p.audit();
    let push = audit
        .iter()
        .find(|e| e["service"] == "git-receive-pack" && e["method"] == "POST")
        .expect("push audited");
    assert_eq!(push["sandbox"], "agent-a");
    assert_eq!(push["decision"], "allow");
    assert_eq!(push["repo"], "octo-org/widgets");
    assert_eq!(push["ref_updates"][0]["ref"], "refs/heads/agent/one");
    assert_eq!(push["upstream_status"], 200);
    assert!(push["token"].as_str().unwrap().starts_with("sha256:"));
    assert!(push["bytes_in"].as_u64().unwrap() > 0 && push["bytes_out"].as_u64().unwrap() > 0);
    assert_clean(&w, &p);
}

fn pushes_outside_the_policy_are_refused_the_git_way() {
    let w = World::new();
    let (p, sb) = setup(&w);
    sb.clone("octo-org", "widgets", "widgets", &[]).ok();
    let work = w.path("widgets");
    let main_before = w.hub_ref("octo-org", "widgets", "refs/heads/main");
    sb.commit(&work, "b.txt", b"to main\n");

    let r = sb.git(&work, &["push", "origin", "main"]);
    r.fails();
    assert!(
        r.stderr.contains(
            "! [remote rejected] main -> main (pushes allowed only to refs/heads/agent/*)"
        ),
        "{r:#?}"
    );
    assert!(
        r.stderr
            .contains("remote: ghapp proxy: push refused by sandbox agent-a policy"),
        "{r:#?}"
    );
    let q = sb.git(&work, &["push", "-q", "origin", "main"]);
    q.fails();
    assert!(
        q.stderr
            .contains("[remote rejected] main -> main (pushes allowed only to refs/heads/agent/*)"),
        "{q:#?}"
    );
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/main"),
        main_before
    );

    // Deletes are refused unless allowed.
    sb.git(
        &work,
        &["push", "--quiet", "origin", "HEAD:refs/heads/agent/keep"],
    )
    .ok();
    let d = sb.git(&work, &["push", "origin", ":agent/keep"]);
    d.fails();
    assert!(d.stderr.contains("deleting refs is not allowed"), "{d:#?}");
    assert!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/keep")
            .is_some()
    );

    // An atomic push of an allowed and a denied ref is refused whole.
    let a = sb.git(
        &work,
        &[
            "push",
            "--atomic",
            "origin",
            "HEAD:refs/heads/agent/atomic",
            "main",
        ],
    );
    a.fails();
    assert!(a.stderr.contains("atomic push failed"), "{a:#?}");
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/atomic"),
        None
    );

    let audit = p.audit();
    assert!(audit.iter().any(|e| {
        e["decision"] == "deny"
            && e["service"] == "git-receive-pack"
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .contains("refs/heads/main")
    }));
    assert_clean(&w, &p);
}

fn large_and_shallow_pushes_pass() {
    let w = World::new();
    let (p, sb) = setup(&w);
    // Over 1 MiB: git sends its "0000" probe first.
    sb.clone("octo-org", "widgets", "big", &[]).ok();
    let work = w.path("big");
    let blob: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    sb.push_new_branch(&work, "agent/big", "big.bin", &blob);

    // A shallow clone pushes a new branch.
    sb.clone("octo-org", "widgets", "shallow", &["--depth", "1"])
        .ok();
    let sh = w.path("shallow");
    sb.push_new_branch(&sh, "agent/shallow", "s.txt", b"shallow\n");
    assert_clean(&w, &p);
}

fn sandboxes_reach_only_their_repositories_and_need_their_secret() {
    let w = World::new();
    let (p, a) = setup(&w);
    let b = Sb::new(&w, &p, "agent-b", SECRET_B);
    // Outside the list: refused, and no token minted for it.
    let r = a.clone("octo-org", "gadgets", "g1", &[]);
    r.fails();
    assert!(r.stderr.contains("403"), "{r:#?}");
    let r = b.clone("octo-org", "widgets", "w1", &[]);
    r.fails();
    assert_eq!(
        w.hub.mint_count(),
        0,
        "no token for repositories outside a sandbox"
    );
    b.clone("octo-org", "gadgets", "g2", &[]).ok();
    a.clone("octo-org", "widgets", "w2", &[]).ok();
    let mints = w.hub.counters().mints;
    assert_eq!(mints.len(), 2);
    assert!(
        mints
            .iter()
            .all(|m| m.repositories.as_ref().unwrap().len() == 1)
    );

    // A wrong secret, or none: 407 and nothing forwarded.
    let requests_before: u64 = w.hub.counters().requests.values().sum();
    let wrong = Sb::new(&w, &p, "agent-a", "not-the-secret-at-all");
    wrong.clone("octo-org", "widgets", "w3", &[]).fails();
    let (status, headers) = raw_connect(&p.addr, &w.hub.git_host(), None);
    assert_eq!(status, 407, "{headers}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("proxy-authenticate: basic"),
        "{headers}"
    );
    let (status, _) = raw_connect(
        &p.addr,
        &w.hub.git_host(),
        Some(("agent-a", "wrong-secret-wrong-secret")),
    );
    assert_eq!(status, 407);
    assert_eq!(
        w.hub.counters().requests.values().sum::<u64>(),
        requests_before
    );
    assert_clean(&w, &p);
}

/// Sends `CONNECT target` to the proxy and returns the status and headers.
fn raw_connect(proxy: &str, target: &str, auth: Option<(&str, &str)>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((n, p)) = auth {
        let b = ghapp_gitproto::basic::encode(n, p);
        req.push_str(&format!("Proxy-Authorization: {b}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn other_hosts_are_refused_or_tunnelled_untouched() {
    let w = World::new();
    // A plain TCP echo server stands for "some other host".
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in echo.incoming().take(4) {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut b = [0u8; 1024];
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 || s.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let deny = w.start_proxy(&sandboxes(), "");
    let (status, _) = raw_connect(&deny.addr, &echo_addr, Some(("agent-a", SECRET_A)));
    assert_eq!(status, 403);
    drop(deny);

    // Tunnels to loopback are refused unless listed.
    let tunnel = w.start_proxy(&sandboxes(), "egress = \"tunnel\"");
    let (status, _) = raw_connect(&tunnel.addr, &echo_addr, Some(("agent-a", SECRET_A)));
    assert_eq!(status, 403);
    drop(tunnel);
    let tunnel = w.start_proxy(
        &sandboxes(),
        &format!("egress = \"tunnel\"\negress_allow = [\"{echo_addr}\"]"),
    );
    let mut s = std::net::TcpStream::connect(&tunnel.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let b = ghapp_gitproto::basic::encode("agent-a", SECRET_A);
    s.write_all(
        format!(
            "CONNECT {echo_addr} HTTP/1.1\r\nHost: {echo_addr}\r\nProxy-Authorization: {b}\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut head = Vec::new();
    let mut one = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut one).unwrap();
        head.push(one[0]);
    }
    assert!(
        String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let payload = b"\x16\x03\x01 not TLS, not HTTP: bytes pass untouched \x00\xff";
    s.write_all(payload).unwrap();
    let mut back = vec![0u8; payload.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back[..], &payload[..]);
}

fn the_ca_is_served_and_metrics_are_exposed() {
    let w = World::new();
    let (p, sb) = setup(&w);
    sb.clone("octo-org", "widgets", "widgets", &[]).ok();
    let get = |addr: &str, path: &str| -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let ca = get(&p.addr, "/ca.pem");
    assert!(ca.contains("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_eq!(
        ca.split("\r\n\r\n").nth(1).unwrap().trim(),
        std::fs::read_to_string(&p.ca_path).unwrap().trim()
    );
    let m = get(p.metrics_addr.as_deref().unwrap(), "/metrics");
    assert!(m.contains("ghapp_proxy_requests_total{sandbox=\"agent-a\",service=\"git-upload-pack\",decision=\"allow\"}"), "{m}");
    // One mint, the rest from the cache; upstream latency as a histogram; HELP and TYPE.
    assert!(m.contains("ghapp_proxy_mints_total 1\n"), "{m}");
    assert!(!m.contains("ghapp_proxy_token_cache_hits_total 0\n"), "{m}");
    assert!(
        m.contains("# TYPE ghapp_proxy_upstream_latency_seconds histogram"),
        "{m}"
    );
    assert!(
        m.contains("ghapp_proxy_upstream_latency_seconds_count{service=\"git-upload-pack\"}"),
        "{m}"
    );
    assert!(m.contains("# HELP ghapp_proxy_requests_total "), "{m}");
    let key = p.ca_path.with_file_name("ca-key.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// curl as the sandbox's REST client: `(status, body)`; output is scanned for tokens.
fn curl(
    w: &World,
    p: &ProxyProc,
    sandbox: (&str, &str),
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let url = format!("{}{path}", w.hub.api_url());
    let proxy = format!("http://{}:{}@{}", sandbox.0, sandbox.1, p.addr);
    let ca = p.ca_path.display().to_string();
    let mut args = vec![
        "-sS",
        "-i",
        "--proxy",
        &proxy,
        "--cacert",
        &ca,
        "-X",
        method,
        "-H",
        "Accept: application/vnd.github+json",
    ];
    if let Some(b) = body {
        args.extend_from_slice(&["-H", "Content-Type: application/json", "--data", b]);
    }
    args.push(&url);
    let env = vec![
        (
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_default(),
        ),
        ("HOME".to_string(), w.path("home").display().to_string()),
    ];
    let r = w.cmd("curl").env(&env).args(&args).run();
    // The tunnel answer (HTTP/1.1 200 Connection established) comes first; the last head counts.
    let last = r.stdout.rsplit("\r\n\r\nHTTP/").next().unwrap_or(&r.stdout);
    let status = last
        .trim_start_matches("HTTP/")
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = last
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn rest_calls_pass_the_allow_list_only() {
    let w = World::new();
    let (p, sb) = setup(&w);
    sb.clone("octo-org", "widgets", "widgets", &[]).ok();
    let work = w.path("widgets");
    sb.git(&work, &["switch", "--quiet", "-c", "agent/rest"])
        .ok();
    sb.commit(&work, "r.txt", b"rest\n");
    sb.git(&work, &["push", "--quiet", "origin", "agent/rest"])
        .ok();
    let a = ("agent-a", SECRET_A);

    let (status, body) = curl(&w, &p, a, "GET", "/repos/octo-org/widgets", None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"full_name\":\"octo-org/widgets\""));
    let (status, body) = curl(
        &w,
        &p,
        a,
        "POST",
        "/repos/octo-org/widgets/pulls",
        Some(r#"{"title":"From the sandbox","head":"agent/rest","base":"main"}"#),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(w.hub.pulls().len(), 1);

    let creates_before = w
        .hub
        .counters()
        .requests
        .get("POST /repos/{owner}/{repo}/pulls")
        .copied();
    for (method, path, body, want) in [
        (
            "POST",
            "/repos/octo-org/widgets/pulls",
            Some(r#"{"title":"x","head":"main","base":"agent/rest"}"#),
            "pull request head \"main\" is not allowed for sandbox agent-a",
        ),
        (
            "POST",
            "/repos/octo-org/widgets/pulls",
            Some(r#"{"title":"x","head":"evil:agent/rest","base":"main"}"#),
            "fork",
        ),
        (
            "DELETE",
            "/repos/octo-org/widgets",
            None,
            "DELETE /repos/octo-org/widgets is not allowed for sandbox agent-a",
        ),
        (
            "POST",
            "/graphql",
            Some(r#"{"query":"{viewer{login}}"}"#),
            "POST /graphql is not allowed",
        ),
        (
            "PUT",
            "/repos/octo-org/widgets/pulls/1/merge",
            Some(r#"{"merge_method":"squash"}"#),
            "sandbox agent-a may not merge pull requests: merging is for autonomous sandboxes with allow_merge = true",
        ),
        (
            "GET",
            "/repos/octo-org/gadgets",
            None,
            "octo-org/gadgets is not among sandbox agent-a's repositories",
        ),
    ] {
        let (status, text) = curl(&w, &p, a, method, path, body);
        assert_eq!(status, 403, "{method} {path}: {text}");
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON: {text}"));
        assert!(
            v["message"].as_str().unwrap().contains(want),
            "{method} {path}: {text}"
        );
    }
    let c = w.hub.counters();
    assert_eq!(
        c.requests.get("POST /repos/{owner}/{repo}/pulls").copied(),
        creates_before
    );
    assert!(
        !c.requests
            .keys()
            .any(|k| k.starts_with("DELETE") || k.contains("graphql") || k.contains("merge")),
        "{:?}",
        c.requests
    );
    assert_eq!(w.hub.pulls().len(), 1);
    assert_clean(&w, &p);
}

fn upstream_faults_are_named_and_one_sandbox_cannot_stall_another() {
    let mut w = World::new();
    let (p, a) = setup(&w);
    let b = Sb::new(&w, &p, "agent-b", SECRET_B);
    // A stalled upstream for agent-a's repository does not hold agent-b up.
    // (Generous bounds: other tests in this binary load the machine, 100 clones among them.)
    w.hub.stall_git(Some("octo-org/widgets"), 8_000);
    std::thread::scope(|s| {
        let slow = s.spawn(|| a.clone("octo-org", "widgets", "slow", &[]));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let fast = b.clone("octo-org", "gadgets", "fast", &[]);
        fast.ok();
        assert!(
            fast.elapsed < std::time::Duration::from_secs(7),
            "{fast:#?}"
        );
        let slow = slow.join().unwrap();
        slow.ok();
        assert!(
            slow.elapsed >= std::time::Duration::from_secs(8),
            "the stall was real: {slow:#?}"
        );
    });
    w.hub.stall_git(None, 0);

    // Minting failing: 503 with a message. Both sandboxes' tokens are cached by this proxy, so
    // a fresh proxy (its own empty cache) has to mint.
    w.hub.fail_next_mints(10, 403);
    drop(p);
    let p = w.start_proxy(&sandboxes(), "");
    let (status, body) = curl(
        &w,
        &p,
        ("agent-a", SECRET_A),
        "GET",
        "/repos/octo-org/widgets",
        None,
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("ghapp proxy: cannot mint a token"), "{body}");
    w.hub.fail_next_mints(0, 403);
    let (status, _) = curl(
        &w,
        &p,
        ("agent-a", SECRET_A),
        "GET",
        "/repos/octo-org/widgets",
        None,
    );
    assert_eq!(status, 200);

    // The emulator down: 502 naming the upstream.
    let upstream = w.hub.url();
    w.hub.shutdown();
    let (status, body) = curl(
        &w,
        &p,
        ("agent-a", SECRET_A),
        "GET",
        "/repos/octo-org/widgets",
        None,
    );
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains(&format!("upstream {upstream} is unreachable")),
        "{body}"
    );
    assert_clean(&w, &p);
}

fn a_hundred_concurrent_clones_mint_once_per_sandbox_scope() {
    let w = World::new();
    let (p, a) = setup(&w);
    let b = Sb::new(&w, &p, "agent-b", SECRET_B);
    let results: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let (sb, repo) = if i % 2 == 0 {
                    (&a, "widgets")
                } else {
                    (&b, "gadgets")
                };
                s.spawn(move || sb.clone("octo-org", repo, &format!("c{i}"), &[]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failed: Vec<&Run> = results.iter().filter(|r| !r.success()).collect();
    assert!(
        failed.is_empty(),
        "{} of 100 clones failed: {:#?}",
        failed.len(),
        failed.first()
    );
    let mints = w.hub.counters().mints;
    assert_eq!(mints.len(), 2, "one mint per sandbox scope: {mints:?}");
    assert_clean(&w, &p);
}

fn one_proxy_serves_several_apps_each_for_its_owners() {
    // Issue 11, trap 3: [[app]] tables in the proxy, each for its owners (here the same app
    // with a fixed installation per owner, as two organisations' apps would be).
    let w = World::new();
    let apps = w.app_table("installation_id = 101\nowners = [\"octo-org\"]")
        + &w.app_table("installation_id = 102\nowners = [\"octo-user\"]");
    let sandboxes = format!(
        "[[sandbox]]\nname = \"agent-a\"\nsecret = \"{SECRET_A}\"\nrepos = [\"octo-org/widgets\", \"octo-user/dotfiles\"]\npush = [\"refs/heads/agent/*\"]\n"
    );
    let p = w.start_proxy_with_apps(&sandboxes, "", &apps);
    let sb = Sb::new(&w, &p, "agent-a", SECRET_A);
    sb.clone("octo-org", "widgets", "widgets", &[]).ok();
    sb.clone("octo-user", "dotfiles", "dotfiles", &[]).ok();
    let installs: Vec<u64> = w
        .hub
        .counters()
        .mints
        .iter()
        .map(|m| m.installation_id)
        .collect();
    assert_eq!(installs, [101, 102]);
    w.capture(p.log());
    w.assert_no_secrets();
}

fn git_told_to_use_basic_opens_tunnels_with_its_credentials() {
    // The sandbox environment the proxy prints says GIT_HTTP_PROXY_AUTHMETHOD=basic: git then
    // authenticates its first CONNECT, and the metric of missing credentials stays at 0; without
    // it git tries without credentials first, which the metric counts apart from wrong ones.
    let w = World::new();
    let p = w.start_proxy(&sandboxes(), "");
    let missing = |p: &ProxyProc| -> u64 {
        p.metrics()
            .lines()
            .find_map(|l| l.strip_prefix("ghapp_proxy_auth_failures_total{kind=\"missing\"} "))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    let mut sb = Sb::new(&w, &p, "agent-a", SECRET_A);
    sb.env
        .push(("GIT_HTTP_PROXY_AUTHMETHOD".into(), "basic".into()));
    sb.clone("octo-org", "widgets", "basic", &[]).ok();
    assert_eq!(missing(&p), 0);
    let plain = Sb::new(&w, &p, "agent-a", SECRET_A);
    plain.clone("octo-org", "widgets", "plain", &[]).ok();
    assert!(missing(&p) > 0);
    let wrong = p.metrics();
    assert!(!wrong.contains("kind=\"wrong\"} 1"), "{wrong}");
}

fn sighup_reloads_sandboxes_and_policy_and_keeps_open_tunnels() {
    // Issue 11, conventions: policies, sandboxes and egress reload on SIGHUP; open tunnels stay
    // (their next request is decided on the new policy); a file that does not load keeps the
    // old configuration and says why.
    let w = World::new();
    let (p, sb) = setup(&w);
    sb.clone("octo-org", "widgets", "widgets", &[]).ok();
    let mut t = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
    let refs = "/octo-org/widgets.git/info/refs?service=git-upload-pack";
    assert_eq!(t.get_keep_alive(refs).unwrap().status, 200);

    let hup = |p: &ProxyProc, want: &str| {
        let seen = p.log().matches(want).count();
        let st = std::process::Command::new("kill")
            .args(["-HUP", &p.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while p.log().matches(want).count() == seen {
            assert!(
                std::time::Instant::now() < deadline,
                "no {want:?} in:\n{}",
                p.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let before = std::fs::read_to_string(&p.config_path).unwrap();
    let after = before
        .replace(
            "push = [\"refs/heads/agent/*\"]",
            "push = [\"refs/heads/feature/*\"]",
        )
        .replace("name = \"agent-b\"", "name = \"agent-c\"");
    assert_ne!(before, after);
    std::fs::write(&p.config_path, &after).unwrap();
    hup(
        &p,
        "the configuration was reloaded: 2 sandboxes (added: agent-c; removed: agent-b)",
    );

    // The tunnel opened before is still open and still serves.
    assert_eq!(t.get_keep_alive(refs).unwrap().status, 200);
    // agent-a's new push policy applies at once.
    let work = w.path("widgets");
    sb.commit(&work, "r.txt", b"r\n");
    let old = sb.git(&work, &["push", "origin", "HEAD:refs/heads/agent/r"]);
    old.fails();
    assert!(
        old.stderr
            .contains("pushes allowed only to refs/heads/feature/*"),
        "{old:#?}"
    );
    sb.git(
        &work,
        &["push", "--quiet", "origin", "HEAD:refs/heads/feature/r"],
    )
    .ok();
    // agent-b is gone, agent-c (its secret) is new.
    let b = Sb::new(&w, &p, "agent-b", SECRET_B);
    b.clone("octo-org", "gadgets", "b-gadgets", &[]).fails();
    let c = Sb::new(&w, &p, "agent-c", SECRET_B);
    c.clone("octo-org", "gadgets", "c-gadgets", &[]).ok();

    // A broken file keeps what runs.
    std::fs::write(&p.config_path, "[[sandbox]\n").unwrap();
    hup(&p, "the configuration was not reloaded, the old one stays");
    c.clone("octo-org", "gadgets", "c-gadgets-2", &[]).ok();
    assert_clean(&w, &p);
}

fn graphql_queries_pass_and_everything_else_is_refused_in_graphqls_shape() {
    // Issue 12: POST /api/graphql (GHES's path; /graphql on github.com) is read with a real
    // parser. A query goes to GitHub with the sandbox's token; a mutation off the allow-list, one
    // without its input, or a subscription is refused in GraphQL's error shape (gh and Octokit
    // print errors[].message), naming the sandbox and the rule, and GitHub receives nothing. Git
    // LFS off its APIs is refused in git-lfs's own shape.
    let w = World::new();
    let (p, _sb) = setup(&w);
    let host = w.hub.git_host();
    let post = |body: &str| {
        let mut t = p.tunnel("agent-a", SECRET_A, &host);
        t.request(
            "POST",
            "/api/graphql",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap()
    };
    let before = w.hub.requests().len();
    let refused = [
        (
            r#"{"query":"mutation { enablePullRequestAutoMerge(input: {pullRequestId: \"PR_1\"}) { clientMutationId } }"}"#,
            "sandbox agent-a: mutation enablePullRequestAutoMerge is not allowed (policy: GraphQL mutations pass only from the allow-list: createPullRequest,",
        ),
        (
            r#"{"query":"mutation { deleteRef(input: {}) { clientMutationId } }"}"#,
            "sandbox agent-a: deleteRef needs input.refId",
        ),
        (
            r#"{"query":"query Q { viewer { login } } mutation M { m: mergePullRequest(input: {pullRequestId: \"PR_1\"}) { clientMutationId } }","operationName":"M"}"#,
            "mutation mergePullRequest is not allowed",
        ),
        (
            r#"{"query":"subscription { x }"}"#,
            "subscriptions are refused",
        ),
        (r#"{"query":"mutation { a("}"#, "does not parse"),
        (
            r#"{"query":"{ a }","query":"mutation { deleteRef(input: {}) { x } }"}"#,
            "duplicate field",
        ),
    ];
    for (body, want) in refused {
        let a = post(body);
        // As GitHub answers a GraphQL request it refuses: 200 with `errors`.
        assert_eq!(a.status, 200, "{body}: {a:#?}");
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        let msg = v["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(want), "{body}: {msg}");
        assert_eq!(v["message"], v["errors"][0]["message"]);
    }
    let mut t = p.tunnel("agent-a", SECRET_A, &host);
    let a = t.request("GET", "/api/graphql", &[], b"").unwrap();
    assert_eq!(a.status, 405, "{a:#?}");
    // Git LFS off its batch and locks APIs, or for another repository: refused in git-lfs's
    // own JSON, so git-lfs prints the message.
    for (path, want) in [
        (
            "/octo-org/widgets.git/info/lfs/objects/nope",
            "sandbox agent-a: only Git LFS's batch and locks APIs pass",
        ),
        (
            "/octo-org/gadgets.git/info/lfs/objects/batch",
            "sandbox agent-a: octo-org/gadgets is not among sandbox agent-a's repositories",
        ),
    ] {
        let mut t = p.tunnel("agent-a", SECRET_A, &host);
        let a = t
            .request(
                "POST",
                path,
                &[("Content-Type", "application/vnd.git-lfs+json")],
                br#"{"operation":"download","objects":[]}"#,
            )
            .unwrap();
        assert_eq!(a.status, 403, "{a:#?}");
        assert_eq!(
            a.header("content-type").as_deref(),
            Some("application/vnd.git-lfs+json")
        );
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert!(v["message"].as_str().unwrap().contains(want), "{a:#?}");
    }
    let got: Vec<_> = w.hub.requests().into_iter().skip(before).collect();
    assert!(got.is_empty(), "GitHub received: {got:#?}");

    // A query is forwarded, with the sandbox's token, and answered.
    let a = post(
        r#"{"query":"query Repo($o: String!) { repository(owner: $o, name: \"widgets\") { name } }","variables":{"o":"octo-org"}}"#,
    );
    assert_eq!(a.status, 200, "{a:#?}");
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["data"]["repository"]["name"], "widgets", "{a:#?}");
    let got: Vec<_> = w.hub.requests().into_iter().skip(before).collect();
    let graphql: Vec<_> = got.iter().filter(|r| r.target == "/api/graphql").collect();
    assert_eq!(graphql.len(), 1, "{got:#?}");
    assert_eq!(graphql[0].method, "POST");
    let token = graphql[0].credential.clone().expect("a token was injected");
    assert!(
        w.hub
            .issued_tokens()
            .iter()
            .any(|t| ghapp_core::secret::fingerprint(t) == token),
        "{token}"
    );
    // A fragment that spreads itself is an answer with an error, not a crashed emulator.
    let a = post(
        r#"{"query":"{ repository(owner: \"octo-org\", name: \"widgets\") { ...F } } fragment F on Repository { name ...F }"}"#,
    );
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nests deeper")),
        "{a:#?}"
    );
    assert_clean(&w, &p);
}

fn a_partial_clone_fetches_lazily_through_the_proxy() {
    // Issue 12: `--filter=blob:none` is served as GitHub serves it, so the clone leaves the
    // blobs behind and fetches them when a checkout needs them, through the proxy.
    let w = World::new();
    let (p, sb) = setup(&w);
    sb.clone(
        "octo-org",
        "widgets",
        "partial",
        &["--filter=blob:none", "--no-checkout"],
    )
    .ok();
    let dir = w.path("partial");
    let missing = |sb: &Sb<'_>| {
        sb.git(&dir, &["rev-list", "--objects", "--all", "--missing=print"])
            .ok()
            .stdout
            .lines()
            .filter(|l| l.starts_with('?'))
            .count()
    };
    assert!(
        missing(&sb) > 0,
        "the clone fetched every blob: the filter was ignored"
    );
    assert_eq!(
        sb.git(&dir, &["config", "remote.origin.promisor"])
            .ok()
            .stdout
            .trim(),
        "true"
    );
    let uploads = || {
        w.hub
            .counters()
            .requests
            .get("git POST git-upload-pack")
            .copied()
            .unwrap_or(0)
    };
    let before = uploads();
    sb.git(&dir, &["checkout", "--quiet", "main"]).ok();
    assert!(uploads() > before, "the checkout fetched its blobs lazily");
    assert!(dir.join("README.md").exists());
    assert_clean(&w, &p);
}

fn an_upstream_served_under_a_name_is_reached_through_resolve() {
    // Issue 12 groundwork: Go clients (gh, git-lfs) never send loopback addresses to a proxy,
    // so their tests need the emulator under a name. The sandbox asks for ghe.test; the proxy
    // alone resolves it (`resolve`), as it would a GHES behind split DNS; no /etc/hosts edit.
    let w = World::with(fakehub::Options {
        hostname: Some("ghe.test".into()),
        ..Default::default()
    });
    assert!(
        w.hub.git_host().starts_with("ghe.test:"),
        "{}",
        w.hub.git_host()
    );
    let p = w.start_proxy(&sandboxes(), "resolve = [\"ghe.test=127.0.0.1\"]");
    let sb = Sb::new(&w, &p, "agent-a", SECRET_A);
    sb.clone("octo-org", "widgets", "widgets", &[]).ok();
    sb.push_new_branch(&w.path("widgets"), "agent/named", "n.txt", b"n\n");
    assert_clean(&w, &p);
}

/// A sandbox's environment for `gh` against the emulator served as `ghe.test`: gh talks to
/// it as a GitHub Enterprise Server through the proxy, with a placeholder for a token (the
/// proxy drops it and injects the sandbox's).
fn gh_env(w: &World, p: &ProxyProc) -> Vec<(String, String)> {
    w.gh_env(p, w.sandbox_env(p, "agent-a", SECRET_A))
}

fn gh_rest_and_graphql_through_the_proxy() {
    // Issue 12 (started): the real gh in a sandbox. REST passes the allow-list; a refused REST
    // call and a GraphQL mutation print the proxy's reason through gh; GitHub never sees them
    // nor the placeholder token.
    ghapp_e2e::needs("gh");
    let w = World::with(fakehub::Options {
        hostname: Some("ghe.test".into()),
        ..Default::default()
    });
    let p = w.start_proxy(&sandboxes(), "resolve = [\"ghe.test=127.0.0.1\"]");
    let env = gh_env(&w, &p);
    let gh = |args: &[&str]| w.cmd("gh").env(&env).args(args).run();
    let r = gh(&["api", "repos/octo-org/widgets", "--jq", ".full_name"]);
    r.ok();
    assert_eq!(r.stdout.trim(), "octo-org/widgets");
    // A GraphQL query passes: fakehub answers it from GitHub's schema, strictly.
    let q = "query($o: String!, $n: String!) { repository(owner: $o, name: $n) { nameWithOwner defaultBranchRef { name } } }";
    let r = gh(&[
        "api",
        "graphql",
        "-f",
        &format!("query={q}"),
        "-f",
        "o=octo-org",
        "-f",
        "n=widgets",
        "--jq",
        ".data.repository | .nameWithOwner + \" \" + .defaultBranchRef.name",
    ]);
    r.ok();
    assert_eq!(r.stdout.trim(), "octo-org/widgets main");
    let r = gh(&[
        "repo",
        "view",
        "octo-org/widgets",
        "--json",
        "nameWithOwner,defaultBranchRef,isPrivate",
    ]);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["nameWithOwner"], "octo-org/widgets");
    assert_eq!(v["defaultBranchRef"]["name"], "main");
    let r = gh(&[
        "api",
        "graphql",
        "-f",
        "query={ repository(owner: \"octo-org\", name: \"widgets\") { nope } }",
    ]);
    r.fails();
    assert!(
        r.stderr
            .contains("Field 'nope' doesn't exist on type 'Repository'"),
        "{r:#?}"
    );
    let before = w.hub.requests().len();
    let r = gh(&["api", "-X", "DELETE", "repos/octo-org/widgets"]);
    r.fails();
    assert!(
        r.stderr.contains(
            "ghapp proxy: DELETE /repos/octo-org/widgets is not allowed for sandbox agent-a"
        ),
        "{r:#?}"
    );
    let r = gh(&[
        "api",
        "graphql",
        "-f",
        "query=mutation { mergePullRequest(input: {pullRequestId: \"PR_1\"}) { clientMutationId } }",
    ]);
    r.fails();
    assert!(
        r.stderr
            .contains("mutation mergePullRequest is not allowed"),
        "{r:#?}"
    );
    let got: Vec<_> = w.hub.requests().into_iter().skip(before).collect();
    assert!(got.is_empty(), "GitHub received: {got:#?}");
    let placeholder = ghapp_core::secret::fingerprint(GH_PLACEHOLDER);
    assert!(
        w.hub
            .requests()
            .iter()
            .all(|r| r.credential.as_deref() != Some(placeholder.as_str())),
        "the placeholder reached GitHub"
    );
    assert_clean(&w, &p);
}

/// gh's arguments, and what it reads on its standard input.
type GhCall = (Vec<String>, Option<String>);

/// `gh api graphql` sending the mutation `field` with `input`: the arguments and the body for
/// its standard input.
fn gh_mutation(field: &str, input: &serde_json::Value) -> GhCall {
    let mut ty = field.to_owned();
    ty[..1].make_ascii_uppercase();
    let body = serde_json::json!({
        "query": format!("mutation($input: {ty}Input!) {{ {field}(input: $input) {{ clientMutationId }} }}"),
        "variables": {"input": input},
    });
    (
        ["api", "graphql", "--input", "-"].map(String::from).into(),
        Some(body.to_string()),
    )
}

fn gh_opens_lists_views_and_comments_on_pull_requests_through_the_proxy() {
    // Issue 12: gh's own pull-request commands in a sandbox (GraphQL underneath), and the
    // mutations the policy refuses, each printed by gh with the proxy's reason and none of
    // them arriving at GitHub.
    let w = World::with(fakehub::Options {
        hostname: Some("ghe.test".into()),
        ..Default::default()
    });
    let p = w.start_proxy(&sandboxes(), "resolve = [\"ghe.test=127.0.0.1\"]");
    let sb = Sb::new(&w, &p, "agent-a", SECRET_A);
    sb.clone("octo-org", "widgets", "widgets", &[]).ok();
    let work = w.path("widgets");
    sb.push_new_branch(&work, "agent/x", "x.txt", b"from the agent\n");
    let env = gh_env(&w, &p);
    let gh = |args: &[&str]| w.cmd("gh").env(&env).dir(&work).args(args).run();
    let repo = ["-R", "octo-org/widgets"];

    let r = gh(&["repo", "view", "octo-org/widgets"]);
    r.ok();
    assert!(r.stdout.contains("octo-org/widgets"), "{r:#?}");
    let r = gh(&[
        "pr",
        "create",
        "-R",
        "octo-org/widgets",
        "--head",
        "agent/x",
        "--base",
        "main",
        "--title",
        "From the agent",
        "--body",
        "Made in a sandbox.",
    ]);
    r.ok();
    assert!(r.stdout.contains("/octo-org/widgets/pull/1"), "{r:#?}");
    let pulls = w.hub.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(
        (pulls[0].head.as_str(), pulls[0].title.as_str()),
        ("agent/x", "From the agent")
    );
    let r = gh(&[&["pr", "list"][..], &repo].concat());
    r.ok();
    assert!(
        r.stdout.contains("From the agent") && r.stdout.contains("agent/x"),
        "{r:#?}"
    );
    let r = gh(&[&["pr", "view", "1"][..], &repo].concat());
    r.ok();
    assert!(
        r.stdout.contains("From the agent") && r.stdout.contains("Made in a sandbox."),
        "{r:#?}"
    );
    let r = gh(&[
        &["pr", "comment", "1", "--body", "A note from the agent."][..],
        &repo,
    ]
    .concat());
    r.ok();
    assert_eq!(w.hub.pulls()[0].comments, 1);
    let r = gh(&[&["pr", "view", "1", "--comments"][..], &repo].concat());
    r.ok();
    assert!(r.stdout.contains("A note from the agent."), "{r:#?}");
    gh(&[&["issue", "list"][..], &repo].concat()).ok();
    // gh pr status: its search for the viewer's pull requests (issueCount) and the branch's.
    let r = gh(&[&["pr", "status"][..], &repo].concat());
    r.ok();
    assert!(
        r.stdout.contains("Created by you") && r.stdout.contains("From the agent"),
        "{r:#?}"
    );
    // No CI ran on fakehub: gh says so, as it does on GitHub (and exits 1).
    let r = gh(&[&["pr", "checks", "1"][..], &repo].concat());
    assert!(
        r.stderr
            .contains("no checks reported on the 'agent/x' branch"),
        "{r:#?}"
    );

    // The ids the refused mutations aim at, as gh itself would find them.
    let q = "{ a: repository(owner: \"octo-org\", name: \"widgets\") { id ref(qualifiedName: \"refs/heads/main\") { id target { oid } } pullRequest(number: 1) { id } } }";
    let r = gh(&["api", "graphql", "-f", &format!("query={q}")]);
    r.ok();
    let ids: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let a = &ids["data"]["a"];
    let (repo_id, main_ref, main_oid, pr_id) = (
        a["id"].as_str().unwrap(),
        a["ref"]["id"].as_str().unwrap(),
        a["ref"]["target"]["oid"].as_str().unwrap(),
        a["pullRequest"]["id"].as_str().unwrap(),
    );
    let gadgets = format!("R_kgDO{}", w.hub.repo_id("octo-org", "gadgets").unwrap());
    let before = w.hub.counters().graphql.len();
    let main_before = w.hub_ref("octo-org", "widgets", "refs/heads/main");
    let refused: [(&str, GhCall, &str); 5] = [
        (
            "mergePullRequest",
            (
                ["pr", "merge", "1", "--squash", "-R", "octo-org/widgets"]
                    .map(String::from)
                    .into(),
                None,
            ),
            "mutation mergePullRequest is not allowed",
        ),
        (
            "createCommitOnBranch",
            gh_mutation(
                "createCommitOnBranch",
                &serde_json::json!({
                    "branch": {"repositoryNameWithOwner": "octo-org/widgets", "branchName": "main"},
                    "expectedHeadOid": main_oid,
                    "message": {"headline": "sneaky"},
                    "fileChanges": {"additions": [{"path": "x", "contents": "eA=="}]},
                }),
            ),
            "refs/heads/main: pushes allowed only to refs/heads/agent/*",
        ),
        (
            "updateRef",
            gh_mutation(
                "updateRef",
                &serde_json::json!({"refId": main_ref, "oid": main_oid, "force": true}),
            ),
            "refs/heads/main: pushes allowed only to refs/heads/agent/*",
        ),
        (
            "createPullRequest",
            gh_mutation(
                "createPullRequest",
                &serde_json::json!({
                    "repositoryId": gadgets, "headRefName": "agent/x", "baseRefName": "main", "title": "elsewhere",
                }),
            ),
            "is not a repository that sandbox agent-a's token can reach",
        ),
        (
            "closePullRequest",
            gh_mutation(
                "closePullRequest",
                &serde_json::json!({"pullRequestId": "PR_kwDO999_1"}),
            ),
            "is not a pull request that sandbox agent-a's token can reach",
        ),
    ];
    let gh_with = |(args, stdin): &GhCall| {
        let c = w.cmd("gh").env(&env).dir(&work).args(args);
        match stdin {
            Some(s) => c.stdin(s).run(),
            None => c.run(),
        }
    };
    for (name, call, why) in &refused {
        let r = gh_with(call);
        r.fails();
        assert!(
            r.stderr.contains("sandbox agent-a") && r.stderr.contains(why),
            "{name}: {r:#?}"
        );
        // gh prints a GraphQL error's message, not the raw body of a non-200 answer.
        assert!(
            r.stderr.contains("ghapp proxy: sandbox agent-a")
                && !r.stderr.contains("non-200 OK status code")
                && !r.stderr.contains("\"errors\""),
            "{name}: {r:#?}"
        );
    }
    let arrived: Vec<String> = w.hub.counters().graphql[before..]
        .iter()
        .filter(|op| op.starts_with("mutation"))
        .cloned()
        .collect();
    assert!(arrived.is_empty(), "GitHub received {arrived:?}");
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/main"),
        main_before
    );
    assert_eq!(w.hub.pulls().len(), 1);
    assert_eq!(w.hub.pulls()[0].state, "open");
    // An allowed mutation by id passes: the pull request closes, then reopens.
    for (field, state) in [
        ("closePullRequest", "closed"),
        ("reopenPullRequest", "open"),
    ] {
        gh_with(&gh_mutation(
            field,
            &serde_json::json!({"pullRequestId": pr_id}),
        ))
        .ok();
        assert_eq!(w.hub.pulls()[0].state, state);
    }
    // A ref the push policy allows is created by id, as git would push it.
    gh_with(&gh_mutation(
        "createRef",
        &serde_json::json!({"repositoryId": repo_id, "name": "refs/heads/agent/y", "oid": main_oid}),
    ))
    .ok();
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/y")
            .as_deref(),
        Some(main_oid)
    );
    assert_clean(&w, &p);
}

/// A PyGithub script run in a sandbox: Debian's python3 with python3-github (`.ci/run`
/// installs it).
const PYGITHUB: &str = r#"
import sys
from github import Github, GithubException
g = Github(base_url=sys.argv[1], login_or_token="placeholder-the-proxy-replaces")
repo = g.get_repo("octo-org/widgets")
print("repo", repo.full_name, repo.default_branch)
pr = repo.create_pull(title="From PyGithub", body="Made in a sandbox.", head="agent/py", base="main")
print("pull", pr.number, pr.head.ref)
c = pr.create_issue_comment("A note from PyGithub.")
print("comment", c.body)
for what, call in [("merge", lambda: pr.merge()), ("delete", lambda: repo.delete())]:
    try:
        call()
        print(what, "passed")
    except GithubException as e:
        print(what, "refused", e.status, e.data["message"])
"#;

fn pygithub_works_through_the_proxy_and_prints_its_refusals() {
    // Issue 12: an SDK in a sandbox, with a placeholder token: reads, a pull request, a comment;
    // a merge and a delete refused with the proxy's message, which PyGithub hands the caller.
    ghapp_e2e::needs("pygithub");
    let python = ghapp_e2e::Tool::named("pygithub")
        .and_then(|t| t.find("python3"))
        .unwrap();
    let python = python.to_str().unwrap();
    let w = World::new();
    let (p, sb) = setup(&w);
    sb.clone("octo-org", "widgets", "widgets", &[]).ok();
    let work = w.path("widgets");
    sb.push_new_branch(&work, "agent/py", "py.txt", b"from python\n");
    let mut env = w.sandbox_env(&p, "agent-a", SECRET_A);
    env.push(("REQUESTS_CA_BUNDLE".into(), p.ca_path.display().to_string()));
    let before = w.hub.requests().len();
    let r = w
        .cmd(python)
        .env(&env)
        .args(&["-c", PYGITHUB, &w.hub.api_url()])
        .run();
    r.ok();
    let out = r.stdout.lines().collect::<Vec<_>>();
    assert_eq!(out[0], "repo octo-org/widgets main", "{r:#?}");
    assert_eq!(out[1], "pull 1 agent/py");
    assert_eq!(out[2], "comment A note from PyGithub.");
    assert!(
        out[3].starts_with(
            "merge refused 403 ghapp proxy: sandbox agent-a may not merge pull requests"
        ),
        "{r:#?}"
    );
    assert!(
        out[4].starts_with("delete refused 403 ghapp proxy: DELETE /repos/octo-org/widgets is not allowed for sandbox agent-a"),
        "{r:#?}"
    );
    assert_eq!(w.hub.pulls()[0].comments, 1);
    let got: Vec<_> = w.hub.requests().into_iter().skip(before).collect();
    assert!(
        !got.iter()
            .any(|q| q.method == "DELETE" || q.target.ends_with("/merge")),
        "GitHub received: {got:#?}"
    );
    // A keep-alive client (requests reuses its connections) sends its next request on the
    // connection a refused write used: the proxy read that small body, so the connection
    // still works.
    let host = w.hub.git_host();
    let mut t = p.tunnel("agent-a", SECRET_A, &host);
    let body = r#"{"merge_method":"squash"}"#;
    t.write(
        format!(
            "PUT /api/v3/repos/octo-org/widgets/pulls/1/merge HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    // The body a moment after the head (a loaded client, a slow network): the refusal is
    // decided on the head alone.
    std::thread::sleep(std::time::Duration::from_millis(200));
    t.write(body.as_bytes()).unwrap();
    let a = t.answer().unwrap();
    assert_eq!(a.status, 403, "{a:#?}");
    assert_ne!(a.header("connection").as_deref(), Some("close"), "{a:#?}");
    let a = t.get_keep_alive("/api/v3/repos/octo-org/widgets").unwrap();
    assert_eq!(a.status, 200, "the same connection, next request: {a:#?}");
    assert_clean(&w, &p);
}

fn the_proxy_s_own_calls_replace_a_revoked_token_too() {
    // The proxy reads GitHub itself before it forwards some requests: a pull request's head
    // (is it the sandbox's own?), the nodes a GraphQL mutation names. A token revoked meanwhile
    // is dropped there as on the forwarded path, and the call made again with a new one.
    let w = World::new();
    let (p, sb) = setup(&w);
    sb.clone("octo-org", "widgets", "w", &[]).ok();
    let work = w.path("w");
    sb.push_new_branch(&work, "agent/rv", "rv.txt", b"rv\n");
    let a = ("agent-a", SECRET_A);
    let (status, text) = curl(
        &w,
        &p,
        a,
        "POST",
        "/repos/octo-org/widgets/pulls",
        Some(r#"{"title":"T","head":"agent/rv","base":"main"}"#),
    );
    assert_eq!(status, 201, "{text}");
    assert_eq!(w.hub.mint_count(), 1);

    w.revoke_at_github(&w.hub.issued_tokens().pop().unwrap());
    let (status, text) = curl(
        &w,
        &p,
        a,
        "PATCH",
        "/repos/octo-org/widgets/pulls/1",
        Some(r#"{"title":"Renamed"}"#),
    );
    assert_eq!(status, 200, "the head read with a new token: {text}");
    assert_eq!(w.hub.mint_count(), 2);
    assert_eq!(w.hub.pulls()[0].title, "Renamed");

    w.revoke_at_github(&w.hub.issued_tokens().pop().unwrap());
    let (_, text) = curl(&w, &p, a, "GET", "/repos/octo-org/widgets/pulls/1", None);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let node = v["node_id"].as_str().unwrap_or_default().to_owned();
    assert!(!node.is_empty(), "{text}");
    let mut t = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
    let body = format!(
        r#"{{"query":"mutation {{ closePullRequest(input: {{pullRequestId: \"{node}\"}}) {{ pullRequest {{ state }} }} }}"}}"#
    );
    let r = t
        .request(
            "POST",
            "/api/graphql",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{r:#?}");
    assert!(r.body.contains("CLOSED"), "{r:#?}");
    assert_eq!(w.hub.pulls()[0].state, "closed");
    assert_eq!(w.hub.mint_count(), 3, "one new token per revocation");
    let m = p.metrics();
    assert!(m.contains("ghapp_proxy_tokens_dropped_total 2\n"), "{m}");
    assert_clean(&w, &p);
}

fn a_sandbox_reads_its_own_policy_from_the_proxy() {
    // Issue 13 (started): GET /policy on the proxy's address, with the sandbox's credentials,
    // answers its rules (text for curl, JSON when asked), so an agent learns them before it
    // tries; [defaults] give every sandbox the fleet's rules unless it states its own.
    let w = World::new();
    let sandboxes = format!(
        r#"
[defaults]
push = ["agent/*"]

[[sandbox]]
name = "agent-a"
secret = "{SECRET_A}"
repos = ["octo-org/widgets"]

[[sandbox]]
name = "agent-b"
secret = "{SECRET_B}"
repos = ["octo-org/gadgets"]
push = []
"#
    );
    let p = w.start_proxy(&sandboxes, "");
    let policy = |auth: &str, extra: &[&str]| {
        let url = format!("http://{auth}@{}/policy", p.addr);
        let mut args = vec!["-s", "-w", "\n%{http_code}"];
        args.extend_from_slice(extra);
        args.push(&url);
        let r = w.cmd("curl").args(&args).run();
        let (body, code) = r.stdout.rsplit_once('\n').unwrap();
        (code.to_owned(), body.to_owned())
    };
    let (code, text) = policy(&format!("agent-a:{SECRET_A}"), &[]);
    assert_eq!(code, "200", "{text}");
    assert!(text.contains("sandbox: agent-a\n"), "{text}");
    assert!(
        text.contains("push.refs: refs/heads/agent/*\n"),
        "inherited: {text}"
    );
    assert!(
        text.contains("graphql.mutations: createPullRequest\n"),
        "{text}"
    );
    let (code, json) = policy(
        &format!("agent-b:{SECRET_B}"),
        &["-H", "Accept: application/json"],
    );
    assert_eq!(code, "200", "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["repositories"], serde_json::json!(["octo-org/gadgets"]));
    assert_eq!(v["push"]["refs"], serde_json::json!([]), "its own rule");
    assert_eq!(v["lfs"]["upload"], false);
    let (code, _) = policy("agent-a:wrong-secret-0123456789", &[]);
    assert_eq!(code, "407");
    // The rules it read are the rules applied, and a refusal points to them.
    let a = Sb::new(&w, &p, "agent-a", SECRET_A);
    a.clone("octo-org", "widgets", "widgets", &[]).ok();
    a.push_new_branch(&w.path("widgets"), "agent/one", "a.txt", b"a\n");
    let b = Sb::new(&w, &p, "agent-b", SECRET_B);
    b.clone("octo-org", "gadgets", "gadgets", &[]).ok();
    let work = w.path("gadgets");
    b.commit(&work, "b.txt", b"b\n");
    let r = b.git(&work, &["push", "origin", "HEAD:refs/heads/agent/b"]);
    r.fails();
    assert!(
        r.stderr
            .contains("(the sandbox's rules: GET /policy on the proxy)"),
        "{r:#?}"
    );
    let (status, text) = curl(
        &w,
        &p,
        ("agent-b", SECRET_B),
        "DELETE",
        "/repos/octo-org/gadgets",
        None,
    );
    assert_eq!(status, 403);
    assert!(text.contains("GET /policy on the proxy"), "{text}");
    assert_clean(&w, &p);
}

fn a_sandbox_changes_only_its_own_pull_requests() {
    // Issue 15 (autonomous): the agent updates and closes pull requests whose head is a
    // branch it may push; one a person opened from another branch is not its to change.
    let w = World::new();
    let (p, sb) = setup(&w);
    sb.clone("octo-org", "widgets", "widgets", &[]).ok();
    let work = w.path("widgets");
    sb.push_new_branch(&work, "agent/own", "o.txt", b"own\n");
    let a = ("agent-a", SECRET_A);
    let (status, body) = curl(
        &w,
        &p,
        a,
        "POST",
        "/repos/octo-org/widgets/pulls",
        Some(r#"{"title":"The agent's","head":"agent/own","base":"main"}"#),
    );
    assert_eq!(status, 201, "{body}");
    // A person's pull request from `feature` (pushed and opened with the operator's own
    // credentials, not through the proxy).
    w.clone_repo("octo-org", "widgets", "human").ok();
    let human = w.path("human");
    w.git(&human, &["switch", "--quiet", "-c", "feature"]).ok();
    w.commit_file(&human, "h.txt", "by a person\n");
    w.git(&human, &["push", "--quiet", "-u", "origin", "feature"])
        .ok();
    w.gh_pr(&human, &["open", "--title", "A person's"]).ok();
    assert_eq!(w.hub.pulls().len(), 2);

    let (status, body) = curl(
        &w,
        &p,
        a,
        "PATCH",
        "/repos/octo-org/widgets/pulls/1",
        Some(r#"{"title":"Renamed"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let patches = |w: &World| {
        w.hub
            .counters()
            .requests
            .get("PATCH /repos/{owner}/{repo}/pulls/{number}")
            .copied()
            .unwrap_or(0)
    };
    let before = patches(&w);
    let (status, body) = curl(
        &w,
        &p,
        a,
        "PATCH",
        "/repos/octo-org/widgets/pulls/2",
        Some(r#"{"state":"closed"}"#),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("feature") && body.contains("is not allowed for sandbox agent-a"),
        "{body}"
    );
    assert!(
        body.contains("changes only pull requests from its own branches"),
        "{body}"
    );
    assert_eq!(patches(&w), before, "the PATCH never reached GitHub");
    let pulls = w.hub.pulls();
    assert_eq!(
        (pulls[0].title.as_str(), pulls[1].state.as_str()),
        ("Renamed", "open")
    );
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "a_sandbox_clones_fetches_and_pushes_its_branch_with_no_credentials",
        a_sandbox_clones_fetches_and_pushes_its_branch_with_no_credentials,
    ),
    (
        "pushes_outside_the_policy_are_refused_the_git_way",
        pushes_outside_the_policy_are_refused_the_git_way,
    ),
    (
        "large_and_shallow_pushes_pass",
        large_and_shallow_pushes_pass,
    ),
    (
        "sandboxes_reach_only_their_repositories_and_need_their_secret",
        sandboxes_reach_only_their_repositories_and_need_their_secret,
    ),
    (
        "other_hosts_are_refused_or_tunnelled_untouched",
        other_hosts_are_refused_or_tunnelled_untouched,
    ),
    (
        "the_ca_is_served_and_metrics_are_exposed",
        the_ca_is_served_and_metrics_are_exposed,
    ),
    (
        "rest_calls_pass_the_allow_list_only",
        rest_calls_pass_the_allow_list_only,
    ),
    (
        "upstream_faults_are_named_and_one_sandbox_cannot_stall_another",
        upstream_faults_are_named_and_one_sandbox_cannot_stall_another,
    ),
    (
        "a_hundred_concurrent_clones_mint_once_per_sandbox_scope",
        a_hundred_concurrent_clones_mint_once_per_sandbox_scope,
    ),
    (
        "one_proxy_serves_several_apps_each_for_its_owners",
        one_proxy_serves_several_apps_each_for_its_owners,
    ),
    (
        "git_told_to_use_basic_opens_tunnels_with_its_credentials",
        git_told_to_use_basic_opens_tunnels_with_its_credentials,
    ),
    (
        "sighup_reloads_sandboxes_and_policy_and_keeps_open_tunnels",
        sighup_reloads_sandboxes_and_policy_and_keeps_open_tunnels,
    ),
    (
        "graphql_queries_pass_and_everything_else_is_refused_in_graphqls_shape",
        graphql_queries_pass_and_everything_else_is_refused_in_graphqls_shape,
    ),
    (
        "a_partial_clone_fetches_lazily_through_the_proxy",
        a_partial_clone_fetches_lazily_through_the_proxy,
    ),
    (
        "an_upstream_served_under_a_name_is_reached_through_resolve",
        an_upstream_served_under_a_name_is_reached_through_resolve,
    ),
    (
        "gh_rest_and_graphql_through_the_proxy",
        gh_rest_and_graphql_through_the_proxy,
    ),
    (
        "gh_opens_lists_views_and_comments_on_pull_requests_through_the_proxy",
        gh_opens_lists_views_and_comments_on_pull_requests_through_the_proxy,
    ),
    (
        "pygithub_works_through_the_proxy_and_prints_its_refusals",
        pygithub_works_through_the_proxy_and_prints_its_refusals,
    ),
    (
        "the_proxy_s_own_calls_replace_a_revoked_token_too",
        the_proxy_s_own_calls_replace_a_revoked_token_too,
    ),
    (
        "a_sandbox_reads_its_own_policy_from_the_proxy",
        a_sandbox_reads_its_own_policy_from_the_proxy,
    ),
    (
        "a_sandbox_changes_only_its_own_pull_requests",
        a_sandbox_changes_only_its_own_pull_requests,
    ),
];
