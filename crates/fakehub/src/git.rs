//! Git smart HTTP through the real `git http-backend` (CGI), behind GitHub's auth rules:
//! no credentials -> 401 with `WWW-Authenticate: Basic realm="GitHub"`; an unknown, revoked or
//! expired token -> 401; a token that does not cover the repository -> 404 "Repository not
//! found."; a push without `contents: write` -> 403.

use std::process::Stdio;
use std::sync::Arc;

use futures_util::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::hub::{Hub, TokenCheck, level_covers};
use crate::{Body, text};

pub(crate) use ghapp_gitproto::route::{Endpoint, GitRoute, parse as parse_path};

fn unauthorized(msg: &str) -> Response<Body> {
    let mut r = text(StatusCode::UNAUTHORIZED, msg);
    r.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"GitHub\""),
    );
    r
}

pub(crate) fn basic_password(req: &Request<Incoming>) -> Option<String> {
    let v = req
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    ghapp_gitproto::basic::parse(v).map(|(_user, pass)| pass)
}

/// Answers a git request. `Err`: drop the connection without an answer (the
/// `drop_push_after` fault knob).
pub(crate) async fn handle(
    hub: Arc<Hub>,
    req: Request<Incoming>,
    route: GitRoute,
) -> std::io::Result<Response<Body>> {
    Ok(match answer(hub, req, route).await {
        Answer::Response(r) => r,
        Answer::Drop => return Err(std::io::Error::other("fault knob: connection dropped")),
    })
}

enum Answer {
    Response(Response<Body>),
    Drop,
}

impl From<Response<Body>> for Answer {
    fn from(r: Response<Body>) -> Self {
        Answer::Response(r)
    }
}

async fn answer(hub: Arc<Hub>, req: Request<Incoming>, route: GitRoute) -> Answer {
    let query = req.uri().query().unwrap_or("").to_owned();
    let Some(service) = route.service(&query) else {
        return text(
            StatusCode::FORBIDDEN,
            "fakehub serves only the smart HTTP protocol: upgrade your git client\n",
        )
        .into();
    };
    let tail = match route.endpoint {
        Endpoint::InfoRefs => "info/refs",
        Endpoint::UploadPack => "git-upload-pack",
        Endpoint::ReceivePack => "git-receive-pack",
    };
    let kind = if tail == "info/refs" {
        "info/refs"
    } else {
        "POST"
    };
    hub.count(&format!("git {kind} {service}"));
    let Some(token) = basic_password(&req) else {
        return unauthorized("").into();
    };
    let t = match hub.check_token(&token) {
        TokenCheck::Valid(t) => t,
        TokenCheck::Expired => {
            return unauthorized("Invalid username or token. The token has expired.\n").into();
        }
        TokenCheck::Unknown => {
            return unauthorized(
                "Invalid username or token. Password authentication is not supported for Git operations.\n",
            )
            .into();
        }
    };
    let Some(repo) = hub.find_repo(&route.owner, &route.repo) else {
        return text(StatusCode::NOT_FOUND, "Repository not found.\n").into();
    };
    if !hub.token_covers(&t, &repo.owner, &repo.name) {
        return text(StatusCode::NOT_FOUND, "Repository not found.\n").into();
    }
    let contents = t
        .permissions
        .get("contents")
        .map(String::as_str)
        .unwrap_or("");
    let needed = if service == "git-receive-pack" {
        "write"
    } else {
        "read"
    };
    if !level_covers(contents, needed) {
        if needed == "read" {
            return text(StatusCode::NOT_FOUND, "Repository not found.\n").into();
        }
        return text(
            StatusCode::FORBIDDEN,
            &format!(
                "Permission to {}/{}.git denied to {}.\n",
                repo.owner,
                repo.name,
                t.user.as_deref().unwrap_or("x-access-token")
            ),
        )
        .into();
    }
    let stall = hub
        .knobs
        .git_stall_repo
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if stall.as_deref() == Some(&format!("{}/{}", repo.owner, repo.name).to_ascii_lowercase()) {
        let ms = hub
            .knobs
            .git_stall_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let is_push = req.method() == hyper::Method::POST && service == "git-receive-pack";
    let drop_after = if is_push {
        hub.knobs
            .drop_push_after
            .load(std::sync::atomic::Ordering::Relaxed)
    } else {
        0
    };
    let workflows = level_covers(
        t.permissions.get("workflows").map_or("", String::as_str),
        "write",
    );
    let push = Push {
        drop_after,
        workflows,
        counted: is_push.then(|| hub.knobs.push_bytes.clone()),
    };
    // A push counts when it changed a ref (a refused one is answered 200 too, its refs `ng`).
    let refs = |hub: Arc<Hub>, repo: crate::hub::Repo| async move {
        tokio::task::spawn_blocking(move || {
            crate::pulls::git(
                &hub,
                &repo,
                &["for-each-ref", "--format=%(objectname) %(refname)"],
            )
            .unwrap_or_default()
        })
        .await
        .unwrap_or_default()
    };
    let before = if is_push {
        Some(refs(hub.clone(), repo.clone()).await)
    } else {
        None
    };
    match cgi(&hub, req, &repo.owner, &repo.name, tail, &query, push).await {
        Ok(Some(r)) => {
            let Some(before) = before.filter(|_| r.status() == StatusCode::OK) else {
                return r.into();
            };
            // http-backend answers its head before it reads the pack: the refs are compared
            // when its answer has ended.
            let (parts, body) = r.into_parts();
            let (hub, repo) = (hub.clone(), repo.clone());
            let end = futures_util::stream::once(async move {
                if refs(hub.clone(), repo).await != before {
                    hub.with_counters(|c| c.pushes += 1);
                }
            });
            let end = futures_util::StreamExt::filter_map(end, |()| {
                std::future::ready(None::<Result<Frame<bytes::Bytes>, std::io::Error>>)
            });
            let stream =
                futures_util::StreamExt::chain(body.into_data_stream().map_ok(Frame::data), end);
            Response::from_parts(parts, BodyExt::boxed(StreamBody::new(stream))).into()
        }
        Ok(None) => Answer::Drop,
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("git http-backend failed: {e}\n"),
        )
        .into(),
    }
}

