//! The answers the proxy writes itself: plain text for git and the proxy's own endpoints, JSON
//! with `message` for REST clients, git's report-status for a refused push.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};

/// The body of every answer the proxy gives.
pub(crate) type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// Where the sandbox's tools read a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// git and curl print a plain-text body.
    Text,
    /// REST clients read `{"message": ...}`.
    Json,
    /// GraphQL clients (gh, Octokit) read `errors[].message`; `message` too.
    Graphql,
    /// git-lfs reads `{"message": ...}` in `application/vnd.git-lfs+json`.
    Lfs,
}

/// A request the proxy answers itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    /// What the client is told (and the audit records).
    pub message: String,
    pub form: Form,
    /// Seconds the client may retry after (a refusal that is not the client's fault).
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub(crate) fn text(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            form: Form::Text,
            retry_after: None,
        }
    }

    pub(crate) fn json(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            form: Form::Json,
            ..Refusal::text(status, message)
        }
    }

    pub(crate) fn graphql(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            form: Form::Graphql,
            ..Refusal::text(status, message)
        }
    }

    pub(crate) fn lfs(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            form: Form::Lfs,
            ..Refusal::text(status, message)
        }
    }

    pub(crate) fn retry_after(mut self, secs: u64) -> Refusal {
        self.retry_after = Some(secs);
        self
    }

    pub(crate) fn response(&self) -> Response<Body> {
        // A policy refusal points to where the sandbox can read all its rules.
        let m = if self.status == StatusCode::FORBIDDEN {
            format!("ghapp proxy: {} {POLICY_HINT}", self.message)
        } else {
            format!("ghapp proxy: {}", self.message)
        };
        let mut r = match self.form {
            Form::Text => text(self.status, &format!("{m}\n")),
            Form::Json => json_error(self.status, &m),
            // GitHub answers a GraphQL request it refuses (policy, a bad document) with 200
            // and `errors`, which gh prints as a message; anything else (a method, a limit, a
            // retry) keeps its status, which clients act on.
            Form::Graphql => {
                let status = match self.status {
                    StatusCode::FORBIDDEN
                    | StatusCode::NOT_FOUND
                    | StatusCode::UNPROCESSABLE_ENTITY
                    | StatusCode::BAD_REQUEST => StatusCode::OK,
                    s => s,
                };
                let kind = match self.status {
                    StatusCode::FORBIDDEN => "FORBIDDEN",
                    StatusCode::NOT_FOUND => "NOT_FOUND",
                    StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
                    _ => "UNPROCESSABLE",
                };
                json_body(
                    status,
                    "application/json; charset=utf-8",
                    &serde_json::json!({
                        "data": null,
                        "message": m,
                        "errors": [{"type": kind, "message": m}],
                    }),
                )
            }
            Form::Lfs => json_body(
                self.status,
                "application/vnd.git-lfs+json",
                &serde_json::json!({"message": m}),
            ),
        };
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from(s));
        }
        // A 407 names the scheme the client should answer with (RFC 9110, 15.5.8).
        if self.status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            r.headers_mut().insert(
                hyper::header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ghapp proxy\""),
            );
        }
        r
    }
}

/// Where a refused sandbox reads its rules (said after every policy refusal).
pub(crate) const POLICY_HINT: &str = "(the sandbox's rules: GET /policy on the proxy)";

pub(crate) fn text(status: StatusCode, s: &str) -> Response<Body> {
    let mut r = Response::new(full(s.as_bytes().to_vec()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub(crate) fn json_error(status: StatusCode, msg: &str) -> Response<Body> {
    let body = serde_json::json!({
        "message": msg,
        "documentation_url": concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/docs/guides/sandbox.md"),
    });
    json_body(status, "application/json; charset=utf-8", &body)
}

pub(crate) fn json_body(
    status: StatusCode,
    content_type: &'static str,
    v: &serde_json::Value,
) -> Response<Body> {
    let mut r = Response::new(full(v.to_string().into_bytes()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

/// git's answer to a refused push: `ng` for every ref, so git prints
/// `! [remote rejected] REF (REASON)`.
pub(crate) fn push_report(body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-git-receive-pack-result"),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    r
}

pub(crate) fn full(v: Vec<u8>) -> Body {
    Full::new(Bytes::from(v))
        .map_err(|e: Infallible| match e {})
        .boxed()
}

pub(crate) fn empty() -> Body {
    Empty::new().map_err(|e: Infallible| match e {}).boxed()
}
