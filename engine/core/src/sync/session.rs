//! One sync or audit session as a sans-IO state machine, in the manner of automerge's `sync`:
//! the driver hands it each control message it reads ([`Session::receive`]), sends what
//! [`Session::poll_transmit`] gives, and acts on what [`Session::poll_event`] asks (persist the
//! ledger, list the blobs held, send or receive a transfer, answer an audit). Blob frames never
//! pass through here: the driver moves them, checking each against [`Session::wants`].
//!
//! The message order is `proto`'s. The session holds the ledger in memory: the peer's changes
//! are merged into it (never into the caller's file until [`Event::LedgerChanged`]), it is
//! evaluated once, and that view decides what may move. No clock or random source is read:
//! the time and the nonce come in through [`Setup`].

use super::proto::{MAX_FRAME, MAX_OPENING_FRAME, MAX_STEP_IDS, Msg, Purpose, Refusal, Role, check_proof, prove};
use super::reconcile::{Item, Reconciler};
use crate::ids::{BlobId, DeviceId, SpaceId};
use crate::roster;
use cobox_agreements::{AgreementId, Entry, Ledger, LedgerView, State};
use ed25519_dalek::SigningKey;
use std::collections::{BTreeSet, VecDeque};

/// Most ledger heads (with their parents) a `Hello` carries; a handful is usual.
pub const MAX_HEADS: usize = 64;

/// Which proposals a seeder countersigns by itself.
#[derive(Debug, Clone, Default)]
pub struct SeedPolicy {
    /// Owner devices whose proposals it accepts (`cobox up --seed-for`), taking their spaces on.
    pub owners: Vec<DeviceId>,
    /// The largest quota it accepts from them.
    pub max_quota: u64,
    /// Agreements it accepts whoever proposed them (from seed codes the user ran).
    pub accept: Vec<AgreementId>,
    /// Who runs this seeder, told in a signed note under each agreement it holds; empty: not told.
    pub operator: String,
}

/// Verifies a ledger's entries and derives every agreement's state. The engine passes one that
/// remembers signature verdicts across sessions; [`evaluate`] verifies everything each time.
pub type Evaluate = fn(&SpaceId, &[(String, Vec<u8>)], i64) -> LedgerView;

/// [`Evaluate`] without memory.
pub fn evaluate(space: &SpaceId, entries: &[(String, Vec<u8>)], now_ms: i64) -> LedgerView {
    crate::roster::ledger_view(space, entries, now_ms, &mut cobox_agreements::Verified::default())
}

/// What a session starts from: who is talking, about what, and the caller's time and nonce.
#[derive(Clone)]
pub struct Setup {
    /// The space.
    pub space: SpaceId,
    /// This device.
    pub me: DeviceId,
    /// This device's signing key (a seeder countersigns with it).
    pub device_key: SigningKey,
    /// The peer as the transport authenticated it.
    pub peer: DeviceId,
    /// This device's role for the space.
    pub role: Role,
    /// The space key, which only a member holds.
    pub space_key: Option<SigningKey>,
    /// Why the dialer connects (a listener takes the dialer's purpose from its `Hello`).
    pub purpose: Purpose,
    /// A fresh random challenge for the peer's membership proof.
    pub nonce: [u8; 32],
    /// Where this device's daemon listens (empty for a one-off command).
    pub listen: Vec<String>,
    /// Milliseconds since the epoch, for the ledger's evaluation.
    pub now_ms: i64,
    /// Which proposals a seeder countersigns by itself.
    pub policy: SeedPolicy,
    /// How the ledger is evaluated.
    pub evaluate: Evaluate,
    /// This device holds no content (it joined to audit): as the listener of a `Sync` it takes
    /// and sends nothing (it dials with [`Purpose::Metadata`] to fetch what it needs).
    pub metadata_only: bool,
}

/// Why a session stopped short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// This side refuses to go on; a `Refused` frame with the reason is queued for the peer.
    #[error("refused: {0}")]
    Refused(String),
    /// The peer refused.
    #[error("refused: the peer refused: {0}")]
    PeerRefused(String),
    /// The call does not fit the session's state (a driver bug, not a peer's doing).
    #[error("session misuse: {0}")]
    Misuse(&'static str),
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Something worth a line in the log.
    Note(String),
    /// This seeder countersigned a proposal under its policy.
    Countersigned {
        /// The agreement.
        agreement: AgreementId,
        /// Its space.
        space: SpaceId,
        /// Bytes agreed.
        quota: u64,
        /// When its term ends (ms since the epoch).
        end_ms: i64,
    },
    /// The in-memory ledger gained entries: persist [`Session::ledger_mut`] before sending on.
    LedgerChanged,
    /// The peer proved its right to the space; it listens at these addresses.
    Authenticated {
        /// The peer's listening addresses from its `Hello`.
        listen: Vec<String>,
    },
    /// Handshake done for a sync: call [`Session::reconcile`] with the blob ids held.
    NeedBlobs,
    /// Handshake done for an audit this device makes: call [`Session::challenge`].
    AuditReady,
    /// The peer audits this seeder: call [`Session::answer`].
    Challenged {
        /// The challenge nonce.
        nonce: [u8; 32],
        /// The blobs challenged.
        ids: Vec<BlobId>,
    },
    /// The seeder answered the audit; the session is over.
    Answered {
        /// One proof per challenged blob.
        answers: Vec<Option<cobox_agreements::audit::Proof>>,
        /// Bytes the seeder says it holds.
        stored_bytes: u64,
    },
    /// Receive these blobs: read blob frames (and lanes) until the next other message, which
    /// goes to [`Session::receive`]. A seeder stores them within `quota`.
    Receive {
        /// The blobs asked for: nothing else may arrive.
        ids: Vec<BlobId>,
        /// Most bytes the receiver may hold in all.
        quota: u64,
    },
    /// Send these blobs, then call [`Session::sent`].
    Send(Vec<BlobId>),
    /// The session ended well.
    Finished,
}

/// Most blobs one audit may challenge (each costs the seeder a read and a hash).
pub const MAX_AUDIT_IDS: usize = 4096;

/// Most reconciliation steps one side answers in a session. Each step splits the ranges that
/// differ sixteen ways until they are listed, so honest sets of millions of ids take under ten;
/// without a cap a peer could keep a session (and the ids it makes us want) going forever.
pub const MAX_ROUNDS: usize = 64;

/// The session's place in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Dialer: waiting for the listener's `Hello`.
    Hello,
    /// Waiting for the peer member's `Proof`.
    Proof,
    /// Member: waiting for the peer seeder's `Credential`.
    Credential,
    /// Waiting for the peer's `Ledger`; `n` counts the ledgers received so far.
    Ledger(u8),
    /// Waiting for the driver's blob ids.
    Blobs,
    /// Reconciling.
    Reconcile,
    /// Receiving blobs until the peer's `Want` (dialer).
    ReceiveThenWant,
    /// Waiting for (the rest of) the peer's `Want`.
    Want,
    /// Sending blobs until the driver calls `sent`.
    Sending,
    /// Receiving blobs until the peer's `Done` (listener).
    ReceiveThenDone,
    /// Audit: waiting for the driver's challenge.
    AuditReady,
    /// Audit: waiting for the seeder's answer.
    Answer,
    /// Audit: waiting for the member's challenge.
    Challenge,
    /// Audit: waiting for the driver's answer.
    Answering,
    /// Over, well or not.
    Over,
}

