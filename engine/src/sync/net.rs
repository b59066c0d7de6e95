//! The iroh transport: the only networking code. One session per connection and space, run by
//! both sides over one bidirectional QUIC stream (see `proto` for the message order).

use super::proto::{ALPN, Msg, check_proof, prove};
use super::reconcile::Reconciler;
use crate::error::Error;
use crate::ids::{BlobId, DeviceId, SpaceId};
use crate::space::Space;
use iroh::endpoint::{Connection, RecvStream, SendStream, presets};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, EndpointAddr, RelayMode, SecretKey, TransportAddr};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// A peer that stalls longer than this between messages is dropped.
const STALL: Duration = Duration::from_secs(60);

fn net(e: impl std::fmt::Display) -> Error {
    Error::Net(e.to_string())
}

/// Where the endpoint listens and which relays it uses.
#[derive(Debug, Clone, Default)]
pub struct NetConfig {
    /// Local socket to bind (default: any address, a random port).
    pub bind: Option<SocketAddr>,
    /// Use no relay servers (direct addresses only).
    pub no_relay: bool,
    /// A cooperative's own iroh-relay server.
    pub relay: Option<String>,
    /// Extra trusted certificates (DER) for relay servers, e.g. a cooperative relay's own
    /// self-signed certificate.
    pub relay_ca_der: Vec<Vec<u8>>,
}

/// Bytes and blobs moved by one session.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct SyncStats {
    /// Blobs sent to the peer.
    pub sent_blobs: u64,
    /// Bytes of blobs sent.
    pub sent_bytes: u64,
    /// Blobs received and stored.
    pub received_blobs: u64,
    /// Bytes of blobs received.
    pub received_bytes: u64,
    /// All bytes sent and received, protocol messages included.
    pub wire_bytes: u64,
    /// Manifest changes newly applied.
    pub changes_applied: u64,
}

/// Parse `ID@IP:PORT[,IP:PORT...]` (or a bare id, for relays and discovery).
pub fn parse_peer(s: &str) -> Result<EndpointAddr, Error> {
    let (id, addrs) = s.split_once('@').unwrap_or((s, ""));
    let device: DeviceId = id.trim().parse().map_err(|e| Error::Refused(format!("peer {s:?}: {e}")))?;
    let key = iroh::PublicKey::from_bytes(device.as_bytes()).map_err(|e| Error::Refused(format!("peer {s:?}: {e}")))?;
    let mut out = Vec::new();
    for a in addrs.split(',').filter(|a| !a.trim().is_empty()) {
        let sock: SocketAddr =
            a.trim().parse().map_err(|_| Error::Refused(format!("peer {s:?}: {a:?} is not an IP:PORT address")))?;
        out.push(TransportAddr::Ip(sock));
    }
    Ok(EndpointAddr::from_parts(key, out))
}

/// Bind an endpoint whose identity is this device's key.
pub async fn endpoint(device_seed: [u8; 32], cfg: &NetConfig) -> Result<Endpoint, Error> {
    let mut b =
        Endpoint::builder(presets::Minimal).secret_key(SecretKey::from_bytes(&device_seed)).alpns(vec![ALPN.to_vec()]);
    b = if cfg.no_relay {
        b.relay_mode(RelayMode::Disabled)
    } else if let Some(url) = &cfg.relay {
        let url: iroh::RelayUrl = url.parse().map_err(|e| Error::Refused(format!("relay URL {url:?}: {e}")))?;
        b.relay_mode(RelayMode::custom([url]))
    } else {
        b.relay_mode(RelayMode::Default)
    };
    if !cfg.relay_ca_der.is_empty() {
        let roots = cfg.relay_ca_der.iter().map(|d| rustls_pki_types::CertificateDer::from(d.clone()));
        b = b.ca_tls_config(iroh::tls::CaTlsConfig::embedded().with_extra_roots(roots));
    }
    if let Some(addr) = cfg.bind {
        b = b.bind_addr(addr).map_err(net)?;
    }
    b.bind().await.map_err(net)
}

/// Framed messages over one QUIC stream, counting bytes.
struct Framed {
    send: SendStream,
    recv: RecvStream,
    bytes: u64,
    /// A message read ahead and not yet handled.
    pending: Option<Msg>,
}

impl Framed {
    async fn send(&mut self, m: &Msg) -> Result<(), Error> {
        let f = m.frame();
        self.bytes += f.len() as u64;
        self.send.write_all(&f).await.map_err(net)
    }

