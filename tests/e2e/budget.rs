//! Budgets below GitHub's limits: fakehub counts and enforces GitHub's primary and secondary
//! limits; two proxy replicas on one state store keep a looping sandbox below them while
//! another goes on.

use std::time::{Duration, Instant};

use ghapp_e2e::{ProxyProc, SECRET_A, SECRET_B, World, two_sandboxes};

/// A pull request on `owner/repo` opened straight at the emulator (not through a proxy): its
/// number.
pub(crate) fn open_pull(w: &World, owner: &str, repo: &str) -> u64 {
    let dest = format!("direct-{repo}");
    w.clone_repo(owner, repo, &dest).ok();
    let work = w.path(&dest);
    w.git(&work, &["switch", "--quiet", "-c", "feature"]).ok();
    w.commit_file(&work, "f.txt", "f\n");
    w.git(&work, &["push", "--quiet", "origin", "feature"]).ok();
    let token = w.token_for(&format!("{owner}/{repo}"));
    let ca = std::fs::read_to_string(w.hub.ca_path()).unwrap();
    let client = ghapp_core::client::GitHubClient::with_ca(&w.hub.api_url(), &ca).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(client.request(
            reqwest::Method::POST,
            &format!("/repos/{owner}/{repo}/pulls"),
            ghapp_core::client::Auth::Token(&ghapp_core::secret::InstallationToken::new(token)),
            Some(&serde_json::json!({"title": "T", "head": "feature", "base": "main"})),
        ))
        .unwrap();
    assert_eq!(r.status.as_u16(), 201, "{}", r.message());
    serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["number"]
        .as_u64()
        .unwrap()
}

