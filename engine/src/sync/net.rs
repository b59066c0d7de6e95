//! The iroh transport: the only networking code. One session per connection and space, run by
//! both sides over one bidirectional QUIC stream (see `proto` for the message order).

use super::proto::{ALPN, MAX_STEP_IDS, Msg, Purpose, Role, check_proof, prove};
use super::reconcile::{Item, Reconciler};
use crate::error::Error;
use crate::ids::{BlobId, DeviceId, SpaceId};
use crate::ledger::LedgerFile;
use crate::seed::Seed;
use crate::space::Space;
use cobox_agreements::{AgreementId, AuditRecord, Entry, LedgerView, State};
use ed25519_dalek::SigningKey;
pub use iroh::EndpointAddr;
use iroh::endpoint::{Connection, RecvStream, SendStream, presets};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, RelayMode, SecretKey, TransportAddr};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// A peer that stalls longer than this between messages is dropped.
const STALL: Duration = Duration::from_secs(60);
/// Silence after which a connection's peer counts as gone.
pub const IDLE: Duration = Duration::from_secs(12);

fn net(e: impl std::fmt::Display) -> Error {
    Error::Net(e.to_string())
}

/// A network error with its causes: noq says only "connection lost" and keeps the reason
/// (a timeout, the peer's close code, a transport error) in its source.
fn net_err(e: impl std::error::Error) -> Error {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    Error::Net(msg)
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
    /// Announce this device and find peers on the local network by mDNS, so devices on one LAN
    /// reach each other by id alone, with no internet.
    pub lan_discovery: bool,
    /// Congestion control: by default Cubic on local paths, BBRv3 on long ones (`congestion`).
    pub congestion: super::congestion::Congestion,
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
    /// Blobs a seeder lacks that were not pushed because it holds no active agreement.
    pub not_pushed: u64,
    /// Milliseconds from dialing to the end of the transfer (handshake, reconciliation, blobs).
    pub session_ms: u64,
    /// Milliseconds applying received changes and writing the folder afterwards.
    pub apply_ms: u64,
}

/// Parse `ID@ADDR[,ADDR...]`, each ADDR an `IP:PORT` or a relay URL (`https://…`), or a bare id
/// (found on the LAN by mDNS).
pub fn parse_peer(s: &str) -> Result<EndpointAddr, Error> {
    let (id, addrs) = s.split_once('@').unwrap_or((s, ""));
    let device: DeviceId = id.trim().parse().map_err(|e| Error::Refused(format!("peer {s:?}: {e}")))?;
    let key = iroh::PublicKey::from_bytes(device.as_bytes()).map_err(|e| Error::Refused(format!("peer {s:?}: {e}")))?;
    let mut out = Vec::new();
    for a in addrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        if a.starts_with("http://") || a.starts_with("https://") {
            let url: iroh::RelayUrl = a.parse().map_err(|e| Error::Refused(format!("peer {s:?}: relay {a:?}: {e}")))?;
            out.push(TransportAddr::Relay(url));
            continue;
        }
        let sock: SocketAddr = a
            .parse()
            .map_err(|_| Error::Refused(format!("peer {s:?}: {a:?} is neither an IP:PORT address nor a relay URL")))?;
        out.push(TransportAddr::Ip(sock));
    }
    Ok(EndpointAddr::from_parts(key, out))
}

/// Bind an endpoint whose identity is this device's key.
pub async fn endpoint(device_seed: [u8; 32], cfg: &NetConfig) -> Result<Endpoint, Error> {
    // A peer that vanishes (power cut, network gone) is noticed after IDLE with no packet;
    // keep-alives every third of it keep a quiet but live connection open.
    // Flow-control windows stay at noq's defaults (1.25 MB per stream): larger ones break
    // off (see Writer), and 1 MiB made loopback syncs slower and less even (3.2-5.2 s against
    // 3.2-3.9 s, docs/benchmarks.md). Transfers use several streams (lanes) instead.
    let transport = iroh::endpoint::QuicTransportConfig::builder()
        .congestion_controller_factory(cfg.congestion.factory())
        .keep_alive_interval(IDLE / 3)
        .default_path_keep_alive_interval(IDLE / 3)
        .default_path_max_idle_timeout(IDLE)
        .max_idle_timeout(IDLE.try_into().ok())
        // Lanes are the only unidirectional streams: allowing no more bounds what a peer can
        // make this side buffer on them to MAX_LANES windows.
        .max_concurrent_uni_streams(iroh::endpoint::VarInt::from_u32(u32::from(super::proto::MAX_LANES)))
        .build();
    let mut b = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&device_seed))
        .alpns(vec![ALPN.to_vec()])
        .transport_config(transport);
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
        b = b.bind_addr(addr).map_err(net_err)?;
    }
    let ep = b.bind().await.map_err(net_err)?;
    if cfg.lan_discovery {
        // A network without multicast only loses LAN discovery; addresses and relays still work.
        match iroh_mdns_address_lookup::MdnsAddressLookup::builder().service_name("cobox").build(ep.id()) {
            Ok(mdns) => match ep.address_lookup() {
                Ok(services) => services.add(mdns),
                Err(e) => eprintln!("LAN discovery is off: {e}"),
            },
            Err(e) => eprintln!("LAN discovery is off: {e}"),
        }
    }
    Ok(ep)
}

/// Bytes moved by a node since it started, all sessions together (for rate plots).
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes sent.
    pub sent: std::sync::atomic::AtomicU64,
    /// Bytes received.
    pub received: std::sync::atomic::AtomicU64,
}

/// A peer this node had a session with.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PeerSeen {
    /// The peer's device id.
    pub device: String,
    /// When the last session ended (ms since the epoch).
    pub last_ms: i64,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Frames out on one QUIC stream, counting bytes.
///
/// Small blobs are gathered into writes of [`GATHER`] bytes. noq-proto 1.4.0 fails a connection
/// ("too many gaps in stream buffer") when a stream holds over 1,024 received packets that it
/// cannot merge, and it never merges well-filled ones, however small. Written one by one,
/// small blobs left a sender that reads them from disk as small packets; a receiver that paused
/// reading for a moment (planning 10,000 new files) then held thousands, and a first sync of a
/// folder of 10,000 small files failed every time. Gathered, they go out as full packets, and a
/// 1.25 MB window holds ~1,090 of those: too few for noq to compact (it does at 2,048 pieces, or
/// when packets are mostly empty). quinn fixed the merging upstream (quinn-rs/quinn#2814); noq
/// 1.4.0 does not have it. The wire format is unchanged: only how writes are grouped.
struct Writer {
    send: SendStream,
    traffic: Arc<Traffic>,
    bytes: u64,
    /// Small blob frames not yet written.
    gathered: Vec<u8>,
}

/// Small blob frames are written together once they reach this many bytes.
const GATHER: usize = 64 << 10;

impl Writer {
    fn new(send: SendStream, traffic: Arc<Traffic>) -> Self {
        Self { send, traffic, bytes: 0, gathered: Vec::new() }
    }

    /// Send a message now, after any gathered blobs.
    async fn send(&mut self, m: &Msg) -> Result<(), Error> {
        let f = m.frame();
        self.count_sent(f.len());
        self.flush().await?;
        self.send.write_all(&f).await.map_err(net_err)
    }

