//! The in-memory session harness shared by the session tests and the simulation: devices as
//! an engine would hold them (blob ids, a ledger, keys), and a loop that hands messages from
//! one session's outbox to the other's inbox and moves blobs as a driver would.
#![allow(dead_code)]

use cobox_agreements::{Agreement, Entry, Ledger};
use cobox_core::sync::proto::{Msg, Purpose, Role};
use cobox_core::sync::session::{Event, SeedPolicy, Session, SessionError, Setup, evaluate};
use cobox_core::{BlobId, DeviceId, SpaceId};
use ed25519_dalek::SigningKey;
use std::collections::{BTreeSet, VecDeque};

pub(crate) const NOW: i64 = 1_800_000_000_000;

/// One device's state for a space, as its engine would hold it.
#[derive(Clone)]
pub(crate) struct Device {
    pub(crate) key: SigningKey,
    pub(crate) role: Role,
    pub(crate) space_key: Option<SigningKey>,
    pub(crate) space: SpaceId,
    pub(crate) blobs: BTreeSet<BlobId>,
    pub(crate) ledger: Ledger,
    pub(crate) policy: SeedPolicy,
    pub(crate) listen: Vec<String>,
    /// What it reconciles listening to a `Metadata` session (its changes, and a member's chunk
    /// lists); `None`: everything it holds.
    pub(crate) metadata: Option<BTreeSet<BlobId>>,
    /// Blobs it names dialing a `Metadata` session (the chunk lists its manifest names).
    pub(crate) named: BTreeSet<BlobId>,
    /// It holds no content (joined to audit).
    pub(crate) metadata_only: bool,
    /// It joined by an invite and was not let in yet: listening, it answers as the joiner.
    pub(crate) joining: bool,
}

impl Device {
    pub(crate) fn id(&self) -> DeviceId {
        DeviceId(self.key.verifying_key().to_bytes())
    }

    pub(crate) fn setup(&self, peer: DeviceId, purpose: Purpose, nonce: u8) -> Setup {
        Setup {
            space: self.space,
            me: self.id(),
            device_key: self.key.clone(),
            peer,
            role: self.role,
            space_key: self.space_key.clone(),
            purpose: if self.joining { Purpose::Join } else { purpose },
            nonce: [nonce; 32],
            listen: self.listen.clone(),
            now_ms: NOW,
            policy: self.policy.clone(),
            evaluate,
            metadata_only: self.metadata_only,
        }
    }
}

/// The device that made every test space (a space's id derives from its creator's genesis).
pub(crate) const CREATOR: u8 = 1;

/// The genesis of the test space with shared key `space_key`, by [`CREATOR`], and the id it makes.
pub(crate) fn genesis_of(space_key: &SigningKey) -> (Vec<u8>, SpaceId) {
    let (bytes, id) = cobox_core::roster::genesis(space_key, &SigningKey::from_bytes(&[CREATOR; 32])).expect("genesis");
    (bytes, SpaceId(id))
}

/// The creator's ledger holding only the genesis of the space with shared key `space_key`:
/// one Automerge change every device of the space takes (two devices putting the same entry
/// separately would make two changes for one key, which a merge refuses as an overwrite).
fn base_ledger(space_key: &SigningKey) -> Ledger {
    thread_local! {
        static BASE: std::cell::RefCell<std::collections::HashMap<[u8; 32], Ledger>> = Default::default();
    }
    BASE.with(|b| {
        b.borrow_mut()
            .entry(space_key.to_bytes())
            .or_insert_with(|| {
                let mut l = Ledger::new();
                l.insert_roster_op(&genesis_of(space_key).0).expect("insert");
                l.save();
                l
            })
            .clone()
    })
}

/// `dev` holds the space's genesis (the creator's, as every member has it after a sync).
pub(crate) fn founded(dev: &mut Device) {
    let k = dev.space_key.clone().expect("a member");
    dev.ledger.merge(&mut base_ledger(&k)).expect("merge");
    dev.ledger.save();
}

pub(crate) fn member(seed: u8, space_key: &SigningKey, blobs: impl IntoIterator<Item = u32>) -> Device {
    Device {
        key: SigningKey::from_bytes(&[seed; 32]),
        role: Role::Member,
        space_key: Some(space_key.clone()),
        space: genesis_of(space_key).1,
        blobs: blobs.into_iter().map(blob).collect(),
        ledger: Ledger::new(),
        policy: SeedPolicy::default(),
        listen: vec![format!("127.0.0.1:{seed}")],
        metadata: None,
        named: BTreeSet::new(),
        metadata_only: false,
        joining: false,
    }
}

