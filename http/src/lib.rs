//! The daemon's HTTP JSON API (`cobox up --http IP:PORT`). Every route is under `/api/` and
//! needs `Authorization: Bearer <token>`, the token being `$COBOX_HOME/api-token`.
//! docs/http-api.md lists the routes. The same routes, without the token, answer on the control
//! socket (`$COBOX_HOME/control.sock`, 0600) that `cobox up` and the app both serve, so the CLI
//! works beside either.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod launch;
pub use launch::{Launched, launch};

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cobox_engine::ops::{AUDIT_SAMPLE, AuditOptions};
use cobox_engine::sync::net::{Held, Node, dial_addr};
use cobox_engine::{Home, SpaceId, agreement_service, api};
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
pub struct Api {
    pub node: Arc<Node>,
    pub root: PathBuf,
    /// BLAKE3 of the token: comparing hashes takes the same time whatever the guess.
    pub token_hash: blake3::Hash,
    /// The daemon and the home it holds, to take on spaces created or joined meanwhile.
    pub daemon: Option<(Arc<cobox_engine::daemon::Daemon>, Arc<Home>)>,
}

impl Api {
    /// The API the control socket serves: the daemon's, with no token (the socket's mode
    /// admits only the home's user).
    pub fn control(daemon: Arc<cobox_engine::daemon::Daemon>, home: Arc<Home>) -> Self {
        Self {
            node: daemon.node().clone(),
            root: home.root().to_owned(),
            token_hash: blake3::hash(&[]),
            daemon: Some((daemon, home)),
        }
    }
}

/// An error as JSON, with its status.
struct ApiError {
    status: StatusCode,
    message: String,
    /// What kind of refusal a peer gave, when one did (`refusal` in the body), so a client
    /// tells a full seeder or a refused invite from other failures without reading words.
    refusal: Option<cobox_engine::sync::proto::Refusal>,
}

impl ApiError {
    fn new(status: StatusCode, message: String) -> Self {
        Self { status, message, refusal: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(api::Failed { error: self.message, refusal: self.refusal })).into_response()
    }
}