    /// Send one blob. A large one goes out as it is, without being copied into a message; a
    /// small one is gathered with the next, and written with them or before the next message.
    async fn send_blob(&mut self, id: &BlobId, data: Vec<u8>) -> Result<(), Error> {
        let head = super::proto::blob_head(id, data.len());
        self.count_sent(head.len() + data.len());
        if head.len() + data.len() < GATHER {
            self.gathered.extend_from_slice(&head);
            self.gathered.extend_from_slice(&data);
            return if self.gathered.len() >= GATHER { self.flush().await } else { Ok(()) };
        }
        self.flush().await?;
        self.send.write_all(&head).await.map_err(net_err)?;
        self.send.write_chunk(bytes::Bytes::from(data)).await.map_err(net_err)
    }

    /// Write the gathered blobs.
    async fn flush(&mut self) -> Result<(), Error> {
        if self.gathered.is_empty() {
            return Ok(());
        }
        let out = std::mem::replace(&mut self.gathered, Vec::with_capacity(GATHER + (GATHER >> 2)));
        self.send.write_chunk(bytes::Bytes::from(out)).await.map_err(net_err)
    }

    /// Write what is gathered and end the stream.
    async fn finish(&mut self) {
        let _ = self.flush().await;
        let _ = self.send.finish();
    }

