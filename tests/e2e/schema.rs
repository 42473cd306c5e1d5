//! fakehub's answers and ghapp's request bodies, checked against GitHub's REST description
//! (`tests/data/github-app-subset.json`).

use ghapp_core::client::Method;
use ghapp_core::client::{ApiResponse, Auth, GitHubClient};
use ghapp_core::config::AppIdent;
use ghapp_core::jwt::AppSigner;
use ghapp_core::secret::{InstallationToken, PrivateKeyPem};
use ghapp_e2e::World;
use ghapp_e2e::openapi::Spec;
use serde_json::{Value, json};

#[track_caller]
fn assert_valid(spec: &Spec, schema: &Value, body: &[u8], what: &str) {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    let errs = spec.check(schema, &v);
    assert!(
        errs.is_empty(),
        "{what} does not match GitHub's schema:\n{}",
        errs.join("\n")
    );
}

async fn call(
    client: &GitHubClient,
    m: Method,
    path: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> ApiResponse {
    client.request(m, path, auth, body.as_ref()).await.unwrap()
}

fn fakehub_answers_match_githubs_schemas() {
    let w = World::new();
    let spec = Spec::load();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ca = std::fs::read_to_string(w.hub.ca_path()).unwrap();
        let client = GitHubClient::with_ca(&w.hub.api_url(), &ca).unwrap();
        let signer = AppSigner::new(
            AppIdent { app_id: Some(w.hub.app_id()), client_id: None },
            &PrivateKeyPem::new(w.hub.private_key_pem()),
            "test",
        )
        .unwrap();
        let jwt = signer.sign().unwrap();

        let cases: Vec<(&str, &str, String, u16)> = vec![
            ("/app", "get", "/app".into(), 200),
            ("/app/installations", "get", "/app/installations".into(), 200),
            ("/app/installations/{installation_id}", "get", "/app/installations/101".into(), 200),
            ("/repos/{owner}/{repo}/installation", "get", "/repos/octo-org/widgets/installation".into(), 200),
            ("/users/{username}/installation", "get", "/users/octo-user/installation".into(), 200),
            ("/orgs/{org}/installation", "get", "/orgs/octo-org/installation".into(), 200),
            ("/repos/{owner}/{repo}/installation", "get", "/repos/lonely/island/installation".into(), 404),
            ("/app/installations/{installation_id}", "get", "/app/installations/999".into(), 404),
            ("/app/hook/config", "get", "/app/hook/config".into(), 200),
            ("/app/hook/deliveries", "get", "/app/hook/deliveries".into(), 200),
        ];
        for (op, method, path, status) in cases {
            let r = call(&client, Method::GET, &path, Auth::Jwt(&jwt), None).await;
            assert_eq!(r.status.as_u16(), status, "GET {path}: {}", r.message());
            assert_valid(&spec, spec.response_schema(op, method, status), &r.body, &format!("GET {path}"));
        }

        let tokens_op = "/app/installations/{installation_id}/access_tokens";
        let body = json!({"repositories": ["widgets"], "permissions": {"contents": "read", "metadata": "read"}});
        let errs = spec.check(spec.request_schema(tokens_op, "post"), &body);
        assert!(errs.is_empty(), "{errs:?}");
        let r = call(&client, Method::POST, "/app/installations/101/access_tokens", Auth::Jwt(&jwt), Some(body)).await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.message());
        assert_valid(&spec, spec.response_schema(tokens_op, "post", 201), &r.body, "POST access_tokens");
        let minted: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(minted["repositories"].as_array().unwrap().len(), 1);
        assert_eq!(minted["permissions"], json!({"contents": "read", "metadata": "read"}));
        // `"permissions": {}` asks for nothing in particular: GitHub answers with all the
        // installation's permissions, as when the key is left out.
        let body = json!({"repositories": ["widgets"], "permissions": {}});
        assert!(spec.check(spec.request_schema(tokens_op, "post"), &body).is_empty());
        let r = call(&client, Method::POST, "/app/installations/101/access_tokens", Auth::Jwt(&jwt), Some(body)).await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.message());
        let all: Value = serde_json::from_slice(&r.body).unwrap();
        let inst = call(&client, Method::GET, "/app/installations/101", Auth::Jwt(&jwt), None).await;
        let inst: Value = serde_json::from_slice(&inst.body).unwrap();
        assert_eq!(all["permissions"], inst["permissions"]);
        let token = InstallationToken::new(minted["token"].as_str().unwrap());

        for (body, status) in [
            (json!({"permissions": {"administration": "write"}}), 422),
            (json!({"repositories": ["dotfiles"]}), 422),
        ] {
            let r = call(&client, Method::POST, "/app/installations/101/access_tokens", Auth::Jwt(&jwt), Some(body)).await;
            assert_eq!(r.status.as_u16(), status);
            assert_valid(&spec, spec.response_schema(tokens_op, "post", status), &r.body, "POST access_tokens 422");
        }
        let r = call(&client, Method::POST, "/app/installations/999/access_tokens", Auth::Jwt(&jwt), None).await;
        assert_eq!(r.status.as_u16(), 404);
        assert_valid(&spec, spec.response_schema(tokens_op, "post", 404), &r.body, "POST access_tokens 404");
        let bogus = ghapp_core::secret::AppJwt::new("eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
        let r = call(&client, Method::POST, "/app/installations/101/access_tokens", Auth::Jwt(&bogus), None).await;
        assert_eq!(r.status.as_u16(), 401);
        assert_valid(&spec, spec.response_schema(tokens_op, "post", 401), &r.body, "POST access_tokens 401");

        let r = call(&client, Method::GET, "/installation/repositories", Auth::Token(&token), None).await;
        assert_eq!(r.status.as_u16(), 200);
        assert_valid(&spec, spec.response_schema("/installation/repositories", "get", 200), &r.body, "GET /installation/repositories");
        let r = call(&client, Method::GET, "/repos/octo-org/widgets", Auth::Token(&token), None).await;
        assert_eq!(r.status.as_u16(), 200);
        assert_valid(&spec, spec.response_schema("/repos/{owner}/{repo}", "get", 200), &r.body, "GET /repos/{owner}/{repo}");
        let r = call(&client, Method::GET, "/repos/octo-org/gadgets", Auth::Token(&token), None).await;
        assert_eq!(r.status.as_u16(), 404, "a token narrowed to widgets does not see gadgets");

        // A file's contents (the trust policies of the token exchange are read so).
        let op = "/repos/{owner}/{repo}/contents/{path}";
        let r = call(&client, Method::GET, "/repos/octo-org/widgets/contents/README.md", Auth::Token(&token), None).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.message());
        assert_valid(&spec, spec.response_schema(op, "get", 200), &r.body, "GET contents");
        let r = call(&client, Method::GET, "/repos/octo-org/widgets/contents/nope.txt", Auth::Token(&token), None).await;
        assert_eq!(r.status.as_u16(), 404);
        assert_valid(&spec, spec.response_schema(op, "get", 404), &r.body, "GET contents 404");

        // Check runs: a CI app reports one (checks: write), a reviewer lists them (read).
        w.hub.grant(101, "checks", "write");
        let body = json!({"repositories": ["widgets"], "permissions": {"checks": "write"}});
        let r = call(&client, Method::POST, "/app/installations/101/access_tokens", Auth::Jwt(&jwt), Some(body)).await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.message());
        let minted: Value = serde_json::from_slice(&r.body).unwrap();
        let ci = InstallationToken::new(minted["token"].as_str().unwrap());
        let main = w.hub_ref("octo-org", "widgets", "refs/heads/main").unwrap();
        let create = "/repos/{owner}/{repo}/check-runs";
        let run = json!({"name": "build", "head_sha": main, "status": "completed", "conclusion": "failure",
            "details_url": "https://ci.example/runs/1", "output": {"title": "2 tests failed", "summary": "see the log"}});
        assert!(spec.check(spec.request_schema(create, "post"), &run).is_empty());
        let r = call(&client, Method::POST, "/repos/octo-org/widgets/check-runs", Auth::Token(&ci), Some(run)).await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.message());
        assert_valid(&spec, spec.response_schema(create, "post", 201), &r.body, "POST check-runs");
        let list = "/repos/{owner}/{repo}/commits/{ref}/check-runs";
        for rev in ["main", main.as_str()] {
            let r = call(&client, Method::GET, &format!("/repos/octo-org/widgets/commits/{rev}/check-runs"), Auth::Token(&ci), None).await;
            assert_eq!(r.status.as_u16(), 200, "{}", r.message());
            assert_valid(&spec, spec.response_schema(list, "get", 200), &r.body, "GET check-runs");
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["total_count"], 1);
            assert_eq!(v["check_runs"][0]["conclusion"], "failure");
        }
        for (path, body, status) in [
            ("/repos/octo-org/widgets/check-runs", Some(json!({"name": "build", "head_sha": "0".repeat(40)})), 422),
            ("/repos/octo-org/widgets/check-runs", Some(json!({"head_sha": main})), 422),
            ("/repos/octo-org/widgets/check-runs", Some(json!({"name": "b", "head_sha": main, "status": "completed"})), 422),
        ] {
            let r = call(&client, Method::POST, path, Auth::Token(&ci), body).await;
            assert_eq!(r.status.as_u16(), status, "{}", r.message());
        }
        let r = call(&client, Method::GET, "/repos/octo-org/widgets/commits/no-such-branch/check-runs", Auth::Token(&ci), None).await;
        assert_eq!(r.status.as_u16(), 422, "{}", r.message());
        let r = call(&client, Method::GET, "/repos/octo-org/widgets/commits/main/check-runs", Auth::Token(&token), None).await;
        assert_eq!(r.status.as_u16(), 403, "a token without checks: read");

        let r = call(&client, Method::DELETE, "/installation/token", Auth::Token(&token), None).await;
        assert_eq!(r.status.as_u16(), 204);
        let r = call(&client, Method::GET, "/installation/repositories", Auth::Token(&token), None).await;
        assert_eq!(r.status.as_u16(), 401, "a revoked token is refused");
    });
}

