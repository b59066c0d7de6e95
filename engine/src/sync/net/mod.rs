//! The iroh transport: the only networking code. One session per connection and space, run by
//! both sides over one bidirectional QUIC stream (see `proto` for the message order).
//!
//! Layers, each using only those above it in this list: `framing` (frames over any byte
//! stream, counted), `endpoint` (iroh's endpoint and its transport settings), `held` (a
//! space as a member or a seeder holds it), `transfer` (blobs out over lanes and in), `driver`
//! (runs one `cobox_core::sync::session::Session` over a stream: the protocol's decisions are
//! all there), `shared` (what a node's sessions share), `node` (the accept loop and dialing).

mod admin;
mod driver;
mod endpoint;
mod framing;
mod held;
mod node;
mod recovery;
mod shared;
mod transfer;

use crate::codes::PeerAddr;
use crate::error::Error;
use crate::ids::SpaceId;
pub use cobox_core::sync::session::SeedPolicy;
pub use endpoint::endpoint;
pub use held::Held;
pub use iroh::EndpointAddr;
use iroh::TransportAddr;
pub use node::{Node, NodeSetup};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

/// A peer that stalls longer than this between messages is dropped.
const STALL: Duration = Duration::from_secs(60);
/// How long a listener waits for the dialer's blobs after its `Want`: the dialer first finishes
/// writing into its folder what it received (a first sync of a million small files on a slow
/// disk took minutes), and says nothing meanwhile. No longer than a trickling peer could hold
/// a session anyway (`SESSION_DEADLINE`).
const ANSWER_WAIT: Duration = Duration::from_secs(30 * 60);
/// Silence after which a connection's peer counts as gone.
pub const IDLE: Duration = Duration::from_secs(12);
/// Time a peer has, from the session's start, to prove its right to the space: a stranger
/// trickling a byte a minute does not hold a session open under the silence limit.
const HANDSHAKE: Duration = Duration::from_secs(20);
/// Longest a whole session may run. What arrived is kept, so the next session goes on from
/// there; a peer cannot hold one open forever by sending just enough.
const SESSION_DEADLINE: Duration = Duration::from_secs(6 * 3600);
/// Sessions a node serves at once, in all and from one peer.
const MAX_INBOUND: usize = 64;
const MAX_INBOUND_PER_PEER: usize = 4;

fn net(e: impl std::fmt::Display) -> Error {
    Error::Net(e.to_string())
}

/// A network error with its causes: noq says only "connection lost" and keeps the reason
/// (a timeout, the peer's close code, a transport error) in its source.
fn net_err(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    let mut msg = e.to_string();
    let mut last = msg.clone();
    let mut cause = e.source();
    while let Some(c) = cause {
        // Layers often repeat their source's words ("timed out: timed out: timed out").
        let text = c.to_string();
        if text != last && !last.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        last = text;
        cause = c.source();
    }
    Error::Transport { message: msg, source: Box::new(e) }
}

/// The QUIC connection error among `e`'s causes, if there is one.
fn connection_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a iroh::endpoint::ConnectionError> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(found) = c.downcast_ref::<iroh::endpoint::ConnectionError>() {
            return Some(found);
        }
        cause = c.source();
    }
    None
}

/// TLS alerts a dialer's handshake ends with when the certificate answering is not the key
/// dialed (RFC 8446 6.2: bad_certificate, unsupported_certificate, certificate_unknown,
/// unknown_ca), as QUIC crypto error codes (RFC 9001 4.8).
const CERTIFICATE_ALERTS: [u8; 4] = [42, 43, 46, 48];

/// A failed dial in words a person can act on: a certificate refused means the device
/// answering is not the one named, and a timeout that nothing answered.
fn dial_err(peer: &crate::ids::DeviceId, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    use iroh::endpoint::{ConnectionError, TransportErrorCode};
    let found = connection_error(&e);
    let wrong_key = matches!(found, Some(ConnectionError::TransportError(t))
        if CERTIFICATE_ALERTS.iter().any(|a| t.code == TransportErrorCode::crypto(*a)));
    let timed_out = matches!(found, Some(ConnectionError::TimedOut));
    let e = net_err(e);
    if wrong_key {
        Error::Net(format!(
            "the device answering at that address is not {}: check the id (`cobox id` on the device you mean)",
            peer.short()
        ))
    } else if timed_out {
        Error::Net(format!(
            "no answer from {}: is `cobox up` (or the app) running there, and is the address right? ({e})",
            peer.short()
        ))
    } else {
        e
    }
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
    /// Upload limit for the whole device, bytes per second (0: none).
    pub limit_up: u64,
    /// Download limit for the whole device, bytes per second (0: none).
    pub limit_down: u64,
}