impl From<cobox_engine::Error> for ApiError {
    fn from(e: cobox_engine::Error) -> Self {
        use cobox_engine::Error as E;
        let code = match &e {
            E::SpaceNotFound(_) => StatusCode::NOT_FOUND,
            // The request was fine; the peer it went to refused it.
            E::PeerRefused { .. } | E::SeederFull => StatusCode::BAD_GATEWAY,
            E::Refused(_)
            | E::Ambiguous(_)
            | E::InvalidPath(_)
            | E::SpaceExists(_)
            | E::InvalidName(_)
            | E::BadInvite(_)
            | E::InvalidMemberName(_)
            | E::NoHistory(_) => StatusCode::BAD_REQUEST,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::Net(_) | E::Transport { .. } => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self { status: code, message: e.to_string(), refusal: e.refusal() }
    }
}

type Reply = Result<Json<Value>, ApiError>;

fn to_json<T: serde::Serialize>(v: &T) -> Reply {
    serde_json::to_value(v).map(Json).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn auth(State(api): State<Api>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if blake3::hash(given.trim().as_bytes()) != api.token_hash {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token: send `Authorization: Bearer <token>` with the token from $COBOX_HOME/api-token"
                .into(),
        )
        .into_response();
    }
    next.run(req).await
}

pub fn router(api: Api) -> Router {
    routes().layer(axum::middleware::from_fn_with_state(api.clone(), auth)).with_state(api)
}

/// The routes, without the token check (the control socket's is its file mode).
fn routes() -> Router<Api> {
    Router::new()
        .route("/api/spaces", get(spaces).post(create_space))
        .route("/api/join", post(join))
        .route("/api/seed/fetch", post(seed_fetch))
        .route("/api/seed/accept", post(seed_accept))
        .route("/api/seed/cancel", post(seed_cancel))
        .route("/api/seeders/ask", post(seeder_ask))
        .route("/api/spaces/{space}/status", get(status))
        .route("/api/spaces/{space}/scan", post(scan))
        .route("/api/spaces/{space}/history", get(history))
        .route("/api/spaces/{space}/deleted", get(deleted))
        .route("/api/spaces/{space}/undelete", post(undelete))
        .route("/api/spaces/{space}/verify", post(verify))
        .route("/api/spaces/{space}/restore", post(restore))
        .route("/api/spaces/{space}/target", post(target))
        .route("/api/spaces/{space}/gc", post(gc))
        .route("/api/spaces/{space}/sync", post(sync))
        .route("/api/spaces/{space}/audit", post(audit))
        .route("/api/spaces/{space}/members", get(members))
        .route("/api/spaces/{space}/members/{device}/remove", post(remove_member))
        .route("/api/spaces/{space}/members/{device}/role", post(member_role))
        .route("/api/spaces/{space}/invites", post(invite))
        .route("/api/spaces/{space}/invites/{id}/cancel", post(cancel_invite))
        .route("/api/spaces/{space}/recovery", get(recovery_status))
        .route("/api/spaces/{space}/recovery/setup", post(recovery_setup))
        .route("/api/spaces/{space}/recovery/check", post(recovery_check))
        .route("/api/recovery/approve", post(recovery_approve))
        .route("/api/agreements", get(agreements).post(propose))
        .route("/api/agreements/{id}/revoke", post(revoke))
        .route("/api/audits", get(audits))
        .route("/api/stats", get(stats))
        .route("/api/network", get(network))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route; see docs/http-api.md".into()) })
}

/// The control socket in the home: the CLI asks the running daemon over it, so commands work
/// beside `cobox up`. Only this user reaches it (mode 0600 in the 0700 home); no token.
pub const CONTROL_SOCKET: &str = "control.sock";

/// Bind the control socket, replacing a stale one (the home's lock says no other daemon runs).
pub fn bind_control(root: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join(CONTROL_SOCKET);
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serve the control socket until the task is dropped.
pub async fn serve_control(listener: tokio::net::UnixListener, api: Api) {
    if let Err(e) = axum::serve(listener, routes().with_state(api)).await {
        eprintln!("control socket stopped: {e}");
    }
}

/// Serve until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, api: Api) {
    if let Err(e) = axum::serve(listener, router(api)).await {
        eprintln!("http api stopped: {e}");
    }
}

fn member_space(api: &Api, q: &str) -> Result<(SpaceId, cobox_engine::handle::SpaceHandle), ApiError> {
    let info = Home::resolve_at(&api.root, q)?;
    let s = api
        .node
        .space(&info.id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("space {q:?} is not open")))?;
    Ok((info.id, s))
}

async fn spaces(State(api): State<Api>) -> Reply {
    let mut out = Vec::new();
    for info in Home::spaces_at(&api.root)? {
        out.push(api::SpaceEntry::Member { id: info.id.to_string(), name: info.name, path: info.path });
    }
    for (id, h) in api.node.held() {
        if let Held::Seed(s) = h {
            out.push(api::SpaceEntry::Seeder { id: id.to_string(), stored_bytes: s.view().used });
        }
    }
    to_json(&out)
}

/// The daemon and its home, for routes that register a space.
fn holder(api: &Api) -> Result<(Arc<cobox_engine::daemon::Daemon>, Arc<Home>), ApiError> {
    api.daemon.clone().ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no daemon holds this home".into()))
}

/// Open a space just registered and hand it to the daemon (watched, synced, served).
fn take_on(daemon: &cobox_engine::daemon::Daemon, home: &Home, id: &SpaceId) -> Result<(), ApiError> {
    let s = home.open_space(&id.to_string())?;
    daemon.add_space(s)?;
    Ok(())
}

/// A space joined by an invite and not let in yet: let in by the first of `peers` (else every
/// peer met in it) that accepts the invite, and taken on by the daemon (watched, served).
/// `Some`: every peer's refusal; `None`: held now, or never pending.
async fn let_in(
    api: &Api,
    id: &SpaceId,
    peers: &[cobox_engine::codes::PeerAddr],
) -> Result<Option<Vec<cobox_engine::ops::PeerSync>>, ApiError> {
    let Some((d, _)) = api.daemon.as_ref().filter(|_| Home::join_pending_at(&api.root, id)) else { return Ok(None) };
    let to = cobox_engine::ops::peers_for(&api.root, id, peers)?;
    Ok(d.join_pending(id, &to, None).await.err())
}

