//! Git LFS with the real git-lfs: on a host through the credential helper, and in sandboxes
//! behind the proxy (batch API with the token injected, storage on a second host reached for
//! the URLs' lifetime with egress denied, uploads refused to a sandbox that may not push).

use fakehub::Options;
use ghapp_e2e::*;

fn git_lfs_installed() {
    needs("git-lfs");
}

/// 3 MiB that do not compress, so the object is the file and not a few bytes.
fn big_file() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `git` in a sandbox with `env`, in a directory.
fn sandbox_git<'a>(
    w: &'a World,
    env: &'a [(String, String)],
) -> impl Fn(&std::path::Path, &[&str]) -> Run + 'a {
    move |dir, args| w.cmd("git").env(env).dir(dir).args(args).run()
}

/// With `git`: clones octo-org/widgets as `widgets` and commits `data` as an LFS file on
/// `agent/lfs`; the clone's directory.
fn clone_with_an_lfs_commit(
    w: &World,
    git: &impl Fn(&std::path::Path, &[&str]) -> Run,
    data: &[u8],
) -> std::path::PathBuf {
    let url = w.hub.repo_url("octo-org", "widgets");
    git(w.root.path(), &["clone", "--quiet", &url, "widgets"]).ok();
    let work = w.path("widgets");
    commit_lfs_file(&|a| git(&work, a), &work, "agent/lfs", data);
    work
}

/// `git clone` arguments that set up git-lfs's filters in the new clone (as `git lfs install`
/// would globally), then `rest`.
fn clone_with_lfs<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "clone",
        "--quiet",
        "--config",
        "filter.lfs.process=git-lfs filter-process",
        "--config",
        "filter.lfs.required=true",
        "--config",
        "filter.lfs.smudge=git-lfs smudge -- %f",
        "--config",
        "filter.lfs.clean=git-lfs clean -- %f",
    ];
    v.extend_from_slice(rest);
    v
}

/// The file at `path` holds `data` (the object, not its pointer).
#[track_caller]
fn assert_same(path: &std::path::Path, data: &[u8]) {
    let got = std::fs::read(path).unwrap();
    assert!(
        got == data,
        "{} holds {} bytes, starting {:?}",
        path.display(),
        got.len(),
        String::from_utf8_lossy(&got[..got.len().min(60)])
    );
}

/// In `dir` (a clone): tracks `*.bin` with LFS, commits `big.bin` on `branch`.
fn commit_lfs_file(git: &dyn Fn(&[&str]) -> Run, dir: &std::path::Path, branch: &str, data: &[u8]) {
    git(&["lfs", "install", "--local"]).ok();
    git(&["switch", "--quiet", "-c", branch]).ok();
    git(&["lfs", "track", "*.bin"]).ok();
    std::fs::write(dir.join("big.bin"), data).unwrap();
    git(&["add", ".gitattributes", "big.bin"]).ok();
    git(&["commit", "--quiet", "-m", "Add an LFS object"]).ok();
}

fn lfs_push_and_clone_on_a_host_through_the_helper() {
    git_lfs_installed();
    let w = World::new();
    let data = big_file();
    w.git(
        w.root.path(),
        &[
            "clone",
            "--quiet",
            &w.hub.repo_url("octo-org", "widgets"),
            "widgets",
        ],
    )
    .ok();
    let work = w.path("widgets");
    let git = |args: &[&str]| w.git(&work, args);
    commit_lfs_file(&git, &work, "agent/lfs", &data);
    w.git(&work, &["push", "--quiet", "origin", "agent/lfs"])
        .ok();

    let c = w.hub.counters().requests;
    assert_eq!(c.get("lfs storage PUT"), Some(&1), "{c:?}");
    // What git stored is the pointer; the object is in storage.
    let pointer = w
        .git(&work, &["cat-file", "-p", "HEAD:big.bin"])
        .ok()
        .stdout
        .clone();
    assert!(
        pointer.starts_with("version https://git-lfs.github.com/spec/v1"),
        "{pointer}"
    );

    let url = w.hub.repo_url("octo-org", "widgets");
    w.git(
        w.root.path(),
        &clone_with_lfs(&["--branch", "agent/lfs", &url, "again"]),
    )
    .ok();
    assert_same(&w.path("again").join("big.bin"), &data);
    assert_eq!(w.hub.counters().requests.get("lfs storage GET"), Some(&1));
    w.assert_no_secrets();
}

