//! The sync session driven in memory, as automerge tests its sync: two or three sessions in a
//! plain loop, messages handed from one outbox to the other inbox, blobs moved by the loop as
//! a driver would. Property-tested for convergence; seeders, agreements and refusals checked.

mod support;

use cobox_agreements::{Agreement, Entry, Ledger, State};
use cobox_core::sync::proto::{Msg, Purpose, Role};
use cobox_core::sync::session::{Event, SeedPolicy, Session, SessionError, evaluate};
use cobox_core::{BlobId, DeviceId};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use std::collections::BTreeSet;
use support::*;

#[test]
fn two_members_exchange_what_each_lacks() {
    let k = space_key();
    let mut a = writer(1, &k, 0..50);
    let mut b = writer(2, &k, 30..80);
    let o = run(&mut a, &mut b, Purpose::Sync);
    assert_eq!(o.dialer, Ok(()));
    assert_eq!(o.listener, Ok(()));
    assert_eq!(a.blobs, b.blobs);
    assert_eq!(a.blobs.len(), 80);
    assert_eq!((o.dialer_received, o.listener_received), (30, 30));
    // A second session moves nothing.
    let o = run(&mut a, &mut b, Purpose::Sync);
    assert_eq!((o.dialer_received, o.listener_received), (0, 0));
}

#[test]
fn a_device_without_the_space_key_is_refused_before_any_ledger() {
    let k = space_key();
    let mut a = writer(1, &k, 0..5);
    let mut stranger = member(3, &SigningKey::from_bytes(&[7; 32]), 0..5);
    // It claims the space but signs with another key.
    stranger.space = a.space;
    a.ledger
        .insert(&Entry::propose(
            Agreement {
                space: a.space.0,
                owner: a.id().0,
                seeder: [5; 32],
                quota: 1,
                start_ms: 0,
                end_ms: NOW * 2,
                terms: String::new(),
                nonce: [0; 16],
            },
            &a.key,
        ))
        .unwrap();
    let before = stranger.ledger.len();
    let o = run(&mut stranger, &mut a, Purpose::Sync);
    assert!(matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("did not prove membership")), "{o:?}");
    assert!(o.dialer.is_err(), "{o:?}");
    assert_eq!(stranger.ledger.len(), before, "the listener sent no ledger to a device that did not prove membership");
    assert_eq!(stranger.blobs.len(), 5);
}

#[test]
fn a_seeder_countersigns_under_its_policy_and_takes_the_blobs() {
    let k = space_key();
    let mut owner = writer(1, &k, 0..20);
    let policy = SeedPolicy { owners: vec![owner.id()], max_quota: 1000, accept: vec![], operator: String::new() };
    let mut s = seeder(9, owner.space, policy);
    let agreement = propose(&mut owner, s.id(), 1000);
    let o = run(&mut owner, &mut s, Purpose::Sync);
    assert_eq!(o.dialer, Ok(()), "{o:?}");
    assert_eq!(o.listener, Ok(()), "{o:?}");
    assert_eq!(s.blobs, owner.blobs);
    // Both ledgers hold the countersignature.
    for l in [&owner.ledger, &s.ledger] {
        let view = evaluate(&owner.space, &l.raw_entries(), NOW);
        let a = view.agreements.iter().find(|v| v.id == agreement.id()).expect("the agreement");
        assert_eq!(a.state, State::Active);
    }
    // The owner audits it: every answer is there.
    let o = run(&mut owner, &mut s, Purpose::Audit);
    let (answers, stored) = o.answered.expect("an answer");
    assert_eq!(answers.len(), 20);
    assert!(answers.iter().all(Option::is_some));
    assert_eq!(stored, 20);
}

/// A seeder whose policy names its operator says so under each agreement it holds, once per
/// name: the owner's ledger holds the note after the session, another session adds nothing,
/// and a new name is said again.
#[test]
fn a_seeder_names_its_operator_once_per_name() {
    let k = space_key();
    let mut owner = writer(1, &k, 0..3);
    let policy =
        SeedPolicy { owners: vec![owner.id()], max_quota: 1000, accept: vec![], operator: "Rivers Tech Co-op".into() };
    let mut s = seeder(9, owner.space, policy);
    let agreement = propose(&mut owner, s.id(), 1000);
    let space = owner.space;
    let operator = |l: &cobox_agreements::Ledger| {
        let view = evaluate(&space, &l.raw_entries(), NOW);
        view.agreements.iter().find(|v| v.id == agreement.id()).and_then(|a| a.operator.clone()).map(|o| o.name)
    };
    assert_eq!(run(&mut owner, &mut s, Purpose::Sync).dialer, Ok(()));
    assert_eq!(operator(&owner.ledger).as_deref(), Some("Rivers Tech Co-op"));
    let len = owner.ledger.len();
    assert_eq!(run(&mut owner, &mut s, Purpose::Sync).dialer, Ok(()));
    assert_eq!(owner.ledger.len(), len, "the same name is not said twice");
    s.policy.operator = "Summit Seeds".into();
    assert_eq!(run(&mut owner, &mut s, Purpose::Sync).dialer, Ok(()));
    assert_eq!(operator(&owner.ledger).as_deref(), Some("Summit Seeds"));
}

