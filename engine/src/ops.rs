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
            st.sent_blobs + st.received_blobs + st.changes_applied + st.ledger_new > 0
                || st.stale.is_some()
                || st.let_in
        })
    }
}

/// Sync `space` with its peers, all at once (a peer that is off holds up no other), each until
/// a session moves nothing either way ([`SYNC_ROUNDS`] at most). A peer that answers is
/// remembered for the space with the addresses it answered at. One entry per peer, in order;
/// none when no peer is given or known.
///
/// A space joined by an invite and not yet held is joined first ([`join`]): the first peer to
/// accept the invite hands over the ledger and with it the space's secret; when none does, the
/// peers' answers are the result.
pub async fn sync(node: &Node, root: &Path, space: &SpaceId, opts: &SyncOptions) -> Result<Vec<PeerSync>, Error> {
    let peers = peers_for(root, space, &opts.peers)?;
    if let Err(refused) = join(node, root, space, &peers, opts.peer_limit).await {
        return Ok(refused);
    }
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

/// The peers to dial for `space`: those `asked` for, with the addresses the address book
/// knows when one names none, else every peer met in the space.
pub fn peers_for(root: &Path, space: &SpaceId, asked: &[PeerAddr]) -> Result<Vec<PeerAddr>, Error> {
    if asked.is_empty() {
        Home::peer_addrs_at(root, space)
    } else {
        asked.iter().cloned().map(|p| Home::with_known_addrs(root, p)).collect()
    }
}

/// Finish joining `space` if this device joined it by an invite and holds no secret of it yet
/// (else nothing to do): a `Join` session with each of `peers` in turn until one accepts the
/// invite (a member whose role is at least the invite's, or a seeder under a manager's
/// agreement, judging it by its own roster and clock); the space secret then comes from the
/// ledger it sent ([`Home::complete_join`]) and the node serves the space. `Err`: each peer's
/// answer (a refused invite among them, [`crate::sync::proto::Refusal::InviteRefused`]: the
/// caller may then remove the space, which never held anything shared).
pub async fn join(
    node: &Node,
    root: &Path,
    space: &SpaceId,
    peers: &[PeerAddr],
    limit: Option<Duration>,
) -> Result<(), Vec<PeerSync>> {
    if node.space(space).is_some() || !Home::join_pending_at(root, space) {
        return Ok(());
    }
    let mut tried = Vec::new();
    for peer in peers {
        let run = async { node.join_once(root, space, dial_addr(peer)?).await };
        let result = match limit {
            None => run.await,
            Some(limit) => tokio::time::timeout(limit, run).await.unwrap_or_else(|_| {
                Err(Error::Net(format!("device {} did not answer within {} s", peer.device.short(), limit.as_secs())))
            }),
        };
        match result {
            Ok(()) => {
                if !peer.addrs.is_empty() {
                    let _ = Home::remember_peer_at(root, space, &peer.device, &peer.addrs);
                }
                return Ok(());
            }
            // Let in meanwhile by a peer that dialed this device.
            Err(_) if node.space(space).is_some() => return Ok(()),
            Err(e) => tried.push(PeerSync { peer: peer.clone(), result: Err(e) }),
        }
    }
    Err(tried)
}

/// Chunk proofs per audit unless asked for more, drawn over the bytes: a seeder missing 1% of
/// the data is caught with probability 99% per audit (`cobox_agreements::audit::DEFAULT_CHALLENGES`;
/// docs/security.md).
pub const AUDIT_SAMPLE: usize = cobox_agreements::audit::DEFAULT_CHALLENGES as usize;

/// What an audit is asked for.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The seeders to audit, addresses filled from the address book; empty: every seeder with
    /// an active agreement for the space.
    pub seeders: Vec<PeerAddr>,
    /// Chunk proofs asked of each (`usize::MAX`: every blob).
    pub sample: usize,
    /// Sync with each seeder after its audit (the schedule: it sends again what an audit found
    /// lost). An audit a person asks for does not, so it never downloads content.
    pub then_sync: bool,
}

