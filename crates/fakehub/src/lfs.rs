//! Git LFS as GitHub serves it (git-lfs's `docs/api`): the batch API and the locks API under
//! `/{owner}/{repo}.git/info/lfs/`, authenticated as git is (Basic, the token as password), and
//! object storage under a second host name (`lfs.HOSTNAME`, or `localhost` when fakehub is
//! `127.0.0.1`) with signed URLs that expire. Storage takes no credentials: the signature is
//! the authorisation, and a request that carries an `Authorization` header is refused, so a
//! token that leaks to storage shows.

#![expect(
    clippy::result_large_err,
    reason = "handlers return the error response itself as Err, built once per refused request"
)]

use std::path::PathBuf;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

use crate::hub::{Hub, IssuedToken, Repo, TokenCheck, level_covers};
use crate::{Body, full};

/// How long a signed storage URL lives (GitHub's are of this order).
pub(crate) const URL_LIFETIME: i64 = 3600;
/// The largest batch or locks request read.
const MAX_REQUEST: usize = 1 << 20;
/// The largest object stored (GitHub's LFS limit on the Free plan is 2 GiB; tests stay small).
const MAX_OBJECT: u64 = 512 << 20;
const MEDIA: &str = "application/vnd.git-lfs+json";

/// A lock (`POST …/locks`).
#[derive(Debug, Clone)]
pub(crate) struct Lock {
    pub id: u64,
    pub owner: String,
    pub repo: String,
    pub path: String,
    pub by: String,
}

fn lfs_json(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", MEDIA)
        .body(full(serde_json::to_vec(v).unwrap_or_default()))
        .expect("valid response")
}

fn lfs_error(status: StatusCode, message: &str) -> Response<Body> {
    lfs_json(
        status,
        &json!({"message": message, "documentation_url": "https://docs.github.com/repositories/working-with-files/managing-large-files"}),
    )
}