/// What the peer's `Hello` said.
#[derive(Debug, Clone)]
struct PeerHello {
    role: Role,
    nonce: [u8; 32],
    listen: Vec<String>,
    ledger: Vec<[u8; 32]>,
}

/// One session; see the module docs.
pub struct Session {
    setup: Setup,
    dialer: bool,
    phase: Phase,
    ledger: Ledger,
    peer: Option<PeerHello>,
    view: Option<LedgerView>,
    /// Dialer, member to member: whether its first ledger send held all the listener lacked.
    ahead: bool,
    rec: Option<Reconciler>,
    /// A reconciliation step or want list being read, and its ids so far.
    step: Vec<Item>,
    step_ids: usize,
    /// Reconciliation steps answered so far.
    rounds: usize,
    /// The peer is removed by this side's roster: nothing of our ledger goes to it until its
    /// own ledger shows that removal did not stand (the roster check refuses it otherwise).
    suspect: bool,
    /// The kind of refusal that ended the session, once one did.
    refusal: Option<Refusal>,
    /// The refusal this side sent.
    refused_here: Option<Refusal>,
    /// The space's genesis in this side's ledger, once looked up (`Some(None)`: it holds none).
    genesis: Option<Option<Vec<u8>>>,
    /// Blobs asked for whatever the reconciliation finds ([`Session::want_also`]).
    also_want: BTreeSet<BlobId>,
    wanted_by_peer: Vec<BlobId>,
    /// What this side asks for and may hold.
    want: Vec<BlobId>,
    /// Most bytes this side may hold; `None`: it takes no blobs (a seeder with no active
    /// agreement).
    quota: Option<u64>,
    may_send: bool,
    not_pushed: u64,
    /// Blobs this side challenged in its audit (the answer must have as many).
    challenged: usize,
    out: VecDeque<Msg>,
    events: VecDeque<Event>,
    /// The ledger gained entries not yet announced: [`Event::LedgerChanged`] waits until the
    /// handshake is done, so a peer refused on the roster leaves nothing in our file.
    dirty: bool,
    /// The roster as evaluated when the session began: a redemption waiting for a
    /// countersignature is judged against it and this device's clock.
    roster_view_before: roster::RosterView,
    /// The peer member's role on the roster (`None`: a seeder, or a space without a roster).
    peer_member: Option<roster::Role>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("space", &self.setup.space)
            .field("peer", &self.setup.peer)
            .field("dialer", &self.dialer)
            .field("phase", &self.phase)
            .field("want", &self.want.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    fn new(setup: Setup, ledger: Ledger, dialer: bool) -> Self {
        let ops = ledger.roster_ops();
        let roster_view_before = roster::evaluate(&setup.space.0, &ops);
        Self {
            setup,
            dialer,
            phase: Phase::Hello,
            ledger,
            peer: None,
            view: None,
            ahead: false,
            rec: None,
            step: Vec::new(),
            step_ids: 0,
            rounds: 0,
            suspect: false,
            refusal: None,
            refused_here: None,
            genesis: None,
            also_want: BTreeSet::new(),
            wanted_by_peer: Vec::new(),
            want: Vec::new(),
            quota: None,
            may_send: false,
            not_pushed: 0,
            challenged: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            dirty: false,
            roster_view_before,
            peer_member: None,
        }
    }

    /// Start a session as the dialer: its `Hello` is queued.
    pub fn dial(setup: Setup, ledger: Ledger) -> Self {
        let mut s = Self::new(setup, ledger, true);
        s.send_hello();
        s
    }

    /// Start a session as the listener, from the dialer's `Hello`; this side's `Hello` (or a
    /// refusal, with the error beside the session) is queued.
    /// A listener that is joining (its setup says `Join`, and it holds no space key) answers
    /// `Join` whatever the dialer asked, and the dialer follows: the device that invited it may
    /// be the one that dials (a manager with no daemon running syncs with the new device's).
    pub fn accept(mut setup: Setup, ledger: Ledger, hello: Msg) -> (Self, Result<(), SessionError>) {
        let purpose = match &hello {
            Msg::Hello { purpose, .. } => *purpose,
            _ => setup.purpose,
        };
        if !(setup.purpose == Purpose::Join && setup.space_key.is_none()) {
            setup.purpose = purpose;
        }
        let mut s = Self::new(setup, ledger, false);
        let r = s.accept_hello(hello);
        (s, r)
    }

    fn accept_hello(&mut self, hello: Msg) -> Result<(), SessionError> {
        let Msg::Hello { space, device, nonce, role, purpose, listen, ledger } = hello else {
            return self.refuse("expected Hello");
        };
        if device != self.setup.peer {
            return self.refuse("the Hello names another device than the connection");
        }
        if space != self.setup.space {
            return self.refuse(format!("this device does not hold space {}", space.short()));
        }
        if self.setup.role == Role::Seeder && role == Role::Seeder {
            return self.refuse("two seeders have nothing to sync");
        }
        if self.setup.purpose == Purpose::Audit && (self.setup.role != Role::Seeder || role != Role::Member) {
            return self.refuse("only a member audits, and only a seeder is audited");
        }
        if self.setup.purpose == Purpose::Metadata && role != Role::Member {
            return self.refuse("only a member asks for a space's changes and chunk lists alone");
        }
        if self.setup.purpose == Purpose::Join && !self.joining() && role != Role::Member {
            return self.refuse("only a device with an invite joins");
        }
        if self.joining() && role == Role::Member && purpose != Purpose::Sync && purpose != Purpose::Join {
            return self.refuse(format!("this device waits to join space {}: sync with it first", space.short()));
        }
        self.peer = Some(PeerHello { role, nonce, listen, ledger: cap(ledger) });
        self.send_hello();
        self.after_hello()
    }

    fn send_hello(&mut self) {
        let s = &self.setup;
        let heads = self.ledger.heads_and_parents();
        self.out.push_back(Msg::Hello {
            space: s.space,
            device: s.me,
            nonce: s.nonce,
            role: s.role,
            purpose: s.purpose,
            listen: s.listen.clone(),
            ledger: cap(heads),
        });
    }

    /// Queue a refusal and end the session.
    fn refuse<T>(&mut self, reason: impl Into<String>) -> Result<T, SessionError> {
        self.refuse_as(Refusal::Other, reason)
    }

    fn refuse_as<T>(&mut self, code: Refusal, reason: impl Into<String>) -> Result<T, SessionError> {
        let reason = reason.into();
        self.out.push_back(Msg::Refused { reason: reason.clone(), code });
        self.phase = Phase::Over;
        self.refusal = Some(code);
        self.refused_here = Some(code);
        Err(SessionError::Refused(reason))
    }

    /// The kind of refusal that ended the session, this side's or the peer's.
    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal
    }

