//! The `cobox/recovery/1` protocol over iroh: a dealer hands custodians their shares, asks
//! them to prove they still hold them, and a custodian releases its share to a recovering
//! device. One request per stream; the messages are `cobox_core::recovery`'s, and every
//! check is made by `crate::recovery` against the device the connection proved.

use super::shared::Shared;
use super::{net, net_err};
use crate::error::Error;
use crate::ids::DeviceId;
use cobox_core::recovery::{ALPN, Answer, Ask, MAX_REQUEST, MAX_RESPONSE};
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use std::sync::Arc;
use std::time::Duration;

/// How long either side waits for the other.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub(super) struct RecoveryHandler {
    pub(super) sh: Arc<Shared>,
}

impl std::fmt::Debug for RecoveryHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cobox recovery handler")
    }
}

impl ProtocolHandler for RecoveryHandler {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let peer = DeviceId(*conn.remote_id().as_bytes());
        let Some(_slot) = self.sh.inbound.admit(peer, super::MAX_INBOUND, super::MAX_INBOUND_PER_PEER) else {
            conn.close(2u32.into(), b"too many sessions at once");
            return Ok(());
        };
        let (mut send, mut recv) = conn.accept_bi().await?;
        let answer = match tokio::time::timeout(TIMEOUT, recv.read_to_end(MAX_REQUEST)).await {
            Ok(Ok(bytes)) => match Ask::decode(&bytes) {
                Ok(ask) => self.answer(peer, ask).await,
                Err(e) => Answer::Refused(e.to_string()),
            },
            Ok(Err(e)) => Answer::Refused(format!("reading the request: {e}")),
            Err(_) => Answer::Refused("no request within 30 s".into()),
        };
        if let Answer::Refused(why) = &answer {
            tracing::warn!(peer = %peer.short(), "recovery: refused a request from {}: {why}", peer.short());
        }
        if let Ok(bytes) = answer.encode() {
            let _ = send.write_all(&bytes).await;
        }
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
        Ok(())
    }
}

impl RecoveryHandler {
    async fn answer(&self, peer: DeviceId, ask: Ask) -> Answer {
        let Some(root) = self.sh.home.clone() else {
            return Answer::Refused("this device keeps no recovery shares".into());
        };
        let work = tokio::task::spawn_blocking(move || answer_here(&root, peer, ask)).await;
        match work {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => Answer::Refused(e.to_string()),
            Err(e) => Answer::Refused(format!("this device failed answering: {e}")),
        }
    }
}

/// Answer a request from `peer` with the files of the home at `root`.
fn answer_here(root: &std::path::Path, peer: DeviceId, ask: Ask) -> Result<Answer, Error> {
    match ask {
        Ask::Deposit { sealed } => {
            let held = crate::recovery::keep_deposit(root, &peer, &sealed)?;
            tracing::info!(
                "recovery: keeping share {} of {} of space {} ({:?}) for device {}",
                held.share,
                held.of,
                &held.space[..8],
                held.name,
                peer.short()
            );
            Ok(Answer::Held)
        }
        Ask::Prove { space, key, nonce } => {
            let (index, proof) = crate::recovery::prove(root, &space, &key, &nonce)?;
            Ok(Answer::Proof { index, proof })
        }
        Ask::Release { sealed } => {
            let taken = crate::recovery::take_release(root, &peer, &sealed)?;
            tracing::info!(
                "recovery of space {}: custodian {} released its share ({} of {} needed)",
                taken.space.short(),
                peer.short(),
                taken.have,
                taken.need
            );
            if let Some(invite) = &taken.invite {
                let r = crate::recovery::requests(root)?
                    .into_iter()
                    .find(|r| r.request.space == taken.space.0)
                    .ok_or_else(|| Error::NotFound("the recovery request is gone".into()))?;
                let home = crate::home::Home::held_here(root)?;
                home.join(invite, &r.path, None)?;
                crate::recovery::mark_joined(root, &taken.space)?;
                tracing::warn!(
                    "recovery of space {}: the key is rebuilt; joining as a manager, which takes effect once the waiting period is over",
                    taken.space.short()
                );
            }
            Ok(Answer::Taken { have: taken.have, need: taken.need })
        }
    }
}

/// Send one request to `peer` and read its answer.
pub(super) async fn ask(ep: &iroh::Endpoint, peer: iroh::EndpointAddr, req: &Ask) -> Result<Answer, Error> {
    let id = DeviceId(*peer.id.as_bytes());
    let bytes = req.encode().map_err(|e| Error::Refused(e.to_string()))?;
    let go = async {
        let conn = ep.connect(peer, ALPN).await.map_err(|e| super::dial_err(&id, e))?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(net_err)?;
        send.write_all(&bytes).await.map_err(net_err)?;
        send.finish().map_err(net)?;
        let bytes = recv.read_to_end(MAX_RESPONSE).await.map_err(net_err)?;
        conn.close(0u32.into(), b"done");
        Answer::decode(&bytes).map_err(|e| Error::Net(e.to_string()))
    };
    tokio::time::timeout(TIMEOUT, go)
        .await
        .map_err(|_| Error::Net(format!("device {} did not answer within 30 s", id.short())))?
}