/// `{"name","path"}`: a new space over `path` (absolute; made if missing), taken on by the daemon.
async fn create_space(State(api): State<Api>, bytes: axum::body::Bytes) -> Reply {
    let b: api::CreateSpace = body(&bytes)?;
    if !b.path.is_absolute() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "path must be an absolute path".into()));
    }
    let (daemon, home) = holder(&api)?;
    let out = tokio::task::spawn_blocking(move || -> Result<api::SpaceCreated, ApiError> {
        let created = !b.path.exists();
        let info = home.create_space(&b.name, &b.path)?;
        take_on(&daemon, &home, &info.id)?;
        Ok(api::SpaceCreated { id: info.id.to_string(), name: info.name, path: info.path, created_folder: created })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    to_json(&out)
}

/// `{"code","path","name"?}`: join a space by an invite, taken on by the daemon (its first
/// sync runs on the daemon's schedule, or at once with the sync route).
async fn join(State(api): State<Api>, bytes: axum::body::Bytes) -> Reply {
    let b: api::Join = body(&bytes)?;
    let path = match (b.path, b.audit_only) {
        (Some(p), false) if p.is_absolute() => Some(p),
        (None, true) => None,
        (Some(_), false) => return Err(ApiError::new(StatusCode::BAD_REQUEST, "path must be an absolute path".into())),
        (Some(_), true) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "an audit-only join takes no path".into()));
        }
        (None, false) => return Err(ApiError::new(StatusCode::BAD_REQUEST, "a path, or audit_only, is needed".into())),
    };
    let invite = cobox_engine::codes::Invite::parse(&b.code)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("reading the invite code: {e}")))?;
    let (daemon, home) = holder(&api)?;
    let info = tokio::task::spawn_blocking(move || -> Result<cobox_engine::SpaceInfo, ApiError> {
        Ok(match &path {
            Some(p) => home.join(&invite, p, b.name.as_deref())?,
            None => home.join_audit_only(&invite, b.name.as_deref())?,
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    // The code holds no secret: the space is taken on when a peer accepts the invite, which
    // is tried now (and on the daemon's schedule until one does).
    let (d, id) = (daemon.clone(), info.id);
    tokio::spawn(async move { d.sync_now(id).await });
    to_json(&api::Joined { id: info.id.to_string(), name: info.name, path: info.path, pending: true })
}

/// Peers named in a request body (`ID[@IP:PORT,...]`); a malformed one is the caller's error.
fn peer_addrs(peers: &[String]) -> Result<Vec<cobox_engine::codes::PeerAddr>, ApiError> {
    peers
        .iter()
        .map(|p| {
            p.parse::<cobox_engine::codes::PeerAddr>()
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("peer {p:?}: {e}")))
        })
        .collect()
}

/// A seed code from a request body.
fn seed_code(bytes: &[u8]) -> Result<cobox_engine::codes::SeedCode, ApiError> {
    let b: api::SeedCode = body(bytes)?;
    cobox_engine::codes::SeedCode::parse(&b.code)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("reading the seed code: {e}")))
}

/// `{"code"}`: register the seed (if new), fetch the owner's ledger, and say the agreement's
/// terms; nothing is countersigned or stored yet. `{"terms","fresh"}`.
async fn seed_fetch(State(api): State<Api>, bytes: axum::body::Bytes) -> Reply {
    let code = seed_code(&bytes)?;
    holder(&api)?;
    let terms = cobox_engine::ops::seed_fetch(&api.node, &api.root, &code).await?;
    to_json(&terms)
}

/// `{"code"}`: countersign the agreement and take the space's blobs, until in sync.
async fn seed_accept(State(api): State<Api>, bytes: axum::body::Bytes) -> Reply {
    let code = seed_code(&bytes)?;
    to_json(&cobox_engine::ops::seed_accept(&api.node, &api.root, &code).await?)
}