/// Sandboxes behind the proxy, with fakehub under `ghe.test` and its storage under
/// `lfs.ghe.test` (both resolved by the proxy, so Go's clients proxy them; the storage host
/// one the proxy serves, as GitHub's are by default).
fn lfs_world() -> (World, ProxyProc) {
    let w = World::with(Options {
        hostname: Some("ghe.test".into()),
        ..Default::default()
    });
    let sandboxes = format!(
        r#"{}
[[sandbox]]
name = "agent-ro"
secret = "read-only-secret-0123456789"
repos = ["octo-org/widgets"]
push = []
"#,
        two_sandboxes("")
    );
    let p = w.start_proxy(
        &sandboxes,
        &format!(
            "egress = \"deny\"\nresolve = [\"ghe.test=127.0.0.1\", \"lfs.ghe.test=127.0.0.1\"]\nlfs_storage_hosts = [\"{}\"]",
            w.hub.lfs_host()
        ),
    );
    (w, p)
}

fn lfs_push_and_clone_in_a_sandbox_with_egress_denied() {
    git_lfs_installed();
    let (w, p) = lfs_world();
    let env = w.sandbox_env(&p, "agent-a", SECRET_A);
    let data = big_file();
    let url = w.hub.repo_url("octo-org", "widgets");
    let git = sandbox_git(&w, &env);
    let work = clone_with_an_lfs_commit(&w, &git, &data);
    let r = git(&work, &["push", "origin", "agent/lfs"]);
    r.ok();
    assert_eq!(w.hub.counters().requests.get("lfs storage PUT"), Some(&1));
    git(
        w.root.path(),
        &clone_with_lfs(&["--branch", "agent/lfs", &url, "again"]),
    )
    .ok();
    assert_same(&w.path("again").join("big.bin"), &data);
    // The storage host was reached through the proxy, granted by the batch answers.
    let audit = p.audit();
    let granted = audit
        .iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("LFS storage granted: lfs.ghe.test:"))
        })
        .count();
    assert!(granted >= 2, "{audit:#?}");
    // Storage URLs are signed and expire: a batch answer's URL works as given, not altered,
    // and not once expired.
    let oid = w.git(&work, &["lfs", "ls-files", "--long"]).ok().stdout[..64].to_owned();
    let (host, target) = download_url(&p, &w, &oid, data.len());
    let href = format!("https://{host}{target}");
    let fetch = |url: &str| {
        w.cmd("curl")
            .args(&[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                &w.hub.ca_path().display().to_string(),
                "--resolve",
                &format!("{}:127.0.0.1", w.hub.lfs_host()),
                url,
            ])
            .run()
            .stdout
    };
    assert_eq!(fetch(&href), "200");
    let last = if href.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &href[..href.len() - 1]);
    assert_eq!(fetch(&forged), "403");
    w.hub.set_clock_skew(2 * 3600);
    assert_eq!(fetch(&href), "403", "an expired URL");
    w.hub.set_clock_skew(0);
    // A storage host the batch answers never named stays closed (egress is denied).
    let mut t = std::net::TcpStream::connect(&p.addr).unwrap();
    use std::io::{Read, Write};
    let auth = ghapp_gitproto::basic::encode("agent-b", SECRET_B);
    write!(
        t,
        "CONNECT {} HTTP/1.1\r\nHost: {0}\r\nProxy-Authorization: {auth}\r\n\r\n",
        w.hub.lfs_host()
    )
    .unwrap();
    let mut head = [0u8; 12];
    t.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 403", "agent-b was granted nothing");
    w.capture(p.log());
    w.assert_no_secrets();
}

