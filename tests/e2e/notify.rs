//! Notifications: a held pull request and a spent budget reach a receiver the test starts
//! (HTTPS, fakehub's CA), signed as GitHub signs webhooks; a failing receiver gets retries;
//! `ghapp notify test` says what each receiver answered.

use std::time::Duration;

use ghapp_e2e::{Received, Receiver, SECRET_A, World, two_sandboxes};

const NOTIFY_SECRET: &str = "notify-secret-0123456789";

/// A receiver certified by fakehub's CA, answering the `n`th request as `rule` says.
fn receiver(w: &World, rule: impl Fn(usize, &Received) -> u16 + Send + Sync + 'static) -> Receiver {
    let (cert, key) = w.hub.issue_leaf(&["127.0.0.1"]).unwrap();
    Receiver::start(&cert, &key, Box::new(rule))
}

/// Whether `r`'s signature is HMAC-SHA256 of its body with the secret, as GitHub signs.
fn signed(r: &Received) -> bool {
    let body = String::from_utf8_lossy(&r.body);
    r.header("x-ghapp-signature-256") == Some(&crate::control::signature(&body, NOTIFY_SECRET))
}

/// A branch `name` with one commit on `octo-org/widgets`, pushed straight to the emulator.
fn branch_at_github(w: &World, name: &str) {
    w.clone_repo("octo-org", "widgets", "direct").ok();
    let work = w.path("direct");
    w.git(&work, &["switch", "--quiet", "-c", name]).ok();
    w.commit_file(&work, "n.txt", "n\n");
    w.git(&work, &["push", "--quiet", "origin", name]).ok();
}

fn notify_table(r: &Receiver, more: &str) -> String {
    format!(
        "[notify]\nurls = [{:?}]\nsecret = {NOTIFY_SECRET:?}\npage_url = \"https://approvals.example.com\"\n{more}\n",
        r.url("/hook")
    )
}

fn a_held_pull_request_is_told_signed_and_retried_until_taken() {
    let w = World::new();
    branch_at_github(&w, "agent/n1");
    // The first two attempts fail (503, then 500): the third is taken.
    let r = receiver(&w, |n, _| if n < 2 { 503 - n as u16 * 3 } else { 200 });
    let extra = format!(
        "state = \"sqlite:{}\"\n{}",
        w.path("state.db").display(),
        notify_table(&r, "")
    );
    let p = w.start_proxy(&two_sandboxes("mode = \"learning\""), &extra);
    // The pull request a sandbox asks for (on a tunnel of its own: a held answer closes it).
    let ask = || {
        p.tunnel("agent-a", SECRET_A, &w.hub.git_host())
            .request(
                "POST",
                "/api/v3/repos/octo-org/widgets/pulls",
                &[
                    ("Authorization", "Bearer placeholder"),
                    ("Content-Type", "application/json"),
                ],
                br#"{"head":"agent/n1","base":"main","title":"Fix <!channel> & <https://evil.example|click>"}"#,
            )
            .unwrap()
    };
    let a = ask();
    assert_eq!(a.status, 202, "held: {a:?}");
    let got = r.wait_until(Duration::from_secs(20), "three attempts", |g| g.len() >= 3);
    assert_eq!(
        got.iter().map(|g| g.status).collect::<Vec<_>>(),
        [503, 500, 200]
    );
    for g in &got {
        assert_eq!((g.method.as_str(), g.path.as_str()), ("POST", "/hook"));
        assert!(signed(g), "signed: {:?}", g.headers);
        assert_eq!(g.header("x-ghapp-event"), Some("held"));
        assert_eq!(g.header("content-type"), Some("application/json"));
    }
    // One delivery, tried three times.
    assert!(
        got.iter()
            .all(|g| g.header("x-ghapp-delivery") == got[0].header("x-ghapp-delivery"))
    );
    let body = got[2].json();
    assert_eq!(body["event"], "held");
    assert_eq!(body["sandbox"], "agent-a");
    assert_eq!(body["repo"], "octo-org/widgets");
    assert_eq!(body["id"], 1);
    assert_eq!(
        body["link"],
        "https://approvals.example.com/approvals#approval-1"
    );
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains(
            "sandbox agent-a asks to open a pull request in octo-org/widgets (agent/n1 -> main)"
        ) && text.ends_with("<https://approvals.example.com/approvals#approval-1|Open>"),
        "{text}"
    );
    // What the sandbox wrote cannot mention a channel or make a link.
    assert!(
        text.contains("Fix &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"),
        "{text}"
    );
    // Asking again for the same pull request is the same approval: no second notification.
    let again = ask();
    assert_eq!(again.status, 202);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(r.received().len(), 3);
    // Each attempt is counted, and logged naming the receiver's host only.
    let m = p.metrics();
    assert!(
        m.contains("ghapp_proxy_notifications_total{kind=\"retried\"} 2")
            && m.contains("ghapp_proxy_notifications_total{kind=\"delivered\"} 1"),
        "{m}"
    );
    let log = p.log();
    assert!(log.contains("notification delivered"), "{log}");
    assert!(
        !log.contains("/hook"),
        "the receiver's URL is not logged: {log}"
    );
    w.capture(log);
    w.capture(String::from_utf8_lossy(&got[2].body).into_owned());
    w.assert_no_secrets();
}

