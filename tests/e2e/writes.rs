//! Every write decided once (issue 21): a change reaching GitHub by `git push`, by GraphQL's
//! `createCommitOnBranch`, or by moving a ref through `createRef`/`updateRef` is described the
//! same way and gets the same verdict; the trust mode weighs every pull request of a request
//! and whatever grows one; an approval opens exactly what was reviewed. Real git, curl and
//! `ghapp` through the real proxy against fakehub; each refusal checked at fakehub too.

use std::path::Path;

use base64::Engine;
use ghapp_e2e::{ProxyProc, Run, Sandbox as Sb, World};
use serde_json::{Value, json};

pub(crate) const SECRET: &str = "writes-sandbox-secret-0123456789";
const ADMIN: &str = "writes-admin-token-0123456789abc";

/// A proxy with one sandbox `agent` on octo-org/widgets (pushing `agent/*` unless `extra`
/// says otherwise, files up to 64 KiB) in `mode`, with `extra` keys in its table, a state
/// store and an admin API.
pub(crate) fn start(w: &World, mode: &str, extra: &str) -> ProxyProc {
    let push = if extra.contains("push =") {
        ""
    } else {
        "push = [\"agent/*\"]"
    };
    let token = w.path("admin-token");
    std::fs::write(&token, ADMIN).unwrap();
    let state = format!("sqlite:{}", w.path("state/proxy.db").display());
    w.start_proxy(
        &format!(
            r#"
[[sandbox]]
name = "agent"
secret = "{SECRET}"
repos = ["octo-org/widgets"]
{push}
max_file_bytes = 65536
mode = "{mode}"
significant = {{ files = 5, lines = 100 }}
{extra}
"#
        ),
        &format!(
            "admin_listen = \"127.0.0.1:0\"\nadmin_token = {{ file = {:?} }}\nstate = {state:?}\n",
            token.display().to_string()
        ),
    )
}

/// A GraphQL request as an SDK in the sandbox sends it: the status and the answer.
pub(crate) fn gql(w: &World, sb: &Sb<'_>, query: &str, variables: Value) -> (u16, Value) {
    rest(
        w,
        sb,
        "POST",
        "/api/graphql",
        &json!({"query": query, "variables": variables}),
    )
}

/// A REST call (`path` on fakehub's host) as an SDK in the sandbox makes it.
pub(crate) fn rest(w: &World, sb: &Sb<'_>, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let ca = sb
        .env
        .iter()
        .find(|(k, _)| k == "GIT_SSL_CAINFO")
        .map(|(_, v)| v.clone())
        .unwrap();
    let url = format!("{}{path}", w.hub.url());
    let mut args = vec![
        "-s",
        "--cacert",
        &ca,
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "-H",
        "Authorization: Bearer placeholder",
    ];
    // The body from a file: a large one would not fit on a command line.
    let file = w.path(&format!("body-{}.json", rand_suffix()));
    let at = format!("@{}", file.display());
    if !body.is_null() {
        std::fs::write(&file, body.to_string()).unwrap();
        args.extend(["--data-binary", &at]);
    }
    args.push(&url);
    let r = w.cmd("curl").env(&sb.env).args(&args).run();
    let (answer, code) = r
        .stdout
        .trim()
        .rsplit_once('\n')
        .unwrap_or(("", r.stdout.trim()));
    (
        code.parse().unwrap_or(0),
        serde_json::from_str(answer).unwrap_or(Value::Null),
    )
}

/// A name no other call of this process uses.
fn rand_suffix() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn hub_ref(w: &World, refname: &str) -> Option<String> {
    w.hub_ref("octo-org", "widgets", refname)
}

/// A person's commit straight into fakehub (no proxy): `files` on top of main, on branch
/// `human/NAME`; its id.
fn seed(w: &World, name: &str, files: &[(&str, Vec<u8>)]) -> String {
    let dir = w.path(&format!("seed-{name}"));
    let bare = w.hub.repo_dir("octo-org", "widgets");
    w.git(
        w.root.path(),
        &[
            "clone",
            "--quiet",
            &bare.display().to_string(),
            &dir.display().to_string(),
        ],
    )
    .ok();
    w.git(&dir, &["switch", "--quiet", "-c", &format!("human/{name}")])
        .ok();
    for (path, bytes) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
        w.git(&dir, &["add", path]).ok();
    }
    w.git(&dir, &["commit", "--quiet", "-m", &format!("human {name}")])
        .ok();
    // Past fakehub's workflow hook: a person with the right to change workflows.
    w.git(&dir, &["push", "--quiet", "--no-verify", "origin", "HEAD"])
        .ok();
    String::from_utf8(
        std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&dir)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned()
}