fn the_helpers_mint_requests_match_githubs_schema() {
    let w = World::new();
    w.get("octo-org/widgets").ok();
    w.ghapp(&[
        "token",
        "--repo",
        "octo-org/gadgets",
        "--permission",
        "contents=read",
    ])
    .ok();
    let spec = Spec::load();
    let schema = spec.request_schema("/app/installations/{installation_id}/access_tokens", "post");
    let bodies = w.hub.counters().mint_bodies;
    assert_eq!(bodies.len(), 2);
    for b in &bodies {
        let errs = spec.check(schema, b);
        assert!(errs.is_empty(), "{b}: {errs:?}");
    }
    assert_eq!(
        bodies[0],
        json!({"repositories": ["widgets"], "permissions": {"contents": "write", "metadata": "read", "pull_requests": "write"}})
    );
    assert_eq!(
        bodies[1],
        json!({"repositories": ["gadgets"], "permissions": {"contents": "read"}})
    );
}

fn the_schema_checker_catches_what_it_should() {
    let spec = Spec::load();
    let schema = spec.response_schema(
        "/app/installations/{installation_id}/access_tokens",
        "post",
        201,
    );
    assert!(
        spec.check(
            schema,
            &json!({"token": "t", "expires_at": "2026-01-01T00:00:00Z"})
        )
        .is_empty()
    );
    assert!(
        !spec.check(schema, &json!({"token": "t"})).is_empty(),
        "missing expires_at"
    );
    assert!(
        !spec
            .check(schema, &json!({"token": 5, "expires_at": "x"}))
            .is_empty(),
        "token must be a string"
    );
    let inst = spec.response_schema("/app/installations/{installation_id}", "get", 200);
    assert!(!spec.check(inst, &json!({"id": 1})).is_empty());
}

