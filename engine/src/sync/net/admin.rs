//! The `cobox/admin/1` protocol over iroh: a seeder answers its paired administrators (what it
//! holds, its disk, its policy) and takes a new policy from them; every request, answered or
//! refused, goes to its log. One request per stream; the messages are `cobox_core::admin`'s.

use super::held::Held;
use super::shared::Shared;
use super::{net, net_err};
use crate::admin::{
    ALPN, AgreementLine, AuditLine, Event, HeldSpace, MAX_EVENTS, MAX_REQUEST, MAX_RESPONSE, Policy, Report, Request,
    Response,
};
use crate::error::Error;
use crate::ids::DeviceId;
use cobox_agreements::State;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use std::sync::Arc;
use std::time::Duration;

/// How long an administrator waits for an answer, and a seeder for a request.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub(super) struct AdminHandler {
    pub(super) sh: Arc<Shared>,
}

impl std::fmt::Debug for AdminHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cobox admin handler")
    }
}

/// Keep an event in a bounded list, newest last.
pub(super) fn push_event(list: &std::sync::Mutex<std::collections::VecDeque<Event>>, text: String) {
    let mut l = list.lock().unwrap_or_else(|p| p.into_inner());
    l.push_back(Event { at_ms: crate::now_ms(), text });
    while l.len() > MAX_EVENTS {
        l.pop_front();
    }
}

impl ProtocolHandler for AdminHandler {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let peer = DeviceId(*conn.remote_id().as_bytes());
        let Some(_slot) = self.sh.inbound.admit(peer, super::MAX_INBOUND, super::MAX_INBOUND_PER_PEER) else {
            conn.close(2u32.into(), b"too many sessions at once");
            return Ok(());
        };
        let (mut send, mut recv) = conn.accept_bi().await?;
        let answer = match tokio::time::timeout(ADMIN_TIMEOUT, recv.read_to_end(MAX_REQUEST)).await {
            Ok(Ok(bytes)) => match Request::decode(&bytes) {
                Ok(req) => self.answer(peer, req).await,
                Err(e) => Response::Refused(e.to_string()),
            },
            Ok(Err(e)) => Response::Refused(format!("reading the request: {e}")),
            Err(_) => Response::Refused("no request within 30 s".into()),
        };
        if let Response::Refused(why) = &answer {
            tracing::warn!(peer = %peer.short(), "admin: refused an admin request from {}: {why}", peer.short());
            push_event(&self.sh.admin_log, format!("refused an admin request from {}: {why}", peer.short()));
        }
        let _ = send.write_all(&answer.encode()).await;
        let _ = send.finish();
        // Let the administrator read the answer and hang up, but not wait forever.
        let _ = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
        Ok(())
    }
}

impl AdminHandler {
    /// Log a remote action (or refusal) and keep it for reports.
    fn act(&self, text: String) {
        tracing::info!("admin: {text}");
        push_event(&self.sh.admin_log, text);
    }

    async fn answer(&self, peer: DeviceId, req: Request) -> Response {
        let Some(root) = self.sh.home.clone() else {
            return Response::Refused("this device takes no administration".into());
        };
        let who = peer.short();
        match req {
            Request::Pair { secret, name } => {
                let name: String = crate::util::printable(&name).chars().take(64).collect();
                match crate::seeder_admin::redeem_pairing(&root, &secret, peer, &name, crate::now_ms()) {
                    Ok(()) => {
                        self.act(format!("paired {who} ({name}) as an administrator"));
                        Response::Paired
                    }
                    Err(e) => Response::Refused(e.to_string()),
                }
            }
            req => {
                match crate::seeder_admin::is_admin(&root, &peer) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Response::Refused(format!(
                            "{who} is not an administrator of this seeder: pair with a code from its operator"
                        ));
                    }
                    Err(e) => return Response::Refused(format!("reading the administrators: {e}")),
                }
                match req {
                    Request::SetPolicy(p) => self.set_policy(&root, peer, p),
                    _ => match report(&self.sh).await {
                        Ok(r) => {
                            self.act(format!("{who} read the report"));
                            Response::Report(r)
                        }
                        Err(e) => Response::Refused(format!("making the report: {e}")),
                    },
                }
            }
        }
    }

    fn set_policy(&self, root: &std::path::Path, peer: DeviceId, mut p: Policy) -> Response {
        // An administrator's name goes into signed notes every owner reads: checked as the
        // command line checks it.
        match crate::seeder_admin::parse_operator(&p.operator) {
            Ok(o) => p.operator = o,
            Err(e) => return Response::Refused(e),
        }
        if let Err(e) = crate::seeder_admin::set_policy(root, &p) {
            return Response::Refused(format!("recording the policy: {e}"));
        }
        {
            let mut live = self.sh.policy.lock().unwrap_or_else(|e| e.into_inner());
            live.owners = p.seed_for.clone();
            live.max_quota = p.max_quota;
            live.operator = p.operator.clone();
        }
        let owners: Vec<String> = p.seed_for.iter().map(|d| d.short()).collect();
        self.act(format!(
            "{} set the policy: seed for [{}], largest quota {}",
            peer.short(),
            owners.join(", "),
            crate::units::format_bytes(p.max_quota)
        ));
        Response::Policy(p)
    }
}