#[test]
fn a_seeder_takes_nothing_over_its_policy() {
    let k = space_key();
    let mut owner = writer(1, &k, 0..20);
    let policy = SeedPolicy { owners: vec![owner.id()], max_quota: 10, accept: vec![], operator: String::new() };
    let mut s = seeder(9, owner.space, policy);
    propose(&mut owner, s.id(), 1000);
    let o = run(&mut owner, &mut s, Purpose::Sync);
    // The proposal names it, so the session goes on; it countersigns nothing and takes nothing.
    assert_eq!((&o.dialer, &o.listener), (&Ok(()), &Ok(())), "{o:?}");
    assert!(s.blobs.is_empty());
    assert_eq!(o.not_pushed, 20);
    // It answers in the ledger with the limit it breaks: the owner reads why the proposal
    // waits, and it stays open for the operator's `cobox seed CODE`.
    for l in [&owner.ledger, &s.ledger] {
        let view = evaluate(&owner.space, &l.raw_entries(), NOW);
        assert!(view.agreements.iter().all(|a| a.state == State::Proposed), "{view:?}");
        let why = view.agreements[0].answer.as_ref().map(|a| a.reason.clone()).unwrap_or_default();
        assert!(why.contains("over this seeder's limit") && why.contains("--max-quota"), "{why}");
    }
    // Said once: a second session adds nothing to the ledger.
    let before = s.ledger.raw_entries().len();
    run(&mut owner, &mut s, Purpose::Sync);
    assert_eq!(s.ledger.raw_entries().len(), before);
}

#[test]
fn a_member_refuses_a_seeder_no_agreement_names() {
    let k = space_key();
    let mut owner = writer(1, &k, 0..20);
    let mut s = seeder(
        9,
        owner.space,
        SeedPolicy { owners: vec![owner.id()], max_quota: 1000, accept: vec![], operator: String::new() },
    );
    propose(&mut owner, DeviceId([77; 32]), 1000);
    let o = run(&mut owner, &mut s, Purpose::Sync);
    // The member checks the seeder's ledger before sending its own, and refuses it.
    assert!(matches!(o.dialer, Err(SessionError::Refused(ref r)) if r.contains("no agreement names it")), "{o:?}");
    assert!(s.blobs.is_empty());
    assert!(s.ledger.is_empty(), "the seeder got nothing of the member's ledger");
}

#[test]
fn a_seeder_no_agreement_names_is_refused_by_the_member() {
    let k = space_key();
    let mut owner = writer(1, &k, 0..3);
    let mut s = seeder(9, owner.space, SeedPolicy::default());
    // The seeder dials: the member refuses it before sending its ledger.
    let o = run(&mut s, &mut owner, Purpose::Sync);
    assert!(
        matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("no agreement names it as a seeder")),
        "{o:?}"
    );
    assert!(s.blobs.is_empty());
}

/// A stranger that knows the space id poses as a seeder: the member waits for its credential
/// with a 64 KiB frame bound and refuses a missing or forged one, or a ledger in its place,
/// before it parses a byte of any ledger.
#[test]
fn a_stranger_posing_as_a_seeder_is_refused_before_its_ledger_is_read() {
    use cobox_core::sync::proto::MAX_OPENING_FRAME;
    let k = space_key();
    let mut owner = writer(1, &k, 0..3);
    propose(&mut owner, DeviceId([77; 32]), 1000);
    let stranger = seeder(9, owner.space, SeedPolicy::default());
    let forged = {
        // Signed by a device the roster does not let propose (it holds the space key: the
        // stranger itself, which before could sign a credential with it).
        let a = Agreement {
            space: owner.space.0,
            owner: stranger.id().0,
            seeder: stranger.id().0,
            quota: 1,
            start_ms: 0,
            end_ms: NOW * 2,
            terms: String::new(),
            nonce: [3; 16],
        };
        Entry::propose(a, &stranger.key).encode()
    };
    let bomb = Msg::Ledger(vec![0x85; 1 << 20]);
    for first in [Msg::Credential(Vec::new()), Msg::Credential(forged), Msg::Credential(vec![1; 70_000]), bomb] {
        let hello = Session::dial(stranger.setup(owner.id(), Purpose::Sync, 2), Ledger::new())
            .poll_transmit()
            .expect("a Hello");
        let (mut m, accepted) =
            Session::accept(owner.setup(stranger.id(), Purpose::Sync, 1), owner.ledger.clone(), hello);
        accepted.unwrap();
        assert_eq!(m.max_frame(), MAX_OPENING_FRAME, "no big frame is read from an unproven peer");
        let r = m.receive(first);
        assert!(
            matches!(r, Err(SessionError::Refused(ref why)) if why.contains("no agreement names it") || why.contains("credential")),
            "{r:?}"
        );
        assert!(m.is_over());
        assert_eq!(m.ledger_mut().len(), owner.ledger.len(), "nothing merged");
    }
}

/// A member that lost everything (an empty ledger, no blobs: it has only the invite) restores
/// from a seeder it has never heard of: the seeder's credential names it.
#[test]
fn a_member_with_an_empty_ledger_is_let_in_by_the_seeders_credential() {
    let k = space_key();
    let mut owner = writer(1, &k, 0..6);
    let policy = SeedPolicy { owners: vec![owner.id()], max_quota: 1000, accept: vec![], operator: String::new() };
    let mut s = seeder(9, owner.space, policy);
    propose(&mut owner, s.id(), 1000);
    let o = run(&mut owner, &mut s, Purpose::Sync);
    assert_eq!((&o.dialer, &o.listener), (&Ok(()), &Ok(())), "{o:?}");
    let mut fresh = writer(2, &k, []);
    let o = run(&mut fresh, &mut s, Purpose::Sync);
    assert_eq!((&o.dialer, &o.listener), (&Ok(()), &Ok(())), "{o:?}");
    assert_eq!(fresh.blobs, owner.blobs, "restored from the seeder");
    assert_eq!(fresh.ledger.len(), s.ledger.len(), "and learnt the agreement");
}