/// `{"code"}`: forget a seed registered by a fetch that was not agreed to.
async fn seed_cancel(State(api): State<Api>, bytes: axum::body::Bytes) -> Reply {
    let code = seed_code(&bytes)?;
    cobox_engine::ops::seed_cancel(&api.node, &api.root, &code)?;
    to_json(&api::Forgotten { forgotten: code.space.to_string() })
}

async fn status(State(api): State<Api>, UrlPath(q): UrlPath<String>) -> Reply {
    let (_, s) = member_space(&api, &q)?;
    // Health only the running daemon knows: each peer's last session.
    let (seen, root) = (api.node.peers_seen(), api.root.clone());
    to_json(&cobox_engine::handle::on_space(&s, move |s| cobox_engine::ops::status(s, &root, &seen)).await?)
}

/// `?progress=1`: answer with progress as it happens (`docs/http-api.md`, "Progress").
#[derive(Deserialize, Default)]
struct ProgressQuery {
    #[serde(default)]
    progress: Option<u8>,
}

/// The engine's progress as [`api::Progressed`] lines on a channel.
struct Streamed(tokio::sync::mpsc::UnboundedSender<String>);

impl Streamed {
    fn send<R: serde::Serialize>(&self, event: &api::Progressed<R>) {
        if let Ok(line) = serde_json::to_string(event) {
            let _ = self.0.send(line);
        }
    }
}

impl cobox_engine::Progress for Streamed {
    fn start(&self, phase: &str, total_bytes: u64) {
        self.send(&api::Progressed::<()>::Start { phase: phase.to_owned(), total: total_bytes });
    }
    fn advance(&self, bytes: u64) {
        self.send(&api::Progressed::<()>::Advance(bytes));
    }
    fn warn(&self, message: &str) {
        self.send(&api::Progressed::<()>::Warn(message.to_owned()));
    }
}

/// Run space work that reports progress: with `?progress=1`, a body of JSON lines (`start`,
/// `advance`, `warn`, then `result` or `error`) written as it goes; else the result alone.
async fn with_progress<R: serde::Serialize + Send + 'static>(
    s: cobox_engine::handle::SpaceHandle,
    stream: bool,
    f: impl FnOnce(&mut cobox_engine::Space, &dyn cobox_engine::Progress) -> Result<R, cobox_engine::Error> + Send + 'static,
) -> Response {
    if !stream {
        return match cobox_engine::handle::on_space(&s, move |s| f(s, &cobox_engine::NoProgress)).await {
            Ok(r) => to_json(&r).into_response(),
            Err(e) => ApiError::from(e).into_response(),
        };
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let progress = Streamed(tx.clone());
        let last = match cobox_engine::handle::on_space(&s, move |s| f(s, &progress)).await {
            Ok(r) => api::Progressed::Result(r),
            Err(e) => api::Progressed::Error(e.to_string()),
        };
        Streamed(tx).send(&last);
    });
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(format!("{v}\n")), rx))
    });
    ([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], axum::body::Body::from_stream(lines)).into_response()
}