    async fn recv(&mut self) -> Result<Msg, Error> {
        if let Some(m) = self.pending.take() {
            return Ok(m);
        }
        let mut h = [0u8; 4];
        tokio::time::timeout(STALL, self.recv.read_exact(&mut h))
            .await
            .map_err(|_| net("peer stalled"))?
            .map_err(net)?;
        let n = Msg::check_len(h).map_err(|e| Error::Refused(e.to_string()))?;
        let mut body = vec![0u8; n];
        tokio::time::timeout(STALL, self.recv.read_exact(&mut body))
            .await
            .map_err(|_| net("peer stalled"))?
            .map_err(net)?;
        self.bytes += 4 + n as u64;
        match Msg::decode(&body).map_err(|e| Error::Refused(e.to_string()))? {
            Msg::Refused { reason } => Err(Error::Refused(format!("the peer refused: {reason}"))),
            m => Ok(m),
        }
    }

    async fn refuse(&mut self, reason: String) -> Error {
        let _ = self.send(&Msg::Refused { reason: reason.clone() }).await;
        let _ = self.send.finish();
        Error::Refused(reason)
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Role {
    Dialer,
    Listener,
}

/// Membership proofs, reconciliation and transfer. `peer_nonce` is the nonce from the peer's Hello.
async fn session(
    space: &Arc<Mutex<Space>>,
    io: &mut Framed,
    role: Role,
    me: DeviceId,
    peer: DeviceId,
    nonce: [u8; 32],
    peer_nonce: [u8; 32],
) -> Result<SyncStats, Error> {
    let mut stats = SyncStats::default();
    let space_id = space.lock().await.info().id;
    {
        let s = space.lock().await;
        io.send(&prove(s.space_key(), &space_id, &me, &peer, &peer_nonce)).await?;
    }
    match io.recv().await? {
        Msg::Proof { sig } if check_proof(&space_id, &peer, &me, &nonce, &sig) => {}
        _ => {
            return Err(io
                .refuse(format!("device {} did not prove membership of space {}", peer.short(), space_id.short()))
                .await);
        }
    }
    let ids = space.lock().await.blob_ids()?;
    let mut rec = Reconciler::new(ids);
    if role == Role::Dialer {
        io.send(&Msg::Reconcile(rec.start())).await?;
    }
    loop {
        let Msg::Reconcile(items) = io.recv().await? else {
            return Err(io.refuse("expected a reconciliation step".into()).await);
        };
        if items.is_empty() {
            break;
        }
        let out = rec.respond(&items);
        let done = out.is_empty();
        io.send(&Msg::Reconcile(out)).await?;
        if done {
            break;
        }
    }
    let want: Vec<BlobId> = rec.want.iter().copied().collect();
    if role == Role::Dialer {
        io.send(&Msg::Want(want.clone())).await?;
        receive_until(space, io, &want, &mut stats, false).await?;
        let Msg::Want(theirs) = io.recv().await? else { return Err(io.refuse("expected a want list".into()).await) };
        send_blobs(space, io, &theirs, &mut stats).await?;
        io.send(&Msg::Done).await?;
        let _ = io.send.finish();
        // Closing now could drop the Done in flight: wait until the listener ends its side,
        // which it does once it has read everything.
        let _ = tokio::time::timeout(STALL, io.recv.read_to_end(1 << 16)).await;
    } else {
        let Msg::Want(theirs) = io.recv().await? else { return Err(io.refuse("expected a want list".into()).await) };
        send_blobs(space, io, &theirs, &mut stats).await?;
        io.send(&Msg::Want(want.clone())).await?;
        receive_until(space, io, &want, &mut stats, true).await?;
    }
    let _ = io.send.finish();
    stats.wire_bytes = io.bytes;
    Ok(stats)
}

async fn send_blobs(
    space: &Arc<Mutex<Space>>,
    io: &mut Framed,
    ids: &[BlobId],
    stats: &mut SyncStats,
) -> Result<(), Error> {
    // Blobs are read on a blocking thread a few dozen ahead of the network.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(BlobId, Vec<u8>)>(32);
    let (s, ids) = (space.clone(), ids.to_vec());
    let reader = tokio::task::spawn_blocking(move || {
        for id in ids {
            // Asked for something we do not hold (or hold damaged): skip it, the peer keeps wanting it.
            let Ok(data) = s.blocking_lock().read_blob(&id) else { continue };
            if tx.blocking_send((id, data)).is_err() {
                break;
            }
        }
    });
    while let Some((id, data)) = rx.recv().await {
        stats.sent_blobs += 1;
        stats.sent_bytes += data.len() as u64;
        if let Err(e) = io.send(&Msg::Blob { id, data }).await {
            drop(rx);
            let _ = reader.await;
            return Err(e);
        }
    }
    let _ = reader.await;
    Ok(())
}

/// Receive blobs until the peer's next Want (dialer) or Done (listener). Only blobs we asked
/// for are accepted; a blocking worker checks each against its id and stores it while the next
/// frames arrive.
async fn receive_until(
    space: &Arc<Mutex<Space>>,
    io: &mut Framed,
    wanted: &[BlobId],
    stats: &mut SyncStats,
    until_done: bool,
) -> Result<(), Error> {
    let wanted: std::collections::HashSet<BlobId> = wanted.iter().copied().collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(BlobId, Vec<u8>)>(32);
    let s = space.clone();
    let store = tokio::task::spawn_blocking(move || -> Result<(), Error> {
        while let Some((id, data)) = rx.blocking_recv() {
            s.blocking_lock().receive_blob(&id, &data)?;
        }
        Ok(())
    });
    let net_result = loop {
        match io.recv().await {
            Ok(Msg::Blob { id, data }) => {
                if !wanted.contains(&id) {
                    break Err(format!("unrequested blob {id}"));
                }
                stats.received_blobs += 1;
                stats.received_bytes += data.len() as u64;
                if tx.send((id, data)).await.is_err() {
                    break Ok(()); // the worker stopped on a bad blob; its error is reported below
                }
            }
            Ok(Msg::Done) if until_done => break Ok(()),
            Ok(m @ Msg::Want(_)) if !until_done => {
                // The peer's own Want ends our transfer; the caller reads it next.
                io.pending = Some(m);
                break Ok(());
            }
            Ok(_) => break Err("unexpected message during transfer".to_owned()),
            Err(e) => {
                drop(tx);
                let _ = store.await;
                // Keep what arrived: a broken connection resumes without re-sending it.
                let _ = space.lock().await.flush_received();
                return Err(e);
            }
        }
    };
    drop(tx);
    let stored = store.await.map_err(|e| Error::Net(e.to_string()))?;
    if let Err(e) = stored {
        return Err(io.refuse(e.to_string()).await);
    }
    if let Err(why) = net_result {
        return Err(io.refuse(why).await);
    }
    Ok(())
}

/// Log sink for the daemon (refusals, sessions); the CLI prints to stderr.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// A running device on the network: its endpoint, its open spaces, and the accept loop.
pub struct Node {
    router: Router,
    spaces: Arc<HashMap<SpaceId, Arc<Mutex<Space>>>>,
    me: DeviceId,
    log: Log,
}

#[derive(Clone)]
struct Handler {
    spaces: Arc<HashMap<SpaceId, Arc<Mutex<Space>>>>,
    me: DeviceId,
    log: Log,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cobox sync handler")
    }
}

impl ProtocolHandler for Handler {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let peer = DeviceId(*conn.remote_id().as_bytes());
        let (send, recv) = conn.accept_bi().await?;
        let mut io = Framed { send, recv, bytes: 0, pending: None };
        match self.serve(&mut io, peer).await {
            Ok((space, stats)) => {
                (self.log)(&format!(
                    "synced space {} with {}: received {} blobs ({} bytes), sent {} blobs ({} bytes)",
                    space.short(),
                    peer.short(),
                    stats.received_blobs,
                    stats.received_bytes,
                    stats.sent_blobs,
                    stats.sent_bytes
                ));
                // Let the dialer read the last frames and close; do not wait on it forever.
                let _ = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
            }
            Err(e) => {
                (self.log)(&format!("sync with {} refused or failed: {e}", peer.short()));
                // Give the peer two seconds to read the refusal and hang up, then end the
                // connection ourselves: garbage and stalled sessions hold nothing for long.
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
                conn.close(1u32.into(), b"refused");
            }
        }
        Ok(())
    }
}