/// A seeder is pushed to only in force; a member takes from it in force or within the grace
/// period after an agreement it countersigned ended (a member that lost everything recovers),
/// never after it, and never from one merely proposed.
#[test]
fn a_seeder_is_pulled_from_only_in_force_or_in_its_grace_period() {
    let k = space_key();
    for (accepted, revoked_ago, pulled) in [
        (true, 10, 3),
        (true, cobox_agreements::GRACE_MS - 1000, 3),
        (true, cobox_agreements::GRACE_MS + 1000, 0),
        (false, 10, 0),
    ] {
        let mut owner = writer(1, &k, 0..4);
        let mut s = seeder(9, owner.space, SeedPolicy::default());
        let mut a = Agreement { start_ms: NOW - 30 * 86_400_000, ..propose(&mut owner, s.id(), 1000) };
        a.nonce = [2; 16];
        owner.ledger = Ledger::new();
        founded(&mut owner);
        owner.ledger.insert(&Entry::propose(a.clone(), &owner.key)).unwrap();
        owner.ledger.save();
        // Earlier, under the agreement, the seeder took blobs that the owner since lost.
        s.ledger.merge(&mut owner.ledger.clone()).unwrap();
        if accepted {
            s.ledger.insert(&Entry::accept(&a, &s.key)).unwrap();
            s.ledger.save();
        }
        s.blobs = (100..103).map(blob).collect();
        let revocation = cobox_agreements::Revocation {
            agreement: a.id(),
            device: owner.id().0,
            party: cobox_agreements::Party::Owner,
            time_ms: NOW - revoked_ago,
        };
        owner.ledger.insert(&Entry::revoke(revocation, &owner.key)).unwrap();
        owner.ledger.save();
        let o = run(&mut owner, &mut s, Purpose::Sync);
        assert_eq!(o.dialer, Ok(()), "{o:?}");
        assert_eq!(o.dialer_received, pulled, "accepted {accepted}, revoked {revoked_ago} ms ago");
        assert_eq!((o.listener_received, o.not_pushed), (0, 4), "nothing pushed to a revoked seeder");
    }
}

/// A peer that speaks the protocol and bends one message: each is refused with its reason and
/// the honest side stops there (the want list, the audit challenge, the audit answer).
#[test]
fn a_hostile_peer_bending_one_message_is_refused() {
    let k = space_key();
    fn twice(m: Msg) -> Msg {
        match m {
            Msg::Want { mut ids, more } if !ids.is_empty() => {
                ids.insert(0, ids[0]);
                Msg::Want { ids, more }
            }
            m => m,
        }
    }
    let (mut a, mut b) = (writer(1, &k, 0..10), writer(2, &k, 5..20));
    let o = run_hostile(&mut b, &mut a, Purpose::Sync, None, Some(twice));
    assert!(matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("want list out of order")), "{o:?}");

    let seeded = || {
        let mut owner = writer(1, &k, 0..6);
        let policy = SeedPolicy { owners: vec![owner.id()], max_quota: 1000, accept: vec![], operator: String::new() };
        let mut s = seeder(9, owner.space, policy);
        propose(&mut owner, s.id(), 1000);
        assert_eq!(run(&mut owner, &mut s, Purpose::Sync).dialer, Ok(()));
        (owner, s)
    };
    fn flood(m: Msg) -> Msg {
        match m {
            Msg::AuditChallenge { nonce, .. } => Msg::AuditChallenge { nonce, ids: (0..5000).map(blob).collect() },
            m => m,
        }
    }
    fn short(m: Msg) -> Msg {
        match m {
            Msg::AuditAnswer { mut answers, stored_bytes } => {
                answers.pop();
                Msg::AuditAnswer { answers, stored_bytes }
            }
            m => m,
        }
    }
    let (mut owner, mut s) = seeded();
    let o = run_hostile(&mut owner, &mut s, Purpose::Audit, None, Some(flood));
    assert!(matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("an audit of over 4096")), "{o:?}");
    let (mut owner, mut s) = seeded();
    let o = run_hostile(&mut owner, &mut s, Purpose::Audit, Some(short), None);
    assert!(matches!(o.dialer, Err(SessionError::Refused(ref r)) if r.contains("another length")), "{o:?}");
    assert!(o.answered.is_none(), "no result recorded from a bent answer");
}

/// A device that joined to audit fetches only what describes the space: from a member its
/// changes and chunk lists, from a seeder its changes and the chunk lists it names (a seeder
/// cannot tell them from chunks). It sends nothing, and a `Sync` dialed at it moves nothing.
#[test]
fn an_audit_only_device_takes_changes_chunk_lists_and_what_it_names() {
    let k = space_key();
    // Blobs 0..5 are changes, 5..10 chunk lists, 10..20 chunks.
    let (changes, lists): (BTreeSet<BlobId>, BTreeSet<BlobId>) =
        ((0..5).map(blob).collect(), (5..10).map(blob).collect());
    let mut owner = writer(1, &k, 0..20);
    owner.metadata = Some(changes.union(&lists).copied().collect());
    let mut auditor = writer(2, &k, [100]);
    auditor.metadata_only = true;
    // The owner added it (a `Metadata` listener takes nothing of the dialer's ledger).
    owner.ledger.merge(&mut auditor.ledger.clone()).unwrap();
    let o = run(&mut auditor, &mut owner, Purpose::Metadata);
    assert_eq!((&o.dialer, &o.listener), (&Ok(()), &Ok(())), "{o:?}");
    let mut expect: BTreeSet<BlobId> = changes.union(&lists).copied().collect();
    expect.insert(blob(100));
    assert_eq!(auditor.blobs, expect, "changes and lists, no chunk");
    assert!(!owner.blobs.contains(&blob(100)), "the auditor sends nothing");

    // A seeder holding everything, sealed alike: its changes show, the lists are named.
    let policy = SeedPolicy { owners: vec![owner.id()], max_quota: 1000, accept: vec![], operator: String::new() };
    let mut s = seeder(9, owner.space, policy);
    propose(&mut owner, s.id(), 1000);
    owner.metadata = None;
    assert_eq!(run(&mut owner, &mut s, Purpose::Sync).dialer, Ok(()));
    assert_eq!(s.blobs.len(), 20, "the seeder holds all");
    s.metadata = Some(changes.clone());
    let mut fresh = writer(3, &k, []);
    fresh.ledger.merge(&mut owner.ledger.clone()).unwrap();
    fresh.named = lists.clone();
    let o = run(&mut fresh, &mut s, Purpose::Metadata);
    assert_eq!(o.dialer, Ok(()), "{o:?}");
    assert_eq!(fresh.blobs, changes.union(&lists).copied().collect::<BTreeSet<_>>());

    // A member's ordinary sync with the audit-only device moves nothing either way.
    let mut other = writer(4, &k, 30..35);
    let o = run(&mut other, &mut auditor, Purpose::Sync);
    assert_eq!((&o.dialer, &o.listener), (&Ok(()), &Ok(())), "{o:?}");
    assert_eq!((o.dialer_received, o.listener_received), (0, 0));
    // And a seeder cannot ask for metadata.
    let o = run(&mut s, &mut owner, Purpose::Metadata);
    assert!(matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("only a member")), "{o:?}");
}