/// One REST request of a sandbox through a replica: status, Retry-After, and how long it took.
fn rest(
    w: &World,
    p: &ProxyProc,
    who: (&str, &str),
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Option<String>, Duration) {
    let started = Instant::now();
    let mut t = p.tunnel(who.0, who.1, &w.hub.git_host());
    let a = t
        .request(
            method,
            &format!("/api/v3{path}"),
            &[
                ("Authorization", "Bearer placeholder"),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
        .unwrap();
    (a.status, a.header("retry-after"), started.elapsed())
}

/// Two replicas of one fleet on one store (SQLite unless `state` says).
fn replicas(w: &World, state: Option<&str>, budget: &str) -> (ProxyProc, ProxyProc) {
    let state = state.map_or_else(
        || format!("sqlite:{}", w.path("state.db").display()),
        str::to_owned,
    );
    let extra = format!("state = {state:?}\n[budget]\n{budget}\n");
    let a = w.start_proxy(&two_sandboxes(""), &extra);
    let b = w.start_proxy(&two_sandboxes(""), &extra);
    (a, b)
}

fn a_looping_sandbox_is_slowed_then_refused_across_replicas_and_another_goes_on() {
    looping(&World::new(), None);
}

fn the_budget_holds_across_replicas_on_postgres() {
    let w = World::new();
    let Some(pg) = ghapp_e2e::Postgres::start(w.root.path()) else {
        panic!("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)");
    };
    looping(&w, Some(&pg.url()));
}

fn looping(w: &World, state: Option<&str>) {
    w.hub.set_secondary_per_minute(12);
    let pa = open_pull(w, "octo-org", "widgets");
    let pb = open_pull(w, "octo-org", "gadgets");
    let (r1, r2) = replicas(w, state, "content_per_minute = 8");
    // A minute's window must not end mid-test (the counts start again with the next).
    let into = ghapp_core::jwt::unix_now() % 60;
    if into > 48 {
        std::thread::sleep(Duration::from_secs((61 - into) as u64));
    }
    let comment = |p: &ProxyProc, who, repo: &str, n: u64| {
        rest(
            w,
            p,
            who,
            "POST",
            &format!("/repos/octo-org/{repo}/issues/{n}/comments"),
            r#"{"body":"again"}"#,
        )
    };
    let before = w.hub.pulls().iter().map(|p| p.comments).sum::<u64>();
    let mut admitted = Vec::new();
    let mut refused = None;
    for i in 0..12 {
        // The loop alternates replicas: the share is the fleet's, not one replica's.
        let p = if i % 2 == 0 { &r1 } else { &r2 };
        let (status, retry, took) = comment(p, ("agent-a", SECRET_A), "widgets", pa);
        match status {
            201 => admitted.push(took),
            429 => {
                refused = Some(retry);
                break;
            }
            s => panic!("unexpected {s}"),
        }
    }
    // Alone, a sandbox takes half the fleet's 8 (a share is kept for the others): 4, the last
    // ones slowed, then 429 with Retry-After within the minute.
    assert_eq!(admitted.len(), 4, "{admitted:?}");
    assert!(
        admitted.iter().any(|d| *d >= Duration::from_secs(1)),
        "slowed: {admitted:?}"
    );
    let retry: u64 = refused
        .expect("refused")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The other sandbox, on the other replica, goes on.
    let (status, _, _) = comment(&r2, ("agent-b", SECRET_B), "gadgets", pb);
    assert_eq!(status, 201);
    // GitHub's limit never tripped, and the refused comment never arrived.
    let c = w.hub.counters();
    assert_eq!(c.secondary_limited, 0, "{c:?}");
    let after = w.hub.pulls().iter().map(|p| p.comments).sum::<u64>();
    assert_eq!(after - before, 5);
    let audit = r1
        .audit()
        .into_iter()
        .chain(r2.audit())
        .filter(|e| e["status"] == 429)
        .count();
    assert_eq!(audit, 1);
    // Each replica shows the fleet's use: 4 admitted through both (the refused one given back).
    for r in [&r1, &r2] {
        let b = budget_of(r, ("agent-a", SECRET_A));
        assert_eq!(b["used_this_hour"], 4, "{b}");
    }
}

fn an_installation_at_its_reserve_makes_sandboxes_wait_for_the_reset() {
    let w = World::new();
    // 40 requests an hour; the reserve (10 %) is 4.
    w.hub.set_primary_limit(40);
    let (r1, _r2) = replicas(&w, None, "reserve_percent = 10");
    let read = || {
        rest(
            &w,
            &r1,
            ("agent-b", SECRET_B),
            "GET",
            "/repos/octo-org/gadgets",
            "",
        )
    };
    let mut ok = 0;
    let retry = loop {
        let (status, retry, _) = read();
        match status {
            200 => ok += 1,
            429 => break retry,
            s => panic!("unexpected {s} after {ok}"),
        }
        assert!(ok < 40, "never held back");
    };
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    // Held back while 4 remain: GitHub never refused, and nothing more reaches it.
    let seen = w.hub.requests().len();
    assert_eq!(read().0, 429);
    assert_eq!(w.hub.requests().len(), seen);
    assert_eq!(w.hub.counters().primary_limited, 0);
    assert!(ok >= 30, "{ok}");
    // The sandbox reads its budget from the proxy, as its other rules: reads spend none.
    assert_eq!(
        budget_of(&r1, ("agent-b", SECRET_B)),
        serde_json::json!({"weight": 1, "content_per_minute": 60, "content_per_hour": 400, "share_per_minute_alone": 30, "used_this_minute": 0, "used_this_hour": 0, "graphql_points_per_minute": 1000, "graphql_points_this_minute": 0})
    );
}

/// A sandbox's budget as `GET /policy` on replica `p` answers it.
fn budget_of(p: &ProxyProc, who: (&str, &str)) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(&p.addr).unwrap();
    let auth = ghapp_gitproto::basic::encode(who.0, who.1);
    write!(c, "GET /policy?format=json HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {auth}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap();
    let rules: serde_json::Value = serde_json::from_str(body).unwrap();
    rules["budget"].clone()
}

fn graphql_points_are_budgeted_below_github_s_and_a_query_still_passes() {
    let w = World::new();
    // GitHub's GraphQL limit lowered to 30 points a minute (a mutation costs 5); the fleet's
    // budget 20: a sandbox alone takes half, 10 points, two mutations.
    w.hub.set_graphql_points_per_minute(30);
    let pr = open_pull(&w, "octo-org", "widgets");
    let (r1, r2) = replicas(&w, None, "graphql_points_per_minute = 20");
    let into = ghapp_core::jwt::unix_now() % 60;
    if into > 45 {
        std::thread::sleep(Duration::from_secs((61 - into) as u64));
    }
    let gql = |p: &ProxyProc, who: (&str, &str), query: &str, vars: serde_json::Value| {
        let body = serde_json::json!({"query": query, "variables": vars}).to_string();
        let mut t = p.tunnel(who.0, who.1, &w.hub.git_host());
        let a = t
            .request(
                "POST",
                "/api/graphql",
                &[
                    ("Authorization", "Bearer placeholder"),
                    ("Content-Type", "application/json"),
                ],
                body.as_bytes(),
            )
            .unwrap();
        (a.status, a.header("retry-after"), a.body)
    };
    let (_, _, body) = gql(
        &r1,
        ("agent-a", SECRET_A),
        "query($n: Int!) { repository(owner: \"octo-org\", name: \"widgets\") { pullRequest(number: $n) { id } } }",
        serde_json::json!({"n": pr}),
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = v["data"]["repository"]["pullRequest"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let comment = "mutation($s: ID!) { addComment(input: {subjectId: $s, body: \"again\"}) { clientMutationId } }";
    let mut done = 0;
    let refused = loop {
        // Alternating replicas: the points are the fleet's.
        let p = if done % 2 == 0 { &r1 } else { &r2 };
        let (status, retry, body) = gql(
            p,
            ("agent-a", SECRET_A),
            comment,
            serde_json::json!({"s": id}),
        );
        if status == 429 {
            break (retry, body);
        }
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains("\"errors\""), "{body}");
        done += 1;
        assert!(done < 10, "never refused");
    };
    // 1 point for the query, 5 for each mutation: the second mutation reaches 11 > 10.
    assert_eq!(done, 1, "{refused:?}");
    let (retry, body) = refused;
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert!(
        body.contains("its share of this minute's GraphQL points (10 of 20) is spent"),
        "{body}"
    );
    // GitHub never refused, and saw one mutation.
    let c = w.hub.counters();
    assert_eq!(c.graphql_limited, 0, "{c:?}");
    assert_eq!(
        c.graphql
            .iter()
            .filter(|g| g.starts_with("mutation"))
            .count(),
        1
    );
    // The other sandbox still reads, and its share is its own.
    let (status, _, body) = gql(
        &r2,
        ("agent-b", SECRET_B),
        "query { repository(owner: \"octo-org\", name: \"gadgets\") { name } }",
        serde_json::json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        budget_of(&r2, ("agent-a", SECRET_A))["graphql_points_this_minute"],
        6
    );
}

/// Requests at once: a sandbox past `concurrent_per_sandbox`, and an owner past
/// `concurrent_per_installation`, wait for a slot, then are told 429 with why; what waited in
/// vain never reaches GitHub. (fakehub answers slowly here, so the slots stay taken.)
fn requests_at_once_wait_for_a_slot_then_are_refused_before_github() {
    let w = World::new();
    let p = w.start_proxy(
        &two_sandboxes(""),
        "[budget]\nconcurrent_per_sandbox = 2\nconcurrent_per_installation = 3\n",
    );
    let a = ("agent-a", SECRET_A);
    let b = ("agent-b", SECRET_B);
    // Tokens first, so that the slow answers below are the requests' own.
    for (who, repo) in [(a, "widgets"), (b, "gadgets")] {
        let (status, _, _) = rest(&w, &p, who, "GET", &format!("/repos/octo-org/{repo}"), "");
        assert_eq!(status, 200);
    }
    let slow = |path: &str| {
        w.hub
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.target == format!("/api/v3{path}"))
            .count()
    };
    let (widgets, gadgets) = (
        "/repos/octo-org/widgets/pulls",
        "/repos/octo-org/gadgets/pulls",
    );
    w.hub.set_api_delay_ms(7_000);
    let answers: Vec<(&str, ghapp_e2e::HttpAnswer)> = std::thread::scope(|s| {
        let one = |who: (&'static str, &'static str), path: &'static str| {
            let (w, p) = (&w, &p);
            s.spawn(move || {
                let mut t = p.tunnel(who.0, who.1, &w.hub.git_host());
                let answer = t
                    .request(
                        "GET",
                        &format!("/api/v3{path}"),
                        &[("Authorization", "Bearer placeholder")],
                        b"",
                    )
                    .unwrap();
                (who.0, answer)
            })
        };
        // agent-a: three at once, two slots. Then agent-b: two, with one of the owner's three
        // slots left.
        let mut all: Vec<_> = (0..3).map(|_| one(a, widgets)).collect();
        std::thread::sleep(Duration::from_secs(1));
        all.extend((0..2).map(|_| one(b, gadgets)));
        all.into_iter().map(|h| h.join().unwrap()).collect()
    });
    w.hub.set_api_delay_ms(0);
    let refused = |who: &str, why: &str| {
        answers
            .iter()
            .filter(|(n, a)| *n == who && a.status == 429 && a.body.contains(why))
            .count()
    };
    let passed = |who: &str| {
        answers
            .iter()
            .filter(|(n, a)| *n == who && a.status == 200)
            .count()
    };
    assert_eq!(passed("agent-a"), 2, "{answers:#?}");
    assert_eq!(
        refused(
            "agent-a",
            "sandbox agent-a has 2 requests under way (concurrent_per_sandbox): retry in 1s"
        ),
        1,
        "{answers:#?}"
    );
    assert_eq!(passed("agent-b"), 1, "{answers:#?}");
    assert_eq!(
        refused(
            "agent-b",
            "3 requests to octo-org are under way (concurrent_per_installation)"
        ),
        1,
        "{answers:#?}"
    );
    // GitHub saw only what had a slot.
    assert_eq!((slow(widgets), slow(gadgets)), (2, 1));
}

pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "requests_at_once_wait_for_a_slot_then_are_refused_before_github",
        requests_at_once_wait_for_a_slot_then_are_refused_before_github,
    ),
    (
        "graphql_points_are_budgeted_below_github_s_and_a_query_still_passes",
        graphql_points_are_budgeted_below_github_s_and_a_query_still_passes,
    ),
    (
        "a_looping_sandbox_is_slowed_then_refused_across_replicas_and_another_goes_on",
        a_looping_sandbox_is_slowed_then_refused_across_replicas_and_another_goes_on,
    ),
    (
        "the_budget_holds_across_replicas_on_postgres",
        the_budget_holds_across_replicas_on_postgres,
    ),
    (
        "an_installation_at_its_reserve_makes_sandboxes_wait_for_the_reset",
        an_installation_at_its_reserve_makes_sandboxes_wait_for_the_reset,
    ),
];