    fn count_sent(&mut self, n: usize) {
        self.bytes += n as u64;
        self.traffic.sent.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Frames in from one QUIC stream, counting bytes.
struct Reader {
    recv: RecvStream,
    traffic: Arc<Traffic>,
    bytes: u64,
}

impl Reader {
    /// Fill `buf`, or fail if the peer sends nothing for [`STALL`]. The limit is on silence,
    /// not on the whole read: an 8 MiB blob over a slow link may take minutes.
    async fn read(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let mut filled = 0;
        while filled < buf.len() {
            match tokio::time::timeout(STALL, self.recv.read(&mut buf[filled..])).await {
                Ok(Ok(Some(n))) => filled += n,
                Ok(Ok(None)) => return Err(net("the peer ended the stream in the middle of a message")),
                Ok(Err(e)) => return Err(net_err(e)),
                Err(_) => return Err(net("peer stalled")),
            }
        }
        Ok(())
    }

    async fn recv(&mut self) -> Result<Msg, Error> {
        let malformed = || Error::Refused(super::proto::FrameError::Malformed.to_string());
        let mut h = [0u8; 4];
        self.read(&mut h).await?;
        let n = Msg::check_len(h).map_err(|e| Error::Refused(e.to_string()))?;
        if n == 0 {
            return Err(malformed());
        }
        let mut tag = [0u8; 1];
        self.read(&mut tag).await?;
        let msg = if tag[0] == super::proto::BLOB_TAG {
            // Tag, id and at least one length byte, or it is not a blob frame.
            if n < 1 + 32 + 1 {
                return Err(malformed());
            }
            // Blobs are most of the traffic: read the data straight into its own buffer.
            let mut id = [0u8; 32];
            self.read(&mut id).await?;
            let mut varint = super::proto::VarintReader::default();
            let len = loop {
                let mut b = [0u8; 1];
                self.read(&mut b).await?;
                if let Some(len) = varint.feed(b[0]).map_err(|e| Error::Refused(e.to_string()))? {
                    break len as usize;
                }
            };
            if 1 + 32 + varint.len() + len != n {
                return Err(malformed());
            }
            let mut data = vec![0u8; len];
            self.read(&mut data).await?;
            Msg::Blob { id: BlobId(id), data }
        } else {
            let mut body = vec![0u8; n];
            body[0] = tag[0];
            self.read(&mut body[1..]).await?;
            Msg::decode(&body).map_err(|e| Error::Refused(e.to_string()))?
        };
        self.bytes += 4 + n as u64;
        self.traffic.received.fetch_add(4 + n as u64, std::sync::atomic::Ordering::Relaxed);
        match msg {
            Msg::Refused { reason } => Err(Error::Refused(format!("the peer refused: {reason}"))),
            m => Ok(m),
        }
    }
}

/// A session: framed messages both ways over one bidirectional QUIC stream, and the
/// connection it runs on (for the transfer's lanes).
struct Framed {
    out: Writer,
    inn: Reader,
    conn: Connection,
    /// A message read ahead and not yet handled.
    pending: Option<Msg>,
    /// Bytes moved on lanes.
    lane_bytes: u64,
}

impl Framed {
    fn new(conn: &Connection, send: SendStream, recv: RecvStream, traffic: &Arc<Traffic>) -> Self {
        Self {
            out: Writer::new(send, traffic.clone()),
            inn: Reader { recv, traffic: traffic.clone(), bytes: 0 },
            conn: conn.clone(),
            pending: None,
            lane_bytes: 0,
        }
    }

    async fn send(&mut self, m: &Msg) -> Result<(), Error> {
        self.out.send(m).await
    }

    async fn recv(&mut self) -> Result<Msg, Error> {
        // Whatever we gathered may be what the peer waits for before it answers.
        self.out.flush().await?;
        match self.pending.take() {
            Some(m) => Ok(m),
            None => self.inn.recv().await,
        }
    }

    async fn finish(&mut self) {
        self.out.finish().await;
    }

    /// Bytes sent and received in this session, lanes included.
    fn wire_bytes(&self) -> u64 {
        self.out.bytes + self.inn.bytes + self.lane_bytes
    }

    async fn refuse(&mut self, reason: String) -> Error {
        let _ = self.send(&Msg::Refused { reason: reason.clone() }).await;
        self.finish().await;
        Error::Refused(reason)
    }
}

/// A space as this device holds it: as a member (keys and folder) or as a seeder (sealed
/// blobs and the ledger only).
#[derive(Clone)]
pub enum Held {
    /// A member's space.
    Member(Arc<Mutex<Space>>),
    /// A seeded space.
    Seed(Arc<Mutex<Seed>>),
}

impl Held {
    fn role(&self) -> Role {
        match self {
            Held::Member(_) => Role::Member,
            Held::Seed(_) => Role::Seeder,
        }
    }

    async fn ledger(&self) -> LedgerFile {
        match self {
            Held::Member(s) => s.lock().await.ledger(),
            Held::Seed(s) => s.lock().await.ledger(),
        }
    }

    /// The ledger's heads for `Hello`; an unreadable ledger gives none, so the peer sends all
    /// of its own.
    async fn ledger_heads(&self) -> Vec<[u8; 32]> {
        self.ledger().await.heads().unwrap_or_default()
    }

    async fn blob_ids(&self) -> Result<std::collections::BTreeSet<BlobId>, Error> {
        match self {
            Held::Member(s) => s.lock().await.blob_ids(),
            Held::Seed(s) => s.lock().await.blob_ids(),
        }
    }

    fn read_blob_blocking(&self, id: &BlobId) -> Result<Vec<u8>, Error> {
        match self {
            Held::Member(s) => s.blocking_lock().read_blob(id),
            Held::Seed(s) => s.blocking_lock().read_blob(id),
        }
    }

    /// Sort blobs for sending (see [`crate::store::BlobStore::send_order`]).
    fn send_order_blocking(&self, ids: &mut [BlobId]) -> Result<(), Error> {
        match self {
            Held::Member(s) => s.blocking_lock().store.send_order(ids)?,
            Held::Seed(s) => s.blocking_lock().store.send_order(ids)?,
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), Error> {
        match self {
            Held::Member(s) => s.lock().await.flush_received(),
            Held::Seed(s) => s.lock().await.flush(),
        }
    }
}

/// Which proposals a seeder countersigns by itself.
#[derive(Debug, Clone, Default)]
pub struct SeedPolicy {
    /// Owner devices whose proposals it accepts (`cobox up --seed-for`), taking their spaces on.
    pub owners: Vec<DeviceId>,
    /// The largest quota it accepts from them.
    pub max_quota: u64,
    /// Agreements it accepts whoever proposed them (from seed codes the user ran).
    pub accept: Vec<AgreementId>,
}

/// Everything a node's sessions share.
struct Shared {
    held: std::sync::RwLock<HashMap<SpaceId, Held>>,
    me: DeviceId,
    key: SigningKey,
    log: Log,
    home: Option<PathBuf>,
    policy: std::sync::Mutex<SeedPolicy>,
    listen: std::sync::Mutex<Vec<String>>,
    traffic: Arc<Traffic>,
    seen: std::sync::Mutex<HashMap<DeviceId, PeerSeen>>,
}

/// The peer's Hello.
struct PeerHello {
    id: DeviceId,
    role: Role,
    nonce: [u8; 32],
    listen: Vec<String>,
    /// Its ledger's heads and their parents.
    ledger: Vec<[u8; 32]>,
}

/// The words of an error, for a `Refused` frame (without the "refused:" prefix).
fn reason(e: &Error) -> String {
    match e {
        Error::Refused(r) => r.clone(),
        e => e.to_string(),
    }
}

impl Shared {
    fn saw<T>(&self, peer: DeviceId, r: &Result<T, Error>) {
        let seen = PeerSeen {
            device: peer.to_string(),
            last_ms: crate::now_ms(),
            ok: r.is_ok(),
            error: r.as_ref().err().map(ToString::to_string),
        };
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(peer, seen);
    }

    fn get(&self, id: &SpaceId) -> Option<Held> {
        self.held.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    fn listen(&self) -> Vec<String> {
        self.listen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn policy(&self) -> SeedPolicy {
        self.policy.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Take on a space under the standing policy: a member device named in `--seed-for` asks.
    fn adopt(&self, space: &SpaceId, peer: DeviceId, role: Role) -> Option<Held> {
        let home = self.home.as_ref()?;
        if role != Role::Member || !self.policy().owners.contains(&peer) {
            return None;
        }
        match crate::home::Home::open_seed_at(home, self.me, space, true) {
            Ok(seed) => {
                let h = Held::Seed(Arc::new(Mutex::new(seed)));
                self.held.write().unwrap_or_else(|p| p.into_inner()).insert(*space, h.clone());
                Some(h)
            }
            Err(e) => {
                (self.log)(&format!("cannot take on space {} for {}: {e}", space.short(), peer.short()));
                None
            }
        }
    }

    /// Forget a seed taken on for a session that then failed: no agreement, nothing kept.
    fn drop_seed(&self, space: &SpaceId) {
        self.held.write().unwrap_or_else(|p| p.into_inner()).remove(space);
        if let Some(home) = &self.home {
            let _ = crate::home::Home::remove_seed(home, space);
        }
    }

    /// Countersign the proposals naming this seeder that the policy allows; true if it did.
    fn countersign(&self, ledger: &LedgerFile, view: &LedgerView) -> Result<bool, Error> {
        let policy = self.policy();
        let now = crate::now_ms();
        let mut accepted = false;
        for a in &view.agreements {
            let ok = a.state == State::Proposed
                && !a.accepted
                && a.agreement.seeder == self.me.0
                && a.agreement.in_term(now)
                && (policy.accept.contains(&a.id)
                    || (policy.owners.iter().any(|o| o.0 == a.agreement.owner)
                        && a.agreement.quota <= policy.max_quota));
            if ok {
                accepted |= ledger.insert(&Entry::accept(&a.agreement, &self.key))?;
                (self.log)(&format!(
                    "accepted agreement {} for space {}: {} bytes until {}",
                    a.id.short(),
                    hex::encode(&a.agreement.space[..4]),
                    a.agreement.quota,
                    crate::space::rfc3339(a.agreement.end_ms)
                ));
            } else if a.state == State::Proposed && !a.accepted && a.agreement.seeder == self.me.0 {
                (self.log)(&format!(
                    "not accepting agreement {}: {} bytes, over this seeder's standing limit or not asked for",
                    a.id.short(),
                    a.agreement.quota
                ));
            }
        }
        Ok(accepted)
    }
}

async fn recv_ledger(io: &mut Framed) -> Result<Vec<u8>, Error> {
    match io.recv().await? {
        Msg::Ledger(b) => Ok(b),
        _ => Err(io.refuse("expected the ledger".into()).await),
    }
}

/// Send what of our ledger a peer with `heads` lacks (nothing, when it lacks nothing).
async fn send_ledger(io: &mut Framed, ledger: &LedgerFile, heads: &[[u8; 32]]) -> Result<(), Error> {
    io.send(&Msg::Ledger(ledger.bytes_since(heads)?)).await
}

/// Receive the peer's ledger and merge it; a ledger that does not load ends the session.
async fn merge_peer_ledger(io: &mut Framed, ledger: &LedgerFile) -> Result<(), Error> {
    let theirs = recv_ledger(io).await?;
    if theirs.is_empty() {
        return Ok(()); // the peer had nothing we lack
    }
    match ledger.merge_bytes(&theirs) {
        Ok(_) => Ok(()),
        Err(e) => Err(io.refuse(reason(&e)).await),
    }
}

/// Membership proofs and the ledger exchange (see `proto`). Returns the merged ledger and its
/// evaluation, which the rest of the session uses (verifying a large ledger is not free).
async fn handshake(
    sh: &Shared,
    held: &Held,
    space: SpaceId,
    io: &mut Framed,
    dialer: bool,
    nonce: [u8; 32],
    peer: &PeerHello,
) -> Result<(LedgerFile, LedgerView), Error> {
    if let Held::Member(s) = held {
        let proof = prove(s.lock().await.space_key(), &space, &sh.me, &peer.id, &peer.nonce);
        io.send(&proof).await?;
    }
    if peer.role == Role::Member {
        match io.recv().await? {
            Msg::Proof { sig } if check_proof(&space, &peer.id, &sh.me, &nonce, &sig) => {}
            _ => {
                return Err(io
                    .refuse(format!("device {} did not prove membership of space {}", peer.id.short(), space.short()))
                    .await);
            }
        }
    }
    let ledger = held.ledger().await;
    let now = crate::now_ms();
    // The seeder evaluates the ledger itself to countersign; the other cases evaluate at the end.
    let evaluated = match (held.role(), peer.role) {
        // Three sends, each only what the other lacks. The dialer goes first only if it holds
        // all the listener's changes (it knows what the listener lacks); otherwise the listener
        // catches it up first, and the dialer's last send is what the listener lacks.
        (Role::Member, Role::Member) if dialer => {
            let first = ledger.bytes_if_ahead(&peer.ledger)?;
            let ahead = first.is_some();
            io.send(&Msg::Ledger(first.unwrap_or_default())).await?;
            merge_peer_ledger(io, &ledger).await?;
            let theirs = if ahead { ledger.heads()? } else { peer.ledger.clone() };
            send_ledger(io, &ledger, &theirs).await?;
            None
        }
        (Role::Member, Role::Member) => {
            merge_peer_ledger(io, &ledger).await?;
            send_ledger(io, &ledger, &peer.ledger).await?;
            merge_peer_ledger(io, &ledger).await?;
            None
        }
        (Role::Member, Role::Seeder) => {
            let theirs = recv_ledger(io).await?;
            // Check on a copy: a device no agreement names leaves nothing in our ledger.
            let mut copy = ledger.read()?;
            let named = (theirs.is_empty() || copy.merge_bytes(&theirs).is_ok())
                && crate::ledger::evaluate_verified(&space, &copy.raw_entries(), now).names_seeder(&peer.id.0);
            if !named {
                return Err(io
                    .refuse(format!(
                        "device {} is not a member of space {} and no agreement names it as a seeder",
                        peer.id.short(),
                        space.short()
                    ))
                    .await);
            }
            if !theirs.is_empty() {
                ledger.merge_bytes(&theirs)?;
            }
            send_ledger(io, &ledger, &peer.ledger).await?;
            merge_peer_ledger(io, &ledger).await?;
            None
        }
        (Role::Seeder, Role::Member) => {
            send_ledger(io, &ledger, &peer.ledger).await?;
            merge_peer_ledger(io, &ledger).await?;
            // Both sides now hold the same changes: the last send is only what we add here.
            let merged = ledger.heads()?;
            let mut view = ledger.view(now)?;
            if sh.countersign(&ledger, &view)? {
                view = ledger.view(now)?;
            }
            if !view.names_seeder(&sh.me.0) {
                return Err(io
                    .refuse(format!(
                        "seeder {} has no agreement for space {}: propose one with `cobox agreement propose`",
                        sh.me.short(),
                        space.short()
                    ))
                    .await);
            }
            send_ledger(io, &ledger, &merged).await?;
            Some(view)
        }
        (Role::Seeder, Role::Seeder) => return Err(io.refuse("two seeders have nothing to sync".into()).await),
    };
    remember(sh, peer);
    let view = match evaluated {
        Some(v) => v,
        None => ledger.view(now)?,
    };
    Ok((ledger, view))
}

/// Record where an authenticated peer's daemon listens.
fn remember(sh: &Shared, peer: &PeerHello) {
    if let Some(home) = &sh.home
        && !peer.listen.is_empty()
        && let Err(e) = crate::home::Home::remember_peer_at(home, &peer.id, &peer.listen)
    {
        (sh.log)(&format!("cannot record {}'s address: {e}", peer.id.short()));
    }
}

/// Reconciliation and transfer, within what the agreements allow.
async fn transfer(
    sh: &Shared,
    held: &Held,
    space: SpaceId,
    io: &mut Framed,
    dialer: bool,
    peer: &PeerHello,
    view: &LedgerView,
) -> Result<SyncStats, Error> {
    let mut stats = SyncStats::default();
    // A seeder takes blobs only under an active agreement, up to its quota; a member pushes to
    // a seeder only under one (and pulls from it in any case: restores).
    let (quota, may_send) = match (held, peer.role) {
        (Held::Seed(s), _) => (s.lock().await.quota(view), true),
        (Held::Member(_), Role::Seeder) => (Some(u64::MAX), view.active_for(&peer.id.0).is_some()),
        (Held::Member(_), Role::Member) => (Some(u64::MAX), true),
    };
    if !may_send {
        (sh.log)(&format!(
            "seeder {} has no active agreement for space {}: nothing is pushed to it",
            peer.id.short(),
            space.short()
        ));
    }
    if quota.is_none() {
        (sh.log)(&format!("space {}: no active agreement, so this seeder accepts nothing", space.short()));
    }
    let mut rec = Reconciler::new(held.blob_ids().await?);
    if dialer {
        send_step(io, rec.start()).await?;
    }
    loop {
        let items = recv_step(io).await?;
        if items.is_empty() {
            break;
        }
        let out = rec.respond(&items);
        let done = out.is_empty();
        send_step(io, out).await?;
        if done {
            break;
        }
    }
    let want: Vec<BlobId> = if quota.is_some() { rec.want.iter().copied().collect() } else { Vec::new() };
    let quota = quota.unwrap_or(0);
    if !may_send {
        stats.not_pushed = rec.peer_lacks.len() as u64;
    }
    let sendable = |theirs: Vec<BlobId>| if may_send { theirs } else { Vec::new() };
    if dialer {
        send_want(io, &want).await?;
        receive_until(held, io, &want, &mut stats, false, quota).await?;
        let theirs = recv_want(io).await?;
        send_blobs(held, io, &sendable(theirs), &mut stats).await?;
        io.send(&Msg::Done).await?;
        io.finish().await;
        // Closing now could drop the Done in flight: wait until the listener ends its side,
        // which it does once it has read everything, or refuses what we sent (a seeder's quota).
        if let Ok(Err(e @ Error::Refused(_))) = tokio::time::timeout(STALL, io.recv()).await {
            return Err(e);
        }
    } else {
        let theirs = recv_want(io).await?;
        send_blobs(held, io, &sendable(theirs), &mut stats).await?;
        send_want(io, &want).await?;
        receive_until(held, io, &want, &mut stats, true, quota).await?;
    }
    io.finish().await;
    stats.wire_bytes = io.wire_bytes();
    Ok(stats)
}

/// Send one reconciliation step, over as many frames as its ids need.
async fn send_step(io: &mut Framed, items: Vec<Item>) -> Result<(), Error> {
    for m in Msg::reconcile_step(items) {
        io.send(&m).await?;
    }
    Ok(())
}

/// Read one reconciliation step, joining its frames.
async fn recv_step(io: &mut Framed) -> Result<Vec<Item>, Error> {
    let (mut all, mut n) = (Vec::new(), 0);
    loop {
        let Msg::Reconcile { items, more } = io.recv().await? else {
            return Err(io.refuse("expected a reconciliation step".into()).await);
        };
        n += items.iter().map(Item::weight).sum::<usize>();
        if n > MAX_STEP_IDS {
            return Err(io.refuse(format!("a reconciliation step of over {MAX_STEP_IDS} ids")).await);
        }
        all.extend(items);
        if !more {
            return Ok(all);
        }
    }
}

/// Send a want list, over as many frames as it needs.
async fn send_want(io: &mut Framed, ids: &[BlobId]) -> Result<(), Error> {
    for m in Msg::want_list(ids) {
        io.send(&m).await?;
    }
    Ok(())
}

/// Read a want list, joining its frames.
async fn recv_want(io: &mut Framed) -> Result<Vec<BlobId>, Error> {
    let mut all = Vec::new();
    loop {
        let Msg::Want { ids, more } = io.recv().await? else {
            return Err(io.refuse("expected a want list".into()).await);
        };
        if all.len() + ids.len() > MAX_STEP_IDS {
            return Err(io.refuse(format!("a want list of over {MAX_STEP_IDS} ids")).await);
        }
        all.extend(ids);
        if !more {
            return Ok(all);
        }
    }
}

/// Lanes a sender opens for the chunks of one transfer (see [`Msg::Lanes`]): the most a
/// receiver accepts. At a 100 ms round trip 8 moved 294 MiB in 8.3 s against 13.5 s with 4; on
/// loopback they cost nothing measurable (docs/benchmarks.md, session 8).
const LANES: u8 = super::proto::MAX_LANES;

/// A blob on its way, with its id.
type Outgoing = (BlobId, Vec<u8>);

/// The lanes of a transfer: one queue they all take from (a free lane takes the next blob, so
/// a slow one holds up no other), and the tasks writing them (each returns the bytes it sent).
struct Lanes {
    queue: tokio::sync::mpsc::Sender<Outgoing>,
    tasks: Vec<tokio::task::JoinHandle<Result<u64, Error>>>,
}

async fn send_blobs(held: &Held, io: &mut Framed, ids: &[BlobId], stats: &mut SyncStats) -> Result<(), Error> {
    // Blobs are read on a blocking thread a few dozen ahead of the network.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Outgoing>(32);
    let (h, mut ids) = (held.clone(), ids.to_vec());
    let reader = tokio::task::spawn_blocking(move || {
        // Unsorted still works: the receiver then writes files only after the session.
        let _ = h.send_order_blocking(&mut ids);
        for id in ids {
            // Asked for something we do not hold (or hold damaged): skip it, the peer keeps wanting it.
            let Ok(data) = h.read_blob_blocking(&id) else { continue };
            if tx.blocking_send((id, data)).is_err() {
                break;
            }
        }
    });
    // Changes and chunk lists (sent first) go on the session's stream, so the receiver can plan
    // the files; the chunks go over the lanes, each taking the next as it is free.
    let mut lanes: Option<Lanes> = None;
    let mut result = Ok(());
    while let Some((id, data)) = rx.recv().await {
        stats.sent_blobs += 1;
        stats.sent_bytes += data.len() as u64;
        if lanes.is_none() && !crate::crypto::is_chunk(&data) {
            if let Err(e) = io.out.send_blob(&id, data).await {
                result = Err(e);
                break;
            }
            continue;
        }
        let lanes = match &mut lanes {
            Some(l) => l,
            None => match open_lanes(io).await {
                Ok(l) => lanes.insert(l),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            },
        };
        // Every lane failed (each drops its share of the queue); their errors are collected below.
        if lanes.queue.send((id, data)).await.is_err() {
            break;
        }
    }
    drop(rx);
    let _ = reader.await;
    if let Some(Lanes { queue, tasks }) = lanes {
        drop(queue);
        for task in tasks {
            match task.await {
                Ok(Ok(n)) => io.lane_bytes += n,
                Ok(Err(e)) => result = result.and(Err(e)),
                Err(e) => result = result.and(Err(net(e))),
            }
        }
    }
    result
}

/// Announce and open the lanes, each with a task that writes blobs from the shared queue
/// until it is closed, then `Done`.
async fn open_lanes(io: &mut Framed) -> Result<Lanes, Error> {
    io.send(&Msg::Lanes(LANES)).await?;
    // A few blobs queued: the reader thread stays ahead, memory stays bounded.
    let (queue, rx) = tokio::sync::mpsc::channel::<Outgoing>(usize::from(LANES));
    let rx = Arc::new(Mutex::new(rx));
    let mut tasks = Vec::new();
    for _ in 0..LANES {
        let send = io.conn.open_uni().await.map_err(net_err)?;
        let mut w = Writer::new(send, io.out.traffic.clone());
        let rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some((id, data)) = next else { break };
                w.send_blob(&id, data).await?;
            }
            w.send(&Msg::Done).await?;
            w.finish().await;
            Ok(w.bytes)
        }));
    }
    Ok(Lanes { queue, tasks })
}

/// What a lane reader hands back: blobs and bytes taken, or why it stopped.
type LaneResult = Result<(u64, u64, u64), String>;

/// Read one lane until its `Done`: only wanted blobs are passed on. When the store has
/// stopped (a refusal), the lane is read to its end all the same, so the sender finishes and
/// then reads the refusal.
async fn read_lane(
    conn: Connection,
    traffic: Arc<Traffic>,
    wanted: Arc<std::collections::HashSet<BlobId>>,
    tx: tokio::sync::mpsc::Sender<Outgoing>,
) -> LaneResult {
    let recv = match tokio::time::timeout(STALL, conn.accept_uni()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("lane not opened: {e}")),
        Err(_) => return Err("peer stalled opening a lane".into()),
    };
    let mut r = Reader { recv, traffic, bytes: 0 };
    let (mut blobs, mut bytes) = (0, 0);
    let mut storing = true;
    loop {
        match r.recv().await.map_err(|e| reason(&e))? {
            Msg::Blob { id, data } => {
                if !wanted.contains(&id) {
                    return Err(format!("unrequested blob {id}"));
                }
                blobs += 1;
                bytes += data.len() as u64;
                if storing && tx.send((id, data)).await.is_err() {
                    storing = false;
                }
            }
            Msg::Done => return Ok((blobs, bytes, r.bytes)),
            _ => return Err("unexpected message on a lane".into()),
        }
    }
}

/// Receive blobs until the peer's next Want (dialer) or Done (listener). Only blobs we asked
/// for are accepted; a blocking worker checks each against its id (and a seeder against its
/// quota) and stores it while the next frames arrive.
async fn receive_until(
    held: &Held,
    io: &mut Framed,
    wanted: &[BlobId],
    stats: &mut SyncStats,
    until_done: bool,
    quota: u64,
) -> Result<(), Error> {
    // Large transfers to a member write files while the rest arrives.
    let stream = wanted.len() >= STREAM_FROM && std::env::var_os("COBOX_NO_STREAM").is_none();
    let wanted: Arc<std::collections::HashSet<BlobId>> = Arc::new(wanted.iter().copied().collect());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Outgoing>(32);
    let h = held.clone();
    let store = tokio::task::spawn_blocking(move || -> Result<usize, Error> {
        match &h {
            Held::Member(s) => receive_member(s, &mut rx, stream),
            Held::Seed(s) => {
                while let Some((id, data)) = rx.blocking_recv() {
                    s.blocking_lock().receive_blob(&id, &data, quota)?;
                }
                Ok(0)
            }
        }
    });
    let mut had_lanes = false;
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
            Ok(Msg::Lanes(n)) if !had_lanes && (1..=super::proto::MAX_LANES).contains(&n) => {
                had_lanes = true;
                let mut lanes = tokio::task::JoinSet::new();
                for _ in 0..n {
                    let (conn, traffic, w, tx) = (io.conn.clone(), io.inn.traffic.clone(), wanted.clone(), tx.clone());
                    lanes.spawn(read_lane(conn, traffic, w, tx));
                }
                // The session's stream is quiet until the lanes end (the sender's next message
                // follows them), so it is not read, nor timed, meanwhile. A lane that fails ends
                // the others.
                let mut failed = None;
                while let Some(r) = lanes.join_next().await {
                    match r.unwrap_or_else(|e| Err(e.to_string())) {
                        Ok((blobs, bytes, wire)) => {
                            stats.received_blobs += blobs;
                            stats.received_bytes += bytes;
                            io.lane_bytes += wire;
                        }
                        Err(why) => {
                            lanes.abort_all();
                            failed = failed.or(Some(why));
                        }
                    }
                }
                if let Some(why) = failed {
                    break Err(why);
                }
            }
            Ok(Msg::Done) if until_done => break Ok(()),
            Ok(m @ Msg::Want { .. }) if !until_done => {
                // The peer's own Want ends our transfer; the caller reads it next.
                io.pending = Some(m);
                break Ok(());
            }
            Ok(_) => break Err("unexpected message during transfer".to_owned()),
            Err(e) => {
                drop(tx);
                let _ = store.await;
                // Keep what arrived: a broken connection resumes without re-sending it.
                let _ = held.flush().await;
                return Err(e);
            }
        }
    };
    drop(tx);
    let stored = store.await.map_err(|e| Error::Net(e.to_string()))?;
    if let Ok(n) = &stored {
        stats.changes_applied += *n as u64;
    }
    if let Err(e) = stored {
        // What was stored before the refusal stays: nothing is lost on either side.
        let _ = held.flush().await;
        let why = reason(&e);
        let _ = io.send(&Msg::Refused { reason: why.clone() }).await;
        io.finish().await;
        // Read on (and drop) what the peer is still sending, so its writes complete and it reads
        // the refusal rather than a broken connection. Bounded: a peer cannot keep us here.
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(m) = io.recv().await {
                if m == Msg::Done {
                    break;
                }
            }
        })
        .await;
        return Err(Error::Refused(why));
    }
    if let Err(why) = net_result {
        return Err(io.refuse(why).await);
    }
    Ok(())
}

