//! Push inspection end to end: real git in a sandbox, the real
//! proxy, fakehub upstream. Every refusal is checked where it matters: git's words, the ref at
//! "GitHub" unchanged, and what GitHub received of the pack.

use std::path::Path;

use ghapp_e2e::{ProxyProc, Run, Sandbox as Sb, World};

const SECRET: &str = "inspect-sandbox-secret-0123456789";
const SECRET_F: &str = "inspect-forcing-secret-0123456789";

/// agent-a pushes `agent/*` with the default rules (plus `extra`); agent-f may also force
/// `agent/f/*`.
fn start(w: &World, extra: &str) -> ProxyProc {
    w.start_proxy(
        &format!(
            r#"
[[sandbox]]
name = "agent-a"
secret = "{SECRET}"
repos = ["octo-org/widgets"]
push = ["agent/*"]
{extra}

[[sandbox]]
name = "agent-f"
secret = "{SECRET_F}"
repos = ["octo-org/widgets"]
push = ["agent/*"]
force = ["agent/f/*"]
"#
        ),
        "",
    )
}

/// Commits to `main` straight into fakehub's repository, as the repository's people would
/// (no proxy, no hook).
fn seed_main(w: &World, files: &[(&str, &[u8])]) {
    w.commit_on_main("octo-org", "widgets", files);
}

fn head(sb: &Sb<'_>, dir: &Path) -> String {
    sb.git(dir, &["rev-parse", "HEAD"])
        .ok()
        .stdout
        .trim()
        .to_owned()
}

fn hub_ref(w: &World, branch: &str) -> Option<String> {
    w.hub_ref("octo-org", "widgets", &format!("refs/heads/{branch}"))
}

/// git's line for a refused ref: `branch` is `NAME` (pushed as itself) or `SRC -> DST`.
#[track_caller]
fn refused(r: &Run, branch: &str, why: &str) {
    r.fails();
    let pair = if branch.contains(" -> ") {
        branch.to_owned()
    } else {
        format!("{branch} -> {branch}")
    };
    let line = format!("! [remote rejected] {pair} ({why}");
    assert!(r.stderr.contains(&line), "want {line:?} in {r:#?}");
    assert!(
        r.stderr.contains("GET /policy on the proxy"),
        "the refusal points to the rules: {r:#?}"
    );
}

fn write(dir: &Path, name: &str, text: &[u8]) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn commit_all(sb: &Sb<'_>, dir: &Path, msg: &str) {
    sb.git(dir, &["add", "-A"]).ok();
    sb.git(dir, &["commit", "--quiet", "-m", msg]).ok();
}

/// `mib` MiB that no compressor shrinks.
fn noise(mib: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = vec![0u8; mib << 20];
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    out
}

/// The audit event of the last push the proxy decided.
fn last_push(p: &ProxyProc) -> serde_json::Value {
    p.audit()
        .into_iter()
        .rev()
        .find(|e| e["service"] == "git-receive-pack" && e["method"] == "POST")
        .expect("a push in the audit")
}