/// What a push may do.
struct Push {
    /// Above zero: after that many body bytes, kill the backend (so no ref changes) and
    /// answer `None`: the connection is to be dropped.
    drop_after: u64,
    /// The token may write workflow files (`workflows: write`); without it the pre-receive hook
    /// refuses a push that creates, changes or deletes `.github/workflows/*`, as GitHub does.
    workflows: bool,
    /// Where a push's body bytes are counted.
    counted: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// The pre-receive hook that enforces GitHub's rule on workflow files for tokens without
/// `workflows: write`, with GitHub's words.
pub(crate) const PRE_RECEIVE: &str = r#"#!/bin/sh
# fakehub: GitHub refuses a token without `workflows: write` that creates, changes or deletes a
# workflow file.
[ "$FAKEHUB_WORKFLOWS" = write ] && exit 0
z=0000000000000000000000000000000000000000
status=0
while read -r old new ref; do
  [ "$new" = "$z" ] && continue
  if [ "$old" = "$z" ]; then
    git rev-list "$new" --not --all | while read -r c; do
      git diff-tree --no-commit-id --name-only -r --root "$c"
    done
  else
    git diff --name-only "$old" "$new"
  fi > "$GIT_DIR/fakehub-changed.$$"
  while read -r f; do
    case "$f" in
      .github/workflows/*)
        echo "refusing to allow a GitHub App to create or update workflow \`$f\` without \`workflows\` permission" >&2
        status=1
        ;;
    esac
  done < "$GIT_DIR/fakehub-changed.$$"
  rm -f "$GIT_DIR/fakehub-changed.$$"
done
exit $status
"#;

/// Runs `git http-backend` with the request streamed to its stdin and its stdout streamed back.
async fn cgi(
    hub: &Hub,
    req: Request<Incoming>,
    owner: &str,
    name: &str,
    tail: &str,
    query: &str,
    push: Push,
) -> std::io::Result<Option<Response<Body>>> {
    let drop_after = push.drop_after;
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", &hub.repos_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env(
            "PATH_INFO",
            format!(
                "/{}/{}.git/{tail}",
                owner.to_ascii_lowercase(),
                name.to_ascii_lowercase()
            ),
        )
        .env("REQUEST_METHOD", req.method().as_str())
        .env("QUERY_STRING", query)
        // REMOTE_USER enables receive-pack in http-backend.
        .env("REMOTE_USER", "x-access-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_TYPE", header("content-type"))
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("HOME", &hub.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        // As GitHub serves: partial clones (`--filter`) and fetching any object by id (the lazy
        // fetches of a partial clone).
        .env("GIT_CONFIG_COUNT", "3")
        .env("GIT_CONFIG_KEY_0", "uploadpack.allowFilter")
        .env("GIT_CONFIG_VALUE_0", "true")
        .env("GIT_CONFIG_KEY_1", "uploadpack.allowAnySHA1InWant")
        .env("GIT_CONFIG_VALUE_1", "true")
        // GitHub's rule on workflow files, as a pre-receive hook.
        .env("GIT_CONFIG_KEY_2", "core.hooksPath")
        .env("GIT_CONFIG_VALUE_2", hub.home.join("hooks"))
        .env(
            "FAKEHUB_WORKFLOWS",
            if push.workflows { "write" } else { "none" },
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let cl = header("content-length");
    if !cl.is_empty() {
        cmd.env("CONTENT_LENGTH", cl);
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");

    // Request body -> stdin, streamed frame by frame.
    let mut body = req.into_body();
    let (kill, killed) = tokio::sync::oneshot::channel::<()>();
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dropping = dropped.clone();
    let counted = push.counted;
    let feeding = tokio::spawn(async move {
        let mut fed = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data() {
                fed += data.len() as u64;
                if let Some(c) = &counted {
                    c.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                if drop_after > 0 && fed > drop_after {
                    dropping.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = kill.send(());
                    return;
                }
                if stdin.write_all(&data).await.is_err() {
                    break;
                }
            }
        }
        let _ = stdin.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf).await;
        if !buf.is_empty() {
            tracing::debug!(stderr = %String::from_utf8_lossy(&buf), "git http-backend");
        }
    });
    tokio::spawn(async move {
        tokio::select! {
            _ = child.wait() => {}
            // Only a sent signal kills: the sender is also dropped when the body ends.
            Ok(()) = killed => {
                let _ = child.kill().await;
            }
        }
    });

    if drop_after > 0 {
        // http-backend answers its headers before it reads the pack: wait for the whole body,
        // so that a cut-off push is a dropped connection, not an answer.
        let _ = feeding.await;
        if dropped.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(None);
        }
    }
    // CGI headers, then the body.
    let mut reader = BufReader::new(stdout);
    let mut builder = Response::builder();
    let mut status = StatusCode::OK;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("Status") {
            status = v
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else {
            builder = builder.header(k, v);
        }
    }
    if dropped.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(None);
    }
    let stream = tokio_util::io::ReaderStream::new(reader).map_ok(Frame::data);
    let body = BodyExt::boxed(StreamBody::new(stream));
    builder
        .status(status)
        .body(body)
        .map(Some)
        .map_err(std::io::Error::other)
}