/// One client, the description and a token: each request's answer checked for its status and,
/// when the operation is named, its body (and the request's) against GitHub's schema.
struct Api<'a> {
    client: &'a GitHubClient,
    spec: &'a Spec,
    token: &'a InstallationToken,
}

impl Api<'_> {
    /// `method path` with `body`: asserts `status`; with `op` (the description's path), the
    /// request body and the answer are checked against its schemas. The answer's JSON.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
        op: Option<&str>,
    ) -> Value {
        let m = method.as_str().to_ascii_lowercase();
        if let (Some(op), Some(b)) = (op, &body) {
            let errs = self.spec.check(self.spec.request_schema(op, &m), b);
            assert!(errs.is_empty(), "{method} {path} request: {errs:?}");
        }
        let r = call(
            self.client,
            method.clone(),
            path,
            Auth::Token(self.token),
            body,
        )
        .await;
        assert_eq!(
            r.status.as_u16(),
            status,
            "{method} {path}: {}",
            r.message()
        );
        if let Some(op) = op {
            assert_valid(
                self.spec,
                self.spec.response_schema(op, &m, status),
                &r.body,
                &format!("{method} {path}"),
            );
        }
        serde_json::from_slice(&r.body).unwrap_or(Value::Null)
    }
}

fn pull_request_answers_match_githubs_schemas() {
    let w = World::new();
    // A branch to open a pull request from.
    w.clone_repo("octo-org", "widgets", "widgets").ok();
    let work = w.path("widgets");
    w.git(&work, &["switch", "--quiet", "-c", "agent/pr"]).ok();
    w.commit_file(&work, "pr.txt", "pr\n");
    w.git(&work, &["push", "--quiet", "origin", "agent/pr"])
        .ok();
    let token = InstallationToken::new(w.token_for("octo-org/widgets"));
    let spec = Spec::load();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ca = std::fs::read_to_string(w.hub.ca_path()).unwrap();
        let client = GitHubClient::with_ca(&w.hub.api_url(), &ca).unwrap();
        let api = Api {
            client: &client,
            spec: &spec,
            token: &token,
        };
        let repo = "/repos/octo-org/widgets";
        let pulls = Some("/repos/{owner}/{repo}/pulls");
        let pull = Some("/repos/{owner}/{repo}/pulls/{pull_number}");
        let comments = Some("/repos/{owner}/{repo}/issues/{issue_number}/comments");
        let branch = Some("/repos/{owner}/{repo}/branches/{branch}");
        let merge = Some("/repos/{owner}/{repo}/pulls/{pull_number}/merge");
        let (get, post, patch, put) = (Method::GET, Method::POST, Method::PATCH, Method::PUT);
        let pr =
            json!({"title": "T", "head": "agent/pr", "base": "main", "body": "B", "draft": true});

        api.expect(
            post.clone(),
            &format!("{repo}/pulls"),
            Some(pr.clone()),
            201,
            pulls,
        )
        .await;
        let again = api
            .expect(post.clone(), &format!("{repo}/pulls"), Some(pr), 422, pulls)
            .await;
        assert!(
            again
                .to_string()
                .contains("A pull request already exists for octo-org:agent/pr.")
        );
        let unknown = json!({"title": "x", "head": "nope", "base": "main"});
        api.expect(
            post.clone(),
            &format!("{repo}/pulls"),
            Some(unknown),
            422,
            None,
        )
        .await;
        let list = api
            .expect(
                get.clone(),
                &format!("{repo}/pulls?head=octo-org%3Aagent%2Fpr&state=open"),
                None,
                200,
                pulls,
            )
            .await;
        assert_eq!(
            (list.as_array().unwrap().len(), &list[0]["draft"]),
            (1, &json!(true))
        );
        api.expect(get.clone(), &format!("{repo}/pulls/1"), None, 200, pull)
            .await;
        api.expect(
            patch,
            &format!("{repo}/pulls/1"),
            Some(json!({"title": "T2"})),
            200,
            pull,
        )
        .await;

        // Comments: created and listed as GitHub's full issue-comment document.
        let note = json!({"body": "A note."});
        api.expect(
            post.clone(),
            &format!("{repo}/issues/1/comments"),
            Some(note),
            201,
            comments,
        )
        .await;
        let list = api
            .expect(
                get.clone(),
                &format!("{repo}/issues/1/comments"),
                None,
                200,
                comments,
            )
            .await;
        assert_eq!(list[0]["body"], "A note.");
        assert_eq!(list[0]["performed_via_github_app"]["slug"], "ghapp-fakehub");
        let review = api
            .expect(
                get.clone(),
                &format!("{repo}/pulls/1/comments"),
                None,
                200,
                None,
            )
            .await;
        assert_eq!(review, json!([]));

        // A branch whose name holds a slash, spelled either way.
        for b in ["agent/pr", "agent%2Fpr"] {
            let v = api
                .expect(
                    get.clone(),
                    &format!("{repo}/branches/{b}"),
                    None,
                    200,
                    branch,
                )
                .await;
            assert_eq!(v["name"], "agent/pr");
            assert_eq!(v["commit"]["commit"]["message"], "Add pr.txt");
        }
        api.expect(
            get.clone(),
            &format!("{repo}/branches/agent/nope"),
            None,
            404,
            None,
        )
        .await;

        // The comparison the proxy reads in assisted mode.
        let c = api
            .expect(
                get.clone(),
                &format!("{repo}/compare/main...agent/pr"),
                None,
                200,
                Some("/repos/{owner}/{repo}/compare/{basehead}"),
            )
            .await;
        assert_eq!(
            (c["status"].as_str(), c["ahead_by"].as_u64()),
            (Some("ahead"), Some(1))
        );
        assert_eq!(
            (&c["files"][0]["filename"], &c["files"][0]["additions"]),
            (&json!("pr.txt"), &json!(1))
        );

        // Reviewers (what the review flavour asks for a draft): users and teams, answered
        // with the pull request; nobody at all, or a name no login can be, is GitHub's 422.
        let reviewers = Some("/repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers");
        let to = format!("{repo}/pulls/1/requested_reviewers");
        let asked = api
            .expect(
                post.clone(),
                &to,
                Some(json!({"reviewers": ["octocat"], "team_reviewers": ["maintainers"]})),
                201,
                reviewers,
            )
            .await;
        assert_eq!(
            (
                &asked["requested_reviewers"][0]["login"],
                &asked["requested_teams"][0]["slug"]
            ),
            (&json!("octocat"), &json!("maintainers"))
        );
        api.expect(post.clone(), &to, Some(json!({})), 422, None)
            .await;
        api.expect(
            post.clone(),
            &to,
            Some(json!({"reviewers": ["not a login"]})),
            422,
            None,
        )
        .await;

        // Merging (what an autonomous sandbox with allow_merge may do): an unknown method is
        // refused; a stale sha is refused; a squash moves main and answers GitHub's merge
        // result; a second merge is refused as GitHub refuses it.
        let to = format!("{repo}/pulls/1/merge");
        api.expect(
            put.clone(),
            &to,
            Some(json!({"merge_method": "octopus"})),
            422,
            None,
        )
        .await;
        let before = w.hub_ref("octo-org", "widgets", "refs/heads/main").unwrap();
        let stale = json!({"merge_method": "squash", "sha": "0".repeat(40)});
        api.expect(put.clone(), &to, Some(stale), 409, None).await;
        let m = api
            .expect(
                put.clone(),
                &to,
                Some(json!({"merge_method": "squash"})),
                200,
                merge,
            )
            .await;
        let after = w.hub_ref("octo-org", "widgets", "refs/heads/main").unwrap();
        assert_eq!(m["sha"].as_str(), Some(after.as_str()));
        assert_ne!(after, before);
        api.expect(put, &to, None, 405, merge).await;
        let pr = api
            .expect(get, &format!("{repo}/pulls/1"), None, 200, None)
            .await;
        assert_eq!(
            (pr["merged"].as_bool(), pr["state"].as_str()),
            (Some(true), Some("closed"))
        );
        assert_eq!(pr["merge_commit_sha"].as_str(), Some(after.as_str()));
    });
    assert_eq!(w.hub.pulls()[0].title, "T2");
}