/// A member on the test space's roster: the creator (holding the genesis), or a writer the
/// creator added (its ledger holds the genesis and the `Add`, which every other writer's merge
/// brings the creator), as a device of a real space would be once it joined.
pub(crate) fn writer(seed: u8, space_key: &SigningKey, blobs: impl IntoIterator<Item = u32>) -> Device {
    use cobox_core::roster::{Action, Op, Role as R, SignedOp, op_id};
    let mut dev = member(seed, space_key, blobs);
    let (genesis, space) = genesis_of(space_key);
    founded(&mut dev);
    if seed != CREATOR {
        let creator = SigningKey::from_bytes(&[CREATOR; 32]);
        let add = Action::Add { device: dev.id().0, role: R::Write, name: vec![seed] };
        let op =
            Op { space: space.0, author: creator.verifying_key().to_bytes(), deps: vec![op_id(&genesis)], action: add };
        let bytes = SignedOp::sign(op, &creator, None).expect("sign").encode().expect("encode");
        dev.ledger.insert_roster_op(&bytes).expect("insert");
    }
    dev.ledger.save();
    dev
}

pub(crate) fn seeder(seed: u8, space: SpaceId, policy: SeedPolicy) -> Device {
    Device {
        key: SigningKey::from_bytes(&[seed; 32]),
        role: Role::Seeder,
        space_key: None,
        space,
        blobs: BTreeSet::new(),
        ledger: Ledger::new(),
        policy,
        listen: Vec::new(),
        metadata: None,
        named: BTreeSet::new(),
        metadata_only: false,
        joining: false,
    }
}

pub(crate) fn blob(n: u32) -> BlobId {
    BlobId(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

/// What travels from one side to the other: control messages and blobs, in order.
pub(crate) enum Wire {
    Msg(Msg),
    Blob(BlobId),
}

/// One side's driver: its device, its session once started, and what it is receiving.
pub(crate) struct Side<'a> {
    pub(crate) dev: &'a mut Device,
    pub(crate) session: Option<Session>,
    /// While receiving a transfer: most blobs this side may hold in all (one unit each).
    pub(crate) quota: Option<u64>,
    pub(crate) inbox: VecDeque<Wire>,
    pub(crate) received: u64,
    pub(crate) answered: Option<(Vec<Option<cobox_agreements::audit::Proof>>, u64)>,
    pub(crate) notes: Vec<String>,
    pub(crate) done: bool,
    /// A hostile peer: what arrives here is first changed by this.
    pub(crate) tamper: Option<fn(Msg) -> Msg>,
}

impl<'a> Side<'a> {
    pub(crate) fn new(dev: &'a mut Device) -> Self {
        Side {
            dev,
            session: None,
            quota: None,
            inbox: VecDeque::new(),
            received: 0,
            answered: None,
            notes: Vec::new(),
            done: false,
            tamper: None,
        }
    }

    /// Act on the session's events; what it sends goes to `to`.
    pub(crate) fn act(&mut self, to: &mut VecDeque<Wire>) -> Result<(), SessionError> {
        let Some(s) = self.session.as_mut() else { return Ok(()) };
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::Note(n) => self.notes.push(n),
                Event::Countersigned { .. } => self.notes.push("countersigned".into()),
                Event::LedgerChanged => {
                    self.dev.ledger.merge(s.ledger_mut()).map_err(|_| SessionError::Misuse("merge"))?;
                }
                Event::Authenticated { .. } => {}
                Event::NeedBlobs => match (s.purpose(), s.is_dialer(), &self.dev.metadata) {
                    (Purpose::Metadata, false, Some(subset)) => s.reconcile(subset.clone())?,
                    (Purpose::Metadata, true, _) => {
                        s.want_also(self.dev.named.clone())?;
                        s.reconcile(self.dev.blobs.clone())?
                    }
                    _ => s.reconcile(self.dev.blobs.clone())?,
                },
                Event::AuditReady => {
                    let ids: Vec<BlobId> = self.dev.blobs.iter().copied().collect();
                    s.challenge([9; 32], ids)?;
                }
                Event::Challenged { ids, .. } => {
                    // In memory a blob is its id: the proof is of those bytes.
                    let answers = ids
                        .iter()
                        .map(|id| {
                            self.dev
                                .blobs
                                .contains(id)
                                .then(|| cobox_agreements::audit::Proof { size: 32, ranges: id.0.to_vec() })
                        })
                        .collect();
                    s.answer(answers, self.dev.blobs.len() as u64)?;
                }
                Event::Answered { answers, stored_bytes } => self.answered = Some((answers, stored_bytes)),
                Event::Receive { quota, .. } => self.quota = Some(quota),
                Event::Send(ids) => {
                    // Control messages queued before the transfer go first, as on the stream.
                    while let Some(m) = s.poll_transmit() {
                        to.push_back(Wire::Msg(m));
                    }
                    for id in ids {
                        if self.dev.blobs.contains(&id) {
                            to.push_back(Wire::Blob(id));
                        }
                    }
                    s.sent()?;
                }
                Event::Finished => self.done = true,
            }
        }
        while let Some(m) = s.poll_transmit() {
            to.push_back(Wire::Msg(m));
        }
        Ok(())
    }

    /// Handle what arrived; a listener starts its session from the first message.
    pub(crate) fn take(&mut self, peer: DeviceId) -> Result<(), SessionError> {
        while let Some(w) = self.inbox.pop_front() {
            match w {
                Wire::Blob(id) => {
                    let s = self.session.as_ref().ok_or(SessionError::Misuse("blob before session"))?;
                    if !s.wants(&id) {
                        return Err(SessionError::Refused(format!("unrequested blob {id}")));
                    }
                    let quota = self.quota.ok_or(SessionError::Misuse("blob outside a transfer"))?;
                    if self.dev.blobs.len() as u64 >= quota {
                        return Err(SessionError::Refused("over quota".into()));
                    }
                    self.dev.blobs.insert(id);
                    self.received += 1;
                }
                Wire::Msg(m) => match (self.session.as_mut(), self.tamper.map_or(m.clone(), |f| f(m))) {
                    (Some(s), m) => {
                        self.quota = None;
                        s.receive(m)?;
                        return Ok(()); // let the driver act on what it caused first
                    }
                    (None, m) => {
                        let purpose = match &m {
                            Msg::Hello { purpose, .. } => *purpose,
                            _ => Purpose::Sync,
                        };
                        let setup = self.dev.setup(peer, purpose, 2);
                        let (s, accepted) = Session::accept(setup, self.dev.ledger.clone(), m);
                        self.session = Some(s);
                        return accepted;
                    }
                },
            }
        }
        Ok(())
    }
}