fn force_pushes_are_decided_on_ancestry() {
    let w = World::new();
    let p = start(&w, "");
    let sb = Sb::new(&w, &p, "agent-a", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    sb.push_new_branch(&work, "agent/x", "a.txt", b"a\n");
    let a = head(&sb, &work);

    // An amend is a rewrite: refused, the ref at GitHub stays.
    sb.git(&work, &["commit", "--quiet", "--amend", "-m", "amended"])
        .ok();
    let r = sb.git(&work, &["push", "--force", "origin", "agent/x"]);
    refused(&r, "agent/x", "force-push not allowed: ");
    assert!(
        r.stderr.contains("is not a fast-forward; rule force"),
        "{r:#?}"
    );
    assert_eq!(hub_ref(&w, "agent/x").as_deref(), Some(a.as_str()));
    assert_eq!(last_push(&p)["push"]["verdict"], "force");
    // --force-with-lease with the right lease is still a rewrite.
    let r = sb.git(
        &work,
        &[
            "push",
            &format!("--force-with-lease=agent/x:{a}"),
            "origin",
            "agent/x",
        ],
    );
    refused(&r, "agent/x", "force-push not allowed: ");
    assert_eq!(hub_ref(&w, "agent/x").as_deref(), Some(a.as_str()));

    // A new commit on top is a fast-forward.
    sb.git(&work, &["reset", "--quiet", "--hard", &a]).ok();
    sb.commit(&work, "b.txt", b"b\n");
    sb.git(&work, &["push", "--quiet", "origin", "agent/x"])
        .ok();
    let b = head(&sb, &work);
    assert_eq!(hub_ref(&w, "agent/x"), Some(b.clone()));
    let e = last_push(&p);
    assert_eq!(e["push"]["verdict"], "accepted", "{e}");
    assert_eq!(e["push"]["commits"], 1, "{e}");
    assert_eq!(e["push"]["changed_paths"], 1, "{e}");
    assert!(e["push"]["pack_bytes"].as_u64().unwrap() > 0, "{e}");
    assert_eq!(
        e["push"]["pack_bytes"], e["push"]["pack_bytes_upstream"],
        "{e}"
    );

    // A rebase onto a main that moved, when the branch had nothing of its own: a fast-forward.
    sb.git(
        &work,
        &["switch", "--quiet", "-c", "agent/y", "origin/main"],
    )
    .ok();
    sb.git(&work, &["push", "--quiet", "origin", "agent/y"])
        .ok();
    seed_main(&w, &[("news.txt", b"main moved\n")]);
    sb.git(&work, &["fetch", "--quiet", "origin"]).ok();
    sb.git(&work, &["rebase", "--quiet", "origin/main"]).ok();
    sb.git(&work, &["push", "--quiet", "origin", "agent/y"])
        .ok();
    assert_eq!(hub_ref(&w, "agent/y"), Some(head(&sb, &work)));
    // With a commit of its own, the rebase rewrites it: refused.
    sb.commit(&work, "y.txt", b"y\n");
    sb.git(&work, &["push", "--quiet", "origin", "agent/y"])
        .ok();
    let y = head(&sb, &work);
    seed_main(&w, &[("news.txt", b"main moved again\n")]);
    sb.git(&work, &["fetch", "--quiet", "origin"]).ok();
    sb.git(&work, &["rebase", "--quiet", "origin/main"]).ok();
    let r = sb.git(&work, &["push", "--force", "origin", "agent/y"]);
    refused(&r, "agent/y", "force-push not allowed: ");
    assert_eq!(hub_ref(&w, "agent/y"), Some(y));

    // Unrelated history over the branch: refused.
    sb.git(&work, &["switch", "--quiet", "--orphan", "lonely"])
        .ok();
    sb.commit(&work, "other.txt", b"another history\n");
    let r = sb.git(&work, &["push", "--force", "origin", "lonely:agent/x"]);
    refused(&r, "lonely -> agent/x", "force-push not allowed: ");
    assert_eq!(hub_ref(&w, "agent/x"), Some(b.clone()));

    // Deletes as before: refused without allow_delete.
    let r = sb.git(&work, &["push", "origin", ":agent/x"]);
    r.fails();
    assert!(
        r.stderr
            .contains("! [remote rejected] agent/x (deleting refs is not allowed"),
        "{r:#?}"
    );
    assert_eq!(hub_ref(&w, "agent/x"), Some(b));

    // A sandbox with `force` for agent/f/*: --force-with-lease behaves as git's.
    let f = Sb::new(&w, &p, "agent-f", SECRET_F);
    f.clone("octo-org", "widgets", "forcing", &[]).ok();
    let fw = w.path("forcing");
    f.git(&fw, &["switch", "--quiet", "-c", "agent/f/1"]).ok();
    f.commit(&fw, "f.txt", b"f\n");
    f.git(&fw, &["push", "--quiet", "origin", "agent/f/1"]).ok();
    let f1 = head(&f, &fw);
    f.git(&fw, &["commit", "--quiet", "--amend", "-m", "rewritten"])
        .ok();
    f.git(
        &fw,
        &[
            "push",
            "--quiet",
            "--force-with-lease",
            "origin",
            "agent/f/1",
        ],
    )
    .ok();
    let f2 = head(&f, &fw);
    assert_eq!(hub_ref(&w, "agent/f/1"), Some(f2.clone()));
    // A stale lease: git refuses before anything is sent.
    f.git(&fw, &["commit", "--quiet", "--amend", "-m", "again"])
        .ok();
    let r = f.git(
        &fw,
        &[
            "push",
            &format!("--force-with-lease=agent/f/1:{f1}"),
            "origin",
            "agent/f/1",
        ],
    );
    r.fails();
    assert!(r.stderr.contains("stale info"), "{r:#?}");
    assert_eq!(hub_ref(&w, "agent/f/1"), Some(f2));
    // `force` covers agent/f/* only.
    f.git(&fw, &["switch", "--quiet", "-c", "agent/g"]).ok();
    f.git(&fw, &["push", "--quiet", "origin", "agent/g"]).ok();
    let g = head(&f, &fw);
    f.git(&fw, &["commit", "--quiet", "--amend", "-m", "g rewritten"])
        .ok();
    let r = f.git(&fw, &["push", "--force", "origin", "agent/g"]);
    refused(&r, "agent/g", "force-push not allowed: ");
    assert_eq!(hub_ref(&w, "agent/g"), Some(g));
}

fn protected_paths_are_decided_on_the_net_change() {
    let w = World::new();
    seed_main(
        &w,
        &[
            (".github/workflows/ci.yml", b"on: push\n"),
            ("notes.txt", b"notes\n"),
        ],
    );
    let p = start(&w, "");
    let sb = Sb::new(&w, &p, "agent-a", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    type Change<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Change<'_>, &str); 5] = [
        (
            "agent/add",
            &|d| write(d, ".github/workflows/new.yml", b"on: push\n"),
            "protected path .github/workflows/new.yml (added)",
        ),
        (
            "agent/change",
            &|d| write(d, ".github/workflows/ci.yml", b"on: [push, pull_request]\n"),
            "protected path .github/workflows/ci.yml (changed)",
        ),
        (
            "agent/delete",
            &|d| std::fs::remove_file(d.join(".github/workflows/ci.yml")).unwrap(),
            "protected path .github/workflows/ci.yml (deleted)",
        ),
        (
            "agent/rename",
            &|d| {
                std::fs::create_dir_all(d.join(".github/workflows")).unwrap();
                std::fs::rename(d.join("notes.txt"), d.join(".github/workflows/notes.yml"))
                    .unwrap();
            },
            "protected path .github/workflows/notes.yml (added)",
        ),
        (
            "agent/case",
            &|d| write(d, ".GitHub/Workflows/sneaky.yml", b"on: push\n"),
            "protected path .GitHub/Workflows/sneaky.yml (added)",
        ),
    ];
    for (branch, change, why) in cases {
        sb.git(&work, &["switch", "--quiet", "-C", branch, "origin/main"])
            .ok();
        change(&work);
        commit_all(&sb, &work, branch);
        let before = w.hub.push_bytes_received();
        let r = sb.git(&work, &["push", "origin", branch]);
        refused(&r, branch, &format!("{why}; rule protected_paths)"));
        assert!(
            !r.stderr.contains("refusing to allow a GitHub App"),
            "the proxy refused first: {r:#?}"
        );
        assert_eq!(hub_ref(&w, branch), None, "{branch}");
        let e = last_push(&p);
        assert_eq!(e["push"]["verdict"], "protected_paths");
        // GitHub never had the whole pack: at least its trailer was held back.
        let sent = w.hub.push_bytes_received() - before;
        assert!(sent + 20 <= e["bytes_in"].as_u64().unwrap(), "{sent} {e}");
    }

    // Net change: a workflow added in one commit and removed in the next is no change.
    sb.git(
        &work,
        &["switch", "--quiet", "-C", "agent/net", "origin/main"],
    )
    .ok();
    sb.commit(&work, "one.txt", b"1\n");
    sb.git(&work, &["push", "--quiet", "origin", "agent/net"])
        .ok();
    write(&work, ".github/workflows/tmp.yml", b"on: push\n");
    commit_all(&sb, &work, "try a workflow");
    std::fs::remove_file(work.join(".github/workflows/tmp.yml")).unwrap();
    sb.commit(&work, "two.txt", b"2\n");
    commit_all(&sb, &work, "drop it");
    sb.git(&work, &["push", "--quiet", "origin", "agent/net"])
        .ok();
    assert_eq!(hub_ref(&w, "agent/net"), Some(head(&sb, &work)));
    let e = last_push(&p);
    assert_eq!(
        (
            &e["push"]["verdict"],
            &e["push"]["commits"],
            &e["push"]["changed_paths"]
        ),
        (&"accepted".into(), &3.into(), &1.into()),
        "{e}"
    );

    // With protected_paths = [], the proxy lets it pass and GitHub's own rule (an App token
    // without `workflows: write`) refuses it, in GitHub's words.
    drop(p);
    let p = start(&w, "protected_paths = []");
    let sb = Sb::new(&w, &p, "agent-a", SECRET);
    sb.git(
        &work,
        &["switch", "--quiet", "-C", "agent/open", "origin/main"],
    )
    .ok();
    write(&work, ".github/workflows/new.yml", b"on: push\n");
    commit_all(&sb, &work, "a workflow");
    let pushes = w.hub.counters().pushes;
    let r = sb.git(&work, &["push", "origin", "agent/open"]);
    r.fails();
    assert!(
        r.stderr
            .contains("refusing to allow a GitHub App to create or update workflow"),
        "{r:#?}"
    );
    assert_eq!(hub_ref(&w, "agent/open"), None);
    assert_eq!(
        w.hub.counters().pushes,
        pushes,
        "fakehub counts a push it refused as no push"
    );
}

fn large_files_and_pushes_are_refused_before_the_upload_completes() {
    let w = World::new();
    let p = start(&w, "max_push_bytes = 8388608");
    let sb = Sb::new(&w, &p, "agent-f", SECRET_F);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");

    sb.git(&work, &["switch", "--quiet", "-c", "agent/big"])
        .ok();
    write(&work, "big.bin", &noise(120, 7));
    commit_all(&sb, &work, "a big file");
    let before = w.hub.push_bytes_received();
    let r = sb.git(&work, &["push", "origin", "agent/big"]);
    refused(
        &r,
        "agent/big",
        "file big.bin is 120 MiB, over 100 MiB; rule max_file_bytes)",
    );
    assert_eq!(hub_ref(&w, "agent/big"), None);
    let e = last_push(&p);
    let pack = e["push"]["pack_bytes"].as_u64().unwrap();
    let sent = e["push"]["pack_bytes_upstream"].as_u64().unwrap();
    let received = w.hub.push_bytes_received() - before;
    assert!(pack > 120 << 20, "{e}");
    assert!(
        sent < 1 << 20 && received < 1 << 20,
        "GitHub got {received} bytes (the proxy sent {sent} of the pack's {pack})"
    );

    // agent-a's max_push_bytes is 8 MiB: a 12 MiB push stops at 8.
    let sb = Sb::new(&w, &p, "agent-a", SECRET);
    sb.git(
        &work,
        &["switch", "--quiet", "-C", "agent/many", "origin/main"],
    )
    .ok();
    for i in 0..3 {
        write(&work, &format!("part{i}.bin"), &noise(4, 11 + i));
    }
    commit_all(&sb, &work, "twelve MiB");
    let before = w.hub.push_bytes_received();
    let r = sb.git(&work, &["push", "origin", "agent/many"]);
    refused(
        &r,
        "agent/many",
        "the push is over 8 MiB; rule max_push_bytes)",
    );
    assert_eq!(hub_ref(&w, "agent/many"), None);
    let received = w.hub.push_bytes_received() - before;
    assert!(received <= 8 << 20, "GitHub got {received} bytes");
}

fn credentials_are_refused_by_file_and_line_never_echoed() {
    let w = World::new();
    let p = start(&w, "");
    let sb = Sb::new(&w, &p, "agent-a", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    let token = "ghs_16C7e42F292c6912E7710c838347Ae178B4a";
    // A real private key, made now (none is committed).
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let key_line = key.lines().nth(1).unwrap().to_owned();
    let aws = "AKIAIOSFODNN7EXAMPLE";
    // A token as GitHub mints installation tokens since 2026 (`ghs_APPID_JWT`, ~520
    // characters): fakehub mints that shape.
    let stateless = w.token_for("octo-org/widgets");
    assert!(stateless.len() > 400 && stateless.starts_with(&format!("ghs_{}_eyJ", w.hub.app_id())));
    // The same key as files hold it: indented in YAML, \n-escaped in JSON, short lines.
    let body: Vec<&str> = key.lines().collect();
    let yaml = format!(
        "tls:\n  key: |\n{}\n",
        body.iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let json = format!(
        "{{\"type\": \"service_account\", \"private_key\": \"{}\\n\"}}\n",
        body.join("\\n")
    );
    let short: String = {
        let material: String = body[1..body.len() - 1].concat();
        let lines: Vec<String> = material
            .as_bytes()
            .chunks(32)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        format!(
            "{}\n{}\n{}\n",
            body[0],
            lines.join("\n"),
            body[body.len() - 1]
        )
    };
    let asia = "ASIAY34FZKBOKMUTVV7A";
    let cases = [
        (
            "agent/stateless",
            "creds.env",
            format!("TOKEN={stateless}\n"),
            "possible GitHub token in creds.env line 1",
        ),
        (
            "agent/yaml-key",
            "deploy/values.yaml",
            yaml,
            "possible private key in deploy/values.yaml line 3",
        ),
        (
            "agent/json-key",
            "sa.json",
            json,
            "possible private key in sa.json line 1",
        ),
        (
            "agent/short-key",
            "short.pem",
            short,
            "possible private key in short.pem line 1",
        ),
        (
            "agent/asia",
            "session.txt",
            format!("aws_access_key_id={asia}\n"),
            "possible AWS access key id in session.txt line 1",
        ),
        (
            "agent/token",
            "config/app.env",
            format!("# app\nPORT=8080\nGITHUB_TOKEN={token}\n"),
            "possible GitHub token in config/app.env line 3",
        ),
        (
            "agent/key",
            "deploy/key.pem",
            key,
            "possible private key in deploy/key.pem line 1",
        ),
        (
            "agent/aws",
            "aws.txt",
            format!("[default]\naws_access_key_id = {aws}\n"),
            "possible AWS access key id in aws.txt line 2",
        ),
    ];
    for (branch, file, text, why) in cases {
        sb.git(&work, &["switch", "--quiet", "-C", branch, "origin/main"])
            .ok();
        write(&work, file, text.as_bytes());
        commit_all(&sb, &work, branch);
        let r = sb.git(&work, &["push", "origin", branch]);
        refused(&r, branch, &format!("{why}; rule secret_scan)"));
        assert_eq!(hub_ref(&w, branch), None);
        for secret in [token, aws, asia, key_line.as_str(), stateless.as_str()] {
            assert!(!r.stderr.contains(secret), "{r:#?}");
            assert!(!p.log().contains(secret));
            assert!(
                !std::fs::read_to_string(&p.audit_path)
                    .unwrap()
                    .contains(secret)
            );
        }
    }
    // Prose that names the prefixes is no credential.
    sb.git(
        &work,
        &["switch", "--quiet", "-C", "agent/docs", "origin/main"],
    )
    .ok();
    write(
        &work,
        "docs/tokens.md",
        b"Installation tokens start with ghs_ and last an hour; AWS key ids start with AKIA.\n",
    );
    commit_all(&sb, &work, "docs");
    sb.git(&work, &["push", "--quiet", "origin", "agent/docs"])
        .ok();
    assert_eq!(hub_ref(&w, "agent/docs"), Some(head(&sb, &work)));
}

fn thin_packs_with_deltas_against_what_only_github_has_are_decided() {
    let w = World::new();
    // A large text file on main, so that a change to it travels as a delta against the copy
    // only GitHub has (the proxy's mirror holds no file contents).
    let big: String = (1..=3000)
        .map(|i| {
            format!(
                "line {i}: the quick brown fox jumps over the lazy dog {}\n",
                i * 7919 % 10007
            )
        })
        .collect();
    seed_main(&w, &[("data/big.txt", big.as_bytes())]);
    let p = start(&w, "");
    let sb = Sb::new(&w, &p, "agent-a", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");

    let edit = |branch: &str, line: usize, text: &str| {
        sb.git(&work, &["switch", "--quiet", "-C", branch, "origin/main"])
            .ok();
        let mut lines: Vec<String> = big.lines().map(str::to_owned).collect();
        lines[line - 1] = text.to_owned();
        write(&work, "data/big.txt", (lines.join("\n") + "\n").as_bytes());
        commit_all(&sb, &work, branch);
    };
    edit("agent/thin", 1500, "line 1500: changed by the agent");
    sb.git(&work, &["push", "--quiet", "origin", "agent/thin"])
        .ok();
    assert_eq!(hub_ref(&w, "agent/thin"), Some(head(&sb, &work)));
    let e = last_push(&p);
    assert_eq!(e["push"]["verdict"], "accepted", "{e}");
    let pack = e["push"]["pack_bytes"].as_u64().unwrap();
    assert!(
        pack < big.len() as u64 / 10,
        "the push was a thin delta ({pack} bytes for a {} byte file)",
        big.len()
    );
    // What GitHub stored is the agent's file.
    let stored = std::process::Command::new("git")
        .args(["show", "agent/thin:data/big.txt"])
        .env("GIT_DIR", w.hub.repo_dir("octo-org", "widgets"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&stored.stdout).contains("line 1500: changed by the agent"));

    // A credential inside the delta: found, on its line.
    edit(
        "agent/thin-secret",
        2100,
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    );
    let r = sb.git(&work, &["push", "origin", "agent/thin-secret"]);
    refused(
        &r,
        "agent/thin-secret",
        "possible AWS access key id in data/big.txt line 2100; rule secret_scan)",
    );
    assert_eq!(hub_ref(&w, "agent/thin-secret"), None);
    assert!(last_push(&p)["push"]["pack_bytes"].as_u64().unwrap() < big.len() as u64 / 10);

    // A second push to the same repository reuses the mirror (fetched incrementally).
    sb.git(&work, &["switch", "--quiet", "agent/thin"]).ok();
    sb.commit(&work, "more.txt", b"more\n");
    sb.git(&work, &["push", "--quiet", "origin", "agent/thin"])
        .ok();
    assert_eq!(hub_ref(&w, "agent/thin"), Some(head(&sb, &work)));
}

fn inspection_off_decides_on_ref_names_alone() {
    let w = World::new();
    let p = start(&w, "inspect = false");
    let sb = Sb::new(&w, &p, "agent-a", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    sb.push_new_branch(&work, "agent/x", "a.txt", b"a\n");
    sb.git(&work, &["commit", "--quiet", "--amend", "-m", "amended"])
        .ok();
    sb.git(&work, &["push", "--quiet", "--force", "origin", "agent/x"])
        .ok();
    assert_eq!(hub_ref(&w, "agent/x"), Some(head(&sb, &work)));
    assert!(last_push(&p).get("push").is_none());
}

fn credentials_in_messages_and_names_are_refused_anywhere_in_the_history() {
    let w = World::new();
    let p = start(&w, "");
    let sb = Sb::new(&w, &p, "agent-a", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    // A token as GitHub mints them (~520 characters), and a classic one (short enough for a
    // file name).
    let token = w.hub.issued_tokens().pop().unwrap();
    assert!(token.len() > 400);
    let classic = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    let branch = |name: &str| {
        sb.git(&work, &["switch", "--quiet", "-C", name, "origin/main"])
            .ok();
    };
    // In the tip's message.
    branch("agent/msg");
    write(&work, "a.txt", b"a\n");
    sb.git(&work, &["add", "-A"]).ok();
    sb.git(
        &work,
        &[
            "commit",
            "--quiet",
            "-m",
            "Fix the build",
            "-m",
            &format!("token: {token}"),
        ],
    )
    .ok();
    let tip = head(&sb, &work);
    let r = sb.git(&work, &["push", "origin", "agent/msg"]);
    refused(
        &r,
        "agent/msg",
        &format!(
            "possible GitHub token in commit {} line 8; rule secret_scan)",
            &tip[..7]
        ),
    );
    // In an earlier commit's message, under a clean tip.
    sb.git(
        &work,
        &[
            "commit",
            "--quiet",
            "--amend",
            "-m",
            "Fix the build",
            "-m",
            &format!("token: {token}"),
        ],
    )
    .ok();
    let first = head(&sb, &work);
    sb.commit(&work, "b.txt", b"b\n");
    let r = sb.git(&work, &["push", "origin", "agent/msg"]);
    refused(
        &r,
        "agent/msg",
        &format!("possible GitHub token in commit {}", &first[..7]),
    );
    // In a file name, even one a later commit removes again.
    branch("agent/name");
    write(&work, &format!("creds/{classic}.txt"), b"x\n");
    commit_all(&sb, &work, "add");
    sb.git(&work, &["rm", "--quiet", "-r", "creds"]).ok();
    sb.git(&work, &["commit", "--quiet", "-m", "remove"]).ok();
    let r = sb.git(&work, &["push", "origin", "agent/name"]);
    refused(
        &r,
        "agent/name",
        "possible GitHub token in the file name \"creds/<redacted GitHub token>.txt\"",
    );
    // In the ref name.
    let name = format!("agent/{classic}");
    branch(&name);
    sb.commit(&work, "c.txt", b"c\n");
    let r = sb.git(&work, &["push", "origin", &name]);
    r.fails();
    assert!(
        r.stderr.contains(
            "possible GitHub token in the ref name \"refs/heads/agent/<redacted GitHub token>\""
        ),
        "{r:#?}"
    );
    for b in ["agent/msg", "agent/name", name.as_str()] {
        assert_eq!(hub_ref(&w, b), None);
    }
    for secret in [token.as_str(), classic] {
        assert!(!p.log().contains(secret));
        assert!(
            !std::fs::read_to_string(&p.audit_path)
                .unwrap()
                .contains(secret)
        );
    }
    // A message and names without one pass.
    branch("agent/clean");
    write(&work, "docs/ghp_prefix_only.md", b"about ghp_ prefixes\n");
    commit_all(&sb, &work, "Explain the ghp_ prefix");
    sb.git(&work, &["push", "--quiet", "origin", "agent/clean"])
        .ok();
}

fn what_a_pack_inflates_to_is_bounded_before_it_is_inflated() {
    let w = World::new();
    let p = w.start_proxy(
        &format!(
            "[[sandbox]]\nname = \"agent-a\"\nsecret = \"{SECRET}\"\nrepos = [\"octo-org/widgets\"]\npush = [\"agent/*\"]\n"
        ),
        "[limits]\nmax_inflated_bytes = 33554432",
    );
    let sb = Sb::new(&w, &p, "agent-a", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    sb.git(&work, &["switch", "--quiet", "-c", "agent/zeros"])
        .ok();
    // 48 files of 1 MiB that compress to almost nothing: a pack of a few KiB that inflates to
    // 48 MiB, each file far under max_file_bytes.
    for i in 0..48 {
        let mut data = vec![0u8; 1 << 20];
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        write(&work, &format!("zeros/{i}.bin"), &data);
    }
    commit_all(&sb, &work, "zeros");
    let r = sb.git(&work, &["push", "origin", "agent/zeros"]);
    refused(
        &r,
        "agent/zeros",
        "the pack's objects inflate to over 32 MiB, more than the proxy inflates for one push (max_inflated_bytes)",
    );
    assert!(last_push(&p)["push"]["pack_bytes"].as_u64().unwrap() < 1 << 20);
    assert_eq!(
        hub_ref(&w, "agent/zeros"),
        None,
        "GitHub never had the whole pack"
    );
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "force_pushes_are_decided_on_ancestry",
        force_pushes_are_decided_on_ancestry,
    ),
    (
        "protected_paths_are_decided_on_the_net_change",
        protected_paths_are_decided_on_the_net_change,
    ),
    (
        "large_files_and_pushes_are_refused_before_the_upload_completes",
        large_files_and_pushes_are_refused_before_the_upload_completes,
    ),
    (
        "credentials_are_refused_by_file_and_line_never_echoed",
        credentials_are_refused_by_file_and_line_never_echoed,
    ),
    (
        "thin_packs_with_deltas_against_what_only_github_has_are_decided",
        thin_packs_with_deltas_against_what_only_github_has_are_decided,
    ),
    (
        "inspection_off_decides_on_ref_names_alone",
        inspection_off_decides_on_ref_names_alone,
    ),
    (
        "credentials_in_messages_and_names_are_refused_anywhere_in_the_history",
        credentials_in_messages_and_names_are_refused_anywhere_in_the_history,
    ),
    (
        "what_a_pack_inflates_to_is_bounded_before_it_is_inflated",
        what_a_pack_inflates_to_is_bounded_before_it_is_inflated,
    ),
];
