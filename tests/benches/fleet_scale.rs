//! A fleet at scale: three `ghapp proxy` replicas on one PostgreSQL in front of fakehub,
//! 2,000 sandboxes registered through the admin API, 300 agents at once doing a mix of what
//! agents do (REST reads, GraphQL queries, pull request views, comments, clones, fetches and
//! pushes with the real git), while sandboxes are added and disconnected through the admin API.
//!
//! Run: `cargo bench -p ghapp-e2e --bench fleet_scale` (release binaries are built first;
//! needs PostgreSQL: Debian's `postgresql`). `GHAPP_SCALE_SANDBOXES` (2000),
//! `GHAPP_SCALE_AGENTS` (300), `GHAPP_SCALE_SECONDS` (120), `GHAPP_SCALE_GIT` (git processes at
//! once, 4) change the shape.
//!
//! Reports, per operation, p50/p99 through a replica against the same operation straight to
//! fakehub measured in the same run (the added latency), failures (goal 0) and budget
//! deferrals (429 with Retry-After: the budgets at work, not failures); installation tokens
//! minted against the distinct token scopes (goal: at most one per scope per replica); peak
//! RSS per replica (goal < 256 MiB); PostgreSQL transactions per request; admin API latency
//! under load; whether fakehub's primary or secondary limits tripped.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ghapp_e2e::{Postgres, ProxyProc, World};
use serde_json::{Value, json};

const ADMIN: &str = "scale-admin-token-0123456789abcdef";

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What one kind of operation came to.
#[derive(Default)]
struct Op {
    via: Vec<Duration>,
    direct: Vec<Duration>,
    failures: u64,
    deferred: u64,
    first_failure: Option<String>,
}

type Stats = Arc<Mutex<BTreeMap<&'static str, Op>>>;

fn record(stats: &Stats, op: &'static str, took: Duration, direct: bool) {
    let mut s = stats.lock().unwrap();
    let o = s.entry(op).or_default();
    if direct {
        o.direct.push(took);
    } else {
        o.via.push(took);
    }
}

fn fail(stats: &Stats, op: &'static str, why: String, deferred: bool) {
    let mut s = stats.lock().unwrap();
    let o = s.entry(op).or_default();
    if deferred {
        o.deferred += 1;
    } else {
        o.failures += 1;
        o.first_failure.get_or_insert(why);
    }
}

/// A small deterministic generator (each agent its own).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The repositories a sandbox is given: three scopes, spread over the fleet.
fn repos_of(i: usize) -> Vec<&'static str> {
    match i % 3 {
        0 => vec!["octo-org/widgets"],
        1 => vec!["octo-org/gadgets"],
        _ => vec!["octo-org/widgets", "octo-org/gadgets"],
    }
}

/// An API call and how long it took; a 429 is a deferral.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    auth: &str,
    body: Option<&Value>,
) -> Result<Duration, (bool, String)> {
    let started = Instant::now();
    let mut rb = client
        .request(method, url)
        .header("authorization", auth)
        .header("accept", "application/vnd.github+json")
        .timeout(Duration::from_secs(60));
    if let Some(b) = body {
        rb = rb.json(b);
    }
    match rb.send().await {
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            if status.is_success() && !text.contains("\"errors\"") {
                Ok(started.elapsed())
            } else {
                Err((
                    status == reqwest::StatusCode::TOO_MANY_REQUESTS,
                    format!("{status} {}", text.chars().take(200).collect::<String>()),
                ))
            }
        }
        Err(e) => Err((false, format!("{e:?}").chars().take(300).collect())),
    }
}

/// A replica and the admin token for it.
struct Replica {
    p: ProxyProc,
    ca: reqwest::Certificate,
}