/// What one session did, seen from each side.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) dialer: Result<(), SessionError>,
    pub(crate) listener: Result<(), SessionError>,
    pub(crate) dialer_received: u64,
    pub(crate) listener_received: u64,
    pub(crate) answered: Option<(Vec<Option<cobox_agreements::audit::Proof>>, u64)>,
    pub(crate) not_pushed: u64,
    /// The dialer's session, once over.
    pub(crate) dialer_session: Option<Session>,
}

pub(crate) fn flush(session: &mut Option<Session>, to: &mut VecDeque<Wire>) {
    if let Some(s) = session.as_mut() {
        while let Some(m) = s.poll_transmit() {
            to.push_back(Wire::Msg(m));
        }
    }
}

/// Run one session between `a` (dialing) and `b` until both are done or one stops.
pub(crate) fn run(a: &mut Device, b: &mut Device, purpose: Purpose) -> Outcome {
    run_hostile(a, b, purpose, None, None)
}

/// [`run`], with what each side receives changed on the way: a peer that speaks the protocol
/// and sends one malicious message.
pub(crate) fn run_hostile(
    a: &mut Device,
    b: &mut Device,
    purpose: Purpose,
    to_dialer: Option<fn(Msg) -> Msg>,
    to_listener: Option<fn(Msg) -> Msg>,
) -> Outcome {
    run_with(a, b, purpose, to_dialer, to_listener, None, None)
}

/// [`run`], the connection lost after `rounds` turns of the loop (when given): what each side
/// stored or merged by then stays, as on a real device; the outcome is an error on both sides.
pub(crate) fn run_cut(a: &mut Device, b: &mut Device, purpose: Purpose, rounds: usize) -> Outcome {
    run_with(a, b, purpose, None, None, Some(rounds), None)
}

/// [`run`] over a lossy, reordering network: cut after `cut` rounds (when given), and blobs
/// sent together delivered in an order shuffled by `reorder` (as over several lanes).
pub(crate) fn run_faulty(
    a: &mut Device,
    b: &mut Device,
    purpose: Purpose,
    cut: Option<usize>,
    reorder: Option<u64>,
) -> Outcome {
    run_with(a, b, purpose, None, None, cut, reorder)
}

/// Shuffle each run of consecutive blobs in `inbox` (control messages keep their places).
fn shuffle_blobs(inbox: &mut VecDeque<Wire>, state: &mut u64) {
    let items: Vec<Wire> = inbox.drain(..).collect();
    let mut run: Vec<Wire> = Vec::new();
    let flush = |run: &mut Vec<Wire>, inbox: &mut VecDeque<Wire>, state: &mut u64| {
        for i in (1..run.len()).rev() {
            *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            run.swap(i, (*state >> 33) as usize % (i + 1));
        }
        inbox.extend(run.drain(..));
    };
    for w in items {
        match w {
            Wire::Blob(_) => run.push(w),
            m => {
                flush(&mut run, inbox, state);
                inbox.push_back(m);
            }
        }
    }
    flush(&mut run, inbox, state);
}