/// The signature of a storage URL: fakehub's secret over what the URL allows.
fn sign(hub: &Hub, method: &str, owner: &str, repo: &str, oid: &str, exp: i64) -> String {
    let d = sha2::Sha256::new()
        .chain_update(hub.lfs_secret)
        .chain_update(format!("{method} {owner}/{repo}/{oid} {exp}"))
        .finalize();
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn object_path(hub: &Hub, r: &Repo, oid: &str) -> PathBuf {
    hub.home
        .join("lfs")
        .join(r.owner.to_ascii_lowercase())
        .join(r.name.to_ascii_lowercase())
        .join(oid)
}

fn valid_oid(oid: &str) -> bool {
    oid.len() == 64
        && oid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The token of an LFS API request and the repository it reaches, or GitHub's refusal.
fn authorize(
    hub: &Hub,
    req: &Request<Incoming>,
    owner: &str,
    repo: &str,
    write: bool,
) -> Result<(IssuedToken, Repo), Response<Body>> {
    let Some(token) = crate::git::basic_password(req) else {
        return Err(Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Basic realm=\"GitHub\"")
            .header("lfs-authenticate", "Basic realm=\"GitHub\"")
            .header("content-type", MEDIA)
            .body(full(br#"{"message":"Credentials needed"}"#.to_vec()))
            .expect("valid response"));
    };
    let TokenCheck::Valid(t) = hub.check_token(&token) else {
        return Err(lfs_error(StatusCode::UNAUTHORIZED, "Bad credentials"));
    };
    let Some(r) = hub
        .find_repo(owner, repo)
        .filter(|r| hub.token_covers(&t, &r.owner, &r.name))
    else {
        return Err(lfs_error(StatusCode::NOT_FOUND, "Repository not found"));
    };
    let contents = t.permissions.get("contents").map_or("", String::as_str);
    if !level_covers(contents, if write { "write" } else { "read" }) {
        return Err(lfs_error(
            StatusCode::FORBIDDEN,
            "Must have push access to repository",
        ));
    }
    Ok((t, r))
}

async fn read_json(req: Request<Incoming>) -> Result<Value, Response<Body>> {
    let bytes = http_body_util::Limited::new(req.into_body(), MAX_REQUEST)
        .collect()
        .await
        .map_err(|_| lfs_error(StatusCode::PAYLOAD_TOO_LARGE, "Request too large"))?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|_| lfs_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid JSON"))
}

/// `…/info/lfs/…` on the git host.
pub(crate) async fn api(hub: Arc<Hub>, req: Request<Incoming>, path: &str) -> Response<Body> {
    let Some(route) = ghapp_gitproto::lfs::parse(path) else {
        return lfs_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let method = req.method().as_str().to_owned();
    if !route.method_allowed(&method) {
        return lfs_error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    }
    hub.count(&format!(
        "lfs {method} {}",
        route
            .upstream_path()
            .rsplit("info/lfs/")
            .next()
            .unwrap_or("")
    ));
    use ghapp_gitproto::lfs::LfsEndpoint;
    let write = route.writes(&method);
    let answer = async {
        let (t, r) = authorize(&hub, &req, &route.owner, &route.repo, write)?;
        match route.endpoint {
            LfsEndpoint::Batch => {
                let v = read_json(req).await?;
                batch(&hub, &t, &r, &v)
            }
            LfsEndpoint::Locks if method == "GET" => Ok(lfs_json(
                StatusCode::OK,
                &json!({"locks": locks(&hub, &r).iter().map(lock_doc).collect::<Vec<_>>(), "next_cursor": ""}),
            )),
            LfsEndpoint::Locks => {
                let v = read_json(req).await?;
                create_lock(&hub, &t, &r, &v)
            }
            LfsEndpoint::Verify => {
                let me = crate::pulls::actor(&hub, &t);
                let (ours, theirs): (Vec<Lock>, Vec<Lock>) =
                    locks(&hub, &r).into_iter().partition(|l| l.by == me);
                Ok(lfs_json(
                    StatusCode::OK,
                    &json!({"ours": ours.iter().map(lock_doc).collect::<Vec<_>>(), "theirs": theirs.iter().map(lock_doc).collect::<Vec<_>>(), "next_cursor": ""}),
                ))
            }
            // fakehub's batch answers name no verify action.
            LfsEndpoint::VerifyObject => Err(lfs_error(StatusCode::NOT_FOUND, "Not Found")),
            LfsEndpoint::Unlock(id) => {
                let mut all = hub.lfs_locks.lock().unwrap_or_else(|e| e.into_inner());
                match all
                    .iter()
                    .position(|l| l.id.to_string() == id && l.owner == r.owner && l.repo == r.name)
                {
                    Some(i) => Ok(lfs_json(
                        StatusCode::OK,
                        &json!({"lock": lock_doc(&all.remove(i))}),
                    )),
                    None => Err(lfs_error(StatusCode::NOT_FOUND, "Lock not found")),
                }
            }
        }
    };
    answer.await.unwrap_or_else(|e| e)
}

fn locks(hub: &Hub, r: &Repo) -> Vec<Lock> {
    let all = hub.lfs_locks.lock().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .filter(|l| l.owner == r.owner && l.repo == r.name)
        .cloned()
        .collect()
}

fn lock_doc(l: &Lock) -> Value {
    json!({"id": l.id.to_string(), "path": l.path, "locked_at": crate::json::CREATED, "owner": {"name": l.by}})
}

fn create_lock(
    hub: &Hub,
    t: &IssuedToken,
    r: &Repo,
    v: &Value,
) -> Result<Response<Body>, Response<Body>> {
    let Some(path) = v["path"].as_str().filter(|p| !p.is_empty()) else {
        return Err(lfs_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Path must be given",
        ));
    };
    let mut all = hub.lfs_locks.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = all
        .iter()
        .find(|l| l.owner == r.owner && l.repo == r.name && l.path == path)
    {
        return Err(lfs_json(
            StatusCode::CONFLICT,
            &json!({"lock": lock_doc(l), "message": "already created lock"}),
        ));
    }
    let l = Lock {
        id: all.iter().map(|l| l.id).max().unwrap_or(0) + 1,
        owner: r.owner.clone(),
        repo: r.name.clone(),
        path: path.to_owned(),
        by: crate::pulls::actor(hub, t),
    };
    all.push(l.clone());
    Ok(lfs_json(
        StatusCode::CREATED,
        &json!({"lock": lock_doc(&l)}),
    ))
}

/// `POST …/objects/batch`: where to upload each object the server lacks, or download each it
/// has, as signed storage URLs.
fn batch(
    hub: &Hub,
    t: &IssuedToken,
    r: &Repo,
    v: &Value,
) -> Result<Response<Body>, Response<Body>> {
    let upload = match v["operation"].as_str() {
        Some("upload") => true,
        Some("download") => false,
        _ => {
            return Err(lfs_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid operation",
            ));
        }
    };
    if upload {
        let contents = t.permissions.get("contents").map_or("", String::as_str);
        if !level_covers(contents, "write") {
            return Err(lfs_error(
                StatusCode::FORBIDDEN,
                "Must have push access to repository",
            ));
        }
    }
    let Some(objects) = v["objects"].as_array() else {
        return Err(lfs_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Objects must be given",
        ));
    };
    let exp = hub.now() + URL_LIFETIME;
    let mut out = Vec::new();
    for o in objects {
        let (Some(oid), Some(size)) = (o["oid"].as_str(), o["size"].as_u64()) else {
            return Err(lfs_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid object",
            ));
        };
        if !valid_oid(oid) {
            out.push(json!({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid object id"}}));
            continue;
        }
        let have = object_path(hub, r, oid).exists();
        let method = if upload { "PUT" } else { "GET" };
        let href = format!(
            "{}/objects/{}/{}/{oid}?exp={exp}&sig={}",
            hub.lfs_base,
            r.owner,
            r.name,
            sign(hub, method, &r.owner, &r.name, oid, exp)
        );
        let action = json!({"href": href, "expires_in": URL_LIFETIME});
        out.push(match (upload, have) {
            (true, true) => json!({"oid": oid, "size": size, "authenticated": true}),
            (true, false) => json!({"oid": oid, "size": size, "authenticated": true, "actions": {"upload": action}}),
            (false, true) => json!({"oid": oid, "size": size, "authenticated": true, "actions": {"download": action}}),
            (false, false) => json!({"oid": oid, "size": size, "error": {"code": 404, "message": "Object does not exist on the server"}}),
        });
    }
    Ok(lfs_json(
        StatusCode::OK,
        &json!({"transfer": "basic", "objects": out, "hash_algo": "sha256"}),
    ))
}

/// The storage: `GET` or `PUT /objects/{owner}/{repo}/{oid}?exp=&sig=` (`path`, on the storage
/// host or under `/_lfs` on fakehub's own).
pub(crate) async fn storage(hub: Arc<Hub>, req: Request<Incoming>, path: &str) -> Response<Body> {
    let refuse = |status, m: &str| crate::text(status, &format!("{m}\n"));
    if req.headers().contains_key(hyper::header::AUTHORIZATION) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "fakehub storage takes no credentials: the URL is signed",
        );
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["objects", owner, repo, oid] = segs.as_slice() else {
        return refuse(StatusCode::NOT_FOUND, "Not Found");
    };
    let q: std::collections::HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let exp: i64 = q.get("exp").and_then(|e| e.parse().ok()).unwrap_or(0);
    let method = req.method().as_str().to_owned();
    let good =
        q.get("sig").map(String::as_str) == Some(&sign(&hub, &method, owner, repo, oid, exp));
    if !good || !valid_oid(oid) {
        return refuse(StatusCode::FORBIDDEN, "Request signature does not match");
    }
    if exp < hub.now() {
        return refuse(StatusCode::FORBIDDEN, "Request has expired");
    }
    let Some(r) = hub.find_repo(owner, repo) else {
        return refuse(StatusCode::NOT_FOUND, "Not Found");
    };
    hub.count(&format!("lfs storage {method}"));
    let path = object_path(&hub, &r, oid);
    match method.as_str() {
        "GET" => match tokio::fs::read(&path).await {
            Ok(b) => Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/octet-stream")
                .body(full(b))
                .expect("valid response"),
            Err(_) => refuse(StatusCode::NOT_FOUND, "Not Found"),
        },
        "PUT" => match store(req, &path, oid).await {
            Ok(()) => crate::empty(StatusCode::OK),
            Err(m) => refuse(StatusCode::BAD_REQUEST, &m),
        },
        _ => refuse(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
    }
}

/// Streams an upload to disk, hashing it; kept only if its sha256 is `oid`.
async fn store(req: Request<Incoming>, path: &std::path::Path, oid: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let dir = path.parent().ok_or("no directory")?;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| e.to_string())?;
    let tmp = dir.join(format!(".{oid}.part"));
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| e.to_string())?;
    let mut hash = sha2::Sha256::new();
    let mut size = 0u64;
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            size += data.len() as u64;
            if size > MAX_OBJECT {
                return Err("object too large".into());
            }
            hash.update(data);
            f.write_all(data).await.map_err(|e| e.to_string())?;
        }
    }
    f.flush().await.map_err(|e| e.to_string())?;
    let got: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if got != oid {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(format!("the object's sha256 is {got}, not {oid}"));
    }
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| e.to_string())
}