/// Bytes and blobs moved by one session.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
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
    /// Ledger entries (agreements, roster operations, heads notes) new to this device.
    #[serde(default)]
    pub ledger_new: u64,
    /// After a sync with a seeder: the newest heads note of a member names changes this device
    /// still lacks, so the seeder's copy is older than the space (`None`: it is not).
    #[serde(default)]
    pub stale: Option<crate::space::Stale>,
    /// Paths the folder could not take after the last session (a full disk, a read-only
    /// folder, something in the way): pending, retried at the next sync; `status` says why.
    #[serde(default)]
    pub not_written: u64,
    /// The peer had joined by an invite and this session let it in (no blobs move in such a
    /// session; the next one syncs).
    #[serde(default)]
    pub let_in: bool,
}

/// Parse `ID@ADDR[,ADDR...]`, each ADDR an `IP:PORT` or a relay URL (`https://…`), or a bare id
/// (found on the LAN by mDNS).
pub fn parse_peer(s: &str) -> Result<EndpointAddr, Error> {
    dial_addr(&s.parse::<PeerAddr>().map_err(Error::Refused)?)
}

/// Where to dial a peer: its id and each address as an IP:PORT or a relay URL.
pub fn dial_addr(p: &PeerAddr) -> Result<EndpointAddr, Error> {
    let s = p.to_string();
    let key =
        iroh::PublicKey::from_bytes(p.device.as_bytes()).map_err(|e| Error::Refused(format!("peer {s:?}: {e}")))?;
    let mut out = Vec::new();
    for a in p.addrs.iter().map(String::as_str) {
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

/// Bytes moved by a node since it started, all sessions together (for rate plots), and the
/// device's upload and download limits, which every session and lane shares.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes sent.
    pub sent: std::sync::atomic::AtomicU64,
    /// Bytes received.
    pub received: std::sync::atomic::AtomicU64,
    /// Upload limit.
    pub up: Limiter,
    /// Download limit: reading slower makes QUIC's flow control slow the sender.
    pub down: Limiter,
}

/// A token bucket shared by every session of a node: bytes per second, 0 for no limit.
#[derive(Debug, Default)]
pub struct Limiter {
    rate: std::sync::atomic::AtomicU64,
    bucket: std::sync::Mutex<Bucket>,
}

/// What a limiter has left: tokens (bytes; negative is a debt the next takers wait out), and
/// when it was last filled.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Option<std::time::Instant>,
}

/// A quarter second's worth of bytes may go at once, at least 64 KiB (one gathered write).
fn burst(rate: u64) -> f64 {
    (rate as f64 / 4.0).max(65_536.0)
}

impl Bucket {
    /// Take `n` bytes at `now` under `rate`: how long the taker waits so the average holds.
    pub fn take(&mut self, n: u64, rate: u64, now: std::time::Instant) -> Duration {
        let r = rate as f64;
        let filled =
            self.at.map_or(burst(rate), |at| self.tokens + now.saturating_duration_since(at).as_secs_f64() * r);
        self.tokens = filled.min(burst(rate)) - n as f64;
        self.at = Some(now);
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / r) }
    }
}