#[test]
fn two_seeders_never_talk() {
    let space = genesis_of(&space_key()).1;
    let mut a = seeder(8, space, SeedPolicy::default());
    let mut b = seeder(9, space, SeedPolicy::default());
    let o = run(&mut a, &mut b, Purpose::Sync);
    assert!(matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("two seeders")), "{o:?}");
}

#[test]
fn only_the_blobs_asked_for_are_wanted() {
    let k = space_key();
    let mut a = writer(1, &k, 0..5);
    let mut b = writer(2, &k, 3..8);
    let o = run(&mut a, &mut b, Purpose::Sync);
    let s = o.dialer_session.expect("the dialer's session");
    assert!((5..8).all(|n| s.wants(&blob(n))), "what it lacked");
    assert!(!(0..5).any(|n| s.wants(&blob(n))), "nothing it held");
    assert!(!s.wants(&blob(100)), "nothing the peer did not list");
}

#[test]
fn messages_out_of_turn_are_refused() {
    let k = space_key();
    let a = writer(1, &k, 0..3);
    let b = writer(2, &k, 0..3);
    let mut s = Session::dial(a.setup(b.id(), Purpose::Sync, 1), Ledger::new());
    assert!(matches!(s.poll_transmit(), Some(Msg::Hello { .. })));
    let r = s.receive(Msg::Want { ids: vec![], more: false });
    assert_eq!(r, Err(SessionError::Refused("expected Hello".into())));
    assert!(matches!(s.poll_transmit(), Some(Msg::Refused { .. })));
    assert!(s.is_over());
}

/// A's session listening to B, which dialed and proved itself: at reconciliation, with the
/// messages A queued so far dropped, so the test plays B's steps by hand.
fn listening_at_reconciliation(k: &SigningKey, a: &Device, b: &Device) -> Session {
    let mut listener = Session::accept(a.setup(b.id(), Purpose::Sync, 1), Ledger::new(), {
        let mut hello = Session::dial(b.setup(a.id(), Purpose::Sync, 2), Ledger::new());
        hello.poll_transmit().expect("a Hello")
    })
    .0;
    while listener.poll_transmit().is_some() {}
    let proof = cobox_core::sync::proto::prove(k, &a.space, &b.id(), &a.id(), &[1; 32], Vec::new());
    listener.receive(proof).unwrap();
    listener.receive(Msg::Ledger(Vec::new())).unwrap();
    listener.receive(Msg::Ledger(Vec::new())).unwrap();
    while let Some(ev) = listener.poll_event() {
        if ev == Event::NeedBlobs {
            listener.reconcile(a.blobs.clone()).unwrap();
        }
    }
    while listener.poll_transmit().is_some() {}
    listener
}

#[test]
fn a_step_that_would_make_the_peer_list_its_set_many_times_is_refused() {
    let k = space_key();
    let a = writer(1, &k, 0..3);
    let b = writer(2, &k, 0..3);
    // B dials and proves itself; then, instead of one summary, it asks for the whole space twice.
    let mut listener = listening_at_reconciliation(&k, &a, &b);
    let whole = cobox_core::sync::reconcile::Item::Fingerprint { lo: [0; 32], hi: None, count: 0, fp: [0; 16] };
    let r = listener.receive(Msg::Reconcile { items: vec![whole.clone(), whole], more: false });
    assert!(matches!(r, Err(SessionError::Refused(ref m)) if m.contains("overlap")), "{r:?}");
}