/// Sessions wanting at least this many blobs write files during the transfer.
const STREAM_FROM: usize = 64;

/// A member stores what arrives. With `stream`, once the changes and chunk lists are in (the
/// first chunk shows it), files are written on the thread pool as their last chunk arrives.
/// Returns the changes applied on the way.
fn receive_member(
    s: &Arc<Mutex<Space>>,
    rx: &mut tokio::sync::mpsc::Receiver<Outgoing>,
    stream: bool,
) -> Result<usize, Error> {
    let mut streaming = None;
    let mut began = !stream;
    let result = rayon::in_place_scope(|scope| -> Result<(), Error> {
        while let Some((id, data)) = rx.blocking_recv() {
            let mut space = s.blocking_lock();
            space.receive_blob(&id, &data)?;
            if !began && crate::crypto::is_chunk(&data) {
                began = true;
                // Cannot plan (e.g. a chunk list that does not decrypt): all is written after.
                streaming = space.begin_streaming().ok();
            }
            drop(space);
            if let Some(st) = streaming.as_mut() {
                for f in st.arrived(&id) {
                    let files = st.files();
                    scope.spawn(move |_| files.advance(f));
                }
            }
        }
        Ok(())
    });
    // Written files are recorded even when the session broke off.
    let changes = match streaming {
        Some(st) => s.blocking_lock().end_streaming(st)?,
        None => 0,
    };
    result.map(|()| changes)
}