/// One `cobox/admin/1` request to a seeder, sent from the daemon's own endpoint (so a command
/// beside it opens no second endpoint with the device's key): `{"seeder": "ID@ADDR,...",
/// "request": Request}`; the answer is the seeder's `Response` (a refusal included).
async fn seeder_ask(State(api): State<Api>, bytes: axum::body::Bytes) -> Reply {
    let b: api::SeederAsk = body(&bytes)?;
    let peer: cobox_engine::codes::PeerAddr =
        b.seeder.parse().map_err(|e: String| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let addr = dial_addr(&peer)?;
    let r = api.node.admin(addr, &b.request).await?;
    to_json(&r)
}

async fn scan(
    State(api): State<Api>,
    UrlPath(q): UrlPath<String>,
    axum::extract::Query(p): axum::extract::Query<ProgressQuery>,
) -> Result<Response, ApiError> {
    let (_, s) = member_space(&api, &q)?;
    Ok(with_progress(s, p.progress.is_some(), move |s, pr| s.scan(pr)).await)
}

#[derive(Deserialize)]
struct HistoryQuery {
    path: Option<String>,
}

async fn history(
    State(api): State<Api>,
    UrlPath(q): UrlPath<String>,
    axum::extract::Query(h): axum::extract::Query<HistoryQuery>,
) -> Reply {
    let (_, s) = member_space(&api, &q)?;
    let items = cobox_engine::handle::on_space(&s, move |s| s.history(h.path.as_deref())).await?;
    to_json(&items)
}

/// Paths deleted and not back, newest first (at most this many).
const DELETED_MAX: usize = 10_000;

async fn deleted(State(api): State<Api>, UrlPath(q): UrlPath<String>) -> Reply {
    let (_, s) = member_space(&api, &q)?;
    to_json(&cobox_engine::handle::on_space(&s, |s| s.deleted_files(DELETED_MAX)).await?)
}

async fn undelete(State(api): State<Api>, UrlPath(q): UrlPath<String>, bytes: axum::body::Bytes) -> Reply {
    let b: api::Undelete = body(&bytes)?;
    let (_, s) = member_space(&api, &q)?;
    to_json(&cobox_engine::handle::on_space(&s, move |s| s.undelete(&b.path)).await?)
}

async fn gc(State(api): State<Api>, UrlPath(q): UrlPath<String>, bytes: axum::body::Bytes) -> Reply {
    let b: api::Gc = if bytes.is_empty() { api::Gc::default() } else { body(&bytes)? };
    let (_, s) = member_space(&api, &q)?;
    let r = cobox_engine::handle::on_space(&s, move |s| s.gc(b.keep_within_ms)).await?;
    to_json(&r)
}

async fn target(State(api): State<Api>, UrlPath(q): UrlPath<String>, bytes: axum::body::Bytes) -> Reply {
    let b: api::Target = body(&bytes)?;
    let (_, s) = member_space(&api, &q)?;
    let set = cobox_engine::handle::on_space(&s, move |s| {
        s.set_replicas_target(b.copies)?;
        Ok(api::TargetSet { name: s.info().name.clone(), replicas_target: b.copies })
    })
    .await?;
    to_json(&set)
}

/// Restore into `dir` (an absolute path on the daemon's machine), as `cobox restore` does.
async fn restore(
    State(api): State<Api>,
    UrlPath(q): UrlPath<String>,
    axum::extract::Query(p): axum::extract::Query<ProgressQuery>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let b: api::Restore = body(&bytes)?;
    if !b.dir.is_absolute() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "dir must be an absolute path".into()));
    }
    let at = match &b.at {
        Some(s) => cobox_engine::At::parse(s).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?,
        None => cobox_engine::At::Latest,
    };
    let (_, s) = member_space(&api, &q)?;
    Ok(with_progress(s, p.progress.is_some(), move |s, pr| s.restore(&b.dir, &at, b.path.as_deref(), b.overwrite, pr))
        .await)
}

async fn verify(
    State(api): State<Api>,
    UrlPath(q): UrlPath<String>,
    axum::extract::Query(p): axum::extract::Query<ProgressQuery>,
) -> Result<Response, ApiError> {
    let (_, s) = member_space(&api, &q)?;
    Ok(with_progress(s, p.progress.is_some(), move |s, pr| s.verify(pr)).await)
}

/// Sync now with each peer until both hold the same state: the peers given (`{"peers":
/// ["ID[@IP:PORT,...]"]}`, addresses filled from the address book), else every peer met in
/// the space. One entry per peer: its stats, or its error.
async fn sync(State(api): State<Api>, UrlPath(q): UrlPath<String>, bytes: axum::body::Bytes) -> Reply {
    let b: api::SyncPeers = if bytes.is_empty() { api::SyncPeers::default() } else { body(&bytes)? };
    let peers = peer_addrs(&b.peers)?;
    let id = Home::resolve_at(&api.root, &q)?.id;
    let runs = match let_in(&api, &id, &peers).await? {
        Some(refused) => refused,
        None => {
            // Without a daemon, `ops::sync` lets a pending space in itself.
            if !Home::join_pending_at(&api.root, &id) {
                member_space(&api, &q)?;
            }
            cobox_engine::ops::sync(&api.node, &api.root, &id, &cobox_engine::ops::SyncOptions::asked(peers)).await?
        }
    };
    let out: Vec<api::SyncRun> = runs
        .into_iter()
        .map(|r| api::SyncRun {
            peer: r.peer.to_string(),
            ran: match r.result {
                Ok(st) => api::Ran::Stats(st),
                Err(e) => api::Ran::Error(e.to_string()),
            },
        })
        .collect();
    to_json(&out)
}

