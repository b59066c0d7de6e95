//! Social recovery on this device, as files in the home (the network part is in
//! `sync::net::recovery`, the operations in `ops`):
//!
//! - as a **dealer** (a manager): a setup draws a recovery key, splits it among custodians
//!   (`cobox_core::recovery`), records the plan in the roster as a recovery invite (cancelling
//!   the previous one, whose shares are then worthless) and keeps in `recovery.json` beside the
//!   space whom to deliver to and what each custodian's last proof showed;
//! - as a **custodian**: deposits are kept as they arrived, sealed to this device's key, in
//!   `custody/` (no key, no plaintext: a share opens only with the device key, and alone
//!   rebuilds nothing), and opened only to prove holding one or to release it;
//! - as a **recovering device**: a request (`recovering/<space>.json`) collects the released
//!   shares; with enough of them the recovery key is rebuilt and the space joined with it, as
//!   with an invite, which the roster lets in once the plan's waiting period is over.

use crate::codes::PeerAddr;
use crate::error::Error;
use crate::home::{Home, paths};

use crate::ids::{DeviceId, SpaceId};
use crate::util::write_atomic;
pub use cobox_core::recovery::{Answer, Ask, Deposit, Plan, Proof, RecoveryError, Release, Request};
use cobox_core::roster::{Action, Key32};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The most deposits a custodian keeps (each a few KiB), so no dealer fills its disk.
const MAX_CUSTODY: usize = 256;

fn refused(e: cobox_core::recovery::RecoveryError) -> Error {
    Error::Refused(e.to_string())
}

fn custody_dir(root: &Path) -> PathBuf {
    root.join("custody")
}

fn custody_file(root: &Path, space: &Key32, key: &Key32) -> PathBuf {
    custody_dir(root).join(format!("{}-{}.sealed", hex::encode(space), hex::encode(&key[..8])))
}

fn dealer_file(root: &Path, space: &SpaceId) -> PathBuf {
    paths::space(root, space).join("recovery.json")
}

fn request_file(root: &Path, space: &Key32) -> PathBuf {
    root.join("recovering").join(format!("{}.json", hex::encode(space)))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Config { path: path.to_owned(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    write_atomic(path, &crate::error::json("recovery state", v)?)
}

/// A custodian as the dealer keeps it: where to reach it, its sealed deposit until delivered,
/// and what its last check showed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Custodian {
    /// The custodian device and its addresses.
    pub peer: PeerAddr,
    /// Its deposit, sealed to it, while not delivered (then emptied).
    pub sealed: Vec<u8>,
    /// Whether it took its deposit.
    pub delivered: bool,
    /// When it last proved holding its share (ms since the epoch).
    pub proved_ms: Option<i64>,
    /// When it was last asked.
    pub checked_ms: Option<i64>,
    /// What went wrong at the last check or delivery, if anything.
    pub error: Option<String>,
}

/// A space's recovery setup as its dealer keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Setup {
    /// The plan (also in the roster).
    pub plan: Plan,
    /// The roster operation that made it.
    pub op: [u8; 32],
    /// When it was set up.
    pub made_ms: i64,
    /// The custodians, in the plan's order.
    pub custodians: Vec<Custodian>,
}

impl Setup {
    /// Custodians that proved their share within `window_ms` of `now_ms` and did not fail a
    /// check since (a share lost after its last proof is lost).
    pub fn answering(&self, now_ms: i64, window_ms: i64) -> usize {
        self.custodians
            .iter()
            .filter(|c| c.error.is_none() && c.proved_ms.is_some_and(|t| now_ms - t <= window_ms))
            .count()
    }

    /// A warning when fewer than the threshold plus one custodians answered the last checks:
    /// one more loss and the space could not be recovered.
    pub fn warning(&self, now_ms: i64, window_ms: i64) -> Option<String> {
        let (k, n) = (usize::from(self.plan.threshold), self.answering(now_ms, window_ms));
        let checked = self.custodians.iter().any(|c| c.checked_ms.is_some());
        (checked && n < k + 1).then(|| {
            format!(
                "only {n} of {} recovery custodians proved their share lately, and {k} are needed: {}",
                self.custodians.len(),
                if n < k {
                    "the space cannot be recovered from its custodians now; set recovery up again (cobox recovery setup)"
                } else {
                    "one more loss and it could not be; set recovery up again with other custodians"
                }
            )
        })
    }
}

