//! The token exchange (`ghapp proxy`'s `[sts]`) end to end: fakehub as GitHub and as the OIDC
//! issuer (GitHub Actions' shape), trust policies committed to the repositories, a "CI job"
//! with no app key and no personal access token driving the real git, the helper and gh-pr,
//! octo-sts/action's own script, and every refusal.

use std::collections::BTreeMap;
use std::path::Path;

use ghapp_e2e::{ProxyProc, World, needs};
use serde_json::{Value, json};

const DOMAIN: &str = "sts.test";

/// Commits `files` (path, text) to `owner/repo`'s `main` as its people would.
fn commit_to(w: &World, owner: &str, repo: &str, files: &[(String, String)]) {
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_bytes()))
        .collect();
    w.commit_on_main(owner, repo, &files);
}

/// `(path, text)` of the trust policy `name`.
fn policy(name: &str, text: String) -> (String, String) {
    (format!(".github/chainguard/{name}.sts.yaml"), text)
}

/// A proxy serving only the exchange, over TLS from fakehub's CA; issuers trusted through it.
fn start_sts(w: &World) -> (ProxyProc, String) {
    start_sts_with(w, 1000)
}

fn start_sts_with(w: &World, failures_per_minute: u32) -> (ProxyProc, String) {
    start_sts_with_env(w, failures_per_minute, &[])
}

fn start_sts_with_env(
    w: &World,
    failures_per_minute: u32,
    env: &[(&str, String)],
) -> (ProxyProc, String) {
    let (cert, key) = w.hub.issue_leaf(&["127.0.0.1", "localhost"]).unwrap();
    let dir = w.path("sts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sts.crt"), cert).unwrap();
    std::fs::write(dir.join("sts.key"), key).unwrap();
    let sts = format!(
        "[sts]\nlisten = \"127.0.0.1:0\"\ndomain = \"{DOMAIN}\"\ntls_cert_file = {:?}\ntls_key_file = {:?}\noidc_ca_file = {:?}\nfailures_per_minute = {failures_per_minute}\n",
        dir.join("sts.crt").display().to_string(),
        dir.join("sts.key").display().to_string(),
        w.hub.ca_path().display().to_string(),
    );
    let p = w.start_proxy_with_env("", &sts, env);
    let url = p
        .sts_url
        .clone()
        .expect("the proxy prints the exchange's address");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    (p, url)
}

/// A GET trusting fakehub's CA (as every server here is certified): status and JSON body.
fn get(w: &World, url: &str, bearer: Option<&str>) -> (u16, Value) {
    let ca = std::fs::read_to_string(w.hub.ca_path()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tls = ghapp_core::client::tls_config_with(Some(&ca)).unwrap();
        let c = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .build()
            .unwrap();
        let mut r = c.get(url);
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    })
}

/// GETs the exchange as a client would: its status and JSON answer.
fn exchange(w: &World, url: &str, query: &str, bearer: Option<&str>) -> (u16, Value) {
    get(w, &format!("{url}/sts/exchange?{query}"), bearer)
}

/// The ID token the issuer gives `job` for `audience`, as a runner asks for it.
fn job_token(w: &World, job: &(String, String), audience: &str) -> String {
    let (status, v) = get(w, &format!("{}&audience={audience}", job.0), Some(&job.1));
    assert_eq!(status, 200, "{v}");
    v["value"].as_str().unwrap().to_owned()
}

/// A mint fakehub made: (repositories, permissions).
type Minted = (Option<Vec<String>>, BTreeMap<String, String>);

fn mints(w: &World) -> Vec<Minted> {
    w.hub
        .counters()
        .mints
        .into_iter()
        .map(|m| (m.repositories, m.permissions))
        .collect()
}