async fn audit(State(api): State<Api>, UrlPath(q): UrlPath<String>, body: axum::body::Bytes) -> Reply {
    // An empty body is the default; a bad one gets a JSON 400 like every other error here.
    let body: api::Audit = if body.iter().all(u8::is_ascii_whitespace) {
        api::Audit::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the request body: {e}")))?
    };
    let seeders = peer_addrs(&body.peers)?;
    let id = Home::resolve_at(&api.root, &q)?.id;
    if let Some(refused) = let_in(&api, &id, &seeders).await? {
        let out: Vec<api::AuditRun> = refused
            .into_iter()
            .map(|r| api::AuditRun {
                seeder: r.peer.to_string(),
                result: None,
                error: Some(r.result.err().map(|e| e.to_string()).unwrap_or_default()),
                sync_error: None,
            })
            .collect();
        return to_json(&out);
    }
    if !Home::join_pending_at(&api.root, &id) {
        member_space(&api, &q)?;
    }
    let opts = AuditOptions::asked(seeders, if body.all { usize::MAX } else { AUDIT_SAMPLE });
    let mut out = Vec::new();
    for a in cobox_engine::ops::audit(&api.node, &api.root, &id, &opts).await? {
        let (result, error) = match a.result {
            Ok(rec) => (Some(agreement_service::audit_summary(&rec)), None),
            Err(e) => (None, Some(e.to_string())),
        };
        out.push(api::AuditRun {
            seeder: a.seeder.to_string(),
            result,
            error,
            sync_error: a.synced.err().map(|e| e.to_string()),
        });
    }
    to_json(&out)
}

async fn members(State(api): State<Api>, UrlPath(space): UrlPath<String>) -> Reply {
    to_json(&cobox_engine::members::list(&api.root, &space, cobox_engine::now_ms())?)
}

async fn remove_member(State(api): State<Api>, UrlPath((space, device)): UrlPath<(String, String)>) -> Reply {
    let name = cobox_engine::members::remove(&api.root, &space, &device)?;
    to_json(&api::Removed { removed: name })
}

/// A JSON body, or a 400 that says what was wrong with it.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the request body: {e}")))
}

async fn member_role(
    State(api): State<Api>,
    UrlPath((space, device)): UrlPath<(String, String)>,
    bytes: axum::body::Bytes,
) -> Reply {
    let b: api::MemberRole = body(&bytes)?;
    let name = cobox_engine::members::set_role(&api.root, &space, &device, b.role)?;
    to_json(&api::MemberRole { member: Some(name), role: b.role })
}

async fn invite(State(api): State<Api>, UrlPath(space): UrlPath<String>, bytes: axum::body::Bytes) -> Reply {
    let b: api::Invite = body(&bytes)?;
    let expires_ms = cobox_engine::now_ms() + i64::from(b.expires_hours) * 3_600_000;
    let request = cobox_engine::home::InviteRequest { role: b.role, expires_ms, name: b.name };
    let inv = cobox_engine::Home::invite(&api.root, &space, &request)?;
    let code = inv.encode().map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    to_json(&api::InviteMade { code, role: b.role, expires: cobox_engine::util::rfc3339(expires_ms) })
}

async fn cancel_invite(State(api): State<Api>, UrlPath((space, id)): UrlPath<(String, String)>) -> Reply {
    cobox_engine::members::cancel_invite(&api.root, &space, &id)?;
    to_json(&api::Cancelled { cancelled: id })
}

async fn agreements(State(api): State<Api>) -> Reply {
    to_json(&agreement_service::list(&api.root, cobox_engine::now_ms())?)
}