impl AuditOptions {
    /// An audit a person or script asked for: of `seeders` (none: every active one), with
    /// `sample` proofs each ([`AUDIT_SAMPLE`] by default, `usize::MAX` for `--all`).
    pub fn asked(seeders: Vec<PeerAddr>, sample: usize) -> Self {
        Self { seeders, sample: sample.max(1), then_sync: false }
    }

    /// The daemon's periodic audit of every active seeder.
    pub fn scheduled(sample: usize) -> Self {
        Self { seeders: Vec::new(), sample: sample.max(1), then_sync: true }
    }
}

/// One seeder's audit.
#[derive(Debug)]
pub struct SeederAudit {
    /// The seeder, with the addresses dialed.
    pub seeder: PeerAddr,
    /// The sync run with it around the audit (after it on a schedule; before it on a device
    /// that holds no content, which fetches what to draw from); `Ok` when none ran. Its
    /// failure does not change the audit's result.
    pub synced: Result<(), Error>,
    /// The signed result.
    pub result: Result<cobox_agreements::AuditRecord, Error>,
}

/// Every seeder with an active agreement in `view`, addresses from the address book `book`.
pub fn audit_targets(view: &cobox_agreements::LedgerView, book: &crate::home::AddressBook) -> Vec<PeerAddr> {
    let mut seeders: Vec<[u8; 32]> = view
        .agreements
        .iter()
        .filter(|v| v.state == cobox_agreements::State::Active)
        .map(|v| v.agreement.seeder)
        .collect();
    seeders.sort();
    seeders.dedup();
    seeders
        .into_iter()
        .map(|s| {
            let device = crate::ids::DeviceId(s);
            PeerAddr { addrs: book.get(&device).cloned().unwrap_or_default(), device }
        })
        .collect()
}

/// Audit the seeders of `space`, one after another. The audit comes before any sync with the
/// seeder: it challenges only blobs the seeder acknowledged holding at its last complete sync,
/// so a sync just before would let a seeder that dropped data ask for it again unseen. A device
/// that holds no content first fetches the changes and chunk lists (never content) to draw the
/// sample from; the seeder takes nothing in that session. A seeder that answers is remembered
/// for the space with the addresses it answered at. One entry per seeder; none when the space
/// has no active seeder and none was named.
pub async fn audit(node: &Node, root: &Path, space: &SpaceId, opts: &AuditOptions) -> Result<Vec<SeederAudit>, Error> {
    // A device that joined by an invite (to audit, say) is let in by the first seeder or member
    // that accepts it.
    let to = peers_for(root, space, &opts.seeders)?;
    if let Err(refused) = join(node, root, space, &to, None).await {
        let failed = |r: PeerSync| {
            let e = r.result.err().unwrap_or_else(|| Error::JoinPending(space.short()));
            SeederAudit { seeder: r.peer, synced: Ok(()), result: Err(e) }
        };
        return Ok(refused.into_iter().map(failed).collect());
    }
    let seeders = if opts.seeders.is_empty() {
        let held = node.space(space).ok_or_else(|| Error::NotFound(format!("space {}", space.short())))?;
        let view = held.view().ledger.view(crate::now_ms())?;
        audit_targets(&view, &Home::peers_at(root)?)
    } else {
        opts.seeders.iter().cloned().map(|p| Home::with_known_addrs(root, p)).collect::<Result<_, _>>()?
    };
    let audit_only = node.audit_only(space);
    let mut out = Vec::new();
    for seeder in seeders {
        let (synced, result) = match dial_addr(&seeder) {
            Ok(p) if audit_only => {
                let fetched = node.sync_once(space, p.clone()).await.map(|_| ());
                (fetched, node.audit(space, p, opts.sample).await)
            }
            Ok(p) => {
                let result = node.audit(space, p.clone(), opts.sample).await;
                let synced = if opts.then_sync { node.sync_once(space, p).await.map(|_| ()) } else { Ok(()) };
                (synced, result)
            }
            Err(e) => (Ok(()), Err(e)),
        };
        if result.is_ok() && !seeder.addrs.is_empty() {
            Home::remember_peer_at(root, space, &seeder.device, &seeder.addrs)?;
        }
        out.push(SeederAudit { seeder, synced, result });
    }
    Ok(out)
}