/// The repository's node id and, for each of `refs`, the ref's node id (as an agent reads
/// them, through the proxy).
pub(crate) fn ids(w: &World, sb: &Sb<'_>, refs: &[&str]) -> (String, Vec<String>) {
    let (_, v) = gql(
        w,
        sb,
        "query($o: String!, $n: String!) { repository(owner: $o, name: $n) { id } }",
        json!({"o": "octo-org", "n": "widgets"}),
    );
    let repo = v["data"]["repository"]["id"].as_str().unwrap().to_owned();
    let refs = refs
        .iter()
        .map(|r| {
            let (_, v) = gql(
                w,
                sb,
                "query($o: String!, $n: String!, $r: String!) { repository(owner: $o, name: $n) { ref(qualifiedName: $r) { id } } }",
                json!({"o": "octo-org", "n": "widgets", "r": r}),
            );
            v["data"]["repository"]["ref"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}: {v}"))
                .to_owned()
        })
        .collect();
    (repo, refs)
}

fn main_sha(w: &World) -> String {
    hub_ref(w, "refs/heads/main").unwrap()
}

/// What the GraphQL mutations fakehub received name.
pub(crate) fn mutations_received(w: &World) -> Vec<String> {
    w.hub
        .counters()
        .graphql
        .into_iter()
        .filter(|g| g.starts_with("mutation"))
        .collect()
}

/// `bytes` that no compressor shrinks.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x & 0xff) as u8
        })
        .collect()
}

/// A private key as real files hold it, made now (none is committed).
fn private_key() -> Vec<u8> {
    rcgen::KeyPair::generate()
        .unwrap()
        .serialize_pem()
        .into_bytes()
}