fn run_with(
    a: &mut Device,
    b: &mut Device,
    purpose: Purpose,
    to_dialer: Option<fn(Msg) -> Msg>,
    to_listener: Option<fn(Msg) -> Msg>,
    cut_after: Option<usize>,
    reorder: Option<u64>,
) -> Outcome {
    let mut shuffle = reorder;
    let (a_id, b_id) = (a.id(), b.id());
    let mut da = Side::new(a);
    let mut db = Side::new(b);
    da.tamper = to_dialer;
    db.tamper = to_listener;
    da.session = Some(Session::dial(da.dev.setup(b_id, purpose, 1), da.dev.ledger.clone()));
    let (mut ra, mut rb) = (Ok(()), Ok(()));
    for round in 0..10_000 {
        if cut_after.is_some_and(|c| round >= c) && !(da.done && db.done) {
            let lost = || Err(SessionError::PeerRefused("the connection was lost".into()));
            (ra, rb) = (ra.and_then(|()| lost()), rb.and_then(|()| lost()));
            break;
        }
        if ra.is_ok() {
            ra = da.act(&mut db.inbox);
        }
        if rb.is_ok() {
            rb = db.act(&mut da.inbox);
        }
        if let Some(state) = shuffle.as_mut() {
            shuffle_blobs(&mut da.inbox, state);
            shuffle_blobs(&mut db.inbox, state);
        }
        if ra.is_ok() && !da.inbox.is_empty() {
            ra = da.take(b_id);
        }
        if rb.is_ok() && !db.inbox.is_empty() {
            rb = db.take(a_id);
        }
        // Flush the refusals a failed side queued.
        flush(&mut da.session, &mut db.inbox);
        flush(&mut db.session, &mut da.inbox);
        let quiet = da.inbox.is_empty() && db.inbox.is_empty();
        if (da.done && db.done) || ((ra.is_err() || rb.is_err()) && quiet) {
            break;
        }
    }
    assert!(da.done && db.done || ra.is_err() || rb.is_err(), "the session neither ended nor failed");
    Outcome {
        not_pushed: da.session.as_ref().map_or(0, Session::not_pushed),
        dialer: ra,
        listener: rb,
        dialer_received: da.received,
        listener_received: db.received,
        answered: da.answered,
        dialer_session: da.session,
    }
}

pub(crate) fn space_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// A proposal from `owner` (a member) to `seeder`, recorded in the owner's ledger.
pub(crate) fn propose(owner: &mut Device, seeder: DeviceId, quota: u64) -> Agreement {
    let a = Agreement {
        space: owner.space.0,
        owner: owner.id().0,
        seeder: seeder.0,
        quota,
        start_ms: NOW - 1000,
        end_ms: NOW + 86_400_000,
        terms: String::new(),
        nonce: [1; 16],
    };
    if owner.key.to_bytes() == [CREATOR; 32] {
        founded(owner);
    }
    owner.ledger.insert(&Entry::propose(a.clone(), &owner.key)).expect("insert");
    // Commit it, as a saved ledger file is: a clone taken later must not share an open change.
    owner.ledger.save();
    a
}

/// `dev` makes a roster operation (after every one its ledger holds) and records it; `co` is
/// the second key a genesis (the space key) or a redemption (the invite key) needs.
pub(crate) fn roster_op(
    dev: &mut Device,
    action: cobox_core::roster::Action,
    co: Option<&SigningKey>,
) -> cobox_core::roster::OpId {
    use cobox_core::roster::evaluate;
    let deps = evaluate(&dev.space.0, &dev.ledger.roster_ops()).heads;
    roster_op_after(dev, deps, action, co)
}

/// [`roster_op`] with the operations it follows given.
pub(crate) fn roster_op_after(
    dev: &mut Device,
    deps: Vec<cobox_core::roster::OpId>,
    action: cobox_core::roster::Action,
    co: Option<&SigningKey>,
) -> cobox_core::roster::OpId {
    use cobox_core::roster::{Action, Op, SignedOp, genesis, op_id};
    if let Action::Genesis = action {
        // A genesis makes a space of its own: the creator's is the test space's.
        let (bytes, _) = genesis(co.expect("the space key"), &dev.key).expect("genesis");
        dev.ledger.insert_roster_op(&bytes).expect("insert");
        dev.ledger.save();
        return op_id(&bytes);
    }
    let op = Op { space: dev.space.0, author: dev.id().0, deps, action };
    let bytes = SignedOp::sign(op, &dev.key, co).expect("sign").encode().expect("encode");
    dev.ledger.insert_roster_op(&bytes).expect("insert");
    dev.ledger.save();
    op_id(&bytes)
}

/// The role `of` has on `dev`'s roster.
pub(crate) fn role_on(dev: &Device, of: &Device) -> Option<cobox_core::roster::Role> {
    cobox_core::roster::evaluate(&dev.space.0, &dev.ledger.roster_ops()).role(&of.id().0)
}