/// The dealer's record of a space's recovery, if it set one up.
pub fn setup_of(root: &Path, space: &SpaceId) -> Result<Option<Setup>, Error> {
    read_json(&dealer_file(root, space))
}

/// Record a space's recovery setup.
pub fn save_setup(root: &Path, space: &SpaceId, s: &Setup) -> Result<(), Error> {
    write_json(&dealer_file(root, space), s)
}

/// A new recovery key for a space, split among `custodians` (`threshold` of them rebuild it):
/// the plan goes into the roster as a recovery invite (the previous one cancelled, so its
/// shares are worthless), and each custodian's deposit is sealed for delivery. Only a
/// manager sets recovery up.
pub fn setup(
    root: &Path,
    query: &str,
    custodians: Vec<PeerAddr>,
    threshold: usize,
    wait_ms: i64,
) -> Result<(SpaceInfoName, Setup), Error> {
    let (info, dir, secret) = Home::space_files(root, query)?;
    let device_key = Home::device_key_at(root)?;
    let me = device_key.verifying_key().to_bytes();
    let ledger = crate::ledger::LedgerFile::new(info.id, &dir);
    let view = ledger.roster()?;
    if view.role(&me) != Some(cobox_core::roster::Role::Manage) {
        return Err(Error::Refused(format!(
            "only a manager of space {:?} sets up its recovery (a recovery makes a manager)",
            info.name
        )));
    }
    let keys: Vec<Key32> = custodians.iter().map(|c| c.device.0).collect();
    cobox_core::recovery::check_setup(&me, &keys, threshold).map_err(refused)?;
    let mut seed = [0u8; 32];
    crate::random_bytes(&mut seed);
    let dealt = cobox_core::recovery::deal(&me, keys, threshold, wait_ms, seed).map_err(refused)?;
    // The recovery key gets the space secret and every key epoch, as an invite's key does.
    let invite_key = crate::ledger::invite_key_at(&dir);
    let (space_keys, missing) = crate::ledger::space_keys(&info.id, &secret, &view, &device_key, invite_key.as_ref());
    if let Some(epoch) = missing {
        return Err(Error::Refused(format!(
            "this device does not hold the space's current key (epoch {epoch:08x}) yet; sync with another manager first"
        )));
    }
    let all = crate::ledger::epoch_keys(&info.id, &secret, &view, &device_key, invite_key.as_ref());
    let epoch = space_keys.current();
    let mut s1 = [0u8; 32];
    crate::random_bytes(&mut s1);
    let sealed_keys =
        cobox_core::epoch::seal_keys(&dealt.plan.key, &all, &cobox_core::epoch::context(&info.id.0, epoch), s1)
            .map_err(|e| Error::Refused(format!("sealing the keys to the recovery key: {e}")))?;
    let mut s2 = [0u8; 32];
    crate::random_bytes(&mut s2);
    let sealed_secret = cobox_core::epoch::seal_secret(&dealt.plan.key, &secret, &info.id.0, s2)
        .map_err(|e| Error::Refused(format!("sealing the space secret to the recovery key: {e}")))?;
    // Setting up again: the old recovery invite goes, and its shares with it.
    for (key, inv) in &view.invites {
        if inv.plan.is_some() && inv.redeemed_by.is_none() && !inv.cancelled {
            ledger.add_roster_op(&device_key, Action::Cancel { invite: *key }, None)?;
        }
    }
    let action = Action::Recovery {
        key: dealt.plan.key,
        keys: sealed_keys,
        epoch,
        secret: sealed_secret,
        plan: dealt.plan.clone(),
    };
    let op = ledger.add_roster_op(&device_key, action, None)?;
    // Where the space can be reached, for the recovering device: this one and its peers.
    let mut peers: Vec<String> = vec![PeerAddr { device: DeviceId(me), addrs: Home::listening_at(root)? }.to_string()];
    for p in Home::peer_addrs_at(root, &info.id)?.into_iter().filter(|p| p.device.0 != me).take(7) {
        peers.push(PeerAddr { device: p.device, addrs: p.addrs.into_iter().take(3).collect() }.to_string());
    }
    let made_ms = crate::now_ms();
    let mut out = Vec::new();
    for (index, (peer, share)) in custodians.into_iter().zip(dealt.shares.iter()).enumerate() {
        let deposit = Deposit {
            space: info.id.0,
            name: info.name.clone(),
            op: op.0,
            plan: dealt.plan.clone(),
            index: index as u8,
            share: *share,
            peers: peers.clone(),
            dealer: me,
            made_ms,
        };
        let mut seed = [0u8; 32];
        crate::random_bytes(&mut seed);
        let sealed = deposit.seal(&device_key, &peer.device.0, seed).map_err(refused)?;
        out.push(Custodian { peer, sealed, delivered: false, proved_ms: None, checked_ms: None, error: None });
    }
    let setup = Setup { plan: dealt.plan, op: op.0, made_ms, custodians: out };
    save_setup(root, &info.id, &setup)?;
    Ok((SpaceInfoName { id: info.id, name: info.name }, setup))
}