fn the_known_permissions_are_githubs() {
    // `ghapp token --permission` checks names and levels locally against this table: it must
    // be GitHub's `app-permissions` schema, no more and no less.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/github-app-subset.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let props = doc["components"]["schemas"]["app-permissions"]["properties"]
        .as_object()
        .unwrap();
    let from_schema: Vec<(String, Vec<String>)> = props
        .iter()
        .map(|(k, v)| {
            let levels = v["enum"].as_array().unwrap();
            (
                k.clone(),
                levels
                    .iter()
                    .map(|l| l.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    let ours: Vec<(String, Vec<String>)> = ghapp_core::permissions::KNOWN
        .iter()
        .map(|(n, ls)| (n.to_string(), ls.iter().map(|l| l.to_string()).collect()))
        .collect();
    let sorted = |mut v: Vec<(String, Vec<String>)>| {
        v.sort();
        v
    };
    assert_eq!(sorted(ours), sorted(from_schema));
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "fakehub_answers_match_githubs_schemas",
        fakehub_answers_match_githubs_schemas,
    ),
    (
        "the_helpers_mint_requests_match_githubs_schema",
        the_helpers_mint_requests_match_githubs_schema,
    ),
    (
        "the_schema_checker_catches_what_it_should",
        the_schema_checker_catches_what_it_should,
    ),
    (
        "pull_request_answers_match_githubs_schemas",
        pull_request_answers_match_githubs_schemas,
    ),
    (
        "the_known_permissions_are_githubs",
        the_known_permissions_are_githubs,
    ),
];