/// Pick `n` of `ids` at random (all of them when `n` is at least their number).
fn sample(mut ids: Vec<BlobId>, n: usize) -> Vec<BlobId> {
    let n = n.min(ids.len());
    for i in 0..n {
        let mut r = [0u8; 8];
        crate::random_bytes(&mut r);
        let j = i + (u64::from_le_bytes(r) % (ids.len() - i) as u64) as usize;
        ids.swap(i, j);
    }
    ids.truncate(n);
    ids
}

/// The member's half of an audit: challenge, score, sign and record the result.
async fn audit_challenge(
    sh: &Shared,
    space: &Arc<Mutex<Space>>,
    io: &mut Framed,
    peer: &PeerHello,
    (ledger, view): &(LedgerFile, LedgerView),
    count: usize,
) -> Result<AuditRecord, Error> {
    let agreement = view
        .active_for(&peer.id.0)
        .or_else(|| {
            view.agreements
                .iter()
                .filter(|a| a.state != State::Invalid && a.agreement.seeder == peer.id.0)
                .max_by_key(|a| a.agreement.start_ms)
        })
        .map(|a| a.id)
        .ok_or_else(|| Error::Refused(format!("no agreement names {} as a seeder", peer.id.short())))?;
    let ids = sample(space.lock().await.blob_ids()?.into_iter().collect(), count);
    let mut nonce = [0u8; 32];
    crate::random_bytes(&mut nonce);
    io.send(&Msg::AuditChallenge { nonce, ids: ids.clone() }).await?;
    // Compute our own answers while the seeder computes its.
    let s = space.clone();
    let mine = tokio::task::spawn_blocking(move || -> Vec<Option<[u8; 32]>> {
        let s = s.blocking_lock();
        ids.iter().map(|id| s.read_blob(id).ok().map(|b| cobox_agreements::audit::answer(&nonce, &b))).collect()
    });
    let Msg::AuditAnswer { answers, stored_bytes } = io.recv().await? else {
        return Err(io.refuse("expected an audit answer".into()).await);
    };
    io.finish().await;
    let mine = mine.await.map_err(|e| Error::Net(e.to_string()))?;
    // Blobs we cannot read ourselves are not counted either way.
    let (expected, theirs): (Vec<[u8; 32]>, Vec<Option<[u8; 32]>>) = mine
        .iter()
        .zip(answers.iter().copied().chain(std::iter::repeat(None)))
        .filter_map(|(m, t)| m.map(|m| (m, t)))
        .unzip();
    let record = AuditRecord {
        agreement,
        auditor: sh.me.0,
        time_ms: crate::now_ms(),
        challenged: expected.len() as u32,
        passed: cobox_agreements::audit::score(&expected, &theirs),
        stored_bytes,
    };
    let entry = Entry::audit(record.clone(), &sh.key, space.lock().await.space_key());
    ledger.insert(&entry)?;
    Ok(record)
}