/// A space's id and name.
#[derive(Debug, Clone)]
pub struct SpaceInfoName {
    /// The space.
    pub id: SpaceId,
    /// Its name on this device.
    pub name: String,
}

/// A deposit a custodian holds, as it lists them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Held {
    /// The space.
    pub space: String,
    /// The space's name, as its dealer calls it.
    pub name: String,
    /// Which share (from 1).
    pub share: u8,
    /// Of how many, and how many are needed.
    pub of: usize,
    /// The threshold.
    pub threshold: u8,
    /// The dealer.
    pub dealer: String,
    /// When it was dealt (RFC 3339).
    pub made: String,
}

/// Keep a deposit sealed to this device, from `from` (the device the network proved): opened
/// once to check it (sealed to this device, signed by the dealer it names, which must be
/// `from`, its share matching its plan), then kept sealed as it came.
pub fn keep_deposit(root: &Path, from: &DeviceId, sealed: &[u8]) -> Result<Held, Error> {
    let me = Home::device_key_at(root)?;
    let (d, _) = Deposit::open(&me, sealed).map_err(refused)?;
    if d.dealer != from.0 {
        return Err(Error::Refused("the deposit was dealt by another device than the one sending it".into()));
    }
    let path = custody_file(root, &d.space, &d.plan.key);
    let dir = custody_dir(root);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let held = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?.count();
    if held >= MAX_CUSTODY && !path.exists() {
        return Err(Error::Refused(format!("this device already keeps {held} recovery shares, its most")));
    }
    crate::home::write_secret(&path, sealed)?;
    Ok(held_of(&d))
}

fn held_of(d: &Deposit) -> Held {
    Held {
        space: SpaceId(d.space).to_string(),
        name: d.name.clone(),
        share: d.index + 1,
        of: d.plan.custodians.len(),
        threshold: d.plan.threshold,
        dealer: DeviceId(d.dealer).to_string(),
        made: crate::util::rfc3339(d.made_ms),
    }
}

/// Every deposit this device keeps as a custodian that opens (one that does not is skipped
/// and named in the log).
fn deposits(root: &Path) -> Result<Vec<(PathBuf, Deposit, Vec<u8>)>, Error> {
    let dir = custody_dir(root);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let me = Home::device_key_at(root)?;
    let mut out = Vec::new();
    for e in entries {
        let path = e.map_err(|e| Error::io(&dir, e))?.path();
        let sealed = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        match Deposit::open(&me, &sealed) {
            Ok((d, signed)) => out.push((path, d, signed)),
            Err(e) => tracing::warn!("recovery: {} does not open: {e}", path.display()),
        }
    }
    Ok(out)
}

/// The shares this device keeps for others.
pub fn custody(root: &Path) -> Result<Vec<Held>, Error> {
    Ok(deposits(root)?.iter().map(|(_, d, _)| held_of(d)).collect())
}

