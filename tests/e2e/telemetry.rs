//! OpenTelemetry: a proxy told where by the standard `OTEL_*` variables exports its spans and
//! metrics over OTLP/HTTP to a receiver the test starts (HTTPS, fakehub's CA): a span per
//! request, child of the sandbox's `traceparent`, with child spans for the token, push
//! inspection and GitHub's answer, and nothing secret in any of it.

use std::time::Duration;

use ghapp_e2e::{Received, Receiver, SECRET_A, Sandbox, World, two_sandboxes};
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const OTLP_KEY: &str = "otlp-api-key-5f2c9a1b7e";

/// Every span in the OTLP/JSON trace exports received.
pub(crate) fn spans(got: &[Received]) -> Vec<Value> {
    got.iter()
        .filter(|r| r.path == "/v1/traces")
        .flat_map(|r| {
            let v = r.json();
            v["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
                .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
        })
        .collect()
}

/// A span's attribute as a string (OTLP/JSON: `{"key", "value": {"stringValue" | "intValue"}}`).
pub(crate) fn attr(span: &Value, key: &str) -> Option<String> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| {
            let v = &a["value"];
            v["stringValue"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| v["intValue"].as_str().map(str::to_owned))
                .or_else(|| v["intValue"].as_i64().map(|i| i.to_string()))
        })
}

pub(crate) fn children<'a>(all: &'a [Value], parent: &Value) -> Vec<&'a Value> {
    all.iter()
        .filter(|s| s["parentSpanId"] == parent["spanId"] && s["traceId"] == parent["traceId"])
        .collect()
}

pub(crate) fn names(spans: &[&Value]) -> Vec<String> {
    let mut n: Vec<String> = spans
        .iter()
        .map(|s| s["name"].as_str().unwrap_or("").to_owned())
        .collect();
    n.sort();
    n
}

fn traces_and_metrics_reach_an_otlp_receiver_without_secrets() {
    let w = World::new();
    let (cert, key) = w.hub.issue_leaf(&["127.0.0.1"]).unwrap();
    let r = Receiver::start(&cert, &key, Box::new(|_, _| 200));
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", r.url("")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            w.hub.ca_path().display().to_string(),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer {OTLP_KEY}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300".to_owned()),
        ("OTEL_SERVICE_NAME", "proxy-under-test".to_owned()),
    ];
    let p = w.start_proxy_with_env(&two_sandboxes(""), "", &env);
    let sb = Sandbox::new(&w, &p, "agent-a", SECRET_A);
    let traceparent = format!("traceparent: 00-{TRACE}-{PARENT}-01");
    // A clone whose requests carry the sandbox's trace, then a push, then a refused push.
    sb.clone(
        "octo-org",
        "widgets",
        "traced",
        &["-c", &format!("http.extraHeader={traceparent}")],
    )
    .ok();
    let work = w.path("traced");
    sb.push_new_branch(&work, "agent/otel", "o.txt", b"otel\n");
    sb.git(&work, &["switch", "--quiet", "-c", "not-allowed"])
        .ok();
    let refused = sb.git(&work, &["push", "--quiet", "origin", "not-allowed"]);
    assert!(!refused.success());

    let got = r.wait_until(
        Duration::from_secs(20),
        "spans of the clone and both pushes",
        |g| {
            let s = spans(g);
            s.iter()
                .any(|s| attr(s, "ghapp.decision").as_deref() == Some("deny"))
                && s.iter().any(|s| s["name"] == "ghapp.inspect")
                && g.iter().any(|r| r.path == "/v1/metrics")
        },
    );
    let all = spans(&got);
    for e in got.iter() {
        assert_eq!(e.method, "POST");
        assert_eq!(e.header("content-type"), Some("application/json"));
        assert_eq!(
            e.header("authorization"),
            Some(format!("Bearer {OTLP_KEY}").as_str()),
            "OTEL_EXPORTER_OTLP_HEADERS are sent"
        );
    }
    assert!(String::from_utf8_lossy(&got[0].body).contains("proxy-under-test"));

    // The clone's requests continue the sandbox's trace: server spans whose parent is its span.
    let requests: Vec<&Value> = all
        .iter()
        .filter(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(" ghapp.request"))
        })
        .collect();
    let in_trace: Vec<&&Value> = requests
        .iter()
        .filter(|s| s["traceId"] == TRACE && s["parentSpanId"] == PARENT)
        .collect();
    assert!(!in_trace.is_empty(), "{requests:#?}");
    let upload_pack = in_trace
        .iter()
        .find(|s| attr(s, "ghapp.service").as_deref() == Some("git-upload-pack"))
        .expect("the clone's upload-pack");
    assert_eq!(upload_pack["kind"], 2, "a server span");
    assert_eq!(
        attr(upload_pack, "ghapp.sandbox").as_deref(),
        Some("agent-a")
    );
    assert_eq!(
        attr(upload_pack, "ghapp.repo").as_deref(),
        Some("octo-org/widgets")
    );
    assert_eq!(
        attr(upload_pack, "ghapp.decision").as_deref(),
        Some("allow")
    );
    assert_eq!(
        attr(upload_pack, "http.response.status_code").as_deref(),
        Some("200")
    );
    let kids = children(&all, upload_pack);
    assert_eq!(names(&kids), ["ghapp.token", "ghapp.upstream"], "{kids:#?}");
    let token = kids.iter().find(|s| s["name"] == "ghapp.token").unwrap();
    assert!(
        matches!(
            attr(token, "ghapp.token.source").as_deref(),
            Some("cache" | "minted")
        ),
        "{token}"
    );

    // The push (`clone -c` kept the header in the clone's config: the same trace), inspected
    // before GitHub saw it.
    let push = requests
        .iter()
        .find(|s| {
            attr(s, "ghapp.service").as_deref() == Some("git-receive-pack")
                && attr(s, "http.request.method").as_deref() == Some("POST")
                && attr(s, "ghapp.decision").as_deref() == Some("allow")
        })
        .expect("the push's span");
    assert_eq!(push["traceId"], TRACE);
    assert_eq!(
        names(&children(&all, push)),
        ["ghapp.inspect", "ghapp.token", "ghapp.upstream"]
    );
    // The refused push: the decision and the reason, and nothing sent upstream.
    let denied = requests
        .iter()
        .find(|s| attr(s, "ghapp.decision").as_deref() == Some("deny"))
        .expect("the refused push's span");
    assert!(
        attr(denied, "ghapp.reason").is_some_and(|r| r.contains("not-allowed")),
        "{denied}"
    );
    assert!(!names(&children(&all, denied)).contains(&"ghapp.upstream".to_owned()));

    // Metrics: the request counter, by sandbox, service and decision.
    let metrics = got
        .iter()
        .filter(|r| r.path == "/v1/metrics")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect::<String>();
    assert!(
        metrics.contains("ghapp.proxy.requests")
            && metrics.contains("ghapp.proxy.request.duration"),
        "{metrics}"
    );

    // No token, secret or body anywhere in what was exported, nor in the log.
    for e in &got {
        w.capture(String::from_utf8_lossy(&e.body).into_owned());
    }
    let everything: String = got
        .iter()
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect();
    for secret in [SECRET_A, OTLP_KEY, "Bearer", "ghs_", "otel\\n"] {
        assert!(!everything.contains(secret), "{secret} was exported");
    }
    let log = p.log();
    assert!(!log.contains(OTLP_KEY), "{log}");
    w.capture(log);
    w.assert_no_secrets();
}