/// A seed code's agreement as the owner's ledger states it, fetched before anything is
/// countersigned or stored ([`seed_fetch`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeedTerms {
    /// The agreement in one line, for a person to agree to.
    pub terms: String,
    /// Whether the seed was registered by this fetch (then [`seed_cancel`] forgets it).
    pub fresh: bool,
}

/// What seeding a space took ([`seed_accept`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeedReport {
    /// The space seeded.
    pub space: String,
    /// The agreement now active for this device (`None`: expired, revoked or not for it).
    pub agreement: Option<String>,
    /// What the sync moved.
    pub stats: SyncStats,
    /// Bytes held for the space.
    pub stored_bytes: u64,
}

/// Seeding from a seed code, first step: register the seed if new, fetch the owner's ledger
/// (a session that takes and stores no blob) and state the agreement's terms. A seed this
/// step registered is forgotten again if it fails.
pub async fn seed_fetch(node: &Node, root: &Path, code: &crate::codes::SeedCode) -> Result<SeedTerms, Error> {
    if code.owner.addrs.is_empty() {
        return Err(Error::Refused(
            "the seed code carries no address for the owner: ask them to start `cobox up` and propose again".into(),
        ));
    }
    let fresh =
        node.seed(&code.space).is_none() && !crate::home::paths::seed(root, &code.space).join("seed.json").exists();
    if node.seed(&code.space).is_none() {
        node.add_seed(Home::open_seed_at(root, node.device(), &code.space, true)?, None)?;
    }
    let terms = async {
        node.sync_once(&code.space, dial_addr(&code.owner)?).await?;
        let seed = node.seed(&code.space).ok_or_else(|| Error::SpaceNotFound(code.space.to_string()))?;
        let view = seed.view().ledger.view(crate::now_ms())?;
        crate::agreement_service::terms_line(&view, code)
    }
    .await;
    match terms {
        Ok(terms) => Ok(SeedTerms { terms, fresh }),
        Err(e) => {
            if fresh {
                seed_cancel(node, root, code)?;
            }
            Err(e)
        }
    }
}

/// Seeding, once the terms were agreed to: countersign the agreement and take the space's
/// blobs until in sync with the owner, who is remembered for the space.
pub async fn seed_accept(node: &Node, root: &Path, code: &crate::codes::SeedCode) -> Result<SeedReport, Error> {
    let seed = node
        .seed(&code.space)
        .ok_or_else(|| Error::NotFound(format!("a seed of space {}: fetch its terms first", code.space.short())))?;
    node.accept_agreement(cobox_agreements::AgreementId(code.agreement));
    let stats = node.sync_until_converged(&code.space, dial_addr(&code.owner)?, SYNC_ROUNDS).await?;
    Home::remember_peer_at(root, &code.space, &code.owner.device, &code.owner.addrs)?;
    let (stored_bytes, ledger) = {
        let s = seed.view();
        (s.used, s.ledger.clone())
    };
    let view = ledger.view(crate::now_ms())?;
    let agreement = view.active_for(node.device().as_bytes()).map(|v| v.id.to_string());
    Ok(SeedReport { space: code.space.to_string(), agreement, stats, stored_bytes })
}

/// Seeding declined: forget the seed a [`seed_fetch`] registered (its files go).
pub fn seed_cancel(node: &Node, root: &Path, code: &crate::codes::SeedCode) -> Result<(), Error> {
    node.forget(&code.space);
    Home::remove_seed(root, &code.space)
}