impl Handler {
    async fn serve(&self, io: &mut Framed, peer: DeviceId) -> Result<(SpaceId, SyncStats), Error> {
        let Msg::Hello { space, device, nonce: peer_nonce } = io.recv().await? else {
            return Err(io.refuse("expected Hello".into()).await);
        };
        if device != peer {
            return Err(io.refuse("the Hello names another device than the connection".into()).await);
        }
        let Some(s) = self.spaces.get(&space).cloned() else {
            return Err(io.refuse(format!("this device does not hold space {}", space.short())).await);
        };
        let mut nonce = [0u8; 32];
        crate::random_bytes(&mut nonce);
        io.send(&Msg::Hello { space, device: self.me, nonce }).await?;
        // Record local edits before telling the peer what we hold.
        s.lock().await.scan(&crate::NoProgress)?;
        let mut stats = session(&s, io, Role::Listener, self.me, peer, nonce, peer_nonce).await?;
        let (applied, m) = s.lock().await.apply_and_materialize()?;
        stats.changes_applied = applied as u64;
        if m.written + m.deleted > 0 || !m.waiting.is_empty() || !m.refused.is_empty() || !m.conflicts.is_empty() {
            (self.log)(&format!(
                "space {}: wrote {}, deleted {}, waiting for {:?}, refused {:?}, conflict copies {:?}",
                space.short(),
                m.written,
                m.deleted,
                m.waiting,
                m.refused,
                m.conflicts
            ));
        }
        Ok((space, stats))
    }
}