    /// The kind of refusal this side sent, if it ended the session.
    pub fn refused_here(&self) -> Option<Refusal> {
        self.refused_here
    }

    fn peer(&self) -> Result<&PeerHello, SessionError> {
        self.peer.as_ref().ok_or(SessionError::Misuse("no Hello from the peer yet"))
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Msg> {
        self.out.pop_front()
    }

    /// The next thing the driver must do.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The ledger as merged so far.
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// The ledger's evaluation, once the handshake is over.
    pub fn view(&self) -> Option<&LedgerView> {
        self.view.as_ref()
    }

    /// The space this session is for.
    pub fn space(&self) -> SpaceId {
        self.setup.space
    }

    /// The peer's role, once its `Hello` arrived.
    pub fn peer_role(&self) -> Option<Role> {
        self.peer.as_ref().map(|p| p.role)
    }

    /// The largest frame the next message from the peer may be: [`MAX_OPENING_FRAME`] until it
    /// has proven its right to the space, [`MAX_FRAME`] after. The driver reads no more.
    pub fn max_frame(&self) -> usize {
        match self.phase {
            Phase::Hello | Phase::Proof | Phase::Credential => MAX_OPENING_FRAME,
            _ => MAX_FRAME,
        }
    }

    /// Whether the session is over.
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// Whether `id` was asked for in this session (a blob frame for any other is refused).
    pub fn wants(&self, id: &BlobId) -> bool {
        // Sorted: it comes from the reconciler's set.
        self.want.binary_search(id).is_ok()
    }

    /// Blobs the peer lacked that were not pushed: it is a seeder with no active agreement.
    pub fn not_pushed(&self) -> u64 {
        self.not_pushed
    }

    /// Handle one control message from the peer (never a `Blob` or `Lanes`: the driver's).
    pub fn receive(&mut self, msg: Msg) -> Result<(), SessionError> {
        if let Msg::Refused { reason, code } = msg {
            self.phase = Phase::Over;
            self.refusal = Some(code);
            return Err(SessionError::PeerRefused(reason));
        }
        match (self.phase, msg) {
            (Phase::Hello, Msg::Hello { space, device, nonce, role, listen, ledger, purpose }) => {
                if space != self.setup.space || device != self.setup.peer {
                    return self.refuse("the peer answered for another space or device");
                }
                if purpose != self.setup.purpose {
                    // Only a joining listener answers another purpose, and only to a sync: the
                    // session then lets it in, and the dialer syncs again once it is a member.
                    if purpose != Purpose::Join || self.setup.purpose != Purpose::Sync {
                        return self.refuse("the peer answered for another purpose");
                    }
                    self.setup.purpose = Purpose::Join;
                }
                self.peer = Some(PeerHello { role, nonce, listen, ledger: cap(ledger) });
                self.after_hello()
            }
            (Phase::Hello, _) => self.refuse("expected Hello"),
            (Phase::Proof, Msg::Redeem(bytes)) if self.setup.purpose == Purpose::Join && !self.joining() => {
                self.on_redeem(&bytes)
            }
            (Phase::Proof, msg) => {
                let proven = match msg {
                    Msg::Proof { sig, genesis } => self.space_public(&genesis).is_some_and(|key| {
                        let s = &self.setup;
                        check_proof(&key, &s.space, &s.peer, &s.me, &s.nonce, &sig)
                    }),
                    _ => false,
                };
                let s = &self.setup;
                if proven {
                    // A device this side holds removed gets nothing of the ledger, but its own is
                    // read (into a copy, never kept unless it shows the removal did not stand):
                    // a removed manager may have told this device of a removal of its own that
                    // loses to the peer's, and refusing the peer unheard would keep them apart
                    // for good. The roster check after the exchange decides.
                    let view = roster::evaluate(&s.space.0, &self.ledger.roster_ops());
                    self.suspect = view.removed.contains(&s.peer.0);
                    self.begin_ledger()
                } else {
                    let why =
                        format!("device {} did not prove membership of space {}", s.peer.short(), s.space.short());
                    self.refuse(why)
                }
            }
            (Phase::Credential, Msg::Credential(bytes)) => self.on_credential(&bytes),
            (Phase::Credential, _) => self.refuse("expected the seeder's credential"),
            (Phase::Ledger(n), Msg::Ledger(bytes)) => self.on_ledger(n, bytes),
            (Phase::Ledger(_), _) => self.refuse("expected the ledger"),
            (Phase::Reconcile, Msg::Reconcile { items, more }) => self.on_step(items, more),
            (Phase::Reconcile, _) => self.refuse("expected a reconciliation step"),
            (Phase::ReceiveThenWant | Phase::Want, Msg::Want { ids, more }) => self.on_want(ids, more),
            (Phase::Want, _) => self.refuse("expected a want list"),
            (Phase::ReceiveThenDone, Msg::Done) => {
                self.finish();
                Ok(())
            }
            (Phase::ReceiveThenWant | Phase::ReceiveThenDone, _) => self.refuse("unexpected message during transfer"),
            (Phase::Answer, Msg::AuditAnswer { answers, stored_bytes }) => {
                if answers.len() != self.challenged {
                    return self.refuse("an audit answer of another length than the challenge");
                }
                self.events.push_back(Event::Answered { answers, stored_bytes });
                self.finish();
                Ok(())
            }
            (Phase::Answer, _) => self.refuse("expected an audit answer"),
            (Phase::Challenge, Msg::AuditChallenge { nonce, ids }) => {
                // Each distinct challenged blob costs the seeder a read and a hash, each place a
                // proof: a bounded few. A blob named at several places (the auditor draws over
                // bytes) is hashed once and shows another chunk at each.
                if ids.len() > MAX_AUDIT_IDS {
                    return self.refuse(format!("an audit of over {MAX_AUDIT_IDS} chunk proofs"));
                }
                self.phase = Phase::Answering;
                self.events.push_back(Event::Challenged { nonce, ids });
                Ok(())
            }
            (Phase::Challenge, _) => self.refuse("expected an audit challenge"),
            (Phase::Over, _) => Err(SessionError::Misuse("the session is over")),
            (Phase::Blobs | Phase::Sending | Phase::AuditReady | Phase::Answering, _) => {
                self.refuse("a message while this side had the turn")
            }
        }
    }

    /// Both `Hello`s are in: prove membership, then wait for the peer's proof or go on.
    fn after_hello(&mut self) -> Result<(), SessionError> {
        let peer = self.peer()?.clone();
        if self.setup.role == Role::Seeder && peer.role == Role::Seeder {
            return self.refuse("two seeders have nothing to sync");
        }
        if self.setup.space_key.is_some() {
            let genesis = self.genesis().unwrap_or_default();
            let s = &self.setup;
            if let Some(key) = &s.space_key {
                self.out.push_back(prove(key, &s.space, &s.me, &s.peer, &peer.nonce, genesis));
            }
        } else if self.joining() {
            // No space secret yet: the redemption, signed by the invite's key, is the proof.
            let Some(redeem) = self.own_redemption() else {
                return self.refuse("this device holds no redemption of an invite to join with");
            };
            self.out.push_back(Msg::Redeem(redeem));
        }
        if peer.role == Role::Member {
            self.phase = Phase::Proof;
            Ok(())
        } else {
            self.begin_ledger()
        }
    }

    /// The space's genesis as this side's ledger holds it (one its id was made from). Looked up
    /// once a session: the proof sent and the proof checked both need it, and the ledger does
    /// not change between them.
    fn genesis(&mut self) -> Option<Vec<u8>> {
        if self.genesis.is_none() {
            let space = self.setup.space.0;
            let found = self.ledger.roster_ops().into_iter().find(|op| roster::space_public_key(&space, op).is_some());
            self.genesis = Some(found);
        }
        self.genesis.clone().flatten()
    }

    /// The space key's public half, to check a member's proof with: the one the space's genesis
    /// names (the genesis this side holds, else the one the prover sent, `theirs`: either is
    /// taken only if the space id derives from it), else a member's own. The genesis decides
    /// over a member's own key, so a device holding a wrong secret is refused by the peer, which
    /// says why, rather than refusing the peer.
    fn space_public(&mut self, theirs: &[u8]) -> Option<[u8; 32]> {
        let space = self.setup.space.0;
        self.genesis()
            .and_then(|g| roster::space_public_key(&space, &g))
            .or_else(|| roster::space_public_key(&space, theirs))
            .or_else(|| self.setup.space_key.as_ref().map(|k| k.verifying_key().to_bytes()))
    }

    /// What of our ledger a peer that named `theirs` lacks.
    fn bytes_since(&mut self, theirs: &[[u8; 32]]) -> Vec<u8> {
        self.ledger.changes_since(theirs)
    }

    fn heads_capped(&mut self) -> Vec<[u8; 32]> {
        cap(self.ledger.heads_and_parents())
    }

    /// The ledger exchange's first move. Three sends, each only what the other lacks: member
    /// to member the dialer goes first only if it holds all the listener's changes (it knows
    /// what the listener lacks), else the listener catches it up first; a seeder sends first
    /// to a member, which checks that an agreement names the seeder before sending its own.
    fn begin_ledger(&mut self) -> Result<(), SessionError> {
        let peer = self.peer()?.clone();
        match (self.setup.role, peer.role) {
            (Role::Member, Role::Member) if self.dialer => {
                let first = if self.suspect {
                    Vec::new()
                } else if peer.ledger.iter().all(|h| self.ledger.has_change(h)) {
                    self.ahead = true;
                    self.bytes_since(&peer.ledger)
                } else if self.roster_view_before.role(&self.setup.me.0).is_none() {
                    // A joining device: its ledger is its redemption (and its name), which the
                    // peer judges and countersigns before its reply, so the reply makes this
                    // device a member within this session.
                    self.bytes_since(&[])
                } else {
                    Vec::new()
                };
                self.out.push_back(Msg::Ledger(first));
            }
            (Role::Seeder, Role::Member) => {
                let credential = self.credential();
                self.out.push_back(Msg::Credential(credential));
                let bytes = self.bytes_since(&peer.ledger);
                self.out.push_back(Msg::Ledger(bytes));
            }
            (Role::Member, Role::Seeder) => {
                self.phase = Phase::Credential;
                return Ok(());
            }
            (Role::Member, Role::Member) => {}
            (Role::Seeder, Role::Seeder) => return self.refuse("two seeders have nothing to sync"),
        }
        self.phase = Phase::Ledger(0);
        Ok(())
    }

    /// This device joins in this session: it holds an invite's redemption and no space key.
    fn joining(&self) -> bool {
        self.setup.purpose == Purpose::Join && self.setup.role == Role::Member && self.setup.space_key.is_none()
    }

    /// This joining device's redemption: its `Redeem` operation, the latest if it made several.
    fn own_redemption(&self) -> Option<Vec<u8>> {
        let me = self.setup.me.0;
        self.ledger.roster_ops().into_iter().rev().find(|b| {
            roster::SignedOp::decode(b)
                .is_ok_and(|o| o.op.author == me && matches!(o.op.action, roster::Action::Redeem { .. }))
        })
    }

    /// A joining device's redemption, in place of a membership proof: taken only if its
    /// signatures hold (its device's, the one the connection authenticated, and the invite's),
    /// the invite is one this device's roster holds, and this device can countersign it now
    /// (open, unused, uncancelled and unexpired by this device's clock, its maker not removed,
    /// and this device a member whose role is at least the invite's, or a seeder by a manager's
    /// proposal). Only then does anything of this device's ledger (which holds the space secret
    /// sealed to the invite's key) go out; a redemption already countersigned is taken again,
    /// so a joiner whose first session broke off finishes with its next.
    fn on_redeem(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        let (space, peer) = (self.setup.space, self.setup.peer);
        let is_redeem = roster::SignedOp::decode(bytes).is_ok_and(|o| {
            o.op.space == space.0 && o.op.author == peer.0 && matches!(o.op.action, roster::Action::Redeem { .. })
        });
        if !is_redeem {
            return self.refuse(format!(
                "device {} sent no redemption of an invite to space {}",
                peer.short(),
                space.short()
            ));
        }
        let id = roster::op_id(bytes);
        let mut copy = self.ledger.clone();
        let added = match copy.insert_roster_op(bytes) {
            Ok(added) => added,
            Err(e) => return self.refuse(format!("device {}'s redemption: {e}", peer.short())),
        };
        let view = roster::evaluate(&space.0, &copy.roster_ops());
        if view.role(&peer.0).is_none() && view.awaiting.get(&peer.0) != Some(&id) {
            // Not the invite's fault when this device has not heard of it yet: the joiner tries
            // its other peers, and keeps its space.
            let (code, why) = if view.pending.contains(&id) {
                (
                    Refusal::Other,
                    "its invite is not known here yet: the manager who made it must sync with this device first".into(),
                )
            } else if view.removed.contains(&peer.0) {
                (Refusal::Removed, view.why_not(&peer.0))
            } else {
                (Refusal::InviteRefused, view.why_not(&peer.0))
            };
            return self.refuse_as(code, format!("device {}: {why}", peer.short()));
        }
        self.ledger = copy;
        self.dirty |= added;
        let view = match self.admit_peer()? {
            Some(view) => view,
            None => roster::evaluate(&space.0, &self.ledger.roster_ops()),
        };
        if view.role(&peer.0).is_none() {
            return self.refuse(format!(
                "device {}: its invite waits for a member whose role is at least the invite's to accept it: sync with such a member first",
                peer.short()
            ));
        }
        self.begin_ledger()
    }

    /// This seeder's credential: the first proposal in its ledger that names it (empty: none).
    fn credential(&self) -> Vec<u8> {
        let (space, me) = (self.setup.space.0, self.setup.me.0);
        self.ledger
            .raw_entries()
            .into_iter()
            .map(|(_, bytes)| bytes)
            .find(|bytes| Entry::check_credential(bytes, &space, &me).is_ok())
            .unwrap_or_default()
    }

    /// A would-be seeder's credential: nothing more it sends is read unless the credential (a
    /// proposal naming it, by a device this member's roster lets propose), or this member's own
    /// ledger, shows an agreement naming it. A stranger that knows the space id gets a refusal,
    /// and costs a signature check. A member without a roster yet (it holds only an invite, and
    /// restores from seeders) takes a credential by its signature and reads the seeder's ledger
    /// into a copy, where the space's genesis decides whether the proposer could propose.
    fn on_credential(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        use cobox_agreements::Authority;
        let (space, peer, now) = (self.setup.space, self.setup.peer, self.setup.now_ms);
        // The roster is evaluated only for a credential whose signature holds.
        let proven = (!bytes.is_empty()
            && Entry::check_credential(bytes, &space.0, &peer.0).is_ok_and(|a| {
                let roster = roster::evaluate(&space.0, &self.ledger.roster_ops());
                roster.is_empty() || roster.proposes(&a.owner, &a.id())
            }))
            || (self.setup.evaluate)(&space, &self.ledger.raw_entries(), now).names_seeder(&peer.0);
        if !proven {
            return self.refuse(format!(
                "device {} is not a member of space {} and no agreement names it as a seeder",
                peer.short(),
                space.short()
            ));
        }
        self.phase = Phase::Ledger(0);
        Ok(())
    }

    /// Merge what the peer sent; a ledger that does not load ends the session.
    fn merge(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        if bytes.is_empty() {
            return Ok(()); // the peer had nothing we lack
        }
        // Into a copy: a ledger that floods the roster is refused before anything evaluates it.
        let mut copy = self.ledger.clone();
        match copy.merge_changes(bytes) {
            Ok(0) => Ok(()),
            Ok(_) => {
                if let Some((device, n)) = roster::over_cap(&copy.roster_ops()) {
                    return self.refuse(format!(
                        "the peer's ledger holds {n} roster operations by device {}, over the cap of {}",
                        hex::encode(&device[..4]),
                        roster::MAX_OPS_PER_DEVICE
                    ));
                }
                self.ledger = copy;
                self.dirty = true;
                Ok(())
            }
            Err(e) => self.refuse(format!("the peer's ledger: {e}")),
        }
    }

    fn on_ledger(&mut self, n: u8, bytes: Vec<u8>) -> Result<(), SessionError> {
        let peer = self.peer()?.clone();
        let (space, me, peer_id, now) = (self.setup.space, self.setup.me, self.setup.peer, self.setup.now_ms);
        match (self.setup.role, peer.role, self.dialer, n) {
            (Role::Member, Role::Member, true, 0) => {
                self.merge(&bytes)?;
                // What the peer holds, taken before a countersignature this side may add.
                let theirs = if self.ahead { self.heads_capped() } else { peer.ledger.clone() };
                self.check_roster()?;
                let last = self.bytes_since(&theirs);
                self.out.push_back(Msg::Ledger(last));
                self.handshake_done(None)
            }
            (Role::Member, Role::Member, false, 0) => self.merge_and_reply(&bytes, &peer.ledger),
            (Role::Member, Role::Seeder, _, 0) => {
                // Merged into a copy, kept only if an agreement names the device: one that none
                // names leaves nothing in our ledger.
                let mut copy = self.ledger.clone();
                let added = if bytes.is_empty() { Ok(0) } else { copy.merge_changes(&bytes) };
                if let Some((device, n)) = roster::over_cap(&copy.roster_ops()) {
                    return self.refuse(format!(
                        "the peer's ledger holds {n} roster operations by device {}, over the cap of {}",
                        hex::encode(&device[..4]),
                        roster::MAX_OPS_PER_DEVICE
                    ));
                }
                let named =
                    added.is_ok() && (self.setup.evaluate)(&space, &copy.raw_entries(), now).names_seeder(&peer_id.0);
                if !named {
                    return self.refuse(format!(
                        "device {} is not a member of space {} and no agreement names it as a seeder",
                        peer_id.short(),
                        space.short()
                    ));
                }
                self.ledger = copy;
                if added.is_ok_and(|n| n > 0) {
                    self.dirty = true;
                }
                let reply = self.bytes_since(&peer.ledger);
                self.out.push_back(Msg::Ledger(reply));
                self.phase = Phase::Ledger(1);
                Ok(())
            }
            // The peer's last send: what it had that we lacked.
            (Role::Member, Role::Member, false, _) | (Role::Member, Role::Seeder, _, _) => {
                self.merge(&bytes)?;
                self.check_roster()?;
                self.handshake_done(None)
            }
            (Role::Seeder, Role::Member, _, _) => {
                self.merge(&bytes)?;
                // Both sides now hold the same changes: the last send is only what we add here
                // (a joiner's countersignature, agreements countersigned).
                let merged = self.heads_capped();
                self.check_roster()?;
                let mut view = (self.setup.evaluate)(&space, &self.ledger.raw_entries(), now);
                if self.countersign(&view) {
                    view = (self.setup.evaluate)(&space, &self.ledger.raw_entries(), now);
                }
                if !view.names_seeder(&me.0) {
                    return self.refuse(format!(
                        "seeder {} has no agreement for space {}: propose one with `cobox agreement propose`",
                        me.short(),
                        space.short()
                    ));
                }
                let last = self.bytes_since(&merged);
                self.out.push_back(Msg::Ledger(last));
                self.handshake_done(Some(view))
            }
            (Role::Member, Role::Member, true, _) | (Role::Seeder, Role::Seeder, _, _) => {
                self.refuse("expected no ledger")
            }
        }
    }

    /// Merge what the peer sent, send what it lacks by the heads it named, and wait for its
    /// last send.
    fn merge_and_reply(&mut self, bytes: &[u8], theirs: &[[u8; 32]]) -> Result<(), SessionError> {
        self.merge(bytes)?;
        // A joining peer's redemption is judged, and countersigned, before it reads anything.
        let _ = self.admit_peer()?;
        if self.suspect {
            let view = roster::evaluate(&self.setup.space.0, &self.ledger.roster_ops());
            self.suspect = view.removed.contains(&self.setup.peer.0);
        }
        let reply = if self.suspect { Vec::new() } else { self.bytes_since(theirs) };
        self.out.push_back(Msg::Ledger(reply));
        self.phase = Phase::Ledger(1);
        Ok(())
    }

    /// Countersign the proposals naming this seeder that the policy allows, and decline those
    /// an owner it serves made over its limit; true if the ledger changed.
    fn countersign(&mut self, view: &LedgerView) -> bool {
        let (me, now) = (self.setup.me, self.setup.now_ms);
        let policy = &self.setup.policy;
        let mut changed = false;
        let mut notes = Vec::new();
        let mut accepted_now = Vec::new();
        for a in &view.agreements {
            if a.state != State::Proposed || a.accepted || a.agreement.seeder != me.0 {
                continue;
            }
            let ok = a.agreement.in_term(now)
                && (policy.accept.contains(&a.id)
                    || (policy.owners.iter().any(|o| o.0 == a.agreement.owner)
                        && a.agreement.quota <= policy.max_quota));
            if ok {
                let entry = Entry::accept(&a.agreement, &self.setup.device_key);
                match self.ledger.insert(&entry) {
                    Ok(added) => {
                        changed |= added;
                        accepted_now.push(a.id);
                        self.events.push_back(Event::Countersigned {
                            agreement: a.id,
                            space: SpaceId(a.agreement.space),
                            quota: a.agreement.quota,
                            end_ms: a.agreement.end_ms,
                        });
                    }
                    Err(e) => notes.push(format!("cannot countersign agreement {}: {e}", a.id.short())),
                }
            } else if a.agreement.in_term(now) && policy.owners.iter().any(|o| o.0 == a.agreement.owner) {
                // An owner this seeder serves asked for more than its standing limit: answer in
                // the ledger with the limit it breaks, so the owner reads why it waits; the
                // proposal stays open for the operator's `cobox seed CODE`.
                let reason = format!(
                    "{} is over this seeder's limit of {} (--max-quota); its operator may still take it with `cobox seed CODE`",
                    crate::units::format_bytes(a.agreement.quota),
                    crate::units::format_bytes(policy.max_quota)
                );
                // Said once per policy, not at every session.
                if a.answer.as_ref().is_some_and(|x| x.reason == reason) {
                    continue;
                }
                let answer = cobox_agreements::Answer { agreement: a.id, time_ms: now, reason };
                match self.ledger.insert(&Entry::answer(answer, &self.setup.device_key)) {
                    Ok(added) => changed |= added,
                    Err(e) => notes.push(format!("cannot answer agreement {}: {e}", a.id.short())),
                }
                notes.push(format!(
                    "not taking agreement {} by itself: {} is over this seeder's limit of {} (--max-quota); \
                     `cobox seed CODE` takes it",
                    a.id.short(),
                    crate::units::format_bytes(a.agreement.quota),
                    crate::units::format_bytes(policy.max_quota)
                ));
            } else {
                notes.push(format!(
                    "not accepting agreement {}: {}, not asked for (run `cobox seed CODE`, or name its owner in --seed-for)",
                    a.id.short(),
                    crate::units::format_bytes(a.agreement.quota)
                ));
            }
        }
        // Who runs this seeder, told once per name under each agreement it holds (the owners'
        // network view counts organisations by it).
        let name = policy.operator.trim();
        if !name.is_empty() {
            for a in &view.agreements {
                let holds = a.agreement.seeder == me.0
                    && ((a.accepted && a.state == State::Active) || accepted_now.contains(&a.id));
                if !holds || a.operator.as_ref().is_some_and(|o| o.name == name) {
                    continue;
                }
                let note = cobox_agreements::OperatorNote { agreement: a.id, time_ms: now, name: name.to_owned() };
                match self.ledger.insert(&Entry::operator(note, &self.setup.device_key)) {
                    Ok(added) => changed |= added,
                    Err(e) => notes.push(format!("cannot name the operator under agreement {}: {e}", a.id.short())),
                }
            }
        }
        self.events.extend(notes.into_iter().map(Event::Note));
        self.dirty |= changed;
        changed
    }

    /// A peer member must be on the merged roster (unless the space has none yet: made before
    /// rosters, no device upgraded), and a redemption it brings in this session must be within
    /// its invite's time by this device's clock. Refused, nothing merged is kept.
    fn check_roster(&mut self) -> Result<(), SessionError> {
        let peer = self.setup.peer;
        if self.peer()?.role != Role::Member {
            return Ok(());
        }
        // The roster as it stands, evaluated again only when a countersignature was added.
        let view = match self.admit_peer()? {
            Some(view) => view,
            None => roster::evaluate(&self.setup.space.0, &self.ledger.roster_ops()),
        };
        if view.is_empty() {
            return Ok(());
        }
        let Some(role) = view.role(&peer.0) else {
            let why = view.why_not(&peer.0);
            let (code, why) = if view.removed.contains(&peer.0) {
                (Refusal::Removed, why)
            } else if view.turned_away.contains_key(&peer.0) {
                (Refusal::InviteRefused, why)
            } else if view.awaiting.contains_key(&peer.0) {
                // Not the invite's fault: this side cannot take it (a seeder, a member whose
                // role is below the invite's). The joining device tries its other peers.
                (Refusal::Other, "its invite waits for a member whose role is at least the invite's to accept it: sync with such a member first".into())
            } else {
                (Refusal::Other, why)
            };
            return self.refuse_as(code, format!("device {}: {why}", peer.short()));
        };
        self.peer_member = Some(role);
        Ok(())
    }

    /// A member peer whose redemption of an invite waits for a countersignature: judged by
    /// what this device knew before the session (a second redemption that did not see the
    /// first would otherwise be concurrent with it, and might win) and by its own clock, and,
    /// when this device is a member whose role is at least the invite's, countersigned
    /// ([`roster::Action::Admit`]), so the joiner is a member in the ledger this device sends
    /// it. Refused: the session ends, nothing merged is kept. Returns the roster it evaluated
    /// when it added nothing (`None`: it countersigned, so the roster changed).
    fn admit_peer(&mut self) -> Result<Option<roster::RosterView>, SessionError> {
        let (space, me, peer, now) = (self.setup.space, self.setup.me, self.setup.peer, self.setup.now_ms);
        let ops = self.ledger.roster_ops();
        let view = roster::evaluate(&space.0, &ops);
        let Some(redeem) = view.awaiting.get(&peer.0).copied() else { return Ok(Some(view)) };
        let Some(invite) = ops.iter().filter(|b| roster::op_id(b) == redeem).find_map(|b| {
            match roster::SignedOp::decode(b).map(|o| o.op.action) {
                Ok(roster::Action::Redeem { invite, .. }) => Some(invite),
                _ => None,
            }
        }) else {
            return Ok(Some(view));
        };
        let before = self.roster_view_before.invites.get(&invite);
        let why = match (view.invites.get(&invite), before) {
            (_, Some(b)) if b.redeemed_by.is_some_and(|d| d != peer.0) => Some("the invite was already used".into()),
            (_, Some(b)) if b.cancelled => Some("the invite was cancelled".into()),
            (_, Some(b)) if self.roster_view_before.removed.contains(&b.by) => {
                Some("the manager who made the invite was removed from the space".into())
            }
            (Some(i), _) if i.expires_ms < now => {
                Some(format!("the invite expired {} s ago", (now - i.expires_ms) / 1000))
            }
            _ => None,
        };
        if let Some(why) = why {
            return self
                .refuse_as(
                    Refusal::InviteRefused,
                    format!("device {}: {}: {why}", peer.short(), roster::INVITE_REFUSED),
                )
                .map(|()| None);
        }
        // A seeder countersigns by the proposal naming it, as its proposer's role.
        let credential = if self.setup.role == Role::Seeder { self.credential() } else { Vec::new() };
        let mine = match self.setup.role {
            Role::Member => view.role(&me.0),
            Role::Seeder => cobox_agreements::Entry::check_credential(&credential, &space.0, &me.0)
                .ok()
                .filter(|a| a.in_term(now) && view.role(&a.owner) == Some(roster::Role::Manage))
                .map(|_| roster::Role::Manage),
        };
        let may = view.invites.get(&invite).is_some_and(|i| mine.is_some_and(|r| r >= i.role));
        if !may {
            return Ok(Some(view)); // refused by the roster check, as waiting for another member
        }
        // A recovery: announced by a first countersignature, let in by one made after the
        // plan's waiting period; between the two the device is told when, and waits.
        let recovery = view.invites.get(&invite).is_some_and(|i| i.plan.is_some());
        let waiting = view.recovering.get(&peer.0).map(|r| r.until_ms).filter(|&until| now < until);
        if let (true, Some(until)) = (recovery, waiting) {
            return self
                .refuse_as(
                    Refusal::RecoveryWaiting,
                    format!(
                        "device {}'s recovery of the space is announced; it takes effect {} s from now unless a member cancels it",
                        peer.short(),
                        (until - now + 999) / 1000
                    ),
                )
                .map(|()| None);
        }
        let announcing = recovery && !view.recovering.contains_key(&peer.0);
        let op = roster::Op {
            space: space.0,
            author: me.0,
            deps: view.heads.clone(),
            action: roster::Action::Admit { redeem, at_ms: now, credential },
        };
        let added = roster::SignedOp::sign(op, &self.setup.device_key, None)
            .and_then(|o| o.encode())
            .map_err(|e| e.to_string())
            .and_then(|bytes| self.ledger.insert_roster_op(&bytes).map_err(|e| e.to_string()));
        match added {
            // Kept though the session ends here (the driver keeps the ledger of a session
            // refused this way), so members hear of the recovery through this device.
            Ok(_) if announcing => {
                let wait = view.invites.get(&invite).and_then(|i| i.plan.as_ref()).map_or(0, |p| p.wait_ms);
                self.events.push_back(Event::Note(format!(
                    "device {} is recovering the space: announced, it takes effect in {} s unless a member cancels it",
                    peer.short(),
                    wait / 1000
                )));
                self.refuse_as(
                    Refusal::RecoveryWaiting,
                    format!(
                        "device {}'s recovery of the space is announced now; it takes effect in {} s unless a member cancels it",
                        peer.short(),
                        wait / 1000
                    ),
                )
                .map(|()| None)
            }
            Ok(_) => {
                self.dirty = true;
                self.events.push_back(Event::Note(format!("accepted device {}'s invite", peer.short())));
                Ok(None)
            }
            Err(e) => self.refuse(format!("cannot countersign device {}'s invite: {e}", peer.short())).map(|()| None),
        }
    }

    /// The peer member's role on the roster, once the handshake checked it (`None` for a
    /// seeder, or a space without a roster yet).
    pub fn peer_member_role(&self) -> Option<roster::Role> {
        self.peer_member
    }

    fn handshake_done(&mut self, view: Option<LedgerView>) -> Result<(), SessionError> {
        if std::mem::take(&mut self.dirty) {
            self.events.push_back(Event::LedgerChanged);
        }
        let view = match view {
            Some(v) => v,
            None => (self.setup.evaluate)(&self.setup.space, &self.ledger.raw_entries(), self.setup.now_ms),
        };
        self.view = Some(view);
        let peer = self.peer()?.clone();
        self.events.push_back(Event::Authenticated { listen: peer.listen });
        match (self.setup.purpose, self.setup.role) {
            (Purpose::Sync | Purpose::Metadata, _) => {
                self.phase = Phase::Blobs;
                self.events.push_back(Event::NeedBlobs);
            }
            (Purpose::Audit, Role::Member) if self.dialer => {
                self.phase = Phase::AuditReady;
                self.events.push_back(Event::AuditReady);
            }
            (Purpose::Audit, Role::Seeder) if !self.dialer => self.phase = Phase::Challenge,
            (Purpose::Audit, _) => return self.refuse("only a member audits, and only a seeder is audited"),
            // The joining device now holds the ledger and, in it, the space secret sealed to
            // its invite's key: it opens that and syncs as a member in a session of its own.
            (Purpose::Join, _) => self.finish(),
        }
        Ok(())
    }

    /// Why this session runs (a listener's is the dialer's).
    pub fn purpose(&self) -> Purpose {
        self.setup.purpose
    }

    /// Whether this side dialed.
    pub fn is_dialer(&self) -> bool {
        self.dialer
    }

    /// Ask for `ids` too, whatever the reconciliation finds (those held are dropped): the chunk
    /// lists an audit-only device's manifest names, which a seeder cannot tell from chunks, so
    /// they never come up in a `Metadata` reconciliation with one. Before [`Session::reconcile`].
    pub fn want_also(&mut self, ids: BTreeSet<BlobId>) -> Result<(), SessionError> {
        if self.phase == Phase::Over || self.rec.is_some() {
            return Err(SessionError::Misuse("want_also after reconciliation began"));
        }
        if ids.len() > MAX_STEP_IDS {
            return Err(SessionError::Misuse("more blobs named than a want list carries"));
        }
        self.also_want = ids;
        Ok(())
    }

    /// Start reconciling the blobs this side holds (after [`Event::NeedBlobs`]).
    pub fn reconcile(&mut self, held: BTreeSet<BlobId>) -> Result<(), SessionError> {
        if self.phase != Phase::Blobs {
            return Err(SessionError::Misuse("reconcile outside its turn"));
        }
        let peer_role = self.peer()?.role;
        let view = self.view.as_ref().ok_or(SessionError::Misuse("no ledger view"))?;
        let (space, me, peer) = (self.setup.space, self.setup.me, self.setup.peer);
        // A seeder takes blobs only under an active agreement, up to its quota; a member pushes
        // to a seeder only under one (and pulls from it in any case: restores).
        let (quota, may_send) = match (self.setup.role, peer_role) {
            (Role::Seeder, _) => (view.active_for(&me.0).map(|a| a.agreement.quota), true),
            // Pushed to only under an active agreement; taken from also in the grace period
            // after one it countersigned ended (recovery), never when merely proposed. What is
            // taken must be sealed with the space key (the driver checks).
            (Role::Member, Role::Seeder) => {
                let serves = view.serves_members(&peer.0, self.setup.now_ms, cobox_agreements::GRACE_MS);
                (serves.then_some(u64::MAX), view.active_for(&peer.0).is_some())
            }
            (Role::Member, Role::Member) => (Some(u64::MAX), true),
        };
        // Only the dialer of a `Metadata` session takes blobs, and it sends none; a device holding
        // no content neither takes nor sends in a `Sync` it did not start.
        let metadata = self.setup.purpose == Purpose::Metadata;
        let (quota, may_send) = match (metadata, self.dialer) {
            (true, true) => (quota, false),
            (true, false) => (None, may_send),
            (false, _) if self.setup.metadata_only => (None, false),
            (false, _) => (quota, may_send),
        };
        self.also_want.retain(|id| !held.contains(id));
        let note = match (self.setup.role, may_send, quota.is_some()) {
            _ if metadata || self.setup.metadata_only => None,
            (Role::Member, false, true) => Some(format!(
                "seeder {} has no active agreement for space {}: nothing is pushed to it (what it still holds \
                 in its grace period may be taken)",
                peer.short(),
                space.short()
            )),
            (Role::Member, false, false) => Some(format!(
                "seeder {} has no active agreement for space {}: nothing is pushed to it or taken from it",
                peer.short(),
                space.short()
            )),
            (Role::Seeder, _, false) => {
                Some(format!("space {}: no active agreement, so this seeder accepts nothing", space.short()))
            }
            _ => None,
        };
        self.events.extend(note.map(Event::Note));
        self.quota = quota;
        self.may_send = may_send;
        let rec = Reconciler::new(held);
        self.phase = Phase::Reconcile;
        if self.dialer {
            self.out.extend(Msg::reconcile_step(rec.start()));
        }
        self.rec = Some(rec);
        Ok(())
    }

    fn on_step(&mut self, items: Vec<Item>, more: bool) -> Result<(), SessionError> {
        self.step_ids += items.iter().map(Item::weight).sum::<usize>();
        if self.step_ids > MAX_STEP_IDS {
            return self.refuse(format!("a reconciliation step of over {MAX_STEP_IDS} ids"));
        }
        self.step.extend(items);
        if more {
            return Ok(());
        }
        let items = std::mem::take(&mut self.step);
        self.step_ids = 0;
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS {
            return self.refuse(format!("a reconciliation of over {MAX_ROUNDS} rounds"));
        }
        if let Err(why) = super::reconcile::check_step(&items) {
            return self.refuse(format!("a reconciliation step where {why}"));
        }
        let rec = self.rec.as_mut().ok_or(SessionError::Misuse("no reconciler"))?;
        if items.is_empty() {
            return self.reconciled();
        }
        let out = rec.respond(&items);
        // The ids we come to want grow over the steps; what a want list may carry bounds them.
        if rec.want.len() > MAX_STEP_IDS {
            return self.refuse(format!("a reconciliation that would make us want over {MAX_STEP_IDS} blobs"));
        }
        let done = out.is_empty();
        self.out.extend(Msg::reconcile_step(out));
        if done { self.reconciled() } else { Ok(()) }
    }

    /// Both sides know what each lacks: ask for ours (the dialer first).
    fn reconciled(&mut self) -> Result<(), SessionError> {
        let rec = self.rec.take().ok_or(SessionError::Misuse("no reconciler"))?;
        // A seeder with no agreement reconciles all the same but asks for nothing.
        self.want = match self.quota {
            Some(_) => rec.want.union(&self.also_want).copied().collect(),
            None => Vec::new(),
        };
        if !self.may_send {
            self.not_pushed = rec.peer_lacks.len() as u64;
        }
        if self.dialer {
            self.out.extend(Msg::want_list(&self.want));
            self.phase = Phase::ReceiveThenWant;
            self.events.push_back(Event::Receive { ids: self.want.clone(), quota: self.quota.unwrap_or(0) });
        } else {
            self.phase = Phase::Want;
        }
        Ok(())
    }

    fn on_want(&mut self, ids: Vec<BlobId>, more: bool) -> Result<(), SessionError> {
        if self.wanted_by_peer.len() + ids.len() > MAX_STEP_IDS {
            return self.refuse(format!("a want list of over {MAX_STEP_IDS} ids"));
        }
        // Strictly ascending over all its frames, as every honest list is (it comes from a
        // sorted set): no blob is asked for, read and sent twice.
        let mut last = self.wanted_by_peer.last();
        for id in &ids {
            if last.is_some_and(|l| l >= id) {
                return self.refuse("a want list out of order or naming a blob twice");
            }
            last = Some(id);
        }
        self.wanted_by_peer.extend(ids);
        if more {
            self.phase = Phase::Want;
            return Ok(());
        }
        let theirs = std::mem::take(&mut self.wanted_by_peer);
        self.phase = Phase::Sending;
        self.events.push_back(Event::Send(if self.may_send { theirs } else { Vec::new() }));
        Ok(())
    }

    /// The blobs of [`Event::Send`] are sent.
    pub fn sent(&mut self) -> Result<(), SessionError> {
        if self.phase != Phase::Sending {
            return Err(SessionError::Misuse("sent outside its turn"));
        }
        if self.dialer {
            self.out.push_back(Msg::Done);
            self.finish();
        } else {
            self.out.extend(Msg::want_list(&self.want));
            self.phase = Phase::ReceiveThenDone;
            self.events.push_back(Event::Receive { ids: self.want.clone(), quota: self.quota.unwrap_or(0) });
        }
        Ok(())
    }

    /// Challenge the seeder (after [`Event::AuditReady`]) with the caller's nonce and sample.
    pub fn challenge(&mut self, nonce: [u8; 32], ids: Vec<BlobId>) -> Result<(), SessionError> {
        if self.phase != Phase::AuditReady {
            return Err(SessionError::Misuse("challenge outside its turn"));
        }
        if ids.len() > MAX_AUDIT_IDS {
            return Err(SessionError::Misuse("an audit of more blobs than a seeder answers"));
        }
        self.challenged = ids.len();
        self.out.push_back(Msg::AuditChallenge { nonce, ids });
        self.phase = Phase::Answer;
        Ok(())
    }

    /// Answer the audit of [`Event::Challenged`].
    pub fn answer(
        &mut self,
        answers: Vec<Option<cobox_agreements::audit::Proof>>,
        stored_bytes: u64,
    ) -> Result<(), SessionError> {
        if self.phase != Phase::Answering {
            return Err(SessionError::Misuse("answer outside its turn"));
        }
        self.out.push_back(Msg::AuditAnswer { answers, stored_bytes });
        self.finish();
        Ok(())
    }

    /// Decline the audit of [`Event::Challenged`] with `why` (the seeder's audit budget for
    /// this peer is spent): the peer hears the reason, and no answer, so no result is recorded.
    pub fn decline(&mut self, why: String) -> Result<(), SessionError> {
        if self.phase != Phase::Answering {
            return Err(SessionError::Misuse("decline outside its turn"));
        }
        self.refuse(why)
    }

    fn finish(&mut self) {
        self.phase = Phase::Over;
        self.events.push_back(Event::Finished);
    }
}

/// At most [`MAX_HEADS`] heads are looked at; more means none (the peer then sends all).
fn cap(mut heads: Vec<[u8; 32]>) -> Vec<[u8; 32]> {
    if heads.len() > MAX_HEADS {
        heads.clear();
    }
    heads
}