/// A peer that never lets reconciliation end (each step asks about the whole id space again) is
/// refused after `MAX_ROUNDS` steps, not answered forever.
#[test]
fn a_reconciliation_that_never_ends_is_refused() {
    use cobox_core::sync::session::MAX_ROUNDS;
    let k = space_key();
    let a = writer(1, &k, 0..3);
    let b = writer(2, &k, 5..8);
    let mut listener = listening_at_reconciliation(&k, &a, &b);
    let whole = cobox_core::sync::reconcile::Item::Fingerprint { lo: [0; 32], hi: None, count: 1, fp: [7; 16] };
    for round in 1..=MAX_ROUNDS {
        let r = listener.receive(Msg::Reconcile { items: vec![whole.clone()], more: false });
        assert_eq!(r, Ok(()), "round {round} is answered");
        let reply = listener.poll_transmit();
        assert!(matches!(reply, Some(Msg::Reconcile { .. })), "round {round}: {reply:?}");
        while listener.poll_transmit().is_some() {}
    }
    let r = listener.receive(Msg::Reconcile { items: vec![whole], more: false });
    assert!(matches!(r, Err(SessionError::Refused(ref m)) if m.contains("rounds")), "{r:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Three members with arbitrary sets converge after A-B, B-C, A-B; ledgers too.
    #[test]
    fn three_members_converge(
        sa in proptest::collection::btree_set(0u32..400, 0..120),
        sb in proptest::collection::btree_set(0u32..400, 0..120),
        sc in proptest::collection::btree_set(0u32..400, 0..120),
        seeders in proptest::collection::vec(0u8..3, 0..4),
    ) {
        let k = space_key();
        let mut devs = [writer(1, &k, sa.clone()), writer(2, &k, sb.clone()), writer(3, &k, sc.clone())];
        // Each proposal lands in one member's ledger only.
        for (i, who) in seeders.iter().enumerate() {
            let d = &mut devs[usize::from(*who)];
            let mut a = propose(d, DeviceId([50 + i as u8; 32]), 10);
            a.nonce = [i as u8; 16];
        }
        let [a, b, c] = &mut devs;
        for (x, y) in [(0, 1), (1, 2), (0, 1)] {
            let o = match (x, y) {
                (0, 1) => run(a, b, Purpose::Sync),
                _ => run(b, c, Purpose::Sync),
            };
            prop_assert_eq!(&o.dialer, &Ok(()));
            prop_assert_eq!(&o.listener, &Ok(()));
        }
        let all: BTreeSet<BlobId> = sa.iter().chain(&sb).chain(&sc).copied().map(blob).collect();
        for d in [&*a, &*b, &*c] {
            prop_assert_eq!(&d.blobs, &all);
        }
        let mut heads: Vec<Vec<[u8; 32]>> = [a, b, c].into_iter().map(|d| d.ledger.heads()).collect();
        heads.dedup();
        prop_assert_eq!(heads.len(), 1, "ledgers converge");
    }

    /// Whatever a hostile peer sends after its Hello, a session never panics and never asks
    /// the driver for blobs before the peer proved membership.
    #[test]
    fn garbage_after_hello_never_reaches_the_transfer(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let k = space_key();
        let a = writer(1, &k, 0..3);
        let mut s = Session::dial(a.setup(DeviceId([2; 32]), Purpose::Sync, 1), Ledger::new());
        let hello = Msg::Hello { space: a.space, device: DeviceId([2; 32]), nonce: [3; 32], role: Role::Member, purpose: Purpose::Sync, listen: vec![], ledger: vec![] };
        let _ = s.receive(hello);
        if let Ok(m) = Msg::decode(&bytes) {
            let _ = s.receive(m);
        }
        while let Some(ev) = s.poll_event() {
            let early = matches!(ev, Event::NeedBlobs | Event::Receive { .. } | Event::Send(_) | Event::LedgerChanged);
            prop_assert!(!early, "{:?} before any proof", ev);
        }
    }
}

mod roster {
    use super::*;
    use cobox_core::roster::{Action, Role as R};

    fn invite_key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[200 + n; 32])
    }

    fn invite(n: u8, role: R, expires_ms: i64) -> Action {
        Action::Invite {
            key: invite_key(n).verifying_key().to_bytes(),
            role,
            name: vec![n],
            expires_ms,
            keys: vec![],
            epoch: 0,
            secret: vec![],
        }
    }

    fn redeem(n: u8, at_ms: i64) -> Action {
        Action::Redeem { invite: invite_key(n).verifying_key().to_bytes(), at_ms }
    }

    /// A manager with a genesis, and a device holding the space key that redeemed invite `n`.
    /// A removed manager keeps the space secret: not knowing of its removal, it proposes an
    /// agreement naming a second endpoint of its own, signed with its device key and the space
    /// key, and that "seeder" takes the proposal. Every informed member refuses it, whichever side
    /// dials: the roster no longer makes the proposer a manager, so no valid agreement names it.
    #[test]
    fn a_removed_managers_own_seeder_is_refused_by_informed_members() {
        let k = space_key();
        let mut a = member(1, &k, 0..3);
        roster_op(&mut a, Action::Genesis, Some(&k));
        let mut m = member(2, &k, 5..7);
        roster_op(&mut a, Action::Add { device: m.id().0, role: R::Manage, name: vec![] }, None);
        m.ledger.merge(&mut a.ledger.clone()).expect("merge");
        roster_op(&mut a, Action::Remove { device: m.id().0 }, None);
        let policy = SeedPolicy { owners: vec![m.id()], max_quota: 1000, accept: vec![], operator: String::new() };
        let mut s = seeder(9, a.space, policy);
        propose(&mut m, s.id(), 1000);
        assert_eq!(run(&mut m, &mut s, Purpose::Sync).dialer, Ok(()), "its own seeder takes it");
        assert!(!s.blobs.is_empty());
        let o = run(&mut s, &mut a, Purpose::Sync);
        assert!(
            matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("no agreement names it")),
            "{o:?}"
        );
        let o = run(&mut a, &mut s, Purpose::Sync);
        assert!(matches!(o.dialer, Err(SessionError::Refused(ref r)) if r.contains("no agreement names it")), "{o:?}");
        assert!(!a.blobs.iter().any(|b| (5..7).map(blob).any(|x| x == *b)), "nothing of the removed device's taken");
    }

    fn manager_and_joiner(n: u8, role: R, expires_ms: i64) -> (Device, Device) {
        let k = space_key();
        let mut a = member(1, &k, 0..3);
        roster_op(&mut a, Action::Genesis, Some(&k));
        let i = roster_op(&mut a, invite(n, role, expires_ms), None);
        let mut b = member(2, &k, 10..12);
        roster_op_after(&mut b, vec![i], redeem(n, NOW - 5), Some(&invite_key(n)));
        (a, b)
    }

    /// A manager holding invite `n` for `role` until `expires_ms`, whose operation carries the
    /// space secret sealed to the invite's key, and a maker of joiners: devices that hold only
    /// the code (no space key) and redeemed it (at `NOW - 5` by their clock). The secret too.
    fn manager_with_sealed_invite(n: u8, role: R, expires_ms: i64) -> (Device, impl Fn(u8) -> Device, [u8; 64]) {
        let k = space_key();
        let mut secret = [9u8; 64];
        secret[..32].copy_from_slice(&k.to_bytes());
        let mut a = member(1, &k, 0..3);
        roster_op(&mut a, Action::Genesis, Some(&k));
        let key = invite_key(n).verifying_key().to_bytes();
        let sealed = cobox_core::epoch::seal_secret(&key, &secret, &a.space.0, [3; 32]).unwrap();
        let act = Action::Invite { key, role, name: vec![], expires_ms, keys: vec![], epoch: 0, secret: sealed };
        let i = roster_op(&mut a, act, None);
        let joiner = move |seed: u8| {
            let mut b = member(seed, &k, []);
            b.space_key = None;
            roster_op_after(&mut b, vec![i], redeem(n, NOW - 5), Some(&invite_key(n)));
            b
        };
        (a, joiner, secret)
    }

    /// A device that holds only an invite's key (the code carries no secret) joins in a `Join`
    /// session: its redemption is its proof, the manager countersigns it before sending anything,
    /// and the ledger it then gets holds the space secret sealed to the invite's key, which it
    /// opens. No blob moves in a `Join`.
    #[test]
    fn a_device_with_only_an_invite_joins_and_opens_the_secret_from_the_ledger() {
        let (mut a, joiner, secret) = manager_with_sealed_invite(7, R::Write, NOW + 1000);
        let mut b = joiner(2);
        let o = run(&mut b, &mut a, Purpose::Join);
        assert_eq!((o.dialer, o.listener), (Ok(()), Ok(())));
        assert_eq!(role_on(&a, &b), Some(R::Write), "countersigned at the manager");
        assert_eq!(role_on(&b, &b), Some(R::Write), "and the joiner holds the countersignature");
        assert!(b.blobs.is_empty() && o.dialer_received == 0, "a Join moves no blobs");
        let view = cobox_core::roster::evaluate(&b.space.0, &b.ledger.roster_ops());
        let sealed = &view.invites[&invite_key(7).verifying_key().to_bytes()].secret;
        assert_eq!(cobox_core::epoch::open_secret(&invite_key(7), sealed, &b.space.0), Ok(secret));
        // Its next session (it broke off before opening the secret, say) is taken again.
        assert_eq!(run(&mut b, &mut a, Purpose::Join).dialer, Ok(()));
    }

    /// The manager may be the one that dials (it runs no daemon; the new device does): the
    /// joining device, listening, answers `Join` to its sync, is let in the same way, and the
    /// manager's next sync moves the blobs.
    #[test]
    fn a_manager_dialing_a_joining_device_lets_it_in_then_syncs() {
        let (mut a, joiner, secret) = manager_with_sealed_invite(7, R::Write, NOW + 1000);
        let mut b = joiner(2);
        b.joining = true;
        let o = run(&mut a, &mut b, Purpose::Sync);
        assert_eq!((o.dialer, o.listener), (Ok(()), Ok(())));
        assert_eq!(o.dialer_session.as_ref().map(Session::purpose), Some(Purpose::Join), "the dialer followed");
        assert_eq!((role_on(&a, &b), role_on(&b, &b)), (Some(R::Write), Some(R::Write)));
        assert!(b.blobs.is_empty(), "no blobs before the device holds its keys");
        let view = cobox_core::roster::evaluate(&b.space.0, &b.ledger.roster_ops());
        let sealed = &view.invites[&invite_key(7).verifying_key().to_bytes()].secret;
        assert_eq!(cobox_core::epoch::open_secret(&invite_key(7), sealed, &b.space.0), Ok(secret));
        // Let in, it holds the space key and syncs as any member.
        b.joining = false;
        b.space_key = Some(space_key());
        assert_eq!(run(&mut a, &mut b, Purpose::Sync).dialer, Ok(()));
        assert_eq!(b.blobs, a.blobs);
        // A device that dials an audit or a metadata fetch of a joining device is refused.
        let mut c = joiner(3);
        c.joining = true;
        assert!(run(&mut a, &mut c, Purpose::Metadata).dialer.is_err());
        assert_eq!(role_on(&a, &c), None);
    }

    /// The code used, past its expiry by the listener's clock (whatever time the redemption
    /// names), or unknown to the peer: refused before the peer sends anything of its ledger, so
    /// the sealed secret never reaches the device; only an unknown invite leaves the joiner
    /// trying its other peers (a refused one removes its pending space).
    #[test]
    fn a_used_expired_or_unknown_invite_gets_nothing_of_the_ledger() {
        use cobox_core::sync::proto::Refusal;
        let (mut a, joiner, _) = manager_with_sealed_invite(7, R::Write, NOW + 1000);
        let mut b = joiner(2);
        assert_eq!(run(&mut b, &mut a, Purpose::Join).dialer, Ok(()));
        let mut c = joiner(3);
        let before = c.ledger.roster_ops().len();
        let o = run(&mut c, &mut a, Purpose::Join);
        assert!(matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("already used")), "{o:?}");
        assert_eq!(o.dialer_session.as_ref().and_then(Session::refusal), Some(Refusal::InviteRefused));
        assert_eq!(c.ledger.roster_ops().len(), before, "nothing of the ledger, so not the sealed secret");
        assert_eq!(role_on(&a, &c), None);

        let (mut a, joiner, _) = manager_with_sealed_invite(8, R::Read, NOW - 1);
        let mut late = joiner(4);
        let before = late.ledger.roster_ops().len();
        let o = run(&mut late, &mut a, Purpose::Join);
        assert!(matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("expired")), "{o:?}");
        assert_eq!(o.dialer_session.as_ref().and_then(Session::refusal), Some(Refusal::InviteRefused));
        assert_eq!(late.ledger.roster_ops().len(), before);

        // A member that has not heard of the invite yet.
        let (_, joiner, _) = manager_with_sealed_invite(9, R::Write, NOW + 1000);
        let mut w = writer(5, &space_key(), []);
        let mut d = joiner(6);
        let before = d.ledger.roster_ops().len();
        let o = run(&mut d, &mut w, Purpose::Join);
        assert!(matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("not known here yet")), "{o:?}");
        assert_eq!(o.dialer_session.as_ref().and_then(Session::refusal), Some(Refusal::Other));
        assert_eq!(d.ledger.roster_ops().len(), before);
    }

    thread_local! {
        static STOLEN: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// A `Join` whose redemption is another device's (copied from a ledger, where every member
    /// and seeder reads it): refused, nothing sent, and the copy counts for no one.
    #[test]
    fn a_redemption_proves_only_its_own_device() {
        let (mut a, joiner, _) = manager_with_sealed_invite(7, R::Write, NOW + 1000);
        let b = joiner(2);
        let mut thief = joiner(3);
        let stolen = b.ledger.roster_ops().into_iter().find(|op| {
            cobox_core::roster::SignedOp::decode(op).is_ok_and(|o| matches!(o.op.action, Action::Redeem { .. }))
        });
        STOLEN.with(|s| *s.borrow_mut() = stolen.unwrap());
        let before = thief.ledger.roster_ops().len();
        let swap = |m: Msg| match m {
            Msg::Redeem(_) => Msg::Redeem(STOLEN.with(|s| s.borrow().clone())),
            m => m,
        };
        let o = run_hostile(&mut thief, &mut a, Purpose::Join, None, Some(swap));
        assert!(matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("sent no redemption")), "{o:?}");
        assert_eq!(thief.ledger.roster_ops().len(), before);
        assert_eq!((role_on(&a, &b), role_on(&a, &thief)), (None, None));
    }

    /// A device that floods the roster (more operations than a device may sign: here 20,001
    /// concurrent renames of itself) is refused at the ledger exchange, before anything
    /// evaluates the roster, and nothing of its ledger is kept; the evaluation itself also
    /// counts none of its operations. Before: every member stalled evaluating it at each open.
    #[test]
    fn a_ledger_that_floods_the_roster_is_refused_before_evaluation() {
        let (mut a, mut b) = manager_and_joiner(3, R::Read, NOW + 1000);
        assert_eq!(run(&mut b, &mut a, Purpose::Sync).dialer, Ok(()));
        let base = cobox_core::roster::evaluate(&b.space.0, &b.ledger.roster_ops()).heads;
        let me = b.id().0;
        for i in 0..=cobox_core::roster::MAX_OPS_PER_DEVICE {
            let name = (i as u32).to_le_bytes().to_vec();
            let op = cobox_core::roster::Op {
                space: b.space.0,
                author: me,
                deps: base.clone(),
                action: Action::Rename { device: me, name },
            };
            let bytes = cobox_core::roster::SignedOp::sign(op, &b.key, None).unwrap().encode().unwrap();
            b.ledger.insert_roster_op(&bytes).unwrap();
        }
        let before = a.ledger.len();
        let o = run(&mut b, &mut a, Purpose::Sync);
        assert!(
            matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("over the cap of 20000")),
            "{:?}",
            o.listener
        );
        assert_eq!(a.ledger.len(), before, "nothing of the flood is kept");
        let v = cobox_core::roster::evaluate(&b.space.0, &b.ledger.roster_ops());
        assert_eq!(v.role(&b.id().0), None, "its operations count for nothing, its redemption included");
        assert_eq!(v.role(&a.id().0), Some(R::Manage));
    }

    #[test]
    fn an_invited_device_joins_and_a_removed_one_is_refused_at_once() {
        let (mut a, mut b) = manager_and_joiner(1, R::Write, NOW + 1000);
        let o = run(&mut b, &mut a, Purpose::Sync);
        assert_eq!((o.dialer, o.listener), (Ok(()), Ok(())));
        assert_eq!(role_on(&a, &b), Some(R::Write));
        assert_eq!(role_on(&b, &a), Some(R::Manage));
        // Within that one session, the joiner holds the manager's countersignature: it is a
        // member on its own roster too.
        assert_eq!(role_on(&b, &b), Some(R::Write));
        assert_eq!(a.blobs, b.blobs);
        // A seeder under an agreement holds the roster too.
        let mut s = seeder(
            9,
            a.space,
            SeedPolicy { owners: vec![a.id()], max_quota: 1 << 30, accept: vec![], operator: String::new() },
        );
        propose(&mut a, s.id(), 1 << 20);
        assert_eq!(run(&mut a, &mut s, Purpose::Sync).dialer, Ok(()));
        // The manager removes the writer and tells the seeder; both then refuse it.
        roster_op(&mut a, Action::Remove { device: b.id().0 }, None);
        assert_eq!(run(&mut a, &mut s, Purpose::Sync).dialer, Ok(()));
        let before = a.ledger.len();
        let extra = b.blobs.len();
        b.blobs.insert(blob(99));
        let o = run(&mut b, &mut a, Purpose::Sync);
        assert!(matches!(o.dialer, Err(SessionError::PeerRefused(ref r)) if r.contains("removed")), "{o:?}");
        // The kind travels with the words, so the removed device's code need not read them.
        let refusal = o.dialer_session.as_ref().and_then(Session::refusal);
        assert_eq!(refusal, Some(cobox_core::sync::proto::Refusal::Removed));
        assert_eq!(a.ledger.len(), before, "nothing of the removed device's ledger is kept");
        assert!(!a.blobs.contains(&blob(99)));
        let o = run(&mut b, &mut s, Purpose::Sync);
        assert!(matches!(o.dialer, Err(SessionError::PeerRefused(ref r)) if r.contains("removed")), "{o:?}");
        assert_eq!(s.blobs.len(), extra, "the seeder took nothing from it");
    }

    #[test]
    fn a_device_not_on_the_roster_is_refused_and_leaves_nothing() {
        let k = space_key();
        let mut a = member(1, &k, 0..3);
        roster_op(&mut a, Action::Genesis, Some(&k));
        // It holds the space key (an old invite code) but was never invited; the roster has
        // had a removal, so a genesis of its own grants nothing.
        let gone = member(4, &k, []);
        let i = roster_op(&mut a, invite(1, R::Read, NOW + 1000), None);
        let mut g = gone.clone();
        roster_op_after(&mut g, vec![i], redeem(1, NOW), Some(&invite_key(1)));
        assert_eq!(run(&mut g, &mut a, Purpose::Sync).dialer, Ok(()));
        roster_op(&mut a, Action::Remove { device: g.id().0 }, None);
        let mut c = member(3, &k, 5..8);
        roster_op(&mut c, Action::Genesis, Some(&k));
        let before = a.ledger.len();
        let o = run(&mut c, &mut a, Purpose::Sync);
        assert!(
            matches!(o.listener, Err(SessionError::Refused(ref r)) if r.contains("not on the space's roster")),
            "{o:?}"
        );
        assert_eq!(a.ledger.len(), before);
        assert_eq!(a.blobs.len(), 3);
    }

    #[test]
    fn an_invite_is_refused_when_expired_or_used() {
        // Redeemed after expiry by the manager's clock, though the joiner dates it before.
        let (mut a, mut b) = manager_and_joiner(1, R::Write, NOW - 1);
        let o = run(&mut b, &mut a, Purpose::Sync);
        assert!(matches!(o.dialer, Err(SessionError::PeerRefused(ref r)) if r.contains("expired")), "{o:?}");
        let refusal = o.dialer_session.as_ref().and_then(Session::refusal);
        assert_eq!(refusal, Some(cobox_core::sync::proto::Refusal::InviteRefused));
        assert_eq!(role_on(&a, &b), None);
        // Used once, then a second device tries the same invite.
        let (mut a, mut b) = manager_and_joiner(2, R::Read, NOW + 1000);
        assert_eq!(run(&mut b, &mut a, Purpose::Sync).dialer, Ok(()));
        // Each later redemption saw only the invite, so it is concurrent with the first and,
        // judged by operation ids alone, would win about half the time: eight tries.
        let invite_op = *b
            .ledger
            .roster_ops()
            .iter()
            .find_map(|o| {
                let op = cobox_core::roster::SignedOp::decode(o).ok()?;
                matches!(op.op.action, Action::Redeem { .. }).then(|| op.op.deps[0])
            })
            .as_ref()
            .expect("b's redemption");
        for seed in 3..11 {
            let mut c = member(seed, &space_key(), []);
            roster_op_after(&mut c, vec![invite_op], redeem(2, NOW), Some(&invite_key(2)));
            let o = run(&mut c, &mut a, Purpose::Sync);
            assert!(matches!(o.dialer, Err(SessionError::PeerRefused(ref r)) if r.contains("already used")), "{o:?}");
        }
        assert_eq!(role_on(&a, &b), Some(R::Read), "the first stays");
    }

    /// A redemption counts only with a countersignature: a member whose role is below the
    /// invite's does not give one, and says the joiner waits (not a refused invite, which would
    /// make the joiner drop its space); a seeder under a manager's agreement gives one (a device
    /// restores from seeders while no member is online).
    #[test]
    fn only_a_member_at_the_invites_role_or_a_seeder_countersigns_a_redemption() {
        let (mut a, mut b) = manager_and_joiner(4, R::Manage, NOW + 1000);
        let mut w = member(5, &space_key(), []);
        roster_op(&mut a, Action::Add { device: w.id().0, role: R::Write, name: vec![] }, None);
        assert_eq!(run(&mut w, &mut a, Purpose::Sync).dialer, Ok(()));
        let o = run(&mut b, &mut w, Purpose::Sync);
        assert!(matches!(o.dialer, Err(SessionError::PeerRefused(ref r)) if r.contains("waits for a member")), "{o:?}");
        assert_eq!(o.dialer_session.as_ref().and_then(Session::refusal), Some(cobox_core::sync::proto::Refusal::Other));
        assert_eq!(role_on(&w, &b), None);
        let mut s = seeder(
            9,
            a.space,
            SeedPolicy { owners: vec![a.id()], max_quota: 1 << 30, accept: vec![], operator: String::new() },
        );
        propose(&mut a, s.id(), 1 << 20);
        assert_eq!(run(&mut a, &mut s, Purpose::Sync).dialer, Ok(()));
        assert_eq!(run(&mut b, &mut s, Purpose::Sync).dialer, Ok(()));
        assert_eq!(role_on(&b, &b), Some(R::Manage), "the seeder's countersignature counts");
        assert_eq!(run(&mut b, &mut a, Purpose::Sync).dialer, Ok(()));
        assert_eq!(role_on(&a, &b), Some(R::Manage));
        // A seeder no agreement names countersigns nothing.
        let (mut a, mut b) = manager_and_joiner(6, R::Read, NOW + 1000);
        let mut stray = seeder(
            10,
            a.space,
            SeedPolicy { owners: vec![a.id()], max_quota: 1 << 30, accept: vec![], operator: String::new() },
        );
        assert!(run(&mut b, &mut stray, Purpose::Sync).dialer.is_err());
        assert_eq!(role_on(&b, &b), None);
        assert_eq!(run(&mut b, &mut a, Purpose::Sync).dialer, Ok(()));
    }
}