impl Limiter {
    /// Set the limit (bytes per second; 0: none). Takes effect for the next bytes.
    pub fn set(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, std::sync::atomic::Ordering::Relaxed);
        *self.bucket.lock().unwrap_or_else(|p| p.into_inner()) = Bucket::default();
    }

    /// The limit in force (bytes per second; 0: none).
    pub fn rate(&self) -> u64 {
        self.rate.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Wait until `n` more bytes fit under the limit.
    pub async fn take(&self, n: usize) {
        let rate = self.rate();
        if rate == 0 {
            return;
        }
        let wait =
            self.bucket.lock().unwrap_or_else(|p| p.into_inner()).take(n as u64, rate, std::time::Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A transfer into a space while it runs: blobs asked for, blobs and bytes in so far.
#[derive(Debug)]
pub struct Receiving {
    /// Blobs the session's want list named (known before the first arrives).
    pub wanted: u64,
    /// Blobs stored so far.
    pub got: std::sync::atomic::AtomicU64,
    /// Their bytes.
    pub bytes: std::sync::atomic::AtomicU64,
    /// When the transfer began (ms since the epoch).
    pub started_ms: i64,
}

impl Receiving {
    /// One more blob of `len` bytes is stored.
    fn stored(&self, len: usize) {
        self.got.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.bytes.fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A snapshot of a [`Receiving`], for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReceivingNow {
    /// The space.
    pub space: crate::ids::SpaceId,
    /// Blobs asked for.
    pub wanted: u64,
    /// Blobs in.
    pub got: u64,
    /// Bytes in.
    pub bytes: u64,
    /// When it began (ms since the epoch).
    pub started_ms: i64,
}

impl ReceivingNow {
    /// Milliseconds left at the pace so far, once there is a pace to go by.
    pub fn eta_ms(&self, now_ms: i64) -> Option<i64> {
        let spent = now_ms.saturating_sub(self.started_ms);
        if self.got == 0 || spent <= 0 || self.got >= self.wanted {
            return None;
        }
        let left = self.wanted - self.got;
        Some((spent as f64 * left as f64 / self.got as f64) as i64)
    }
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
    /// When the peer refused: what kind of refusal (a full seeder, a refused invite, ...).
    pub refusal: Option<crate::sync::proto::Refusal>,
    /// After a sync with a seeder: the space whose copy there is behind what a member noted
    /// ([`SyncStats::stale`]).
    pub stale: Option<(SpaceId, crate::space::Stale)>,
}

pub use crate::error::SEEDER_FULL;

/// A seeder's store error as its peer hears it: a full disk is [`Error::SeederFull`].
fn seeder_error(e: Error) -> Error {
    match e {
        Error::DiskFull { .. } | Error::Store(crate::store::StoreError::DiskFull { .. }) => Error::SeederFull,
        e => e,
    }
}

/// The kind of refusal a peer hears for `e`.
fn refusal_of(e: &Error) -> crate::sync::proto::Refusal {
    e.refusal().unwrap_or_default()
}

/// The words of an error, for a `Refused` frame (without the "refused:" prefix).
fn reason(e: &Error) -> String {
    match e {
        Error::Refused(r) => r.clone(),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod receiving_tests {
    use super::ReceivingNow;

    #[test]
    fn the_time_left_follows_the_pace_so_far() {
        let r =
            |got| ReceivingNow { space: crate::ids::SpaceId([0; 32]), wanted: 100, got, bytes: 0, started_ms: 1_000 };
        assert_eq!(r(0).eta_ms(5_000), None, "no pace yet");
        assert_eq!(r(25).eta_ms(11_000), Some(30_000), "a quarter in 10 s: 30 s left");
        assert_eq!(r(100).eta_ms(11_000), None, "done");
    }
}

#[cfg(test)]
mod limit_tests {
    use super::Bucket;
    use std::time::{Duration, Instant};

    /// Over any run of takes, the waits add up to what the rate allows, less one burst.
    #[test]
    fn a_bucket_holds_its_rate() {
        let rate = 1_000_000;
        let t0 = Instant::now();
        let mut b = Bucket::default();
        let mut now = t0;
        for _ in 0..100 {
            // Each taker waits what it is told, then the next one comes.
            now += b.take(65_536, rate, now);
        }
        let took = now - t0;
        let expected = (100.0 * 65_536.0 - 250_000.0) / rate as f64;
        assert!((took.as_secs_f64() - expected).abs() < 0.01, "{took:?} for {expected} s");
        // Idle time refills only up to a burst: a long pause buys no flood afterwards.
        now += Duration::from_secs(60);
        assert_eq!(b.take(250_000, rate, now), Duration::ZERO);
        assert!(b.take(100_000, rate, now) >= Duration::from_millis(99));
    }
}