fn perms(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The main policy: the `main` branch's CI of widgets may write contents and pull requests.
fn ci_policy(w: &World) -> (String, String) {
    policy(
        "ci",
        format!(
            "issuer: {}\nsubject: repo:octo-org/widgets:ref:refs/heads/main\npermissions:\n  contents: write\n  pull_requests: write\n  metadata: read\n",
            w.hub.oidc_issuer()
        ),
    )
}

fn a_ci_job_without_a_key_clones_pushes_and_opens_a_pull_request() {
    let mut w = World::new();
    commit_to(&w, "octo-org", "widgets", &[ci_policy(&w)]);
    let (p, url) = start_sts(&w);
    let before = mints(&w).len();

    // The job's environment: the runner's OIDC request variables and the service; no key.
    let job = w
        .hub
        .oidc_job("octo-org/widgets", "refs/heads/main", json!({}));
    for k in ["GHAPP_APP_ID", "GHAPP_PRIVATE_KEY_FILE"] {
        w.set_env(k, None);
    }
    w.set_env("GHAPP_EXCHANGE_URL", Some(&url));
    w.set_env("GHAPP_EXCHANGE_IDENTITY", Some("ci"));
    w.set_env("GHAPP_EXCHANGE_AUDIENCE", Some(DOMAIN));
    w.set_env("ACTIONS_ID_TOKEN_REQUEST_URL", Some(&job.0));
    w.set_env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", Some(&job.1));
    assert!(
        !w.env()
            .iter()
            .any(|(k, _)| k.contains("PRIVATE_KEY") || k.starts_with("GHAPP_PAT")),
        "the job holds no key"
    );

    w.ghapp(&["doctor", "--repo", "octo-org/widgets"]).ok();
    w.clone_repo("octo-org", "widgets", "widgets").ok();
    let work = w.path("widgets");
    w.git(&work, &["switch", "--quiet", "-c", "ci/change"]).ok();
    w.commit_file(&work, "change.txt", "from CI\n");
    w.git(&work, &["push", "--quiet", "-u", "origin", "ci/change"])
        .ok();
    assert!(
        w.hub_ref("octo-org", "widgets", "refs/heads/ci/change")
            .is_some()
    );
    w.gh_pr(&work, &["open", "--title", "From CI", "--body", "B"])
        .ok();
    assert!(
        w.hub
            .pulls()
            .iter()
            .any(|pr| pr.head == "ci/change" && pr.title == "From CI"),
        "{:?}",
        w.hub.pulls()
    );

    // What GitHub minted: the policy read (contents: read) and one token narrowed to the
    // repository with the policy's permissions, shared by doctor's check, clone, push and gh-pr
    // through the cache (doctor exchanged once on its own).
    let new: Vec<_> = mints(&w).into_iter().skip(before).collect();
    let policy_perms = perms(&[
        ("contents", "write"),
        ("metadata", "read"),
        ("pull_requests", "write"),
    ]);
    let exchanged: Vec<_> = new.iter().filter(|(_, p)| *p == policy_perms).collect();
    assert_eq!(exchanged.len(), 2, "doctor's, then the job's: {new:?}");
    assert!(
        exchanged
            .iter()
            .all(|(r, _)| r.as_deref() == Some(&["widgets".to_string()][..]))
    );
    assert!(
        new.iter().all(|(r, p)| *p == policy_perms
            || (*p == perms(&[("contents", "read")])
                && r.as_deref() == Some(&["widgets".to_string()][..]))),
        "nothing else: {new:?}"
    );

    // Audited: issuer, subject, policy and its blob, scope, permissions, token fingerprint.
    let events: Vec<Value> = p
        .audit()
        .into_iter()
        .filter(|e| e["service"] == "exchange")
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let e = &events[1];
    assert_eq!(e["decision"], "allow");
    assert_eq!(e["exchange"]["issuer"], w.hub.oidc_issuer());
    assert_eq!(
        e["exchange"]["subject"],
        "repo:octo-org/widgets:ref:refs/heads/main"
    );
    assert_eq!(e["exchange"]["scope"], "octo-org/widgets");
    assert!(
        e["exchange"]["policy"]
            .as_str()
            .unwrap()
            .starts_with("octo-org/widgets/.github/chainguard/ci.sts.yaml@")
    );
    assert_eq!(
        e["exchange"]["permissions"],
        "contents=write, metadata=read, pull_requests=write"
    );
    assert!(e["token"].as_str().unwrap().starts_with("sha256:"));
    assert!(
        p.metrics()
            .contains("ghapp_proxy_sts_exchanges_total{kind=\"issued\"} 2"),
        "{}",
        p.metrics()
    );
    w.assert_no_secrets();
}

/// Each exchange is a server span, with children for the policy's read, the OIDC token's
/// check and the mint; a refusal's span names its check; no export holds a token.
fn an_exchange_is_traced_without_its_tokens() {
    let w = World::new();
    commit_to(&w, "octo-org", "widgets", &[ci_policy(&w)]);
    let (cert, key) = w.hub.issue_leaf(&["127.0.0.1"]).unwrap();
    let r = ghapp_e2e::Receiver::start(&cert, &key, Box::new(|_, _| 200));
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", r.url("")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            w.hub.ca_path().display().to_string(),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    let (_p, url) = start_sts_with_env(&w, 1000, &env);
    let jwt = job_token(
        &w,
        &w.hub
            .oidc_job("octo-org/widgets", "refs/heads/main", json!({})),
        DOMAIN,
    );
    let (status, v) = exchange(&w, &url, "scope=octo-org/widgets&identity=ci", Some(&jwt));
    assert_eq!(status, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let (status, _) = exchange(
        &w,
        &url,
        "scope=octo-org/widgets&identity=nosuch",
        Some(&jwt),
    );
    assert_eq!(status, 404);

    let got = r.wait_until(
        std::time::Duration::from_secs(20),
        "the spans of both exchanges",
        |g| {
            crate::telemetry::spans(g)
                .iter()
                .filter(|s| {
                    crate::telemetry::attr(s, "ghapp.service").as_deref() == Some("exchange")
                })
                .count()
                >= 2
        },
    );
    let all = crate::telemetry::spans(&got);
    let of = |decision: &str| {
        all.iter()
            .find(|s| {
                crate::telemetry::attr(s, "ghapp.service").as_deref() == Some("exchange")
                    && crate::telemetry::attr(s, "ghapp.decision").as_deref() == Some(decision)
            })
            .unwrap_or_else(|| panic!("a {decision} exchange's span in {all:#?}"))
    };
    let issued = of("allow");
    assert_eq!(issued["kind"], 2, "a server span");
    assert_eq!(
        crate::telemetry::attr(issued, "ghapp.repo").as_deref(),
        Some("octo-org/widgets")
    );
    assert_eq!(
        crate::telemetry::names(&crate::telemetry::children(&all, issued)),
        ["ghapp.oidc", "ghapp.policy", "ghapp.token"]
    );
    let refused = of("deny");
    let reason = crate::telemetry::attr(refused, "ghapp.reason").unwrap_or_default();
    assert!(reason.starts_with("policy:"), "{reason}");
    assert_eq!(
        crate::telemetry::names(&crate::telemetry::children(&all, refused)),
        ["ghapp.policy"],
        "refused once the policy was not found: no check, no mint"
    );
    for e in &got {
        let body = String::from_utf8_lossy(&e.body);
        assert!(!body.contains(&token), "an export holds the issued token");
        assert!(!body.contains(&jwt), "an export holds the OIDC token");
    }
}

fn every_refusal_names_its_check_and_mints_nothing() {
    let w = World::new();
    let iss = w.hub.oidc_issuer();
    commit_to(
        &w,
        "octo-org",
        "widgets",
        &[
            ci_policy(&w),
            policy("elsewhere", "issuer: https://token.actions.githubusercontent.com\nsubject: repo:octo-org/widgets:ref:refs/heads/main\n".into()),
            policy("unanchored", format!("issuer: {iss}\nsubject_pattern: repo:octo-org/widgets\n")),
            policy("claims", format!("issuer: {iss}\nsubject_pattern: 'repo:octo-org/widgets:.*'\nclaim_pattern:\n  ref: refs/heads/main\n")),
            policy("admin", format!("issuer: {iss}\nsubject: repo:octo-org/widgets:ref:refs/heads/main\npermissions:\n  administration: write\n")),
        ],
    );
    let (p, url) = start_sts(&w);
    let main = job_token(
        &w,
        &w.hub
            .oidc_job("octo-org/widgets", "refs/heads/main", json!({})),
        DOMAIN,
    );
    let dev = job_token(
        &w,
        &w.hub
            .oidc_job("octo-org/widgets", "refs/heads/dev", json!({})),
        DOMAIN,
    );
    let other_aud = job_token(
        &w,
        &w.hub
            .oidc_job("octo-org/widgets", "refs/heads/main", json!({})),
        "someone-else",
    );
    let main2 = job_token(
        &w,
        &w.hub
            .oidc_job("octo-org/widgets", "refs/heads/main-2", json!({})),
        DOMAIN,
    );
    let claims = w
        .hub
        .oidc_claims("octo-org/widgets", "refs/heads/main", DOMAIN, 300);
    let expired = w.hub.oidc_sign(
        &w.hub
            .oidc_claims("octo-org/widgets", "refs/heads/main", DOMAIN, -600),
        fakehub::Signing::Current,
    );
    let forged = {
        // The claims of one token under the signature of another.
        let mut evil = claims.clone();
        evil["sub"] = json!("repo:octo-org/widgets:ref:refs/heads/main");
        evil["repository"] = json!("octo-org/evil");
        let a = w.hub.oidc_sign(&evil, fakehub::Signing::Current);
        let (head_payload, _) = a.rsplit_once('.').unwrap();
        format!("{head_payload}.{}", dev.rsplit_once('.').unwrap().1)
    };
    let none = w.hub.oidc_sign(&claims, fakehub::Signing::None);
    let hs256 = w.hub.oidc_sign(&claims, fakehub::Signing::Hs256);
    let unpublished = w.hub.oidc_sign(&claims, fakehub::Signing::Unpublished);
    let before = mints(&w).len();

    let q = |id: &str| format!("scope=octo-org/widgets&identity={id}");
    // (what, query, bearer, status, the check named in the audit, what the message says)
    type Case<'a> = (&'a str, String, Option<&'a str>, u16, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "no token",
            q("ci"),
            None,
            401,
            "token",
            "Authorization: Bearer",
        ),
        (
            "not a JWT",
            q("ci"),
            Some("ghs_notajwt"),
            401,
            "token",
            "not a JWT",
        ),
        (
            "wrong issuer",
            q("elsewhere"),
            Some(&main),
            401,
            "issuer",
            "does not match the policy's",
        ),
        (
            "subject",
            q("ci"),
            Some(&dev),
            403,
            "subject",
            "refs/heads/dev",
        ),
        (
            "audience",
            q("ci"),
            Some(&other_aud),
            403,
            "audience",
            "sts.test",
        ),
        (
            "expired",
            q("ci"),
            Some(&expired),
            401,
            "expired",
            "expired",
        ),
        (
            "bad signature",
            q("ci"),
            Some(&forged),
            401,
            "signature",
            "signature",
        ),
        (
            "alg none",
            q("ci"),
            Some(&none),
            401,
            "algorithm",
            "RS256 or ES256",
        ),
        ("HS256", q("ci"), Some(&hs256), 401, "algorithm", "HS256"),
        (
            "unknown kid",
            q("ci"),
            Some(&unpublished),
            401,
            "key",
            "fetched again",
        ),
        (
            "policy missing",
            q("nope"),
            Some(&main),
            404,
            "policy",
            "no trust policy .github/chainguard/nope.sts.yaml",
        ),
        (
            "unanchored subject",
            q("unanchored"),
            Some(&main),
            403,
            "subject",
            "does not match",
        ),
        (
            "unanchored claim",
            q("claims"),
            Some(&main2),
            403,
            "claim",
            "refs/heads/main-2",
        ),
        (
            "outside the installation",
            "scope=lonely/island&identity=ci".into(),
            Some(&main),
            403,
            "scope",
            "not installed",
        ),
        (
            "wider than the installation",
            q("admin"),
            Some(&main),
            403,
            "permissions",
            "more than the installation grants",
        ),
        (
            "two scopes",
            "scope=octo-org/widgets&scopes=octo-org/widgets,octo-org/gadgets&identity=ci".into(),
            Some(&main),
            400,
            "request",
            "more than one scope",
        ),
    ];
    for (what, query, bearer, status, check, says) in &cases {
        let (s, v) = exchange(&w, &url, query, *bearer);
        let msg = v["message"].as_str().unwrap_or_default();
        assert_eq!((s, v.get("token")), (*status, None), "{what}: {v}");
        assert!(msg.contains(says), "{what}: {msg:?} does not say {says:?}");
        // Never the JWT in the answer.
        for b in bearer.iter() {
            assert!(!msg.contains(*b), "{what}: the message quotes the token");
        }
        let last = p
            .audit()
            .into_iter()
            .rev()
            .find(|e| e["service"] == "exchange")
            .unwrap();
        assert_eq!(last["decision"], "deny", "{what}");
        assert!(
            last["reason"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{check}: ")),
            "{what}: {last}"
        );
    }
    // Nothing minted but the policy reads (contents: read on the repository read).
    let new: Vec<_> = mints(&w).into_iter().skip(before).collect();
    assert!(
        new.iter()
            .all(|(_, p)| *p == perms(&[("contents", "read")])),
        "{new:?}"
    );
    // The unknown key made the service fetch the issuer's keys again, once.
    let jwks = w
        .hub
        .requests()
        .iter()
        .filter(|r| r.target.ends_with("/.well-known/jwks"))
        .count();
    assert_eq!(jwks, 2, "the first fetch and one for the unknown kid");

    // A key the issuer rotates in (ES256 this time) is fetched when a token first names it.
    w.hub.oidc_rotate(true, false);
    let es = job_token(
        &w,
        &w.hub
            .oidc_job("octo-org/widgets", "refs/heads/main", json!({})),
        DOMAIN,
    );
    let (s, v) = exchange(&w, &url, &q("ci"), Some(&es));
    assert_eq!(s, 200, "{v}");
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    // A policy missing is remembered briefly: asking again reads nothing from GitHub.
    let reads = |w: &World| {
        w.hub
            .requests()
            .iter()
            .filter(|r| r.target.contains("/contents/"))
            .count()
    };
    let n = reads(&w);
    let (s, _) = exchange(&w, &url, &q("nope"), Some(&main));
    assert_eq!((s, reads(&w)), (404, n));
    w.assert_no_secrets();
}

fn octo_sts_action_unmodified_gets_a_working_token() {
    needs("node");
    let w = World::new();
    let (_p, url) = start_sts(&w);
    // octo-sts/action asks for its audience and calls https://DOMAIN/sts/exchange: here the
    // domain is the service's address, and the policy names it as the audience.
    let domain = url.strip_prefix("https://").unwrap().to_owned();
    commit_to(
        &w,
        "octo-org",
        "widgets",
        &[policy(
            "action",
            format!(
                "issuer: {}\nsubject: repo:octo-org/widgets:ref:refs/heads/main\naudience: {domain}\npermissions:\n  contents: read\n",
                w.hub.oidc_issuer()
            ),
        )],
    );
    let job = w
        .hub
        .oidc_job("octo-org/widgets", "refs/heads/main", json!({}));
    let out = w.path("github_output");
    let state = w.path("github_state");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/octo-sts-action/index.js");
    let mut env = w.env().to_vec();
    env.extend(
        [
            ("ACTIONS_ID_TOKEN_REQUEST_URL", job.0.as_str()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", job.1.as_str()),
            ("INPUT_SCOPE", "octo-org/widgets"),
            ("INPUT_IDENTITY", "action"),
            ("INPUT_DOMAIN", domain.as_str()),
            ("GITHUB_OUTPUT", &out.display().to_string()),
            ("GITHUB_STATE", &state.display().to_string()),
            (
                "NODE_EXTRA_CA_CERTS",
                &w.hub.ca_path().display().to_string(),
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let r = w
        .cmd("node")
        .arg(script.display().to_string())
        .env(&env)
        .run();
    r.ok();
    let written = std::fs::read_to_string(&out).unwrap();
    let token = written
        .strip_prefix("token=")
        .expect("the action wrote its output")
        .trim();
    // The token works, for that repository only, read-only.
    let m = mints(&w);
    let (repos, granted) = m.last().unwrap();
    assert_eq!(repos.as_deref(), Some(&["widgets".to_string()][..]));
    assert_eq!(*granted, perms(&[("contents", "read")]));
    assert!(w.hub.issued_tokens().iter().any(|t| t == token));
    let header = format!("http.extraHeader={}", ghapp_e2e::basic_auth(token));
    let ls = w
        .cmd("git")
        .args(&[
            "-c",
            &header,
            "ls-remote",
            &w.hub.repo_url("octo-org", "widgets"),
        ])
        .carries_secrets()
        .run();
    ls.ok();
    assert!(ls.stdout.contains("refs/heads/main"));
}

fn a_kubernetes_job_exchanges_its_projected_token_file() {
    let mut w = World::new();
    let sub = "system:serviceaccount:ci:builder";
    commit_to(
        &w,
        "octo-org",
        "widgets",
        &[policy(
            "k8s",
            format!(
                "issuer: {}\nsubject: {sub}\npermissions:\n  contents: read\n",
                w.hub.oidc_issuer()
            ),
        )],
    );
    let (_p, url) = start_sts(&w);
    let mut claims = w
        .hub
        .oidc_claims("octo-org/widgets", "refs/heads/main", DOMAIN, 600);
    claims["sub"] = json!(sub);
    let file = w.path("token");
    std::fs::write(&file, w.hub.oidc_sign(&claims, fakehub::Signing::Current)).unwrap();
    for k in ["GHAPP_APP_ID", "GHAPP_PRIVATE_KEY_FILE"] {
        w.set_env(k, None);
    }
    w.set_env("GHAPP_EXCHANGE_URL", Some(&url));
    w.set_env("GHAPP_EXCHANGE_IDENTITY", Some("k8s"));
    w.set_env("GHAPP_EXCHANGE_AUDIENCE", Some(DOMAIN));
    w.set_env("GHAPP_OIDC_TOKEN_FILE", Some(&file.display().to_string()));
    let t = w.ghapp(&["token", "--repo", "octo-org/widgets"]);
    t.ok();
    assert!(
        w.hub
            .issued_tokens()
            .iter()
            .any(|x| t.stdout.contains(x.as_str()))
    );
    w.clone_repo("octo-org", "widgets", "widgets").ok();
    // The file is read on every exchange: a token file that no longer verifies is named.
    std::fs::write(&file, "not a jwt").unwrap();
    let again = w.ghapp(&["token", "--repo", "octo-org/gadgets"]);
    again.fails();
    assert!(
        again.stderr.contains("GHAPP_OIDC_TOKEN_FILE"),
        "{}",
        again.stderr
    );
    w.assert_no_secrets();
}

fn a_source_that_keeps_failing_is_told_to_wait() {
    let w = World::new();
    commit_to(&w, "octo-org", "widgets", &[ci_policy(&w)]);
    let (p, url) = start_sts_with(&w, 3);
    let q = "scope=octo-org/widgets&identity=ci";
    for _ in 0..3 {
        assert_eq!(exchange(&w, &url, q, Some("not.a.jwt")).0, 401);
    }
    // Past the limit even a good token waits: nothing is checked, nothing reaches GitHub.
    let good = job_token(
        &w,
        &w.hub
            .oidc_job("octo-org/widgets", "refs/heads/main", json!({})),
        DOMAIN,
    );
    let seen = w.hub.requests().len();
    let (s, v) = exchange(&w, &url, q, Some(&good));
    assert_eq!(s, 429, "{v}");
    assert!(v["message"].as_str().unwrap().contains("retry in"), "{v}");
    assert_eq!(w.hub.requests().len(), seen);
    assert!(
        p.metrics().contains("kind=\"rate_limited\"} 1"),
        "{}",
        p.metrics()
    );
}

pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "a_source_that_keeps_failing_is_told_to_wait",
        a_source_that_keeps_failing_is_told_to_wait,
    ),
    (
        "a_ci_job_without_a_key_clones_pushes_and_opens_a_pull_request",
        a_ci_job_without_a_key_clones_pushes_and_opens_a_pull_request,
    ),
    (
        "every_refusal_names_its_check_and_mints_nothing",
        every_refusal_names_its_check_and_mints_nothing,
    ),
    (
        "an_exchange_is_traced_without_its_tokens",
        an_exchange_is_traced_without_its_tokens,
    ),
    (
        "octo_sts_action_unmodified_gets_a_working_token",
        octo_sts_action_unmodified_gets_a_working_token,
    ),
    (
        "a_kubernetes_job_exchanges_its_projected_token_file",
        a_kubernetes_job_exchanges_its_projected_token_file,
    ),
];