/// The rule a refusal named (`rule X`), or `None` for an accepted change.
fn rule_in(text: &str) -> Option<String> {
    let i = text.find("rule ")?;
    Some(
        text[i + 5..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect(),
    )
}

/// One change, pushed with git by the sandbox on a new branch `agent/BRANCH`: the rule that
/// refused it, or `None`.
fn by_push(sb: &Sb<'_>, work: &Path, branch: &str, files: &[(&str, Vec<u8>)]) -> Option<String> {
    sb.git(work, &["switch", "--quiet", "-C", branch, "origin/main"])
        .ok();
    for (path, bytes) in files {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    sb.git(work, &["add", "-A"]).ok();
    sb.git(work, &["commit", "--quiet", "-m", branch]).ok();
    let r = sb.git(
        work,
        &["push", "origin", &format!("HEAD:refs/heads/{branch}")],
    );
    if r.success() {
        None
    } else {
        Some(rule_in(&r.stderr).unwrap_or_else(|| format!("(no rule) {}", r.stderr)))
    }
}

/// The rule a GraphQL answer's error named, or `None` when it has none.
fn rule_of(v: &Value) -> Option<String> {
    let m = v["errors"][0]["message"].as_str()?;
    Some(rule_in(m).unwrap_or_else(|| format!("(no rule) {m}")))
}

/// A change: its name, its files, and the rule that refuses it (`None`: allowed).
type Change = (
    &'static str,
    Vec<(&'static str, Vec<u8>)>,
    Option<&'static str>,
);

fn every_channel_decides_a_change_the_same_way() {
    let w = World::new();
    let p = start(&w, "autonomous", "");
    let sb = Sb::new(&w, &p, "agent", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    let token = format!("ghp_{}", "a1B2c3D4e5".repeat(4).get(..36).unwrap());
    let changes: Vec<Change> = vec![
        ("plain", vec![("docs/notes.md", b"notes\n".to_vec())], None),
        (
            "workflow",
            vec![(".github/workflows/evil.yml", b"on: push\n".to_vec())],
            Some("protected_paths"),
        ),
        (
            "token",
            vec![("config/app.env", format!("TOKEN={token}\n").into_bytes())],
            Some("secret_scan"),
        ),
        (
            "key",
            vec![("deploy/id.pem", private_key())],
            Some("secret_scan"),
        ),
        (
            "big",
            vec![("assets/big.bin", noise(100 << 10))],
            Some("max_file_bytes"),
        ),
    ];
    let main = main_sha(&w);
    for (name, files, want) in &changes {
        let want = want.map(str::to_owned);
        // 1. git push of the change on a new branch.
        let got = by_push(&sb, &work, &format!("agent/push-{name}"), files);
        assert_eq!(got, want, "{name} by git push");

        // 2. createCommitOnBranch on a branch the sandbox made at main.
        let branch = format!("agent/cob-{name}");
        sb.git(
            &work,
            &[
                "push",
                "--quiet",
                "origin",
                &format!("{main}:refs/heads/{branch}"),
            ],
        )
        .ok();
        let before = mutations_received(&w).len();
        let additions: Vec<Value> = files
            .iter()
            .map(|(path, bytes)| {
                json!({"path": path, "contents": base64::engine::general_purpose::STANDARD.encode(bytes)})
            })
            .collect();
        let (code, v) = gql(
            &w,
            &sb,
            "mutation($i: CreateCommitOnBranchInput!) { createCommitOnBranch(input: $i) { commit { oid } } }",
            json!({"i": {
                "branch": {"repositoryNameWithOwner": "octo-org/widgets", "branchName": branch},
                "expectedHeadOid": main,
                "message": {"headline": format!("{name} through the API")},
                "fileChanges": {"additions": additions},
            }}),
        );
        assert_eq!(
            rule_of(&v),
            want,
            "{name} by createCommitOnBranch: {code} {v}"
        );
        let arrived = mutations_received(&w).len() - before;
        let at = hub_ref(&w, &format!("refs/heads/{branch}")).unwrap();
        if want.is_some() {
            assert_eq!(arrived, 0, "{name}: the refused mutation reached GitHub");
            assert_eq!(at, main, "{name}: the branch moved");
            assert!(
                v["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("createCommitOnBranch")
            );
        } else {
            assert_eq!(arrived, 1);
            assert_eq!(
                Some(at),
                v["data"]["createCommitOnBranch"]["commit"]["oid"]
                    .as_str()
                    .map(str::to_owned)
            );
        }

        // 3. createRef and updateRef onto the same change, a person's commit GitHub has.
        let commit = seed(&w, name, files);
        let upd = format!("agent/upd-{name}");
        sb.git(
            &work,
            &[
                "push",
                "--quiet",
                "origin",
                &format!("{main}:refs/heads/{upd}"),
            ],
        )
        .ok();
        let (repo_id, refs) = ids(&w, &sb, &[&format!("refs/heads/{upd}")]);
        let before = mutations_received(&w).len();
        let (code, v) = gql(
            &w,
            &sb,
            "mutation($r: ID!, $n: String!, $o: GitObjectID!) { createRef(input: {repositoryId: $r, name: $n, oid: $o}) { ref { name } } }",
            json!({"r": repo_id, "n": format!("refs/heads/agent/ref-{name}"), "o": commit}),
        );
        assert_eq!(rule_of(&v), want, "{name} by createRef: {code} {v}");
        let (code, v) = gql(
            &w,
            &sb,
            "mutation($r: ID!, $o: GitObjectID!) { updateRef(input: {refId: $r, oid: $o}) { ref { name } } }",
            json!({"r": refs[0], "o": commit}),
        );
        assert_eq!(rule_of(&v), want, "{name} by updateRef: {code} {v}");
        let arrived = mutations_received(&w).len() - before;
        let created = hub_ref(&w, &format!("refs/heads/agent/ref-{name}"));
        let updated = hub_ref(&w, &format!("refs/heads/{upd}"));
        if want.is_some() {
            assert_eq!(
                (arrived, created, updated),
                (0, None, Some(main.clone())),
                "{name}"
            );
        } else {
            assert_eq!(arrived, 2);
            assert_eq!((created, updated), (Some(commit.clone()), Some(commit)));
        }
    }

    // A rewind: git push --force, and updateRef / updateRefs with force, for a sandbox whose
    // `force` list is empty.
    sb.git(
        &work,
        &["switch", "--quiet", "-C", "agent/rw", "origin/main"],
    )
    .ok();
    sb.commit(&work, "rw.txt", b"one\n");
    sb.git(&work, &["push", "--quiet", "origin", "agent/rw"])
        .ok();
    let tip = hub_ref(&w, "refs/heads/agent/rw").unwrap();
    sb.git(&work, &["commit", "--quiet", "--amend", "-m", "rewritten"])
        .ok();
    let r = sb.git(&work, &["push", "--force", "origin", "agent/rw"]);
    assert_eq!(rule_in(&r.stderr).as_deref(), Some("force"), "{r:#?}");
    let (repo_id, refs) = ids(&w, &sb, &["refs/heads/agent/rw"]);
    let before = mutations_received(&w).len();
    let (_, v) = gql(
        &w,
        &sb,
        "mutation($r: ID!, $o: GitObjectID!) { updateRef(input: {refId: $r, oid: $o, force: true}) { ref { name } } }",
        json!({"r": refs[0], "o": main}),
    );
    assert_eq!(rule_of(&v).as_deref(), Some("force"), "{v}");
    let (_, v) = gql(
        &w,
        &sb,
        "mutation($r: ID!, $u: [RefUpdate!]!) { updateRefs(input: {repositoryId: $r, refUpdates: $u}) { clientMutationId } }",
        json!({"r": repo_id, "u": [{"name": "refs/heads/agent/rw", "afterOid": main, "force": true}]}),
    );
    assert_eq!(rule_of(&v).as_deref(), Some("force"), "{v}");
    assert_eq!(
        mutations_received(&w).len(),
        before,
        "no rewind reached GitHub"
    );
    assert_eq!(hub_ref(&w, "refs/heads/agent/rw"), Some(tip.clone()));

    // A delete, without allow_delete: by git and by deleteRef.
    let r = sb.git(&work, &["push", "origin", "--delete", "agent/rw"]);
    assert!(r.stderr.contains("deleting refs is not allowed"), "{r:#?}");
    let (_, v) = gql(
        &w,
        &sb,
        "mutation($r: ID!) { deleteRef(input: {refId: $r}) { clientMutationId } }",
        json!({"r": refs[0]}),
    );
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("deleting refs is not allowed"),
        "{v}"
    );
    assert_eq!(hub_ref(&w, "refs/heads/agent/rw"), Some(tip));
    w.assert_no_secrets();
}

fn history_github_has_cannot_launder_a_protected_path() {
    let w = World::new();
    // `deploy/**` is protected here (fakehub, as GitHub, refuses workflow files to this app's
    // token by itself, commit by commit; the proxy's rule is what stands for every other path).
    let p = start(
        &w,
        "autonomous",
        "push = [\"agent/*\", \"refs/tags/agent-*\"]\nprotected_paths = [\".github/workflows/**\", \"deploy/**\"]",
    );
    let sb = Sb::new(&w, &p, "agent", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    // Push 1: agent/x through S -> C1 (adds deploy/prod.yml) -> C2 (removes it): no net
    // change, accepted.
    sb.git(&work, &["switch", "--quiet", "-c", "agent/x"]).ok();
    std::fs::create_dir_all(work.join("deploy")).unwrap();
    sb.commit(&work, "deploy/prod.yml", b"replicas: 100\n");
    let c1 = sb
        .git(&work, &["rev-parse", "HEAD"])
        .stdout
        .trim()
        .to_owned();
    sb.git(&work, &["rm", "--quiet", "deploy/prod.yml"]).ok();
    sb.git(&work, &["commit", "--quiet", "-m", "gone again"])
        .ok();
    sb.git(&work, &["push", "origin", "agent/x"]).ok();
    assert!(hub_ref(&w, "refs/heads/agent/x").is_some());
    // Push 2: a branch, or a tag, at C1, with no pack at all: refused.
    for target in ["refs/heads/agent/y", "refs/tags/agent-1"] {
        let r = sb.git(&work, &["push", "origin", &format!("{c1}:{target}")]);
        r.fails();
        assert!(
            r.stderr
                .contains("protected path deploy/prod.yml (added); rule protected_paths"),
            "{target}: {r:#?}"
        );
        assert_eq!(hub_ref(&w, target), None, "{target}");
    }
    // Or an existing branch moved onto C1 (a fast-forward from main).
    sb.git(
        &work,
        &[
            "push",
            "--quiet",
            "origin",
            "origin/main:refs/heads/agent/z",
        ],
    )
    .ok();
    let r = sb.git(
        &work,
        &["push", "origin", &format!("{c1}:refs/heads/agent/z")],
    );
    assert!(r.stderr.contains("rule protected_paths"), "{r:#?}");
    // A branch at history GitHub has that lands nothing protected passes.
    let r = sb.git(&work, &["push", "origin", "agent/x:refs/heads/agent/copy"]);
    assert!(r.success(), "{r:#?}");
}

/// A push of `commands` (`old new ref`) and the pack of `revs`, sent as a hostile client may:
/// git's own client refuses two commands on one ref.
fn raw_push(
    p: &ProxyProc,
    w: &World,
    work: &Path,
    commands: &[(String, String, &str)],
    revs: &str,
) -> String {
    let pack = std::process::Command::new("git")
        .args(["pack-objects", "--stdout", "--revs", "-q"])
        .current_dir(work)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(revs.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap()
        .stdout;
    let mut body = Vec::new();
    for (i, (old, new, r)) in commands.iter().enumerate() {
        let line = if i == 0 {
            format!("{old} {new} {r}\0report-status\n")
        } else {
            format!("{old} {new} {r}\n")
        };
        body.extend_from_slice(format!("{:04x}{line}", line.len() + 4).as_bytes());
    }
    body.extend_from_slice(b"0000");
    body.extend_from_slice(&pack);
    let mut t = p.tunnel("agent", SECRET, &w.hub.git_host());
    let a = t
        .request(
            "POST",
            "/octo-org/widgets.git/git-receive-pack",
            &[("Content-Type", "application/x-git-receive-pack-request")],
            &body,
        )
        .unwrap();
    assert_eq!(a.status, 200, "{a:#?}");
    a.body
}

fn a_delete_and_a_create_of_one_ref_is_a_rewrite() {
    let w = World::new();
    let p = start(&w, "autonomous", "allow_delete = true");
    let sb = Sb::new(&w, &p, "agent", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    sb.push_new_branch(&work, "agent/x", "x.txt", b"one\n");
    let tip = hub_ref(&w, "refs/heads/agent/x").unwrap();
    sb.git(&work, &["commit", "--quiet", "--amend", "-m", "rewritten"])
        .ok();
    let new = sb
        .git(&work, &["rev-parse", "HEAD"])
        .stdout
        .trim()
        .to_owned();
    let zero = "0".repeat(40);
    let report = raw_push(
        &p,
        &w,
        &work,
        &[
            (tip.clone(), zero.clone(), "refs/heads/agent/x"),
            (zero, new.clone(), "refs/heads/agent/x"),
        ],
        &format!("{new}\n^{tip}^\n"),
    );
    assert!(
        report.contains("ng refs/heads/agent/x force-push not allowed"),
        "{report}"
    );
    assert_eq!(hub_ref(&w, "refs/heads/agent/x"), Some(tip));
    // A delete alone is what allow_delete allows.
    let r = sb.git(&work, &["push", "origin", "--delete", "agent/x"]);
    assert!(r.success(), "{r:#?}");
}

/// `ghapp approvals ARGS` against the proxy's admin API.
pub(crate) fn approvals(w: &World, p: &ProxyProc, args: &[&str]) -> Run {
    let mut env = w.env().to_vec();
    env.push(("GHAPP_ADMIN_URL".to_owned(), p.admin_url.clone().unwrap()));
    env.push(("GHAPP_ADMIN_TOKEN".to_owned(), ADMIN.to_owned()));
    let mut all = vec!["approvals"];
    all.extend_from_slice(args);
    w.cmd("ghapp").env(&env).args(&all).dir(w.root.path()).run()
}

/// `n` files of `lines` lines each.
fn files(prefix: &str, n: usize, lines: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let text: String = (0..lines)
                .map(|l| format!("{prefix} {i} line {l}\n"))
                .collect();
            (format!("{prefix}/f{i}.txt"), text.into_bytes())
        })
        .collect()
}

fn commit_files(sb: &Sb<'_>, work: &Path, list: &[(String, Vec<u8>)], msg: &str) {
    for (path, bytes) in list {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    sb.git(work, &["add", "-A"]).ok();
    sb.git(work, &["commit", "--quiet", "-m", msg]).ok();
}

fn assisted_mode_weighs_every_pull_request_and_whatever_grows_one() {
    let w = World::new();
    let p = start(&w, "assisted", "");
    let sb = Sb::new(&w, &p, "agent", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    let push = |branch: &str, list: &[(String, Vec<u8>)]| {
        sb.git(&work, &["switch", "--quiet", "-C", branch, "origin/main"])
            .ok();
        commit_files(&sb, &work, list, branch);
        sb.git(&work, &["push", "--quiet", "origin", branch]).ok();
    };
    push("agent/small", &files("small", 1, 3));
    push("agent/big", &files("big", 6, 30));
    let (repo_id, _) = ids(&w, &sb, &[]);

    // Two pull requests in one request, the small one first: the big one is held, and
    // nothing of the request reaches GitHub.
    let before = mutations_received(&w).len();
    let (_, v) = gql(
        &w,
        &sb,
        "mutation($r: ID!) { a: createPullRequest(input: {repositoryId: $r, headRefName: \"agent/small\", baseRefName: \"main\", title: \"small\"}) { pullRequest { number } } b: createPullRequest(input: {repositoryId: $r, headRefName: \"agent/big\", baseRefName: \"main\", title: \"big\"}) { pullRequest { number } } }",
        json!({"r": repo_id}),
    );
    let msg = v["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("the change is significant (6 files, over 5)")
            && msg.contains(
                "pull request agent/big -> main in octo-org/widgets is held for approval 1"
            )
            && !msg.contains("agent/small -> main"),
        "{v}"
    );
    assert_eq!(mutations_received(&w).len(), before);
    assert!(w.hub.pulls().is_empty());
    let listed = approvals(&w, &p, &["list"]);
    assert!(listed.stdout.contains("agent/big"), "{listed:#?}");
    assert!(!listed.stdout.contains("agent/small"), "{listed:#?}");

    // The small one alone is opened at once.
    let (code, v) = rest(
        &w,
        &sb,
        "POST",
        "/api/v3/repos/octo-org/widgets/pulls",
        &json!({"head": "agent/small", "base": "main", "title": "small"}),
    );
    assert_eq!(code, 201, "{v}");
    let number = v["number"].as_u64().unwrap();
    let small_tip = hub_ref(&w, "refs/heads/agent/small").unwrap();

    // It may grow a little...
    sb.git(&work, &["switch", "--quiet", "agent/small"]).ok();
    commit_files(&sb, &work, &files("more", 1, 2), "a little more");
    let r = sb.git(&work, &["push", "origin", "agent/small"]);
    assert!(r.success(), "{r:#?}");
    let small_tip2 = hub_ref(&w, "refs/heads/agent/small").unwrap();
    assert_ne!(small_tip2, small_tip);
    // ...but a push that makes it significant is refused, and GitHub's branch stays.
    commit_files(&sb, &work, &files("grown", 6, 40), "a lot more");
    let r = sb.git(&work, &["push", "origin", "agent/small"]);
    r.fails();
    assert!(
        r.stderr.contains(&format!(
            "it would make pull request #{number} significant (8 files, over 5)"
        )) && r.stderr.contains("rule mode"),
        "{r:#?}"
    );
    assert_eq!(hub_ref(&w, "refs/heads/agent/small"), Some(small_tip2));

    // A small pull request onto a stacked base that holds the big change: its base changed
    // to main is measured again, and refused (REST and GraphQL alike).
    sb.git(
        &work,
        &[
            "switch",
            "--quiet",
            "-C",
            "agent/stacked",
            "origin/agent/big",
        ],
    )
    .ok();
    commit_files(&sb, &work, &files("top", 1, 2), "on top");
    sb.git(&work, &["push", "--quiet", "origin", "agent/stacked"])
        .ok();
    let (code, v) = rest(
        &w,
        &sb,
        "POST",
        "/api/v3/repos/octo-org/widgets/pulls",
        &json!({"head": "agent/stacked", "base": "agent/big", "title": "stacked"}),
    );
    assert_eq!(code, 201, "{v}");
    let stacked = v["number"].as_u64().unwrap();
    let (code, v) = rest(
        &w,
        &sb,
        "PATCH",
        &format!("/api/v3/repos/octo-org/widgets/pulls/{stacked}"),
        &json!({"base": "main"}),
    );
    assert_eq!(code, 403, "{v}");
    assert!(
        v["message"].as_str().unwrap_or_default().contains(&format!(
            "the new base makes pull request #{stacked} significant (7 files, over 5)"
        )),
        "{v}"
    );
    let node = {
        let (_, v) = gql(
            &w,
            &sb,
            "query($n: Int!) { repository(owner: \"octo-org\", name: \"widgets\") { pullRequest(number: $n) { id } } }",
            json!({"n": stacked}),
        );
        v["data"]["repository"]["pullRequest"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let before = mutations_received(&w).len();
    let (_, v) = gql(
        &w,
        &sb,
        "mutation($p: ID!) { updatePullRequest(input: {pullRequestId: $p, baseRefName: \"main\"}) { pullRequest { number } } }",
        json!({"p": node}),
    );
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("significant"),
        "{v}"
    );
    assert_eq!(mutations_received(&w).len(), before);
    let pulls = w.hub.pulls();
    assert_eq!(
        pulls.iter().find(|p| p.number == stacked).unwrap().base,
        "agent/big"
    );
}

fn an_approval_opens_exactly_what_was_reviewed() {
    let w = World::new();
    let p = start(&w, "learning", "");
    let sb = Sb::new(&w, &p, "agent", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    // A held request needs a head that exists.
    let (code, v) = rest(
        &w,
        &sb,
        "POST",
        "/api/v3/repos/octo-org/widgets/pulls",
        &json!({"head": "agent/nowhere", "base": "main", "title": "nothing"}),
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the head branch agent/nowhere does not exist"),
        "{v}"
    );
    assert_eq!(approvals(&w, &p, &["list"]).stdout.trim(), "no approvals");

    sb.push_new_branch(&work, "agent/rev", "rev.txt", b"reviewed\n");
    let reviewed = hub_ref(&w, "refs/heads/agent/rev").unwrap();
    let (code, v) = rest(
        &w,
        &sb,
        "POST",
        "/api/v3/repos/octo-org/widgets/pulls",
        &json!({"head": "agent/rev", "base": "main", "title": "reviewed"}),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["approval_id"].as_i64().unwrap();
    let shown = approvals(&w, &p, &["show", &id.to_string(), "--json"]);
    let a: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(a["head_sha"], reviewed, "{a}");
    // While it waits, nothing more lands on its head: not by git, not through the API.
    sb.commit(&work, "later.txt", b"not reviewed\n");
    let r = sb.git(&work, &["push", "origin", "agent/rev"]);
    r.fails();
    assert!(
        r.stderr.contains(&format!(
            "its pull request is held for approval {id} as reviewed at {}",
            &reviewed[..7]
        )),
        "{r:#?}"
    );
    let (_, v) = gql(
        &w,
        &sb,
        "mutation($h: GitObjectID!) { createCommitOnBranch(input: {branch: {repositoryNameWithOwner: \"octo-org/widgets\", branchName: \"agent/rev\"}, expectedHeadOid: $h, message: {headline: \"sneak\"}, fileChanges: {additions: [{path: \"sneak.txt\", contents: \"eA==\"}]}}) { commit { oid } } }",
        json!({"h": reviewed}),
    );
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("held for approval"),
        "{v}"
    );
    assert_eq!(hub_ref(&w, "refs/heads/agent/rev"), Some(reviewed.clone()));
    // Approved: the pull request opens at the commit the person was shown.
    approvals(&w, &p, &["approve", &id.to_string()]).ok();
    let pr = w
        .hub
        .pulls()
        .into_iter()
        .find(|p| p.head == "agent/rev")
        .unwrap();
    assert_eq!(pr.head_sha, reviewed);
    // Once open, its head and base are what was approved: a push and a base change are refused.
    let r = sb.git(&work, &["push", "origin", "agent/rev"]);
    assert!(
        r.stderr
            .contains(&format!("it is the head of pull request #{}", pr.number)),
        "{r:#?}"
    );
    let (code, v) = rest(
        &w,
        &sb,
        "PATCH",
        &format!("/api/v3/repos/octo-org/widgets/pulls/{}", pr.number),
        &json!({"base": "release"}),
    );
    assert_eq!(code, 403, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("was approved as it is"),
        "{v}"
    );
    assert_eq!(hub_ref(&w, "refs/heads/agent/rev"), Some(reviewed));
}

fn rest_writes_to_git_data_meet_the_same_rules() {
    let w = World::new();
    let p = start(
        &w,
        "autonomous",
        r#"rest = ["PUT /repos/{owner}/{repo}/contents/{path+}", "POST /repos/{owner}/{repo}/git/refs", "PATCH /repos/{owner}/{repo}/git/refs/{ref+}", "POST /repos/{owner}/{repo}/git/blobs", "POST /repos/{owner}/{repo}/git/tags", "POST /repos/{owner}/{repo}/merges"]"#,
    );
    let sb = Sb::new(&w, &p, "agent", SECRET);
    sb.clone("octo-org", "widgets", "work", &[]).ok();
    let work = w.path("work");
    sb.push_new_branch(&work, "agent/x", "x.txt", b"one\n");
    let tip = hub_ref(&w, "refs/heads/agent/x").unwrap();
    let main = main_sha(&w);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let token = format!("ghp_{}", "Zx9Yw8Vu7T".repeat(4).get(..36).unwrap());
    let api = "/api/v3/repos/octo-org/widgets";
    let refused = [
        (
            "PUT",
            format!("{api}/contents/.github/workflows/x.yml"),
            json!({"message": "m", "content": b64("on: push\n"), "branch": "agent/x"}),
            "protected path .github/workflows/x.yml (added); rule protected_paths",
        ),
        (
            "PUT",
            format!("{api}/contents/app.env"),
            json!({"message": "m", "content": b64(&format!("T={token}\n")), "branch": "agent/x"}),
            "possible GitHub token in app.env line 1; rule secret_scan",
        ),
        (
            "PUT",
            format!("{api}/contents/README.md"),
            json!({"message": "m", "content": b64("x"), "branch": "main"}),
            "refs/heads/main: pushes allowed only to refs/heads/agent/*",
        ),
        (
            "PUT",
            format!("{api}/contents/README.md"),
            json!({"message": "m", "content": b64("x")}),
            "name the branch",
        ),
        (
            "PATCH",
            format!("{api}/git/refs/heads/agent/x"),
            json!({"sha": main, "force": true}),
            "force-push not allowed",
        ),
        (
            "POST",
            format!("{api}/git/blobs"),
            json!({"content": format!("T={token}\n"), "encoding": "utf-8"}),
            "possible GitHub token in (a blob) line 1; rule secret_scan",
        ),
        (
            "POST",
            format!("{api}/merges"),
            json!({"base": "main", "head": "agent/x"}),
            "refs/heads/main: pushes allowed only to refs/heads/agent/*",
        ),
        // Messages and names are scanned as files are.
        (
            "PUT",
            format!("{api}/contents/notes.txt"),
            json!({"message": format!("add notes\n\nwith {token}"), "content": b64("x"), "branch": "agent/x"}),
            "possible GitHub token in the commit message line 3; rule secret_scan",
        ),
        (
            "PUT",
            format!("{api}/contents/creds/{token}.txt"),
            json!({"message": "m", "content": b64("x"), "branch": "agent/x"}),
            "possible GitHub token in the file name \"creds/<redacted GitHub token>.txt\"",
        ),
        (
            "POST",
            format!("{api}/git/tags"),
            json!({"tag": "v1", "message": format!("release\n{token}\n"), "object": tip, "type": "commit"}),
            "possible GitHub token in the message line 2; rule secret_scan",
        ),
    ];
    for (method, path, body, why) in &refused {
        let before = w.hub.requests().len();
        let (code, v) = rest(&w, &sb, method, path, body);
        assert!(code == 403 || code == 422, "{method} {path}: {code} {v}");
        assert!(
            v["message"].as_str().unwrap_or_default().contains(why),
            "{method} {path}: {v}"
        );
        let arrived: Vec<_> = w.hub.requests()[before..]
            .iter()
            .filter(|r| {
                !r.target.contains("graphql")
                    && !r.target.contains("git-upload-pack")
                    && !r.target.contains("info/refs")
            })
            .map(|r| format!("{} {}", r.method, r.target))
            .collect();
        assert!(
            arrived.is_empty(),
            "{method} {path} reached GitHub: {arrived:?}"
        );
    }
    assert_eq!(hub_ref(&w, "refs/heads/agent/x"), Some(tip));
    // An allowed one is sent on, as it was decided.
    let before = w.hub.requests().len();
    let (_, _) = rest(
        &w,
        &sb,
        "PUT",
        &format!("{api}/contents/docs/notes.md"),
        &json!({"message": "m", "content": b64("notes\n"), "branch": "agent/x"}),
    );
    assert!(
        w.hub.requests()[before..].iter().any(|r| r.method == "PUT"
            && r.target == "/api/v3/repos/octo-org/widgets/contents/docs/notes.md"),
        "{:?}",
        w.hub.requests()[before..]
            .iter()
            .map(|r| r.target.clone())
            .collect::<Vec<_>>()
    );
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "every_channel_decides_a_change_the_same_way",
        every_channel_decides_a_change_the_same_way,
    ),
    (
        "history_github_has_cannot_launder_a_protected_path",
        history_github_has_cannot_launder_a_protected_path,
    ),
    (
        "a_delete_and_a_create_of_one_ref_is_a_rewrite",
        a_delete_and_a_create_of_one_ref_is_a_rewrite,
    ),
    (
        "assisted_mode_weighs_every_pull_request_and_whatever_grows_one",
        assisted_mode_weighs_every_pull_request_and_whatever_grows_one,
    ),
    (
        "an_approval_opens_exactly_what_was_reviewed",
        an_approval_opens_exactly_what_was_reviewed,
    ),
    (
        "rest_writes_to_git_data_meet_the_same_rules",
        rest_writes_to_git_data_meet_the_same_rules,
    ),
];