fn protobuf_is_the_default_and_nothing_is_exported_unless_asked() {
    let w = World::new();
    let (cert, key) = w.hub.issue_leaf(&["127.0.0.1"]).unwrap();
    let r = Receiver::start(&cert, &key, Box::new(|_, _| 200));
    // No endpoint: nothing is sent, whatever else is set.
    let quiet = w.start_proxy_with_env(
        &two_sandboxes(""),
        "",
        &[("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned())],
    );
    Sandbox::new(&w, &quiet, "agent-a", SECRET_A)
        .clone("octo-org", "widgets", "quiet", &[])
        .ok();
    assert!(!quiet.log().contains("OpenTelemetry"), "{}", quiet.log());
    drop(quiet);
    assert!(r.received().is_empty());
    let env = [
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", r.url("/otlp/traces")),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            w.hub.ca_path().display().to_string(),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    let p = w.start_proxy_with_env(&two_sandboxes(""), "", &env);
    Sandbox::new(&w, &p, "agent-a", SECRET_A)
        .clone("octo-org", "widgets", "binary", &[])
        .ok();
    let got = r.wait_until(Duration::from_secs(20), "a protobuf export", |g| {
        !g.is_empty()
    });
    assert!(
        got.iter().all(|g| g.path == "/otlp/traces"
            && g.header("content-type") == Some("application/x-protobuf")),
        "only traces, as protobuf, to the endpoint named: {:?}",
        got.iter()
            .map(|g| (&g.path, g.header("content-type")))
            .collect::<Vec<_>>()
    );
    // A protocol the proxy cannot speak is one line naming the variable.
    let mut env = w.env().to_vec();
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), r.url("")));
    env.push(("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "grpc".into()));
    let bad = w
        .cmd("ghapp")
        .env(&env)
        .args(&["proxy", "--config", p.config_path.to_str().unwrap()])
        .run();
    assert!(
        !bad.success()
            && bad
                .stderr
                .contains("OTEL_EXPORTER_OTLP_PROTOCOL = \"grpc\": the proxy exports over HTTP"),
        "{bad:?}"
    );
}

pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "traces_and_metrics_reach_an_otlp_receiver_without_secrets",
        traces_and_metrics_reach_an_otlp_receiver_without_secrets,
    ),
    (
        "protobuf_is_the_default_and_nothing_is_exported_unless_asked",
        protobuf_is_the_default_and_nothing_is_exported_unless_asked,
    ),
];