/// The seeder's half of an audit.
async fn audit_answer(seed: &Arc<Mutex<Seed>>, io: &mut Framed) -> Result<(), Error> {
    let Msg::AuditChallenge { nonce, ids } = io.recv().await? else {
        return Err(io.refuse("expected an audit challenge".into()).await);
    };
    let s = seed.clone();
    let (answers, stored_bytes) = tokio::task::spawn_blocking(move || {
        let s = s.blocking_lock();
        let a: Vec<Option<[u8; 32]>> =
            ids.iter().map(|id| s.read_blob(id).ok().map(|b| cobox_agreements::audit::answer(&nonce, &b))).collect();
        (a, s.used())
    })
    .await
    .map_err(|e| Error::Net(e.to_string()))?;
    io.send(&Msg::AuditAnswer { answers, stored_bytes }).await?;
    io.finish().await;
    Ok(())
}

/// Log sink for the daemon (refusals, sessions); the CLI prints to stderr.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// What a node holds and how it seeds.
#[derive(Default)]
pub struct NodeSetup {
    /// Spaces this device is a member of.
    pub spaces: Vec<Space>,
    /// Spaces it seeds.
    pub seeds: Vec<Seed>,
    /// Which proposals it countersigns by itself.
    pub policy: SeedPolicy,
    /// The home root: lets sessions record peers' addresses and take on seeds.
    pub home: Option<PathBuf>,
}