/// A space's status as every front end shows it: what the space holds and waits for, the
/// newest warning in the home's log, and each peer's last session with the running daemon
/// (`seen`: [`Node::peers_seen`]; empty without one). Run it on a blocking thread.
pub fn status(
    space: &crate::space::Space,
    root: &Path,
    seen: &[crate::sync::net::PeerSeen],
) -> Result<crate::space::Status, Error> {
    let id = space.info().id;
    let mut st = space.status()?;
    st.peers = seen
        .iter()
        .map(|p| crate::space::PeerHealth {
            device: p.device.clone(),
            last: crate::util::rfc3339(p.last_ms),
            ok: p.ok,
            error: p.error.clone(),
            behind_since: p.stale.filter(|(s, _)| *s == id).map(|(_, st)| crate::util::rfc3339(st.time_ms)),
        })
        .collect();
    st.last_error = crate::logfile::last_warning(root);
    // The ledger's roster, not the one the space holds in memory: a cancel written by `cobox
    // recovery cancel` beside a daemon reaches the space's copy only at its next scan or
    // received transfer, so the status said "is recovering" after the cancel had gone out.
    let roster = space.ledger().roster().unwrap_or_else(|_| space.roster.clone());
    st.recovering = recovering_lines(&roster, crate::now_ms());
    let window = i64::try_from(RECOVERY_CHECK_EVERY.as_millis() * 2).unwrap_or(i64::MAX);
    st.recovery_warning = crate::recovery::setup_of(root, &id)?.and_then(|s| s.warning(crate::now_ms(), window));
    Ok(st)
}

/// Each recovery announced in `roster` and not in effect yet, in words.
pub fn recovering_lines(roster: &cobox_core::roster::RosterView, now_ms: i64) -> Vec<String> {
    roster
        .recovering
        .iter()
        .map(|(device, r)| {
            let left = (r.until_ms - now_ms).max(0) / 1000;
            format!(
                "device {} is recovering this space as a manager: announced {}, in effect {} (in {left} s) unless a member cancels it (cobox recovery cancel)",
                crate::ids::DeviceId(*device).short(),
                crate::util::rfc3339(r.since_ms),
                crate::util::rfc3339(r.until_ms)
            )
        })
        .collect()
}

/// How often a daemon asks each custodian to prove its share, by default.
pub const RECOVERY_CHECK_EVERY: Duration = Duration::from_secs(7 * 24 * 3600);

/// A custodian as a recovery report shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CustodianLine {
    /// The custodian (`ID`).
    pub device: String,
    /// Whether it took its share.
    pub delivered: bool,
    /// When it last proved holding it (RFC 3339).
    pub proved: Option<String>,
    /// When it was last asked.
    pub checked: Option<String>,
    /// What went wrong last, if anything.
    pub error: Option<String>,
}

/// A space's recovery as `cobox recovery status` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The space (id).
    pub space: String,
    /// Its name.
    pub name: String,
    /// How many shares rebuild the key.
    pub threshold: u8,
    /// The waiting period (s).
    pub wait_s: i64,
    /// When it was set up (RFC 3339).
    pub made: String,
    /// Each custodian.
    pub custodians: Vec<CustodianLine>,
    /// Said when too few custodians answer.
    pub warning: Option<String>,
}

fn report_of(id: &SpaceId, name: &str, s: &crate::recovery::Setup, now_ms: i64) -> RecoveryReport {
    let window = i64::try_from(RECOVERY_CHECK_EVERY.as_millis() * 2).unwrap_or(i64::MAX);
    RecoveryReport {
        space: id.to_string(),
        name: name.to_owned(),
        threshold: s.plan.threshold,
        wait_s: s.plan.wait_ms / 1000,
        made: crate::util::rfc3339(s.made_ms),
        custodians: s
            .custodians
            .iter()
            .map(|c| CustodianLine {
                device: c.peer.device.to_string(),
                delivered: c.delivered,
                proved: c.proved_ms.map(crate::util::rfc3339),
                checked: c.checked_ms.map(crate::util::rfc3339),
                error: c.error.clone(),
            })
            .collect(),
        warning: s.warning(now_ms, window),
    }
}

