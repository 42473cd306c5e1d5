//! The GitHub review flavour of learning and assisted (`reviewers`): a pull request that would
//! be held is opened at GitHub as a draft with the reviewers requested, and the person's steps
//! (marking it ready, merging, dismissing a review) are refused to the sandbox, on every
//! channel, before GitHub sees them.

use ghapp_e2e::{Sandbox as Sb, World};
use serde_json::{Value, json};

use crate::control::gh_pr_open;
use crate::writes::{SECRET, gql, mutations_received, rest, start};

const REVIEWERS: &str = "reviewers = [\"octocat\", \"octo-org/maintainers\", \"other-org/team\"]";

/// What fakehub received since `before`, but reads.
fn writes_since(w: &World, before: usize) -> Vec<String> {
    w.hub.requests()[before..]
        .iter()
        .filter(|r| {
            r.method != "GET" && !r.target.contains("graphql") && !r.target.contains("git-")
        })
        .map(|r| format!("{} {}", r.method, r.target))
        .collect()
}

fn a_learning_sandbox_with_reviewers_opens_drafts_and_leaves_the_person_s_steps() {
    ghapp_e2e::needs("curl");
    let w = World::new();
    let p = start(&w, "learning", REVIEWERS);
    let sb = Sb::new(&w, &p, "agent", SECRET);
    sb.clone("octo-org", "widgets", "rev", &[]).ok();
    let work = w.path("rev");
    sb.push_new_branch(&work, "agent/rev", "r.txt", b"review me\n");
    sb.git(
        &work,
        &["branch", "--quiet", "--set-upstream-to=origin/agent/rev"],
    )
    .ok();

    // gh-pr (REST), not asking for a draft: GitHub opens a draft, the reviewers requested.
    let r = gh_pr_open(&w, &sb.env, &work, &["--title", "Review me"]);
    r.ok();
    let pulls = w.hub.pulls();
    let pr = pulls
        .iter()
        .find(|p| p.head == "agent/rev")
        .expect("opened");
    assert!(pr.draft, "a draft: {pr:?}");
    assert_eq!(pr.reviewers, ["octocat"]);
    assert_eq!(
        pr.teams,
        ["maintainers"],
        "a team of the repository's organization only"
    );
    assert!(r.stdout.contains(&format!("/pull/{}", pr.number)), "{r:?}");
    let n = pr.number;
    let audit = p.audit();
    let created = audit
        .iter()
        .find(|e| e["method"] == "POST" && e["path"] == "/api/v3/repos/octo-org/widgets/pulls")
        .expect("audited");
    let reason = created["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "draft #{n} opened for review by octocat, octo-org/maintainers"
        )) && reason.contains("teams of another organization not requested: other-org/team"),
        "{created}"
    );
    // Nothing waits on the proxy's approvals page: the person reviews at GitHub.
    let list = crate::writes::approvals(&w, &p, &["list", "--all", "--json"]);
    let list: Value = serde_json::from_str(&list.ok().stdout).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");

    // GraphQL's createPullRequest must ask for a draft (its input is sent as it was read).
    sb.push_new_branch(&work, "agent/rev2", "r2.txt", b"more\n");
    let (repo, _) = crate::writes::ids(&w, &sb, &[]);
    let create = "mutation($r: ID!, $d: Boolean) { createPullRequest(input: {repositoryId: $r, headRefName: \"agent/rev2\", baseRefName: \"main\", title: \"two\", draft: $d}) { pullRequest { number isDraft } } }";
    let (status, v) = gql(&w, &sb, create, json!({"r": repo, "d": false}));
    assert_eq!(status, 200);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("open as drafts for its reviewers (is in learning mode): ask for a draft"),
        "{v}"
    );
    assert!(!w.hub.pulls().iter().any(|p| p.head == "agent/rev2"));
    let (_, v) = gql(&w, &sb, create, json!({"r": repo, "d": true}));
    assert_eq!(
        v["data"]["createPullRequest"]["pullRequest"]["isDraft"], true,
        "{v}"
    );
    let two = w
        .hub
        .pulls()
        .into_iter()
        .find(|p| p.head == "agent/rev2")
        .unwrap();
    assert_eq!(
        (two.draft, two.reviewers.as_slice()),
        (true, ["octocat".to_owned()].as_slice())
    );

    // The person's steps, refused on every channel, nothing reaching GitHub.
    let (_, v) = gql(
        &w,
        &sb,
        "query($n: Int!) { repository(owner: \"octo-org\", name: \"widgets\") { pullRequest(number: $n) { id } } }",
        json!({"n": n}),
    );
    let id = v["data"]["repository"]["pullRequest"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mutations_before = mutations_received(&w).len();
    let before = w.hub.requests().len();
    let refused: [(&str, Value, &str); 3] = [
        (
            "mutation($p: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $p}) { pullRequest { isDraft } } }",
            json!({"p": id}),
            "waits for its reviewers: a person marks it ready for review at GitHub",
        ),
        (
            "mutation($p: ID!) { mergePullRequest(input: {pullRequestId: $p}) { pullRequest { merged } } }",
            json!({"p": id}),
            "in this mode a person merges",
        ),
        (
            "mutation($r: ID!) { dismissPullRequestReview(input: {pullRequestReviewId: $r, message: \"x\"}) { pullRequestReview { state } } }",
            json!({"r": "PRR_kwDOAAABc84AAAAB"}),
            "mutation dismissPullRequestReview is not allowed",
        ),
    ];
    for (q, vars, why) in &refused {
        let (_, v) = gql(&w, &sb, q, vars.clone());
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(why),
            "{q}: {v}"
        );
    }
    for (method, path, body) in [
        (
            "PUT",
            format!("/api/v3/repos/octo-org/widgets/pulls/{n}/merge"),
            json!({}),
        ),
        (
            "PUT",
            format!("/api/v3/repos/octo-org/widgets/pulls/{n}/reviews/1/dismissals"),
            json!({"message": "x"}),
        ),
        (
            "DELETE",
            format!("/api/v3/repos/octo-org/widgets/pulls/{n}/requested_reviewers"),
            json!({"reviewers": ["octocat"]}),
        ),
    ] {
        let (status, v) = rest(&w, &sb, method, &path, &body);
        assert_eq!(status, 403, "{method} {path}: {v}");
    }
    assert_eq!(
        mutations_received(&w).len(),
        mutations_before,
        "no mutation reached GitHub"
    );
    assert_eq!(writes_since(&w, before), Vec::<String>::new());
    let pr = w.hub.pulls().into_iter().find(|p| p.number == n).unwrap();
    assert!(pr.draft && pr.state == "open");

    // Work goes on at GitHub: the reviewers' comments answered by a push to the draft.
    sb.commit(&work, "r3.txt", b"as asked\n");
    sb.git(&work, &["push", "--quiet", "origin", "agent/rev2"])
        .ok();
}