async fn propose(State(api): State<Api>, body: axum::body::Bytes) -> Reply {
    let (b, seeder) =
        cobox_engine::codes::ProposeRequest::parse(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let (s, code) = agreement_service::propose(&api.root, &b.space, &seeder, b.quota, b.days, &b.terms)?;
    let code = code.encode().map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    to_json(&api::Proposed { agreement: s, seed_code: code })
}

async fn revoke(State(api): State<Api>, UrlPath(id): UrlPath<String>) -> Reply {
    to_json(&agreement_service::revoke(&api.root, &id)?)
}

/// A space's recovery as this device set it up.
async fn recovery_status(State(api): State<Api>, UrlPath(q): UrlPath<String>) -> Reply {
    to_json(&cobox_engine::ops::recovery_status(&api.root, &q)?)
}

/// A new recovery key split among custodians, each share delivered from the daemon's endpoint.
async fn recovery_setup(State(api): State<Api>, UrlPath(q): UrlPath<String>, bytes: axum::body::Bytes) -> Reply {
    let b: api::RecoverySetup = body(&bytes)?;
    let custodians = peer_addrs(&b.custodians)?;
    let wait_ms = i64::try_from(b.wait_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    to_json(&cobox_engine::ops::recovery_setup(&api.node, &api.root, &q, custodians, b.threshold, wait_ms).await?)
}

/// Each custodian asked to prove its share now.
async fn recovery_check(State(api): State<Api>, UrlPath(q): UrlPath<String>) -> Reply {
    to_json(&cobox_engine::ops::recovery_check(&api.node, &api.root, &q).await?)
}

/// This custodian's share released to a request (the person compared its fingerprint).
async fn recovery_approve(State(api): State<Api>, bytes: axum::body::Bytes) -> Reply {
    let b: api::RecoveryApprove = body(&bytes)?;
    to_json(&cobox_engine::ops::recovery_approve(&api.node, &api.root, &b.code).await?)
}

async fn audits(State(api): State<Api>) -> Reply {
    to_json(&agreement_service::audits(&api.root, cobox_engine::now_ms())?)
}

async fn network(State(api): State<Api>) -> Reply {
    let root = api.root.clone();
    let node = api.node.clone();
    let r = tokio::task::spawn_blocking(move || cobox_engine::ops::network(&node, &root))
        .await
        .map_err(|e| cobox_engine::Error::Internal("the network report", e.to_string()))??;
    to_json(&r)
}

async fn stats(State(api): State<Api>) -> Reply {
    let mut used = std::collections::HashMap::new();
    for (id, h) in api.node.held() {
        if let Held::Seed(s) = h {
            used.insert(id, s.view().used);
        }
    }
    to_json(&agreement_service::stats(&api.root, cobox_engine::now_ms(), &|id| used.get(id).copied())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// A home with one space `s` (a file in its folder), its node, and the API with token `t`.
    async fn api() -> (tempfile::TempDir, tempfile::TempDir, Router) {
        let (home, folder) = (tempfile::tempdir().expect("home"), tempfile::tempdir().expect("folder"));
        std::fs::write(folder.path().join("a.txt"), b"hello").expect("a file");
        let h = Home::open(home.path()).expect("open home");
        h.create_space("s", folder.path()).expect("create space");
        let space = h.open_space("s").expect("open space");
        let cfg = cobox_engine::sync::net::NetConfig {
            bind: Some("127.0.0.1:0".parse().expect("addr")),
            no_relay: true,
            ..Default::default()
        };
        let node = Node::start(h.device_seed(), vec![space], &cfg).await.expect("node");
        drop(h);
        let api =
            Api { node: Arc::new(node), root: home.path().to_owned(), token_hash: blake3::hash(b"t"), daemon: None };
        (home, folder, router(api))
    }

    /// A request with the token (or without, when `token` is false); the status and the body.
    async fn call(app: &Router, method: &str, uri: &str, body: &str, token: bool) -> (StatusCode, Vec<u8>) {
        let mut req = axum::http::Request::builder().method(method).uri(uri);
        if token {
            req = req.header("authorization", "Bearer t");
        }
        let req = req.body(axum::body::Body::from(body.to_owned())).expect("request");
        let res = app.clone().oneshot(req).await.expect("an answer");
        let status = res.status();
        (status, axum::body::to_bytes(res.into_body(), 1 << 24).await.expect("body").to_vec())
    }

    fn read<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
    }

    /// The routes answer with the `api` types the CLI reads, refuse without the token, and
    /// answer bad requests with a `Failed` that says what was wrong.
    #[tokio::test]
    async fn routes_answer_the_api_types() {
        let (_home, _folder, app) = api().await;
        let (status, _) = call(&app, "GET", "/api/spaces", "", false).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let (status, body) = call(&app, "GET", "/api/spaces", "", true).await;
        assert_eq!(status, StatusCode::OK);
        let spaces: Vec<api::SpaceEntry> = read(&body);
        assert!(matches!(&spaces[..], [api::SpaceEntry::Member { name, .. }] if name == "s"), "{spaces:?}");

        let (status, body) = call(&app, "POST", "/api/spaces/s/target", r#"{"copies":3}"#, true).await;
        assert_eq!(status, StatusCode::OK);
        let set: api::TargetSet = read(&body);
        assert_eq!((set.name.as_str(), set.replicas_target), ("s", 3));

        // Progress streams as typed lines, the result last.
        let (status, body) = call(&app, "POST", "/api/spaces/s/scan?progress=1", "", true).await;
        assert_eq!(status, StatusCode::OK);
        let lines: Vec<api::Progressed<cobox_engine::ScanReport>> =
            body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(read).collect();
        let Some(api::Progressed::Result(scan)) = lines.last() else { panic!("no result last: {lines:?}") };
        assert_eq!(scan.added, 1, "a.txt");
        assert!(lines.iter().any(|l| matches!(l, api::Progressed::Start { .. })), "{lines:?}");

        let (status, body) = call(&app, "POST", "/api/spaces/s/gc", "", true).await;
        assert_eq!(status, StatusCode::OK);
        let _: cobox_engine::GcReport = read(&body);

        for (uri, body, says) in [
            ("/api/spaces/s/invites", r#"{"role":"owner"}"#, "use read, write or manage"),
            ("/api/spaces/s/sync", r#"{"peers":["not-a-peer"]}"#, "not-a-peer"),
            ("/api/spaces/s/restore", r#"{"dir":"relative/dir"}"#, "absolute"),
            ("/api/spaces/s/target", r#"{"copies":"three"}"#, "the request body"),
        ] {
            let (status, answer) = call(&app, "POST", uri, body, true).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            let failed: api::Failed = read(&answer);
            assert!(failed.error.contains(says) && failed.refusal.is_none(), "{uri}: {failed:?}");
        }
        let (status, answer) = call(&app, "GET", "/api/spaces/nope/status", "", true).await;
        assert!(status.is_client_error(), "{status}");
        let failed: api::Failed = read(&answer);
        assert!(failed.error.contains("nope"), "{failed:?}");
    }

    async fn answer(e: cobox_engine::Error) -> (StatusCode, Value) {
        let r = ApiError::from(e).into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    /// A peer's refusal is a gateway error with its kind in the body, so a client tells a full
    /// seeder or a refused invite from other failures without reading the words. Before: 400,
    /// as if the request were wrong, and only the words.
    #[tokio::test]
    async fn a_peers_refusal_answers_502_with_its_kind() {
        use cobox_engine::sync::proto::Refusal;
        let (status, body) = answer(cobox_engine::Error::SeederFull).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body["refusal"], "SeederFull", "{body}");
        let refused = cobox_engine::Error::PeerRefused {
            code: Refusal::InviteRefused,
            reason: "the invite was already used".into(),
        };
        let (status, body) = answer(refused).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body["refusal"], "InviteRefused", "{body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains("already used")), "{body}");
        // A request this side refuses stays a 400, with no refusal kind.
        let (status, body) = answer(cobox_engine::Error::Refused("no".into())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.get("refusal").is_none(), "{body}");
    }
}