/// Hand each custodian its deposit that has not taken it yet.
async fn deliver(node: &Node, s: &mut crate::recovery::Setup) {
    for c in s.custodians.iter_mut().filter(|c| !c.delivered) {
        let ask = cobox_core::recovery::Ask::Deposit { sealed: c.sealed.clone() };
        let answer = match dial_addr(&c.peer) {
            Ok(addr) => node.recovery_ask(addr, &ask).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(cobox_core::recovery::Answer::Held) => {
                c.delivered = true;
                c.sealed.clear();
                c.error = None;
            }
            Ok(cobox_core::recovery::Answer::Refused(why)) => c.error = Some(format!("refused its share: {why}")),
            Ok(other) => c.error = Some(format!("answered {other:?} to its share")),
            Err(e) => c.error = Some(format!("not reached to hand its share: {e}")),
        }
    }
}

/// Set up a space's recovery: a new key split `threshold`-of-N among `custodians` (addresses
/// filled from the address book), recorded in the roster, each share delivered now (those not
/// reached get theirs at the next check).
pub async fn recovery_setup(
    node: &Node,
    root: &Path,
    space: &str,
    custodians: Vec<PeerAddr>,
    threshold: usize,
    wait_ms: i64,
) -> Result<RecoveryReport, Error> {
    let custodians = custodians.into_iter().map(|p| Home::with_known_addrs(root, p)).collect::<Result<Vec<_>, _>>()?;
    let (r, q) = (root.to_owned(), space.to_owned());
    let (info, mut setup) =
        tokio::task::spawn_blocking(move || crate::recovery::setup(&r, &q, custodians, threshold, wait_ms))
            .await
            .map_err(|e| Error::Internal("setting up recovery", e.to_string()))??;
    deliver(node, &mut setup).await;
    crate::recovery::save_setup(root, &info.id, &setup)?;
    Ok(report_of(&info.id, &info.name, &setup, crate::now_ms()))
}

/// Ask each custodian of a space's recovery to prove it still holds its share (a fresh nonce
/// each, a Schnorr proof against the plan's check value), handing over shares not delivered
/// yet first; the results are kept and reported.
pub async fn recovery_check(node: &Node, root: &Path, space: &str) -> Result<RecoveryReport, Error> {
    let info = Home::resolve_at(root, space)?;
    let mut setup = crate::recovery::setup_of(root, &info.id)?.ok_or_else(|| {
        Error::NotFound(format!("space {:?} has no recovery set up on this device (cobox recovery setup)", info.name))
    })?;
    deliver(node, &mut setup).await;
    let now = crate::now_ms();
    for (index, c) in setup.custodians.iter_mut().enumerate() {
        if !c.delivered {
            c.checked_ms = Some(now);
            continue;
        }
        let mut nonce = [0u8; 32];
        crate::random_bytes(&mut nonce);
        let ask = cobox_core::recovery::Ask::Prove { space: info.id.0, key: setup.plan.key, nonce };
        let answer = match dial_addr(&c.peer) {
            Ok(addr) => node.recovery_ask(addr, &ask).await,
            Err(e) => Err(e),
        };
        c.checked_ms = Some(now);
        let reached = answer.is_ok();
        c.error = match answer {
            Ok(cobox_core::recovery::Answer::Proof { index: i, proof }) if usize::from(i) == index => {
                match cobox_core::recovery::verify_proof(&setup.plan, index, &nonce, &proof) {
                    Ok(()) => {
                        c.proved_ms = Some(now);
                        None
                    }
                    Err(e) => Some(format!("its proof failed: {e}")),
                }
            }
            Ok(cobox_core::recovery::Answer::Proof { index: i, .. }) => {
                Some(format!("it proved share {} where it holds share {}", i + 1, index + 1))
            }
            Ok(cobox_core::recovery::Answer::Refused(why)) => Some(format!("missing: {why}")),
            Ok(other) => Some(format!("answered {other:?}")),
            Err(e) => Some(format!("not reached: {e}")),
        };
        let proved = reached && c.error.is_none();
        node.health().record(&c.peer.device, &info.id, crate::health::Event::RecoveryCheck { reached, proved });
        match &c.error {
            None => tracing::info!(
                "recovery of space {}: custodian {} proved its share",
                info.id.short(),
                c.peer.device.short()
            ),
            Some(e) => tracing::warn!("recovery of space {}: custodian {} {e}", info.id.short(), c.peer.device.short()),
        }
    }
    node.health().flush();
    crate::recovery::save_setup(root, &info.id, &setup)?;
    let report = report_of(&info.id, &info.name, &setup, now);
    if let Some(w) = &report.warning {
        tracing::warn!("space {}: {w}", info.id.short());
    }
    Ok(report)
}

