//! `gh-pr open` end to end: real git, the built gh-pr, fakehub; the three ways to authenticate.

use std::path::PathBuf;

use ghapp_e2e::{Run, World};

/// Clones widgets, commits on `branch` and pushes it through the helper.
fn pushed_branch(w: &World, dest: &str, branch: &str, message: &str) -> PathBuf {
    w.clone_repo("octo-org", "widgets", dest).ok();
    let work = w.path(dest);
    w.git(&work, &["switch", "--quiet", "-c", branch]).ok();
    std::fs::write(work.join(format!("{dest}.txt")), "change\n").unwrap();
    w.git(&work, &["add", "."]).ok();
    w.git(&work, &["commit", "--quiet", "-m", message]).ok();
    w.git(&work, &["push", "--quiet", "-u", "origin", branch])
        .ok();
    work
}

fn open_then_find_with_the_app_configured() {
    let w = World::new();
    let work = pushed_branch(&w, "w1", "agent/x", "Subject line\n\nThe body.");
    let first = w.gh_pr(&work, &["open", "--title", "T", "--body", "B"]);
    first.ok();
    let url = first.stdout.trim().to_owned();
    assert_eq!(url, format!("{}/octo-org/widgets/pull/1", w.hub.url()));
    assert_eq!(
        first.stdout,
        format!("{url}\n"),
        "stdout carries only the URL"
    );
    let again = w.gh_pr(&work, &["open", "--title", "T", "--body", "B"]);
    again.ok();
    assert_eq!(again.stdout.trim(), url);
    // Without flags the open one is found and printed too (issue 11, trap 9).
    let bare = w.gh_pr(&work, &["open"]);
    bare.ok();
    assert_eq!(bare.stdout, format!("{url}\n"));
    let pulls = w.hub.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(
        (
            pulls[0].title.as_str(),
            pulls[0].body.as_deref(),
            pulls[0].head.as_str(),
            pulls[0].base.as_str()
        ),
        ("T", Some("B"), "agent/x", "main")
    );
    // --json on the existing one says it was not created.
    let j: serde_json::Value =
        serde_json::from_str(&w.gh_pr(&work, &["open", "--fill", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        j,
        serde_json::json!({"number": 1, "url": url, "state": "open", "draft": false, "created": false})
    );
    w.assert_no_secrets();
}

fn fill_draft_base_and_json() {
    let w = World::new();
    // A base branch other than the default.
    let base = pushed_branch(&w, "b", "agent/base", "Base");
    let _ = base;
    let work = pushed_branch(
        &w,
        "w2",
        "agent/y",
        "Fix the widget\n\nLonger explanation\nover two lines.",
    );
    let r = w.gh_pr(
        &work,
        &[
            "open",
            "--fill",
            "--draft",
            "--base",
            "agent/base",
            "--json",
        ],
    );
    r.ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["created"], true);
    assert_eq!(j["draft"], true);
    assert_eq!(j["state"], "open");
    assert!(
        j["url"]
            .as_str()
            .unwrap()
            .ends_with("/octo-org/widgets/pull/1")
    );
    let p = &w.hub.pulls()[0];
    assert_eq!(p.title, "Fix the widget");
    assert_eq!(
        p.body.as_deref(),
        Some("Longer explanation\nover two lines.")
    );
    assert!(p.draft);
    assert_eq!(p.base, "agent/base");
    // --body-file.
    let work = pushed_branch(&w, "w3", "agent/z", "Z");
    let f = w.path("body.md");
    std::fs::write(&f, "From a file.\n").unwrap();
    w.gh_pr(
        &work,
        &["open", "--title", "Z", "--body-file", f.to_str().unwrap()],
    )
    .ok();
    assert_eq!(w.hub.pulls()[1].body.as_deref(), Some("From a file.\n"));
}

#[track_caller]
fn fails_with(r: &Run, want: &str) {
    r.fails().one_line_error("gh-pr", want);
}

fn repository_states_that_cannot_open_a_pull_request() {
    let w = World::new();
    w.clone_repo("octo-org", "widgets", "w").ok();
    let work = w.path("w");
    // Not pushed.
    w.git(&work, &["switch", "--quiet", "-c", "agent/new"]).ok();
    w.commit_file(&work, "n.txt", "n\n");
    fails_with(
        &w.gh_pr(&work, &["open", "--fill"]),
        "has no upstream remote: push it first with `git push -u origin agent/new`",
    );
    // Pushed, then HEAD moves ahead.
    w.git(&work, &["push", "--quiet", "-u", "origin", "agent/new"])
        .ok();
    w.commit_file(&work, "m.txt", "m\n");
    fails_with(
        &w.gh_pr(&work, &["open", "--fill"]),
        "HEAD is ahead of origin/agent/new: run `git push origin agent/new` first",
    );
    // Detached HEAD.
    w.git(&work, &["switch", "--quiet", "--detach"]).ok();
    fails_with(&w.gh_pr(&work, &["open", "--fill"]), "HEAD is detached");
    // No remote at all.
    let lone = w.path("lone");
    w.git(w.root.path(), &["init", "--quiet", "lone"]).ok();
    w.commit_file(&lone, "a.txt", "a\n");
    fails_with(
        &w.gh_pr(&lone, &["open", "--fill"]),
        "has no upstream remote",
    );
    // A remote on a host nothing is configured for.
    w.git(
        &lone,
        &[
            "remote",
            "add",
            "origin",
            "https://git.example.invalid/o/r.git",
        ],
    )
    .ok();
    w.git(&lone, &["config", "branch.main.remote", "origin"])
        .ok();
    w.git(&lone, &["config", "branch.main.merge", "refs/heads/main"])
        .ok();
    w.git(&lone, &["update-ref", "refs/remotes/origin/main", "HEAD"])
        .ok();
    fails_with(
        &w.gh_pr(&lone, &["open", "--fill"]),
        "no credentials for git.example.invalid",
    );
    // No title.
    let pushed = pushed_branch(&w, "t", "agent/t", "T");
    fails_with(
        &w.gh_pr(&pushed, &["open"]),
        "no pull request is open for agent/t: give --title",
    );
    // On the default branch: what to do, not GitHub's "No commits between main and main".
    let on_main = w.path("m");
    w.clone_repo("octo-org", "widgets", "m").ok();
    fails_with(
        &w.gh_pr(&on_main, &["open", "--fill"]),
        "main is octo-org/widgets's default branch, which a pull request merges into: put the change on a branch (git switch -c NAME)",
    );
    assert!(w.hub.pulls().is_empty());
}

fn github_refusals_are_one_line_naming_the_repository() {
    let w = World::new();
    let work = pushed_branch(&w, "w", "agent/e", "E");
    // 422: nothing between head and base.
    fails_with(
        &w.gh_pr(&work, &["open", "--title", "t", "--base", "agent/e"]),
        "GitHub refused to open a pull request in octo-org/widgets (422: Validation Failed: No commits between agent/e and agent/e)",
    );
    // 403 from GitHub (a secondary rate limit).
    w.hub.rate_limit_next(1, 403, 60);
    fails_with(
        &w.gh_pr(&work, &["open", "--title", "t"]),
        "GitHub refused to list pull requests in octo-org/widgets (403:",
    );
    // 404: the app is not installed on the repository.
    let mut w2 = World::new();
    let lone = w2.path("island");
    w2.git(w2.root.path(), &["init", "--quiet", "island"]).ok();
    w2.commit_file(&lone, "a.txt", "a\n");
    let url = w2.hub.repo_url("lonely", "island");
    w2.git(&lone, &["remote", "add", "origin", &url]).ok();
    w2.git(&lone, &["config", "branch.main.remote", "origin"])
        .ok();
    w2.git(&lone, &["config", "branch.main.merge", "refs/heads/main"])
        .ok();
    w2.git(&lone, &["update-ref", "refs/remotes/origin/main", "HEAD"])
        .ok();
    w2.set_env("GHAPP_LOG", Some("error"));
    fails_with(
        &w2.gh_pr(&lone, &["open", "--fill"]),
        "the app is not installed on lonely, or lonely/island does not exist",
    );
    assert!(w.hub.pulls().is_empty());
    w.assert_no_secrets();
}

fn git_credential_fill_through_git_credential_ghapp() {
    let mut w = World::new();
    let work = pushed_branch(&w, "w", "agent/c", "Via the credential helper");
    // gh-pr sees no app; the helper has its own configuration file.
    let app = w.path("helper-app.toml");
    std::fs::write(
        &app,
        format!(
            "[[app]]\napi_url = {:?}\napp_id = {}\nprivate_key_file = {:?}\n",
            w.hub.api_url(),
            w.hub.app_id(),
            w.hub.key_path().display().to_string()
        ),
    )
    .unwrap();
    let helper = format!(
        "!f() {{ GHAPP_CONFIG={} git-credential-ghapp \"$@\"; }}; f",
        app.display()
    );
    w.git(&work, &["config", "--local", "credential.helper", ""])
        .ok();
    w.git(
        &work,
        &["config", "--local", "--add", "credential.helper", &helper],
    )
    .ok();
    for k in ["GHAPP_API_URL", "GHAPP_APP_ID", "GHAPP_PRIVATE_KEY_FILE"] {
        w.set_env(k, None);
    }
    let mints = w.hub.mint_count();
    let r = w.gh_pr(&work, &["open", "--fill"]);
    r.ok();
    assert!(
        r.stdout.trim().ends_with("/octo-org/widgets/pull/1"),
        "{r:#?}"
    );
    assert_eq!(w.hub.pulls()[0].title, "Via the credential helper");
    // The push minted its token earlier; gh-pr reused the helper's cached one.
    assert_eq!(w.hub.mint_count(), mints);
    w.assert_no_secrets();
}

fn through_ghapp_proxy_with_no_credentials() {
    let w = World::new();
    let secret = "pr-sandbox-secret-0123456789";
    let p = w.start_proxy(
        &format!("[[sandbox]]\nname = \"pr\"\nsecret = \"{secret}\"\nrepos = [\"octo-org/widgets\"]\npush = [\"refs/heads/agent/*\"]\n"),
        "",
    );
    let env = w.sandbox_env(&p, "pr", secret);
    let url = w.hub.repo_url("octo-org", "widgets");
    w.cmd("git")
        .env(&env)
        .args(&["clone", "--quiet", &url, "sb"])
        .run()
        .ok();
    let work = w.path("sb");
    let g = |args: &[&str]| w.cmd("git").env(&env).args(args).dir(&work).run();
    g(&["switch", "--quiet", "-c", "agent/sb"]).ok();
    std::fs::write(work.join("s.txt"), "s\n").unwrap();
    g(&["add", "."]).ok();
    g(&["commit", "--quiet", "-m", "From the sandbox"]).ok();
    g(&["push", "--quiet", "-u", "origin", "agent/sb"]).ok();
    // The sandbox has gh-pr installed, and nothing of ghapp's configuration; it trusts the
    // CA git was given (GIT_SSL_CAINFO) even where SSL_CERT_FILE names the system's roots.
    let gh_pr = ghapp_e2e::bin_dir().join("gh-pr");
    let gh_pr = gh_pr.to_str().unwrap();
    let mut gh_pr_env = env.clone();
    gh_pr_env.retain(|(k, _)| k != "SSL_CERT_FILE");
    gh_pr_env.push((
        "SSL_CERT_FILE".into(),
        "/etc/ssl/certs/ca-certificates.crt".into(),
    ));
    let r = w
        .cmd(gh_pr)
        .env(&gh_pr_env)
        .args(&["open", "--fill"])
        .dir(&work)
        .run();
    r.ok();
    assert!(
        r.stdout.trim().ends_with("/octo-org/widgets/pull/1"),
        "{r:#?}"
    );
    assert_eq!(w.hub.pulls()[0].head, "agent/sb");
    // A head the sandbox may not push: the proxy's policy answers, GitHub sees nothing.
    g(&["switch", "--quiet", "-c", "feature"]).ok();
    g(&["update-ref", "refs/remotes/origin/feature", "HEAD"]).ok();
    g(&["config", "branch.feature.remote", "origin"]).ok();
    g(&["config", "branch.feature.merge", "refs/heads/feature"]).ok();
    let r = w
        .cmd(gh_pr)
        .env(&env)
        .args(&["open", "--title", "x"])
        .dir(&work)
        .run();
    r.fails().one_line_error("gh-pr", "ghapp proxy refused to open a pull request in octo-org/widgets (403): pull request head \"feature\" is not allowed");
    assert!(!r.stderr.contains("lack permission"), "{r:#?}");
    assert_eq!(w.hub.pulls().len(), 1);
    w.capture(p.log());
    w.assert_no_secrets();
}

fn insteadof_and_scp_style_remotes() {
    let w = World::new();
    let work = pushed_branch(&w, "w", "agent/i", "Via insteadOf");
    // The remote is written as `gh:octo-org/widgets.git` and rewritten by url.<base>.insteadOf,
    // as git itself rewrites it.
    let base = format!("{}/", w.hub.url());
    w.git(&work, &["config", &format!("url.{base}.insteadOf"), "gh:"])
        .ok();
    w.git(
        &work,
        &["remote", "set-url", "origin", "gh:octo-org/widgets.git"],
    )
    .ok();
    w.git(&work, &["fetch", "--quiet", "origin"]).ok();
    let r = w.gh_pr(&work, &["open", "--fill"]);
    r.ok();
    assert!(
        r.stdout.trim().ends_with("/octo-org/widgets/pull/1"),
        "{r:#?}"
    );
    assert_eq!(w.hub.pulls()[0].title, "Via insteadOf");
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "open_then_find_with_the_app_configured",
        open_then_find_with_the_app_configured,
    ),
    ("fill_draft_base_and_json", fill_draft_base_and_json),
    (
        "repository_states_that_cannot_open_a_pull_request",
        repository_states_that_cannot_open_a_pull_request,
    ),
    (
        "github_refusals_are_one_line_naming_the_repository",
        github_refusals_are_one_line_naming_the_repository,
    ),
    (
        "git_credential_fill_through_git_credential_ghapp",
        git_credential_fill_through_git_credential_ghapp,
    ),
    (
        "through_ghapp_proxy_with_no_credentials",
        through_ghapp_proxy_with_no_credentials,
    ),
    (
        "insteadof_and_scp_style_remotes",
        insteadof_and_scp_style_remotes,
    ),
];