/// Prove holding the share of plan `key` of `space`, for `nonce`.
pub fn prove(root: &Path, space: &Key32, key: &Key32, nonce: &[u8; 32]) -> Result<(u8, Proof), Error> {
    let path = custody_file(root, space, key);
    let sealed = match std::fs::read(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound("this device holds no share of that recovery plan".into()));
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let me = Home::device_key_at(root)?;
    let (d, _) = Deposit::open(&me, &sealed).map_err(refused)?;
    let proof = cobox_core::recovery::prove(&d.plan, usize::from(d.index), &d.share, nonce).map_err(refused)?;
    Ok((d.index, proof))
}

/// What a custodian approving a request is shown before it releases its share.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    /// The space, by id and the dealer's name for it.
    pub space: String,
    /// Its name.
    pub name: String,
    /// The device asking.
    pub device: String,
    /// The fingerprint to compare by voice with the person asking.
    pub fingerprint: String,
    /// The share released (from 1).
    pub share: u8,
}

/// This custodian's share for `request`, sealed to the requesting device and bound to the
/// request (the newest plan's, when it holds several for the space).
pub fn release(root: &Path, request: &Request) -> Result<(Approval, Vec<u8>), Error> {
    let me = Home::device_key_at(root)?;
    let found =
        deposits(root)?.into_iter().filter(|(_, d, _)| d.space == request.space).max_by_key(|(_, d, _)| d.made_ms);
    let Some((_, d, signed)) = found else {
        return Err(Error::NotFound(format!(
            "this device holds no recovery share of space {}",
            SpaceId(request.space).short()
        )));
    };
    let r = Release { request: request.id(), custodian: me.verifying_key().to_bytes(), deposit: signed };
    let mut seed = [0u8; 32];
    crate::random_bytes(&mut seed);
    let sealed = r.seal(&me, &request.device, seed).map_err(refused)?;
    let approval = Approval {
        space: SpaceId(d.space).to_string(),
        name: d.name.clone(),
        device: DeviceId(request.device).to_string(),
        fingerprint: request.fingerprint(),
        share: d.index + 1,
    };
    Ok((approval, sealed))
}

/// A recovery this device asked for: the request, where the folder goes, and the shares
/// released to it so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recovering {
    /// The request its code carries.
    pub request: Request,
    /// The folder to restore into.
    pub path: PathBuf,
    /// Extra peers to join through (`ID@ADDR,...`), beside those the deposits name.
    pub peers: Vec<String>,
    /// Shares taken: index (from 0), share, and the custodian that released it.
    pub shares: Vec<(u8, [u8; 32], Key32)>,
    /// The plan they belong to, once one share arrived.
    pub plan: Option<Plan>,
    /// The roster operation of the recovery invite.
    pub op: Option<[u8; 32]>,
    /// The space's name, from the deposits.
    pub name: Option<String>,
    /// Where the space can be reached, from the deposits.
    pub deposit_peers: Vec<String>,
    /// Set once the key was rebuilt and the space joined.
    pub joined: bool,
}

/// Ask for a recovery of `space`: a request (its code goes to custodians by any channel),
/// recorded so the shares they release are collected here.
pub fn request(
    root: &Path,
    space: SpaceId,
    path: PathBuf,
    addrs: Vec<String>,
    peers: Vec<String>,
) -> Result<Request, Error> {
    if Home::spaces_at(root)?.iter().any(|s| s.id == space) {
        return Err(Error::SpaceExists(format!("this device already holds space {}", space.short())));
    }
    let device = Home::device_key_at(root)?.verifying_key().to_bytes();
    let mut nonce = [0u8; 16];
    crate::random_bytes(&mut nonce);
    let request = Request { space: space.0, device, addrs, nonce };
    let r = Recovering {
        request: request.clone(),
        path,
        peers,
        shares: Vec::new(),
        plan: None,
        op: None,
        name: None,
        deposit_peers: Vec::new(),
        joined: false,
    };
    write_json(&request_file(root, &space.0), &r)?;
    Ok(request)
}

/// The recoveries this device asked for.
pub fn requests(root: &Path) -> Result<Vec<Recovering>, Error> {
    let dir = root.join("recovering");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let path = e.map_err(|e| Error::io(&dir, e))?.path();
        if let Some(r) = read_json::<Recovering>(&path)? {
            out.push(r);
        }
    }
    Ok(out)
}