fn an_lfs_upload_from_a_read_only_sandbox_is_refused_with_the_proxys_reason() {
    git_lfs_installed();
    let (w, p) = lfs_world();
    let env = w.sandbox_env(&p, "agent-ro", "read-only-secret-0123456789");
    let git = sandbox_git(&w, &env);
    let work = clone_with_an_lfs_commit(&w, &git, &big_file());
    let r = git(&work, &["push", "origin", "agent/lfs"]);
    r.fails();
    assert!(
        r.stderr
            .contains("sandbox agent-ro: Git LFS uploads need push access"),
        "{r:#?}"
    );
    let c = w.hub.counters().requests;
    assert!(
        !c.keys().any(|k| k.starts_with("lfs")),
        "GitHub received an LFS request: {c:?}"
    );
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/lfs"),
        None
    );
}

fn lfs_storage_on_githubs_own_host_passes_only_the_urls_granted() {
    // A GitHub that stores LFS objects on its own host (an appliance may): the proxy passes
    // exactly the URLs a batch answer handed the sandbox, with no token, and nothing else there.
    git_lfs_installed();
    let w = World::with(Options {
        hostname: Some("ghe.test".into()),
        lfs_same_host: true,
        ..Default::default()
    });
    let p = w.start_proxy(
        &two_sandboxes(""),
        "egress = \"deny\"\nresolve = [\"ghe.test=127.0.0.1\"]",
    );
    // Only the proxy's CA: every host the sandbox reaches is one the proxy serves.
    let env = w.sandbox_env(&p, "agent-a", SECRET_A);
    let data = big_file();
    let url = w.hub.repo_url("octo-org", "widgets");
    let git = sandbox_git(&w, &env);
    let work = clone_with_an_lfs_commit(&w, &git, &data);
    git(&work, &["push", "--quiet", "origin", "agent/lfs"]).ok();
    assert_eq!(w.hub.counters().requests.get("lfs storage PUT"), Some(&1));
    git(
        w.root.path(),
        &clone_with_lfs(&["--branch", "agent/lfs", &url, "again"]),
    )
    .ok();
    assert_same(&w.path("again").join("big.bin"), &data);
    assert!(
        p.audit()
            .iter()
            .any(|e| e["reason"].as_str().is_some_and(
                |r| r.starts_with("LFS PUT of ") && r.ends_with("(a URL from a batch answer)")
            ) && e["decision"] == "allow"),
        "{:#?}",
        p.audit()
    );
    // A storage URL the sandbox made up is refused by the proxy, and GitHub never sees it.
    let before = w.hub.requests().len();
    let mut t = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
    let made_up = format!(
        "/_lfs/objects/octo-org/widgets/{}?exp=9999999999&sig=00",
        "a".repeat(64)
    );
    let a = t.request("GET", &made_up, &[], b"").unwrap();
    assert_eq!(a.status, 403, "{a:#?}");
    let got: Vec<_> = w.hub.requests().into_iter().skip(before).collect();
    assert!(got.is_empty(), "GitHub received: {got:#?}");
    w.capture(p.log());
    w.assert_no_secrets();
}