/// What this node holds as a seeder, its disk and its policy.
pub(super) async fn report(sh: &Shared) -> Result<Report, Error> {
    let now = crate::now_ms();
    let seeds: Vec<Held> = sh
        .held
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .filter(|h| matches!(h, Held::Seed(_)))
        .cloned()
        .collect();
    let mut spaces = Vec::new();
    let mut lost = Vec::new();
    for h in seeds {
        let Held::Seed(s) = &h else { continue };
        let (space, bytes, blobs, ledger, found) = s
            .run(|s| -> Result<_, Error> {
                let (blobs, _) = s.store.usage()?;
                Ok((s.space(), s.used(), blobs, crate::replica::Replica::ledger(s), s.lost()?))
            })
            .await??;
        {
            for l in found {
                lost.push(Event {
                    at_ms: l.at_ms,
                    text: format!(
                        "space {}: {} blob(s), {}, lost on this disk (missing or corrupt); dropped so owners send them again",
                        space.short(),
                        l.blobs,
                        crate::units::format_bytes(l.bytes)
                    ),
                });
            }
        }
        let view = tokio::task::spawn_blocking(move || ledger.view(now)).await.map_err(net)??;
        let mine: Vec<_> = view.agreements.iter().filter(|a| a.agreement.seeder == sh.me.0).collect();
        let last_audit = mine.iter().flat_map(|a| a.audits.iter()).max_by_key(|a| a.time_ms).map(|a| AuditLine {
            at_ms: a.time_ms,
            challenged: a.challenged,
            passed: a.passed,
        });
        let agreements = mine
            .iter()
            .filter(|a| a.state != State::Invalid)
            .map(|a| AgreementLine {
                id: a.id.to_string(),
                owner: DeviceId(a.agreement.owner),
                state: a.state,
                quota: a.agreement.quota,
                expires_ms: a.agreement.end_ms,
            })
            .collect();
        spaces.push(HeldSpace { space, bytes, blobs, agreements, last_audit });
    }
    spaces.sort_by_key(|s| s.space);
    let policy = {
        let p = sh.policy.lock().unwrap_or_else(|e| e.into_inner());
        Policy { seed_for: p.owners.clone(), max_quota: p.max_quota, operator: p.operator.clone() }
    };
    let mut errors: Vec<Event> = sh
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .filter_map(|p| {
            let e = p.error.as_ref()?;
            Some(Event { at_ms: p.last_ms, text: format!("session with {}: {e}", &p.device[..8.min(p.device.len())]) })
        })
        .collect();
    errors.extend(lost);
    errors.sort_by_key(|e| e.at_ms);
    let disk_free = sh.home.as_deref().and_then(crate::util::disk_free);
    Ok(Report {
        device: sh.me,
        held_bytes: spaces.iter().map(|s| s.bytes).sum(),
        disk_free,
        owners: crate::admin::owner_use(&spaces),
        spaces,
        policy,
        errors,
        actions: sh.admin_log.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect(),
        full_since_ms: *sh.full_since.lock().unwrap_or_else(|p| p.into_inner()),
    })
}

/// Send one request to a seeder and read its answer.
pub(super) async fn ask(ep: &iroh::Endpoint, peer: iroh::EndpointAddr, req: &Request) -> Result<Response, Error> {
    let id = DeviceId(*peer.id.as_bytes());
    let go = async {
        let conn = ep.connect(peer, ALPN).await.map_err(|e| super::dial_err(&id, e))?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(net_err)?;
        send.write_all(&req.encode()).await.map_err(net_err)?;
        send.finish().map_err(net)?;
        let bytes = recv.read_to_end(MAX_RESPONSE).await.map_err(net_err)?;
        conn.close(0u32.into(), b"done");
        Response::decode(&bytes).map_err(|e| Error::Net(e.to_string()))
    };
    let r = tokio::time::timeout(ADMIN_TIMEOUT, go)
        .await
        .map_err(|_| Error::Net(format!("seeder {} did not answer within 30 s", id.short())))?;
    if let Err(e) = &r {
        tracing::warn!(peer = %id.short(), "asking seeder {}: {e}", id.short());
    }
    r
}