/// A space's recovery as this device (its dealer) set it up.
pub fn recovery_status(root: &Path, space: &str) -> Result<RecoveryReport, Error> {
    let info = Home::resolve_at(root, space)?;
    let setup = crate::recovery::setup_of(root, &info.id)?.ok_or_else(|| {
        Error::NotFound(format!("space {:?} has no recovery set up on this device (cobox recovery setup)", info.name))
    })?;
    Ok(report_of(&info.id, &info.name, &setup, crate::now_ms()))
}

/// What a custodian's approval did: whom it released its share to, and how many the
/// recovering device holds now.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Approved {
    /// The space (id).
    pub space: String,
    /// Its name, as the dealer called it.
    pub name: String,
    /// The recovering device.
    pub device: String,
    /// The request's fingerprint.
    pub fingerprint: String,
    /// Shares the device holds now.
    pub have: u8,
    /// Shares it needs.
    pub need: u8,
}

/// Release this custodian's share to the device whose request `code` is (the person confirmed
/// its fingerprint): sealed to that device, bound to that request, sent to where it listens.
pub async fn recovery_approve(node: &Node, root: &Path, code: &str) -> Result<Approved, Error> {
    let request = cobox_core::recovery::Request::parse(code).map_err(|e| Error::Refused(e.to_string()))?;
    let (r, q) = (root.to_owned(), request.clone());
    let (approval, sealed) = tokio::task::spawn_blocking(move || crate::recovery::release(&r, &q))
        .await
        .map_err(|e| Error::Internal("approving a recovery", e.to_string()))??;
    let to = PeerAddr { device: crate::ids::DeviceId(request.device), addrs: request.addrs.clone() };
    match node.recovery_ask(dial_addr(&to)?, &cobox_core::recovery::Ask::Release { sealed }).await? {
        cobox_core::recovery::Answer::Taken { have, need } => Ok(Approved {
            space: approval.space,
            name: approval.name,
            device: approval.device,
            fingerprint: approval.fingerprint,
            have,
            need,
        }),
        cobox_core::recovery::Answer::Refused(why) => {
            Err(Error::Refused(format!("the recovering device refused the share: {why}")))
        }
        other => Err(Error::Refused(format!("the recovering device answered {other:?}"))),
    }
}

/// The co-op's network at a glance ([`crate::overview`]) from a running node: its health
/// record as it stands, the bytes each space it holds takes.
pub fn network(node: &Node, root: &Path) -> Result<crate::overview::NetworkReport, Error> {
    let mut used = std::collections::HashMap::new();
    for (id, h) in node.held() {
        let bytes = match h {
            crate::sync::net::Held::Member(s) => s.view().store.usage().map(|(_, b)| b)?,
            crate::sync::net::Held::Seed(s) => s.view().used,
        };
        used.insert(id, bytes);
    }
    let health = node.health().snapshot();
    let inputs =
        crate::overview::Inputs { health: &health, usage: &|id| used.get(id).copied(), now_ms: crate::now_ms() };
    crate::overview::report(root, &inputs)
}

/// The same without a running node: the health record as last saved, the stores opened here.
pub fn network_here(home: &Home) -> Result<crate::overview::NetworkReport, Error> {
    let mut used = std::collections::HashMap::new();
    for info in home.spaces()? {
        if Home::join_pending_at(home.root(), &info.id) {
            continue;
        }
        used.insert(info.id, home.open_space(&info.id.to_string())?.status()?.stored_bytes);
    }
    for s in home.seeds()? {
        used.insert(s.space, home.open_seed(&s.space, false)?.used());
    }
    let health = crate::health::read(home.root())?;
    let inputs =
        crate::overview::Inputs { health: &health, usage: &|id| used.get(id).copied(), now_ms: crate::now_ms() };
    crate::overview::report(home.root(), &inputs)
}