/// A download URL for `oid` (stored in octo-org/widgets) that a batch answer hands `agent-a`
/// through the proxy, as `(host:port, path?query)`.
fn download_url(p: &ProxyProc, w: &World, oid: &str, size: usize) -> (String, String) {
    let mut t = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
    let batch = format!(
        r#"{{"operation":"download","transfers":["basic"],"objects":[{{"oid":"{oid}","size":{size}}}]}}"#
    );
    let a = t
        .request(
            "POST",
            "/octo-org/widgets.git/info/lfs/objects/batch",
            &[
                ("Content-Type", "application/vnd.git-lfs+json"),
                ("Accept", "application/vnd.git-lfs+json"),
            ],
            batch.as_bytes(),
        )
        .unwrap();
    assert_eq!(a.status, 200, "{a:#?}");
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let href = v["objects"][0]["actions"]["download"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no download for {oid}: {v}"));
    let url = reqwest::Url::parse(href).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    (host, format!("{}?{}", url.path(), url.query().unwrap()))
}

fn an_lfs_grant_opens_its_urls_under_its_own_name_and_nothing_else() {
    git_lfs_installed();
    let (w, p) = lfs_world();
    let env = w.sandbox_env(&p, "agent-a", SECRET_A);
    let data = big_file();
    let git = sandbox_git(&w, &env);
    let work = clone_with_an_lfs_commit(&w, &git, &data);
    git(&work, &["push", "--quiet", "origin", "agent/lfs"]).ok();
    let oid = w.git(&work, &["lfs", "ls-files", "--long"]).ok().stdout[..64].to_owned();
    let (host, target) = download_url(&p, &w, &oid, data.len());
    assert_eq!(host, w.hub.lfs_host());
    let seen = w.hub.requests().len();

    // TLS under another name behind the granted address (here GitHub's own API, served on the
    // same address as the storage, as a shared front end serves other customers' names): the
    // proxy's TLS answers for the granted name only, so nothing reaches that other name.
    let other = w.hub.git_host();
    let other = other.split(':').next().unwrap();
    let r = p.tunnel_as("agent-a", SECRET_A, &host, other, w.hub.ca_path());
    assert!(r.is_err(), "TLS for {other} inside the storage grant");
    // With the storage host's own name and the proxy's CA: the granted URL, as given...
    let name = host.split(':').next().unwrap();
    let mut t = p
        .tunnel_as("agent-a", SECRET_A, &host, name, &p.ca_path)
        .unwrap();
    let a = t.request("GET", &target, &[], b"").unwrap();
    assert!(
        a.status == 200 && a.body.len() >= data.len(),
        "{}",
        a.status
    );
    // ...and nothing else: another path, the same URL for another method, a URL with a
    // changed query.
    for (method, path, status) in [
        (
            "GET",
            format!("/objects/octo-org/widgets/{}", "a".repeat(64)),
            403,
        ),
        ("GET", "/repos/octo-org/widgets".into(), 403),
        ("PUT", target.clone(), 405),
        ("GET", format!("{target}&x=1"), 403),
    ] {
        let mut t = p
            .tunnel_as("agent-a", SECRET_A, &host, name, &p.ca_path)
            .unwrap();
        let a = t.request(method, &path, &[], b"").unwrap();
        assert_eq!(a.status, status, "{method} {path}: {a:#?}");
    }
    let got: Vec<_> = w.hub.requests().into_iter().skip(seen).collect();
    assert_eq!(got.len(), 1, "only the granted GET arrived: {got:#?}");
    // Every storage request is in the audit, allowed or not.
    let audit = p.audit();
    let on_storage: Vec<_> = audit
        .iter()
        .filter(|e| e["host"].as_str() == Some(&host) && e["method"] != "CONNECT")
        .collect();
    assert_eq!(
        on_storage.len(),
        6,
        "the push's PUT and these five: {on_storage:#?}"
    );
    // A sandbox holding no grant there cannot open the host at all.
    match p.tunnel_as("agent-b", SECRET_B, &host, name, &p.ca_path) {
        Err(e) => assert!(e.contains("status: 403"), "{e}"),
        Ok(_) => panic!("agent-b reached {host}"),
    }
}

fn an_lfs_upload_holding_a_token_is_refused_and_never_stored() {
    git_lfs_installed();
    let (w, p) = lfs_world();
    let env = w.sandbox_env(&p, "agent-a", SECRET_A);
    let git = sandbox_git(&w, &env);
    let url = w.hub.repo_url("octo-org", "widgets");
    git(w.root.path(), &["clone", "--quiet", &url, "widgets"]).ok();
    let work = w.path("widgets");
    // The token the proxy minted for that clone (GitHub's 2026 shape, ~520 characters).
    let token = w.hub.issued_tokens().pop().unwrap();
    assert!(token.len() > 400);
    // A text file large enough to pass the proxy in many pieces, the token deep inside.
    let mut data = String::new();
    for i in 0..40_000 {
        data.push_str(&format!("row {i}: nothing to see here\n"));
        if i == 30_000 {
            data.push_str(&format!("GITHUB_TOKEN={token}\n"));
        }
    }
    commit_lfs_file(&|a| git(&work, a), &work, "agent/lfs", data.as_bytes());
    let r = git(&work, &["push", "origin", "agent/lfs"]);
    r.fails();
    let oid = w.git(&work, &["lfs", "ls-files", "--long"]).ok().stdout[..64].to_owned();
    assert!(!r.stderr.contains(&token) && !r.stdout.contains(&token));
    assert_eq!(
        w.hub_ref("octo-org", "widgets", "refs/heads/agent/lfs"),
        None,
        "the pointer was not pushed"
    );
    // The proxy says why, naming the object, to the sandbox and in the audit; git-lfs's
    // retry is answered at the batch, so it gives up at once.
    let why = format!("possible GitHub token in the LFS object {oid} (line 30002)");
    assert!(r.stderr.contains(&why), "{r:#?}");
    let audit = p.audit();
    let puts = audit.iter().filter(|e| e["method"] == "PUT").count();
    assert_eq!(
        puts, 1,
        "one upload, its retry refused at the batch: {audit:#?}"
    );
    assert!(
        audit
            .iter()
            .any(|e| e["reason"].as_str().is_some_and(|r| r.contains(&why))),
        "{audit:#?}"
    );
    // The storage never kept it: GitHub's batch API, asked directly, finds no such object.
    let batch = format!(
        r#"{{"operation":"download","transfers":["basic"],"objects":[{{"oid":"{oid}","size":{}}}]}}"#,
        data.len()
    );
    let answer = w
        .cmd("curl")
        .args(&[
            "-s",
            "--cacert",
            &w.hub.ca_path().display().to_string(),
            "--resolve",
            &format!("{}:127.0.0.1", w.hub.git_host()),
            "-u",
            &format!("x-access-token:{token}"),
            "-H",
            "Content-Type: application/vnd.git-lfs+json",
            "-H",
            "Accept: application/vnd.git-lfs+json",
            "--data",
            &batch,
            &format!("{url}/info/lfs/objects/batch"),
        ])
        .carries_secrets()
        .run();
    let v: serde_json::Value = serde_json::from_str(&answer.ok().stdout).unwrap();
    assert_eq!(v["objects"][0]["error"]["code"], 404, "{v}");
    w.capture(p.log());
    w.assert_no_secrets();
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "lfs_push_and_clone_on_a_host_through_the_helper",
        lfs_push_and_clone_on_a_host_through_the_helper,
    ),
    (
        "lfs_push_and_clone_in_a_sandbox_with_egress_denied",
        lfs_push_and_clone_in_a_sandbox_with_egress_denied,
    ),
    (
        "an_lfs_upload_from_a_read_only_sandbox_is_refused_with_the_proxys_reason",
        an_lfs_upload_from_a_read_only_sandbox_is_refused_with_the_proxys_reason,
    ),
    (
        "lfs_storage_on_githubs_own_host_passes_only_the_urls_granted",
        lfs_storage_on_githubs_own_host_passes_only_the_urls_granted,
    ),
    (
        "an_lfs_grant_opens_its_urls_under_its_own_name_and_nothing_else",
        an_lfs_grant_opens_its_urls_under_its_own_name_and_nothing_else,
    ),
    (
        "an_lfs_upload_holding_a_token_is_refused_and_never_stored",
        an_lfs_upload_holding_a_token_is_refused_and_never_stored,
    ),
];