fn main() {
    ghapp_e2e::build_release_bins(&[]);
    let sandboxes = env_or("GHAPP_SCALE_SANDBOXES", 2000) as usize;
    let agents = (env_or("GHAPP_SCALE_AGENTS", 300) as usize).min(sandboxes);
    let seconds = env_or("GHAPP_SCALE_SECONDS", 120);
    let git_at_once = env_or("GHAPP_SCALE_GIT", 4) as usize;
    let mut w = World::new();
    w.limit = Duration::from_secs(600);
    let Some(pg) = Postgres::start(w.root.path()) else {
        println!("fleet_scale needs PostgreSQL (Debian: postgresql); skipped");
        return;
    };
    // GitHub's hourly limit raised for the measurement (the budgets' reserve is shown by
    // tests/e2e/budget.rs); its secondary limits stay GitHub's.
    w.hub.set_primary_limit(10_000_000);
    let token_file = w.path("admin-token");
    std::fs::write(&token_file, ADMIN).unwrap();
    let extra = format!(
        "state = {:?}\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = {{ file = {:?} }}\n[limits]\nmax_connections = 20000\nmax_connections_per_source = 20000\nmax_tunnels_per_sandbox = 64\n",
        pg.url(),
        token_file.display().to_string()
    );
    let replicas: Vec<Replica> = (0..3)
        .map(|_| {
            let p = w.start_proxy("", &extra);
            let ca = reqwest::Certificate::from_pem(&std::fs::read(&p.ca_path).unwrap()).unwrap();
            Replica { p, ca }
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let admin = reqwest::Client::builder().no_proxy().build().unwrap();
    let admin_url = |r: usize| replicas[r].p.admin_url.clone().unwrap();
    let bearer = format!("Bearer {ADMIN}");

    // 1. 2,000 sandboxes through the admin API, spread over the replicas.
    let started = Instant::now();
    let mut register = Vec::new();
    let mut secrets = Vec::new();
    rt.block_on(async {
        for i in 0..sandboxes {
            let t = Instant::now();
            let r = admin
                .post(format!("{}/v1/sandboxes", admin_url(i % 3)))
                .header("authorization", &bearer)
                .json(&json!({"name": format!("agent-{i}"), "repos": repos_of(i), "push": ["agent/*"]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap_or_default());
            let v: Value = r.json().await.unwrap();
            register.push(t.elapsed());
            secrets.push(v["secret"].as_str().unwrap().to_owned());
        }
    });
    let registered_in = started.elapsed();
    register.sort();
    // Every replica knows every sandbox (the store's poll).
    std::thread::sleep(Duration::from_secs(3));

    // A pull request per repository to view and comment on, opened straight at fakehub.
    let direct_client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(w.hub.ca_path()).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let api = w.hub.api_url();
    let base = w.hub.url();
    let mut direct_auth = BTreeMap::new();
    for repo in ["octo-org/widgets", "octo-org/gadgets"] {
        let (owner, name) = repo.split_once('/').unwrap();
        let dest = format!("seed-{name}");
        w.clone_repo(owner, name, &dest).ok();
        let work = w.path(&dest);
        w.git(&work, &["switch", "--quiet", "-c", "bench-base"])
            .ok();
        w.commit_file(&work, "bench.txt", "bench\n");
        w.git(&work, &["push", "--quiet", "origin", "bench-base"])
            .ok();
        let auth = format!("token {}", w.token_for(repo));
        rt.block_on(call(
            &direct_client,
            reqwest::Method::POST,
            &format!("{api}/repos/{repo}/pulls"),
            &auth,
            Some(&json!({"title": "bench", "head": "bench-base", "base": "main"})),
        ))
        .unwrap();
        direct_auth.insert(repo, auth);
    }
    let mints_before = w.hub.counters().mints.len();
    let xacts = || -> u64 {
        pg.psql(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'postgres'",
        )
        .parse()
        .unwrap_or(0)
    };
    let requests_seen = || -> u64 {
        replicas
            .iter()
            .map(|r| {
                r.p.metrics()
                    .lines()
                    .filter(|l| l.starts_with("ghapp_proxy_requests_total{"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum::<f64>() as u64
            })
            .sum()
    };
    let (xact_before, requests_before) = (xacts(), requests_seen());
    let hub_before = w.hub.requests().len();

    // 2. The load: `agents` agents, each on its replica, for `seconds`.
    let stats: Stats = Arc::default();
    let admin_lat: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let git_slots = Arc::new(tokio::sync::Semaphore::new(git_at_once));
    let until = Instant::now() + Duration::from_secs(seconds);
    let w = Arc::new(w);
    let load_started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..agents {
            let r = &replicas[i % 3];
            let proxy = reqwest::Proxy::https(format!("http://{}", r.p.addr))
                .unwrap()
                .basic_auth(&format!("agent-{i}"), &secrets[i]);
            let client = reqwest::Client::builder()
                .proxy(proxy)
                .add_root_certificate(r.ca.clone())
                .build()
                .unwrap();
            let env = w.sandbox_env(&r.p, &format!("agent-{i}"), &secrets[i]);
            let (stats, w, git_slots, api, base) = (
                stats.clone(),
                w.clone(),
                git_slots.clone(),
                api.clone(),
                base.clone(),
            );
            let repo = repos_of(i)[0];
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) * 0x1000_0001));
                let mut cloned = false;
                let mut pushes = 0;
                while Instant::now() < until {
                    let roll = rng.next() % 100;
                    let auth = "Bearer placeholder";
                    let (op, res): (&'static str, Result<Duration, (bool, String)>) = match roll {
                        0..40 => ("rest read", call(&client, reqwest::Method::GET, &format!("{api}/repos/{repo}"), auth, None).await),
                        40..65 => (
                            "graphql query",
                            call(&client, reqwest::Method::POST, &format!("{base}/api/graphql"), auth, Some(&json!({"query": "query($o: String!, $n: String!) { repository(owner: $o, name: $n) { name defaultBranchRef { name } } }", "variables": {"o": "octo-org", "n": repo.split('/').nth(1).unwrap()}}))).await,
                        ),
                        65..75 => ("pr view", call(&client, reqwest::Method::GET, &format!("{api}/repos/{repo}/pulls/{}", if repo.ends_with("widgets") { 1 } else { 2 }), auth, None).await),
                        75..80 => ("comment", call(&client, reqwest::Method::POST, &format!("{api}/repos/{repo}/issues/{}/comments", if repo.ends_with("widgets") { 1 } else { 2 }), auth, Some(&json!({"body": "bench"}))).await),
                        _ => {
                            let Ok(_slot) = git_slots.clone().acquire_owned().await else { break };
                            let (w, env) = (w.clone(), env.clone());
                            let (owner, name) = repo.split_once('/').unwrap();
                            let dir = w.path(&format!("agent-{i}"));
                            let (op, args): (&'static str, Vec<String>) = if !cloned {
                                cloned = true;
                                ("git clone", vec!["clone".into(), "--quiet".into(), w.hub.repo_url(owner, name), dir.display().to_string()])
                            } else if roll < 93 {
                                ("git fetch", vec!["-C".into(), dir.display().to_string(), "fetch".into(), "--quiet".into()])
                            } else {
                                pushes += 1;
                                let branch = format!("agent/{i}-{pushes}");
                                ("git push", vec!["-C".into(), dir.display().to_string(), "push".into(), "--quiet".into(), "origin".into(), format!("HEAD:refs/heads/{branch}")])
                            };
                            let run = tokio::task::spawn_blocking(move || {
                                let t = Instant::now();
                                let r = w.cmd("git").env(&env).args(&args).dir(w.root.path()).run();
                                (t.elapsed(), r)
                            })
                            .await
                            .unwrap();
                            if run.1.success() {
                                (op, Ok(run.0))
                            } else {
                                (op, Err((run.1.stderr.contains("429"), run.1.stderr.chars().take(300).collect())))
                            }
                        }
                    };
                    match res {
                        Ok(d) => record(&stats, op, d, false),
                        Err((deferred, why)) => fail(&stats, op, why, deferred),
                    }
                    tokio::time::sleep(Duration::from_millis(500 + rng.next() % 1000)).await;
                }
            }));
        }
        // The same operations straight to fakehub, a few a second, for the baseline.
        let base = {
            let (stats, direct_client, api, base, direct_auth) = (
                stats.clone(),
                direct_client.clone(),
                api.clone(),
                base.clone(),
                direct_auth.clone(),
            );
            tokio::spawn(async move {
                let auth = &direct_auth["octo-org/widgets"];
                while Instant::now() < until {
                    for (op, method, url, body) in [
                        ("rest read", reqwest::Method::GET, format!("{api}/repos/octo-org/widgets"), None),
                        ("graphql query", reqwest::Method::POST, format!("{base}/api/graphql"), Some(json!({"query": "query($o: String!, $n: String!) { repository(owner: $o, name: $n) { name defaultBranchRef { name } } }", "variables": {"o": "octo-org", "n": "widgets"}}))),
                        ("pr view", reqwest::Method::GET, format!("{api}/repos/octo-org/widgets/pulls/1"), None),
                    ] {
                        if let Ok(d) = call(&direct_client, method, &url, auth, body.as_ref()).await {
                            record(&stats, op, d, true);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        // Sandboxes come and go through the admin API meanwhile.
        let churn = {
            let (admin, admin_lat, bearer) = (admin.clone(), admin_lat.clone(), bearer.clone());
            let urls: Vec<String> = (0..3).map(admin_url).collect();
            tokio::spawn(async move {
                let mut n = 0;
                while Instant::now() < until {
                    let url = &urls[n % 3];
                    let t = Instant::now();
                    let added = admin
                        .post(format!("{url}/v1/sandboxes"))
                        .header("authorization", &bearer)
                        .json(&json!({"name": format!("churn-{n}"), "repos": ["octo-org/widgets"]}))
                        .send()
                        .await
                        .map(|r| r.status().as_u16());
                    admin_lat.lock().unwrap().push(t.elapsed());
                    assert_eq!(added.ok(), Some(201));
                    let t = Instant::now();
                    let listed = admin
                        .get(format!("{url}/v1/sandboxes/churn-{n}"))
                        .header("authorization", &bearer)
                        .send()
                        .await
                        .map(|r| r.status().as_u16());
                    admin_lat.lock().unwrap().push(t.elapsed());
                    assert_eq!(listed.ok(), Some(200));
                    if n >= 3 {
                        let t = Instant::now();
                        let gone = admin
                            .delete(format!("{url}/v1/sandboxes/churn-{}", n - 3))
                            .header("authorization", &bearer)
                            .send()
                            .await
                            .map(|r| r.status().as_u16());
                        admin_lat.lock().unwrap().push(t.elapsed());
                        assert_eq!(gone.ok(), Some(200));
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                n
            })
        };
        for t in tasks {
            t.await.unwrap();
        }
        base.await.unwrap();
        let churned = churn.await.unwrap();
        println!("  churn: {churned} sandboxes added (and all but 3 disconnected) during the load");
    });
    let load_took = load_started.elapsed();
    let (xact_after, requests_after) = (xacts(), requests_seen());
    let mints = w.hub.counters().mints.len() - mints_before;
    let hub_requests = w.hub.requests().len() - hub_before;
    let counters = w.hub.counters();

    println!(
        "fleet scale: 3 replicas on PostgreSQL, {sandboxes} sandboxes, {agents} agents for {seconds} s ({:.0} s with the last operations)",
        load_took.as_secs_f64()
    );
    println!(
        "  registering {sandboxes} sandboxes through the admin API: {:.1} s, p50 {:.1} ms p99 {:.1} ms",
        registered_in.as_secs_f64(),
        ms(percentile(&register, 0.5)),
        ms(percentile(&register, 0.99))
    );
    println!(
        "  operation         count   via p50   via p99   direct p50  direct p99  added p50  added p99  failures  deferred (429)"
    );
    let stats = stats.lock().unwrap();
    let mut total = 0;
    let mut failures = 0;
    for (op, o) in stats.iter() {
        let mut via = o.via.clone();
        via.sort();
        let mut direct = o.direct.clone();
        direct.sort();
        let (v50, v99) = (percentile(&via, 0.5), percentile(&via, 0.99));
        let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
        let added = |v: Duration, d: Duration| {
            if direct.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.1} ms", ms(v) - ms(d))
            }
        };
        println!(
            "  {op:<16} {:>6} {:>8.1} ms {:>7.1} ms {:>9} {:>11} {:>10} {:>10} {:>8} {:>10}",
            via.len(),
            ms(v50),
            ms(v99),
            if direct.is_empty() {
                "-".into()
            } else {
                format!("{:.1} ms", ms(d50))
            },
            if direct.is_empty() {
                "-".into()
            } else {
                format!("{:.1} ms", ms(d99))
            },
            added(v50, d50),
            added(v99, d99),
            o.failures,
            o.deferred
        );
        total += via.len() as u64 + o.failures + o.deferred;
        failures += o.failures;
    }
    println!(
        "  {total} operations, {failures} failures (goal 0), {:.0} operations/s",
        total as f64 / load_took.as_secs_f64()
    );
    for (op, o) in stats.iter() {
        if let Some(f) = &o.first_failure {
            println!("  first {op} failure: {f}");
        }
    }
    println!(
        "  installation tokens minted during the load: {mints}, for 3 token scopes on 3 replicas (goal: at most 9)"
    );
    for (i, r) in replicas.iter().enumerate() {
        let log = r.p.log();
        let warnings = log.lines().filter(|l| l.contains("WARN")).count();
        println!(
            "  replica {i}: peak RSS {:.1} MiB (goal < 256 MiB); {warnings} warnings logged{}",
            r.p.peak_rss_kib() as f64 / 1024.0,
            log.lines()
                .find(|l| l.contains("WARN"))
                .map(|l| format!(", the first: {}", l.chars().take(300).collect::<String>()))
                .unwrap_or_default()
        );
    }
    let requests = requests_after.saturating_sub(requests_before).max(1);
    println!(
        "  PostgreSQL transactions per proxied request: {:.2} ({} transactions, {requests} requests)",
        (xact_after - xact_before) as f64 / requests as f64,
        xact_after - xact_before
    );
    let mut lat = admin_lat.lock().unwrap().clone();
    lat.sort();
    println!(
        "  admin API under load: {} calls, p50 {:.1} ms p99 {:.1} ms",
        lat.len(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );
    println!(
        "  fakehub received {hub_requests} requests; its primary limits refused {}, its secondary limits {} (REST) and {} (GraphQL) (goal 0)",
        counters.primary_limited, counters.secondary_limited, counters.graphql_limited
    );
    let writes: Vec<String> = counters
        .requests
        .iter()
        .filter(|(route, _)| !route.starts_with("GET ") && !route.contains("/_"))
        .map(|(route, n)| format!("{route}: {n}"))
        .collect();
    println!("  writes fakehub counted, by route: {}", writes.join("; "));
}