/// A running device on the network: its endpoint, its open spaces and seeds, and the accept loop.
pub struct Node {
    router: Router,
    sh: Arc<Shared>,
}

#[derive(Clone)]
struct Handler {
    sh: Arc<Shared>,
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
        let mut io = Framed::new(&conn, send, recv, &self.sh.traffic);
        let r = self.serve(&mut io, peer).await;
        self.sh.saw(peer, &r);
        match r {
            Ok(msg) => {
                (self.sh.log)(&msg);
                // Let the dialer read the last frames and close; do not wait on it forever.
                let _ = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
            }
            Err(e) => {
                (self.sh.log)(&format!("session with {} refused or failed: {e}", peer.short()));
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
    async fn serve(&self, io: &mut Framed, peer_id: DeviceId) -> Result<String, Error> {
        let sh = &self.sh;
        let Msg::Hello { space, device, nonce: peer_nonce, role, purpose, listen, ledger } = io.recv().await? else {
            return Err(io.refuse("expected Hello".into()).await);
        };
        if device != peer_id {
            return Err(io.refuse("the Hello names another device than the connection".into()).await);
        }
        let (held, fresh) = match sh.get(&space) {
            Some(h) => (h, false),
            None => match sh.adopt(&space, peer_id, role) {
                Some(h) => (h, true),
                None => return Err(io.refuse(format!("this device does not hold space {}", space.short())).await),
            },
        };
        let peer = PeerHello { id: peer_id, role, nonce: peer_nonce, listen, ledger };
        let r = self.serve_held(io, &held, space, purpose, &peer).await;
        if r.is_err() && fresh {
            sh.drop_seed(&space);
        }
        r
    }

    async fn serve_held(
        &self,
        io: &mut Framed,
        held: &Held,
        space: SpaceId,
        purpose: Purpose,
        peer: &PeerHello,
    ) -> Result<String, Error> {
        let sh = &self.sh;
        if held.role() == Role::Seeder && peer.role == Role::Seeder {
            return Err(io.refuse("two seeders have nothing to sync".into()).await);
        }
        if purpose == Purpose::Audit && (held.role() != Role::Seeder || peer.role != Role::Member) {
            return Err(io.refuse("only a member audits, and only a seeder is audited".into()).await);
        }
        let mut nonce = [0u8; 32];
        crate::random_bytes(&mut nonce);
        let ledger = held.ledger_heads().await;
        io.send(&Msg::Hello { space, device: sh.me, nonce, role: held.role(), purpose, listen: sh.listen(), ledger })
            .await?;
        if let Held::Member(s) = held {
            // Record local edits before telling the peer what we hold.
            s.lock().await.scan_if_changed()?;
        }
        let (_, view) = handshake(sh, held, space, io, false, nonce, peer).await?;
        match (purpose, held) {
            (Purpose::Audit, Held::Seed(seed)) => {
                audit_answer(seed, io).await?;
                Ok(format!("answered an audit of space {} by {}", space.short(), peer.id.short()))
            }
            (Purpose::Audit, Held::Member(_)) => Err(io.refuse("this device is not a seeder".into()).await),
            (Purpose::Sync, _) => {
                let stats = transfer(sh, held, space, io, false, peer, &view).await?;
                match held {
                    Held::Member(s) => {
                        let (_, m) = s.lock().await.apply_and_materialize()?;
                        if m.written + m.deleted > 0
                            || !m.waiting.is_empty()
                            || !m.refused.is_empty()
                            || !m.conflicts.is_empty()
                        {
                            (sh.log)(&format!(
                                "space {}: wrote {}, deleted {}, waiting for {:?}, refused {:?}, conflict copies {:?}",
                                space.short(),
                                m.written,
                                m.deleted,
                                m.waiting,
                                m.refused,
                                m.conflicts
                            ));
                        }
                    }
                    Held::Seed(s) => s.lock().await.flush()?,
                }
                Ok(format!(
                    "synced space {} with {}: received {} blobs ({} bytes), sent {} blobs ({} bytes)",
                    space.short(),
                    peer.id.short(),
                    stats.received_blobs,
                    stats.received_bytes,
                    stats.sent_blobs,
                    stats.sent_bytes
                ))
            }
        }
    }
}

impl Node {
    /// Bind the endpoint and start accepting syncs for member `spaces`.
    pub async fn start(device_seed: [u8; 32], spaces: Vec<Space>, cfg: &NetConfig, log: Log) -> Result<Self, Error> {
        Self::start_with(device_seed, NodeSetup { spaces, ..NodeSetup::default() }, cfg, log).await
    }

    /// Bind the endpoint and start accepting sessions for member spaces and seeds.
    pub async fn start_with(device_seed: [u8; 32], setup: NodeSetup, cfg: &NetConfig, log: Log) -> Result<Self, Error> {
        let ep = endpoint(device_seed, cfg).await?;
        let me = DeviceId(*ep.id().as_bytes());
        let mut held: HashMap<SpaceId, Held> =
            setup.spaces.into_iter().map(|s| (s.info().id, Held::Member(Arc::new(Mutex::new(s))))).collect();
        for s in setup.seeds {
            held.insert(s.space(), Held::Seed(Arc::new(Mutex::new(s))));
        }
        let sh = Arc::new(Shared {
            held: std::sync::RwLock::new(held),
            me,
            key: SigningKey::from_bytes(&device_seed),
            log,
            home: setup.home,
            policy: std::sync::Mutex::new(setup.policy),
            listen: std::sync::Mutex::new(Vec::new()),
            traffic: Arc::new(Traffic::default()),
            seen: std::sync::Mutex::new(HashMap::new()),
        });
        let router = Router::builder(ep).accept(ALPN, Handler { sh: sh.clone() }).spawn();
        Ok(Self { router, sh })
    }

    /// This device's id.
    pub fn device(&self) -> DeviceId {
        self.sh.me
    }

    /// The direct addresses this endpoint is bound to.
    pub fn bound(&self) -> Vec<SocketAddr> {
        self.router.endpoint().bound_sockets()
    }

    /// The addresses peers can dial: `IP:PORT`s (unspecified IPs shown as loopback), then the
    /// home relay's URL once reached.
    pub fn addrs(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .bound()
            .into_iter()
            .map(|mut a| {
                if a.ip().is_unspecified() {
                    a.set_ip(if a.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
                }
                a.to_string()
            })
            .collect();
        // The home relay, once reached: peers elsewhere dial through it.
        for a in self.router.endpoint().addr().addrs {
            if let iroh::TransportAddr::Relay(url) = a {
                out.push(url.to_string());
            }
        }
        out
    }

    /// Wait up to `max` for the home relay, so the addresses handed out include it. False when
    /// it was not reached (relays off, or no internet: direct addresses and the LAN still work).
    pub async fn reach_relay(&self, max: Duration) -> bool {
        tokio::time::timeout(max, self.router.endpoint().online()).await.is_ok()
    }

    /// `ID@IP:PORT,...` for others to dial.
    pub fn addr_string(&self) -> String {
        format!("{}@{}", self.sh.me, self.addrs().join(","))
    }

    /// Tell peers where to reach this node later (a daemon does; one-off commands do not).
    pub fn advertise(&self) {
        *self.sh.listen.lock().unwrap_or_else(|p| p.into_inner()) = self.addrs();
    }

    /// An open member space.
    pub fn space(&self, id: &SpaceId) -> Option<Arc<Mutex<Space>>> {
        match self.sh.get(id)? {
            Held::Member(s) => Some(s),
            Held::Seed(_) => None,
        }
    }

    /// An open seed.
    pub fn seed(&self, id: &SpaceId) -> Option<Arc<Mutex<Seed>>> {
        match self.sh.get(id)? {
            Held::Seed(s) => Some(s),
            Held::Member(_) => None,
        }
    }

    /// Every space held, member or seed.
    pub fn held(&self) -> Vec<(SpaceId, Held)> {
        self.sh.held.read().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Start serving a member space opened after the node started (created or joined).
    pub fn add_space(&self, space: Space) {
        let id = space.info().id;
        self.sh.held.write().unwrap_or_else(|p| p.into_inner()).insert(id, Held::Member(Arc::new(Mutex::new(space))));
    }

    /// Start seeding a space (after `cobox seed`), countersigning this agreement when offered.
    pub fn add_seed(&self, seed: Seed, accept: Option<AgreementId>) {
        if let Some(a) = accept {
            self.sh.policy.lock().unwrap_or_else(|p| p.into_inner()).accept.push(a);
        }
        self.sh
            .held
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(seed.space(), Held::Seed(Arc::new(Mutex::new(seed))));
    }

    /// Stop holding a seed (its grace period ended); the caller deletes its files.
    pub fn forget(&self, id: &SpaceId) {
        self.sh.held.write().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Dial a peer and run the Hello and handshake for `purpose`.
    async fn open(
        &self,
        space: &SpaceId,
        peer: EndpointAddr,
        purpose: Purpose,
    ) -> Result<(Connection, Framed, Held, PeerHello, (LedgerFile, LedgerView)), Error> {
        let held = self.sh.get(space).ok_or_else(|| Error::SpaceNotFound(space.to_string()))?;
        let peer_id = DeviceId(*peer.id.as_bytes());
        let conn = self.router.endpoint().connect(peer, ALPN).await.map_err(net_err)?;
        let (send, recv) = conn.open_bi().await.map_err(net_err)?;
        let mut io = Framed::new(&conn, send, recv, &self.sh.traffic);
        if let Held::Member(s) = &held {
            s.lock().await.scan_if_changed()?;
        }
        let mut nonce = [0u8; 32];
        crate::random_bytes(&mut nonce);
        let hello = Msg::Hello {
            space: *space,
            device: self.sh.me,
            nonce,
            role: held.role(),
            purpose,
            listen: self.sh.listen(),
            ledger: held.ledger_heads().await,
        };
        io.send(&hello).await?;
        let Msg::Hello { space: theirs, device, nonce: peer_nonce, role, listen, ledger, .. } = io.recv().await? else {
            return Err(io.refuse("expected Hello".into()).await);
        };
        if theirs != *space || device != peer_id {
            return Err(io.refuse("the peer answered for another space or device".into()).await);
        }
        let peer = PeerHello { id: peer_id, role, nonce: peer_nonce, listen, ledger };
        match handshake(&self.sh, &held, *space, &mut io, true, nonce, &peer).await {
            Ok(ledger) => Ok((conn, io, held, peer, ledger)),
            Err(e) => {
                conn.close(0u32.into(), b"refused");
                Err(e)
            }
        }
    }

    /// One sync session with `peer` for a space: scan, prove, exchange ledgers, reconcile,
    /// transfer, then apply and materialise (a member) or flush (a seeder).
    pub async fn sync_once(&self, space: &SpaceId, peer: EndpointAddr) -> Result<SyncStats, Error> {
        let id = DeviceId(*peer.id.as_bytes());
        let r = self.sync_session(space, peer).await;
        self.sh.saw(id, &r);
        r
    }

    /// Bytes sent and received by every session so far.
    pub fn traffic(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.sh.traffic.sent.load(Relaxed), self.sh.traffic.received.load(Relaxed))
    }

    /// Peers this node has had sessions with, most recent first.
    pub fn peers_seen(&self) -> Vec<PeerSeen> {
        let mut v: Vec<PeerSeen> = self.sh.seen.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.last_ms));
        v
    }

    async fn sync_session(&self, space: &SpaceId, peer: EndpointAddr) -> Result<SyncStats, Error> {
        let started = std::time::Instant::now();
        let (conn, mut io, held, peer, ledger) = self.open(space, peer, Purpose::Sync).await?;
        let result = transfer(&self.sh, &held, *space, &mut io, true, &peer, &ledger.1).await;
        conn.close(0u32.into(), b"done");
        let mut stats = result?;
        stats.session_ms = started.elapsed().as_millis() as u64;
        let applying = std::time::Instant::now();
        match &held {
            Held::Member(s) => stats.changes_applied += s.lock().await.apply_and_materialize()?.0 as u64,
            Held::Seed(s) => s.lock().await.flush()?,
        }
        stats.apply_ms = applying.elapsed().as_millis() as u64;
        if stats.not_pushed > 0 {
            let states: Vec<&str> = ledger
                .1
                .agreements
                .iter()
                .filter(|a| a.agreement.seeder == peer.id.0)
                .map(|a| a.state.as_str())
                .collect();
            // What was pulled is applied above; only the push is refused.
            return Err(Error::Refused(format!(
                "seeder {} has no active agreement for space {} (its agreements: {}), so {} blobs were not pushed; \
                 a proposal it has not countersigned may be over its quota limit",
                peer.id.short(),
                space.short(),
                states.join(", "),
                stats.not_pushed
            )));
        }
        (self.sh.log)(&format!(
            "synced with {}: received {} blobs ({} bytes), sent {} blobs ({} bytes)",
            peer.id.short(),
            stats.received_blobs,
            stats.received_bytes,
            stats.sent_blobs,
            stats.sent_bytes
        ));
        Ok(stats)
    }

    /// Audit a seeder: challenge `count` random blobs this device holds (`usize::MAX`: all),
    /// record the signed result in the ledger and return it.
    pub async fn audit(&self, space: &SpaceId, peer: EndpointAddr, count: usize) -> Result<AuditRecord, Error> {
        let s = self
            .space(space)
            .ok_or_else(|| Error::SpaceNotFound(format!("{} (only a member audits)", space.short())))?;
        let (conn, mut io, _, peer, ledger) = self.open(space, peer, Purpose::Audit).await?;
        if peer.role != Role::Seeder {
            conn.close(0u32.into(), b"done");
            return Err(Error::Refused(format!(
                "{} is a member, not a seeder; only seeders are audited",
                peer.id.short()
            )));
        }
        let r = audit_challenge(&self.sh, &s, &mut io, &peer, &ledger, count).await;
        conn.close(0u32.into(), b"done");
        r
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
            total.session_ms += s.session_ms;
            total.apply_ms += s.apply_ms;
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
