//! Operations as people and scripts ask for them, each written once with its policy (which
//! peers, how many rounds, how long to wait) and called by every front end: the CLI (in
//! process, or through the daemon's API), the HTTP API, the app and the daemon's schedule
//! (issue 34). Sync is the first here; the others move in as they are touched.

use crate::codes::PeerAddr;
use crate::error::Error;
use crate::home::Home;
use crate::ids::SpaceId;
use crate::sync::net::{Node, SyncStats, dial_addr};
use std::path::Path;
use std::time::Duration;

/// Sessions with one peer before a sync stops trying to converge (it stops at the first that
/// moves nothing, so an idle sync is one session).
pub const SYNC_ROUNDS: usize = 6;

/// How long a scheduled sync gives one peer: one that is off or stalls must not hold up the
/// next round. A sync a person asked for has no limit (a first sync of gigabytes over a slow
/// link takes what it takes, and the person can stop it).
pub const SCHEDULED_PEER_LIMIT: Duration = Duration::from_secs(120);

/// What a sync is asked for.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// The peers to sync with, addresses filled from the address book when none are given;
    /// empty: every peer met in the space.
    pub peers: Vec<PeerAddr>,
    /// The most one peer's sync may take (`None`: no limit).
    pub peer_limit: Option<Duration>,
}

impl SyncOptions {
    /// A sync a person or script asked for (`cobox sync`, the API, the app's "Sync now").
    pub fn asked(peers: Vec<PeerAddr>) -> Self {
        Self { peers, peer_limit: None }
    }

    /// The daemon's periodic sync with every known peer.
    pub fn scheduled() -> Self {
        Self { peers: Vec::new(), peer_limit: Some(SCHEDULED_PEER_LIMIT) }
    }
}

/// How the sync with one peer went.
#[derive(Debug)]
pub struct PeerSync {
    /// The peer, with the addresses dialed.
    pub peer: PeerAddr,
    /// What moved, or why it failed.
    pub result: Result<SyncStats, Error>,
}

impl PeerSync {
    /// Whether anything moved either way, or the peer's copy showed stale.
    pub fn moved(&self) -> bool {
        self.result.as_ref().is_ok_and(|st| {
            st.sent_blobs + st.received_blobs + st.changes_applied + st.ledger_new > 0 || st.stale.is_some()
        })
    }
}

/// Sync `space` with its peers, all at once (a peer that is off holds up no other), each until
/// a session moves nothing either way ([`SYNC_ROUNDS`] at most). A peer that answers is
/// remembered for the space with the addresses it answered at. One entry per peer, in order;
/// none when no peer is given or known.
pub async fn sync(node: &Node, root: &Path, space: &SpaceId, opts: &SyncOptions) -> Result<Vec<PeerSync>, Error> {
    let peers = if opts.peers.is_empty() {
        Home::peer_addrs_at(root, space)?
    } else {
        opts.peers.iter().cloned().map(|p| Home::with_known_addrs(root, p)).collect::<Result<_, _>>()?
    };
    let runs = peers.into_iter().map(|peer| async move {
        let run = async {
            let addr = dial_addr(&peer)?;
            node.sync_until_converged(space, addr, SYNC_ROUNDS).await
        };
        let result = match opts.peer_limit {
            None => run.await,
            Some(limit) => tokio::time::timeout(limit, run).await.unwrap_or_else(|_| {
                Err(Error::Net(format!(
                    "device {} did not finish syncing within {} s",
                    peer.device.short(),
                    limit.as_secs()
                )))
            }),
        };
        PeerSync { peer, result }
    });
    let out = futures_util::future::join_all(runs).await;
    for p in out.iter().filter(|p| p.result.is_ok() && !p.peer.addrs.is_empty()) {
        Home::remember_peer_at(root, space, &p.peer.device, &p.peer.addrs)?;
    }
    Ok(out)
}