impl Node {
    /// Bind the endpoint and start accepting syncs for `spaces`.
    pub async fn start(device_seed: [u8; 32], spaces: Vec<Space>, cfg: &NetConfig, log: Log) -> Result<Self, Error> {
        let ep = endpoint(device_seed, cfg).await?;
        let me = DeviceId(*ep.id().as_bytes());
        let spaces: Arc<HashMap<SpaceId, Arc<Mutex<Space>>>> =
            Arc::new(spaces.into_iter().map(|s| (s.info().id, Arc::new(Mutex::new(s)))).collect());
        let handler = Handler { spaces: spaces.clone(), me, log: log.clone() };
        let router = Router::builder(ep).accept(ALPN, handler).spawn();
        Ok(Self { router, spaces, me, log })
    }

    /// This device's id.
    pub fn device(&self) -> DeviceId {
        self.me
    }

    /// The direct addresses this endpoint is bound to.
    pub fn bound(&self) -> Vec<SocketAddr> {
        self.router.endpoint().bound_sockets()
    }

    /// `ID@IP:PORT,...` for others to dial (unspecified IPs are shown as loopback).
    pub fn addr_string(&self) -> String {
        let addrs: Vec<String> = self
            .bound()
            .into_iter()
            .map(|mut a| {
                if a.ip().is_unspecified() {
                    a.set_ip(if a.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
                }
                a.to_string()
            })
            .collect();
        format!("{}@{}", self.me, addrs.join(","))
    }

    /// An open space.
    pub fn space(&self, id: &SpaceId) -> Option<Arc<Mutex<Space>>> {
        self.spaces.get(id).cloned()
    }

    /// One sync session with `peer` for a space: scan, reconcile, transfer, apply, materialise.
    pub async fn sync_once(&self, space: &SpaceId, peer: EndpointAddr) -> Result<SyncStats, Error> {
        let s = self.space(space).ok_or_else(|| Error::SpaceNotFound(space.to_string()))?;
        let peer_id = DeviceId(*peer.id.as_bytes());
        let conn = self.router.endpoint().connect(peer, ALPN).await.map_err(net)?;
        let (send, recv) = conn.open_bi().await.map_err(net)?;
        let mut io = Framed { send, recv, bytes: 0, pending: None };
        s.lock().await.scan(&crate::NoProgress)?;
        let mut nonce = [0u8; 32];
        crate::random_bytes(&mut nonce);
        io.send(&Msg::Hello { space: *space, device: self.me, nonce }).await?;
        let Msg::Hello { space: theirs, device, nonce: peer_nonce } = io.recv().await? else {
            return Err(io.refuse("expected Hello".into()).await);
        };
        if theirs != *space || device != peer_id {
            return Err(io.refuse("the peer answered for another space or device".into()).await);
        }
        let result = session(&s, &mut io, Role::Dialer, self.me, peer_id, nonce, peer_nonce).await;
        conn.close(0u32.into(), b"done");
        let mut stats = result?;
        let (applied, _) = s.lock().await.apply_and_materialize()?;
        stats.changes_applied = applied as u64;
        (self.log)(&format!(
            "synced with {}: received {} blobs ({} bytes), sent {} blobs ({} bytes)",
            peer_id.short(),
            stats.received_blobs,
            stats.received_bytes,
            stats.sent_blobs,
            stats.sent_bytes
        ));
        Ok(stats)
    }

    /// Sync until a session moves nothing either way (at most `rounds` sessions).
    pub async fn sync_until_converged(
        &self,
        space: &SpaceId,
        peer: EndpointAddr,
        rounds: usize,
    ) -> Result<SyncStats, Error> {
        let mut total = SyncStats::default();
        for _ in 0..rounds {
            let s = self.sync_once(space, peer.clone()).await?;
            total.sent_blobs += s.sent_blobs;
            total.sent_bytes += s.sent_bytes;
            total.received_blobs += s.received_blobs;
            total.received_bytes += s.received_bytes;
            total.wire_bytes += s.wire_bytes;
            total.changes_applied += s.changes_applied;
            if s.sent_blobs == 0 && s.received_blobs == 0 {
                return Ok(total);
            }
        }
        Err(Error::Net(format!("not converged after {rounds} sync rounds; the peer keeps changing")))
    }

    /// Close connections and the endpoint. A graceful close waits for peers to acknowledge; a
    /// dead peer never does, so give up after a few seconds.
    pub async fn shutdown(self) {
        let _ = tokio::time::timeout(Duration::from_secs(3), self.router.shutdown()).await;
    }
}