/// What taking a released share did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The space.
    pub space: SpaceId,
    /// Shares held now.
    pub have: u8,
    /// Shares needed.
    pub need: u8,
    /// The invite to join with, once enough shares rebuilt the key.
    pub invite: Option<crate::codes::Invite>,
}

/// Take a share released to this device by `from` (the custodian the network proved): it must
/// open for one of this device's requests and pass every check (its request, its space, its
/// custodian, the plan's commitments), and not repeat a share held. With the threshold
/// reached, the key is rebuilt and checked against the plan.
pub fn take_release(root: &Path, from: &DeviceId, sealed: &[u8]) -> Result<Taken, Error> {
    let me = Home::device_key_at(root)?;
    let mut last = None;
    for mut r in requests(root)? {
        if r.joined {
            continue;
        }
        let d = match Release::open(&me, sealed, &r.request, &from.0) {
            Ok(d) => d,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        if let Some(plan) = &r.plan
            && *plan != d.plan
        {
            return Err(Error::Refused(
                "this share belongs to another recovery setup of the space than the shares held (a custodian of an older setup?)".into(),
            ));
        }
        if r.shares.iter().any(|(i, _, c)| *i == d.index || *c == from.0) {
            return Err(Error::Refused(format!(
                "custodian {} already released its share to this request",
                from.short()
            )));
        }
        r.shares.push((d.index, d.share, from.0));
        r.plan = Some(d.plan.clone());
        r.op = Some(d.op);
        r.name = Some(d.name.clone());
        for p in &d.peers {
            if !r.deposit_peers.contains(p) {
                r.deposit_peers.push(p.clone());
            }
        }
        let (have, need) = (r.shares.len() as u8, d.plan.threshold);
        let space = SpaceId(r.request.space);
        let mut invite = None;
        if have >= need {
            let shares: Vec<(usize, [u8; 32])> = r.shares.iter().map(|(i, s, _)| (usize::from(*i), *s)).collect();
            let key = cobox_core::recovery::combine(&d.plan, &shares).map_err(refused)?;
            let mut peers: Vec<PeerAddr> = Vec::new();
            for p in r.peers.iter().chain(r.deposit_peers.iter()) {
                if let Ok(p) = p.parse::<PeerAddr>()
                    && !peers.iter().any(|q| q.device == p.device)
                {
                    peers.push(p);
                }
            }
            invite = Some(crate::codes::Invite { space, name: d.name.clone(), peers, key: key.to_bytes(), op: d.op });
        }
        write_json(&request_file(root, &r.request.space), &r)?;
        return Ok(Taken { space, have, need, invite });
    }
    Err(match last {
        Some(e) => refused(e),
        None => Error::Refused("this device asked for no recovery (cobox recovery request SPACE_ID first)".into()),
    })
}

/// Mark a request done: its space is joined with the rebuilt key.
pub fn mark_joined(root: &Path, space: &SpaceId) -> Result<(), Error> {
    let path = request_file(root, &space.0);
    if let Some(mut r) = read_json::<Recovering>(&path)? {
        r.joined = true;
        // The shares did their work: the key lives on as the joined space's invite key.
        r.shares.clear();
        write_json(&path, &r)?;
    }
    Ok(())
}

/// Cancel every recovery of `space` announced and not yet in effect (any member may): it then
/// grants nothing. Returns the devices whose recovery was cancelled.
pub fn cancel(root: &Path, query: &str) -> Result<Vec<DeviceId>, Error> {
    let (info, dir, _) = Home::space_files(root, query)?;
    let device_key = Home::device_key_at(root)?;
    let ledger = crate::ledger::LedgerFile::new(info.id, &dir);
    let view = ledger.roster()?;
    if view.role(&device_key.verifying_key().to_bytes()).is_none() {
        return Err(Error::Refused(format!("this device is not a member of space {:?}", info.name)));
    }
    let mut out = Vec::new();
    let mut done = std::collections::BTreeSet::new();
    for (device, r) in &view.recovering {
        if done.insert(r.invite) {
            ledger.add_roster_op(&device_key, Action::Cancel { invite: r.invite }, None)?;
        }
        out.push(DeviceId(*device));
    }
    if out.is_empty() {
        return Err(Error::NotFound(format!("no recovery of space {:?} is waiting to take effect", info.name)));
    }
    Ok(out)
}