fn with_codeowners_the_owners_of_the_changed_paths_are_requested() {
    let w = World::new();
    w.commit_on_main(
        "octo-org",
        "widgets",
        &[(
            ".github/CODEOWNERS",
            b"# who reviews what\n*        @octocat\n/docs/   @octo-org/writers @editor\n*.lock   @other-org/robots\n",
        )],
    );
    let p = start(&w, "learning", "reviewers = [\"@codeowners\", \"lead\"]");
    let sb = Sb::new(&w, &p, "agent", SECRET);
    sb.clone("octo-org", "widgets", "own", &[]).ok();
    let work = w.path("own");
    std::fs::create_dir_all(work.join("docs")).unwrap();
    sb.git(&work, &["switch", "--quiet", "-c", "agent/docs"])
        .ok();
    sb.commit(&work, "docs/guide.md", b"a guide\n");
    sb.commit(&work, "Cargo.lock", b"locked\n");
    sb.git(&work, &["push", "--quiet", "-u", "origin", "agent/docs"])
        .ok();
    // Learning, with reviewers: opened as a draft for them.
    gh_pr_open(&w, &sb.env, &work, &["--title", "Docs"]).ok();
    let pr = w
        .hub
        .pulls()
        .into_iter()
        .find(|p| p.head == "agent/docs")
        .expect("opened");
    assert!(pr.draft);
    // The configured login, then the owners of docs/guide.md (the /docs/ line, the last that
    // matches); the team of another organization is left out and said.
    assert_eq!(pr.reviewers, ["lead", "editor"]);
    assert_eq!(pr.teams, ["writers"]);
    let audit = p.audit();
    let reason = audit
        .iter()
        .find(|e| e["method"] == "POST" && e["path"] == "/api/v3/repos/octo-org/widgets/pulls")
        .and_then(|e| e["reason"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("teams of another organization not requested: other-org/robots")
            && reason.contains(&format!(
                "draft #{} opened for review by lead, editor, octo-org/writers",
                pr.number
            )),
        "{reason}"
    );
}

fn gh_opens_a_draft_for_the_reviewers_and_may_not_mark_it_ready() {
    ghapp_e2e::needs("gh");
    let w = World::with(fakehub::Options {
        hostname: Some("ghe.test".into()),
        ..Default::default()
    });
    let extra = format!(
        "resolve = [\"ghe.test=127.0.0.1\"]\nstate = {:?}\n",
        format!("sqlite:{}", w.path("state.db").display())
    );
    let p = w.start_proxy(
        &ghapp_e2e::two_sandboxes("mode = \"learning\"\nreviewers = [\"octocat\"]"),
        &extra,
    );
    let sb = Sb::new(&w, &p, "agent-a", ghapp_e2e::SECRET_A);
    sb.clone("octo-org", "widgets", "gh-widgets", &[]).ok();
    let work = w.path("gh-widgets");
    sb.push_new_branch(&work, "agent/gh", "g.txt", b"from gh\n");
    let env = w.gh_env(&p, sb.env);
    let gh = |args: &[&str]| w.cmd("gh").env(&env).dir(&work).args(args).run();
    let create = [
        "pr",
        "create",
        "-R",
        "octo-org/widgets",
        "--head",
        "agent/gh",
        "--base",
        "main",
        "--title",
        "From gh",
        "--body",
        "Please review.",
    ];
    // gh sends GraphQL's createPullRequest as the agent typed it: without --draft it is
    // refused, and gh prints why.
    let r = gh(&create);
    r.fails();
    assert!(
        r.stderr.contains("open as drafts for its reviewers")
            && r.stderr.contains("gh pr create --draft"),
        "{r:#?}"
    );
    assert!(w.hub.pulls().is_empty());
    let mut drafted = create.to_vec();
    drafted.push("--draft");
    let r = gh(&drafted);
    r.ok();
    let pr = w.hub.pulls().into_iter().next().expect("opened");
    assert!(pr.draft && pr.reviewers == ["octocat"], "{pr:?}");
    assert!(r.stdout.contains(&format!("/pull/{}", pr.number)), "{r:#?}");
    // Marking it ready is the person's: gh pr ready is refused, the pull request stays a draft.
    let r = gh(&[
        "pr",
        "ready",
        &pr.number.to_string(),
        "-R",
        "octo-org/widgets",
    ]);
    r.fails();
    assert!(
        r.stderr
            .contains("a person marks it ready for review at GitHub"),
        "{r:#?}"
    );
    assert!(w.hub.pulls()[0].draft);
    w.capture(p.log());
    w.assert_no_secrets();
}

pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "gh_opens_a_draft_for_the_reviewers_and_may_not_mark_it_ready",
        gh_opens_a_draft_for_the_reviewers_and_may_not_mark_it_ready,
    ),
    (
        "with_codeowners_the_owners_of_the_changed_paths_are_requested",
        with_codeowners_the_owners_of_the_changed_paths_are_requested,
    ),
    (
        "a_learning_sandbox_with_reviewers_opens_drafts_and_leaves_the_person_s_steps",
        a_learning_sandbox_with_reviewers_opens_drafts_and_leaves_the_person_s_steps,
    ),
];