fn a_spent_budget_is_told_once_and_ghapp_notify_test_reaches_each_receiver() {
    let w = World::new();
    let pull = crate::budget::open_pull(&w, "octo-org", "widgets");
    let r = receiver(&w, |_, _| 204);
    let extra = format!(
        "state = \"sqlite:{}\"\n[budget]\ncontent_per_minute = 2\n{}",
        w.path("state.db").display(),
        notify_table(&r, "events = [\"budget\"]")
    );
    let p = w.start_proxy(&two_sandboxes(""), &extra);
    let mut refused = 0;
    for _ in 0..6 {
        let mut t = p.tunnel("agent-a", SECRET_A, &w.hub.git_host());
        let a = t
            .request(
                "POST",
                &format!("/api/v3/repos/octo-org/widgets/issues/{pull}/comments"),
                &[
                    ("Authorization", "Bearer placeholder"),
                    ("Content-Type", "application/json"),
                ],
                br#"{"body":"again"}"#,
            )
            .unwrap();
        if a.status == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 2, "refused {refused}");
    let got = r.wait_until(Duration::from_secs(10), "the budget notification", |g| {
        !g.is_empty()
    });
    std::thread::sleep(Duration::from_millis(500));
    let got = r.received().len().max(got.len());
    assert_eq!(got, 1, "one notification for several refusals");
    let body = r.received()[0].json();
    assert_eq!(body["event"], "budget");
    assert_eq!(body["sandbox"], "agent-a");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("ghapp: sandbox agent-a is refused for now:"),
        "{body}"
    );

    // `ghapp notify test`: one line per receiver; a second receiver that refuses fails it.
    let bad = receiver(&w, |_, _| 403);
    let cfg = std::fs::read_to_string(&p.config_path).unwrap().replace(
        &format!("urls = [{:?}]", r.url("/hook")),
        &format!("urls = [{:?}, {:?}]", r.url("/hook"), bad.url("/x")),
    );
    let path = w.path("notify-test.toml");
    std::fs::write(&path, cfg).unwrap();
    let run = w.ghapp(&["notify", "test", "--config", path.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains("ok    127.0.0.1: answered 204")
            && run.stdout.contains("FAIL  127.0.0.1: answered 403"),
        "{run:?}"
    );
    let test = r.received().last().unwrap().clone();
    assert_eq!(test.header("x-ghapp-event"), Some("test"));
    assert!(signed(&test));
    assert_eq!(bad.received().len(), 1, "one attempt only");
}

pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "a_held_pull_request_is_told_signed_and_retried_until_taken",
        a_held_pull_request_is_told_signed_and_retried_until_taken,
    ),
    (
        "a_spent_budget_is_told_once_and_ghapp_notify_test_reaches_each_receiver",
        a_spent_budget_is_told_once_and_ghapp_notify_test_reaches_each_receiver,
    ),
];
