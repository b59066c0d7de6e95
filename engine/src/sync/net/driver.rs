//! Runs one [`Session`] over a framed stream: sends what it queues, does what its events ask
//! (persist the ledger, list blobs, move a transfer, make or answer an audit) and hands it each
//! control message that arrives. Every protocol decision is the session's; this file only does
//! the I/O those decisions need.

use super::framing::Framed;
use super::held::Held;
use super::shared::Shared;
use super::{SyncStats, net, transfer};
use crate::error::Error;
use crate::handle::on_space;
use crate::ids::{BlobId, DeviceId, SpaceId};
use crate::ledger::LedgerFile;
use crate::space::Space;
use crate::sync::proto::Purpose;
use crate::sync::session::{Event, Session, SessionError, Setup};
use cobox_agreements::{AuditRecord, Entry, State};
use std::sync::Arc;

/// What a session produced.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) stats: SyncStats,
    /// The audit this device made, signed and recorded.
    pub(super) audit: Option<AuditRecord>,
}

/// What the session needs to start, from this node and the space as held.
pub(super) async fn setup(sh: &Shared, held: &Held, space: SpaceId, peer: DeviceId, purpose: Purpose) -> Setup {
    let space_key = match held {
        Held::Member(_) => sh.space_keys.read().unwrap_or_else(|p| p.into_inner()).get(&space).cloned(),
        Held::Seed(_) => None,
    };
    setup_as(sh, held.role(), space_key, space, peer, purpose)
}

/// [`setup`] for a role and space key given (a joining device holds no space yet).
pub(super) fn setup_as(
    sh: &Shared,
    role: crate::sync::proto::Role,
    space_key: Option<ed25519_dalek::SigningKey>,
    space: SpaceId,
    peer: DeviceId,
    purpose: Purpose,
) -> Setup {
    let mut nonce = [0u8; 32];
    crate::random_bytes(&mut nonce);
    Setup {
        space,
        me: sh.me,
        device_key: sh.key.clone(),
        peer,
        role,
        space_key,
        purpose,
        nonce,
        listen: sh.listen(),
        now_ms: crate::now_ms(),
        policy: sh.policy(),
        evaluate: crate::ledger::evaluate_verified,
        metadata_only: sh.audit_only(&space),
    }
}

/// Send what the session queued.
pub(super) async fn transmit(io: &mut Framed, session: &mut Session) -> Result<(), Error> {
    while let Some(m) = session.poll_transmit() {
        io.send(&m).await?;
    }
    Ok(())
}

/// The session stopped: send its refusal (if it queued one), end the stream, say why.
pub(super) async fn fail(io: &mut Framed, session: &mut Session, e: SessionError) -> Error {
    let _ = transmit(io, session).await;
    io.finish().await;
    match e {
        SessionError::Refused(r) => Error::Refused(r),
        SessionError::PeerRefused(r) => Error::PeerRefused { code: session.refusal().unwrap_or_default(), reason: r },
        SessionError::Misuse(m) => Error::Net(format!("session: {m}")),
    }
}

/// A session this side ended by announcing a peer's recovery keeps its ledger (the
/// announcement and the redemption it countersigned): members hear of the recovery through
/// this device, and the waiting period runs from it.
pub(super) fn keep_announcement(session: &mut Session, ledger: &LedgerFile) -> Result<(), Error> {
    if session.refused_here() == Some(crate::sync::proto::Refusal::RecoveryWaiting) {
        ledger.merge_from(session.ledger_mut())?;
    }
    Ok(())
}

/// An audit this device started: the agreement, the nonce and the blobs challenged.
struct Challenge {
    agreement: cobox_agreements::AgreementId,
    nonce: [u8; 32],
    ids: Vec<BlobId>,
}

/// Run `session` to its end. `audit_count`: blobs to challenge when this device audits.
pub(super) async fn drive(
    sh: &Shared,
    held: &Held,
    io: &mut Framed,
    session: &mut Session,
    ledger: &LedgerFile,
    peer: DeviceId,
    audit_count: usize,
) -> Result<Outcome, Error> {
    let mut out = Outcome::default();
    let mut challenge: Option<Challenge> = None;
    let proof_by = tokio::time::Instant::now() + super::HANDSHAKE;
    loop {
        while let Some(ev) = session.poll_event() {
            let step = match ev {
                Event::Note(n) => {
                    tracing::info!("{n}");
                    Ok(())
                }
                Event::Countersigned { agreement, space, quota, end_ms } => {
                    tracing::info!(
                        "accepted agreement {} for space {}: {} until {}",
                        agreement.short(),
                        space.short(),
                        crate::units::format_bytes(quota),
                        crate::util::rfc3339(end_ms)
                    );
                    Ok(())
                }
                // Persisted before anything that depends on it is sent.
                Event::LedgerChanged => {
                    out.stats.ledger_new += ledger.merge_from(session.ledger_mut())? as u64;
                    // A manager's device hands the current key to members that joined without
                    // it, or draws a new one if it reached a removed device.
                    if let (Held::Member(_), Some(home)) = (held, sh.home.clone()) {
                        let space = session.space().to_string();
                        let done = tokio::task::spawn_blocking(move || crate::members::upkeep(&home, &space)).await;
                        match done {
                            Ok(Ok(Some(note))) => tracing::info!("{note}"),
                            Ok(Err(e)) => tracing::warn!("key upkeep: {e}"),
                            _ => {}
                        }
                    }
                    Ok(())
                }
                Event::Authenticated { listen } => {
                    sh.inbound.proven(peer);
                    sh.remember(&session.space(), peer, &listen);
                    Ok(())
                }
                Event::NeedBlobs => {
                    if let Held::Member(s) = held {
                        // Record local edits before telling the peer what we hold (a dialer
                        // scanned before dialing: this finds nothing new then).
                        on_space(s, Space::scan_if_changed).await?;
                    }
                    match (session.purpose(), session.is_dialer(), held) {
                        // Asked for metadata: only the changes (and, a member, the chunk lists).
                        (Purpose::Metadata, false, _) => session.reconcile(held.metadata_ids().await?),
                        (Purpose::Metadata, true, Held::Member(s)) => {
                            let named = on_space(s, Space::lists_missing).await?;
                            let held_ids = held.blob_ids().await?;
                            session.want_also(named).and_then(|()| session.reconcile(held_ids))
                        }
                        _ => session.reconcile(held.blob_ids().await?),
                    }
                }
                Event::AuditReady => {
                    let Held::Member(space) = held else { return Err(net("only a member audits")) };
                    let view = session.view().ok_or_else(|| net("no ledger view"))?;
                    let agreement = agreement_naming(view, &peer)
                        .ok_or_else(|| Error::Refused(format!("no agreement names {} as a seeder", peer.short())))?;
                    // Drawn over the bytes of what the seeder acknowledged holding (proofs are
                    // checked against the ids alone, so no content is needed here). At most what
                    // a seeder answers in one session; `--all` of more is a sample.
                    let who = peer;
                    let population = on_space(space, move |s| s.audit_population(&who)).await?;
                    let ids = draw(population, audit_count);
                    let mut nonce = [0u8; 32];
                    crate::random_bytes(&mut nonce);
                    challenge = Some(Challenge { agreement, nonce, ids: ids.clone() });
                    session.challenge(nonce, ids)
                }
                Event::Challenged { nonce, ids } => {
                    let Held::Seed(seed) = held else { return Err(net("only a seeder is audited")) };
                    let work = audit_work(held, ids.clone()).await.map_err(net)?;
                    let budget =
                        sh.audit_budget.lock().unwrap_or_else(|p| p.into_inner()).take(peer, work, crate::now_ms());
                    if let Err(why) = budget {
                        tracing::warn!(
                            "space {}: declined an audit by {}: {why}",
                            session.space().short(),
                            peer.short()
                        );
                        session.decline(why)
                    } else {
                        let answers = audit_answers(held, nonce, ids).await.map_err(net)?;
                        if answers.iter().any(Option::is_none) {
                            // It cannot prove what it claims: find everything lost, and stop
                            // claiming it, so the owners send it again at their next sync.
                            let space = session.space();
                            let lost = seed.run(|s| s.forget_lost(crate::now_ms())).await?;
                            match lost {
                                Ok(ids) if !ids.is_empty() => tracing::warn!(
                                    "space {}: {} blob(s) lost on this disk (missing or corrupt), found answering an audit by {}; dropped from the index, so owners send them again: {}",
                                    space.short(),
                                    ids.len(),
                                    peer.short(),
                                    crate::util::list_some(ids.iter().map(|id| id.short()), 8)
                                ),
                                Ok(_) => {}
                                Err(e) => tracing::warn!(
                                    "space {}: checking the store after a failed proof: {e}",
                                    space.short()
                                ),
                            }
                        }
                        let stored = seed.view().used;
                        session.answer(answers, stored)
                    }
                }
                Event::Answered { answers, stored_bytes } => {
                    let (Some(c), Held::Member(_)) = (challenge.take(), held) else {
                        return Err(net("an audit answer without a challenge"));
                    };
                    let ids: Vec<[u8; 32]> = c.ids.iter().map(|id| id.0).collect();
                    let (passed, failed) = tokio::task::spawn_blocking(move || {
                        let failed = cobox_agreements::audit::failures(&c.nonce, &ids, &answers);
                        (ids.len() as u32 - failed.len() as u32, failed)
                    })
                    .await
                    .map_err(net)?;
                    if !failed.is_empty() {
                        let failed: Vec<BlobId> = failed.into_iter().map(|i| c.ids[i]).collect();
                        tracing::warn!(
                            "audit of seeder {}: {} of {} blobs not proven: {}; they are sent again at the next sync if the seeder no longer claims them",
                            peer.short(),
                            failed.len(),
                            c.ids.len(),
                            crate::util::list_some(failed.iter().map(|id| id.short()), 8)
                        );
                    }
                    let record = AuditRecord {
                        agreement: c.agreement,
                        auditor: sh.me.0,
                        time_ms: crate::now_ms(),
                        challenged: c.ids.len() as u32,
                        passed,
                        stored_bytes,
                    };
                    let entry = Entry::audit(record.clone(), &sh.key);
                    ledger.insert(&entry)?;
                    out.audit = Some(record);
                    Ok(())
                }
                Event::Receive { ids, quota } => {
                    transmit(io, session).await?;
                    if !session.is_dialer() {
                        // The dialer writes what we sent before it answers our `Want`.
                        io.wait_longer_once(super::ANSWER_WAIT);
                    }
                    let from_seeder = session.peer_role() == Some(crate::sync::proto::Role::Seeder);
                    // Changes are held to the roster as this session merged it.
                    let ops = session.ledger_mut().roster_ops();
                    held.set_roster(cobox_core::roster::evaluate(&session.space().0, &ops), peer.0).await?;
                    // Told before the first blob, so progress has its total from the start.
                    let space = session.space();
                    let progress = Arc::new(super::Receiving {
                        wanted: ids.len() as u64,
                        got: Default::default(),
                        bytes: Default::default(),
                        started_ms: crate::now_ms(),
                    });
                    sh.receiving.lock().unwrap_or_else(|p| p.into_inner()).insert(space, progress.clone());
                    let next = transfer::receive(held, io, &ids, &mut out.stats, quota, from_seeder, &progress).await;
                    sh.receiving.lock().unwrap_or_else(|p| p.into_inner()).remove(&space);
                    // A seeder remembers it ran out of disk: its administrators' reports say so.
                    match &next {
                        Err(Error::SeederFull) => {
                            let mut full = sh.full_since.lock().unwrap_or_else(|p| p.into_inner());
                            full.get_or_insert(crate::now_ms());
                        }
                        Ok(_) if matches!(held, Held::Seed(_)) && out.stats.received_blobs > 0 => {
                            *sh.full_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
                        }
                        _ => {}
                    }
                    session.receive(next?)
                }
                Event::Send(ids) => {
                    if let Held::Member(space) = held
                        && session.peer_role() == Some(crate::sync::proto::Role::Seeder)
                        && !ids.is_empty()
                        && let Some(agreement) = session.view().and_then(|v| agreement_naming(v, &peer))
                    {
                        // A seeder asking again for what it acknowledged holding lost it: a
                        // failed audit, with the blobs named, whatever its next audit says.
                        let (who, wanted) = (peer, ids.clone());
                        let again = on_space(space, move |s| s.acknowledged_among(&who, &wanted)).await?;
                        if !again.is_empty() {
                            tracing::warn!(
                                "seeder {} asked again for {} blob(s) it acknowledged holding: {}; recorded as a failed audit",
                                peer.short(),
                                again.len(),
                                crate::util::list_some(again.iter().map(|id| id.short()), 8)
                            );
                            let record = AuditRecord {
                                agreement,
                                auditor: sh.me.0,
                                time_ms: crate::now_ms(),
                                challenged: again.len() as u32,
                                passed: 0,
                                stored_bytes: 0,
                            };
                            let entry = Entry::audit(record, &sh.key);
                            ledger.insert(&entry)?;
                        }
                    }
                    transmit(io, session).await?;
                    transfer::send_blobs(held, io, &ids, &mut out.stats).await?;
                    session.sent()
                }
                Event::Finished => Ok(()),
            };
            if let Err(e) = step {
                return Err(fail(io, session, e).await);
            }
        }
        if !next(io, session, proof_by, peer).await? {
            break;
        }
    }
    out.stats.not_pushed = session.not_pushed();
    Ok(out)
}

/// Send what the session queued and hand it the next message: false once it is over. Until
/// the peer has proven its right to the space, its frames are small and due by `proof_by`.
async fn next(
    io: &mut Framed,
    session: &mut Session,
    proof_by: tokio::time::Instant,
    peer: DeviceId,
) -> Result<bool, Error> {
    transmit(io, session).await?;
    if session.is_over() {
        return Ok(false);
    }
    let max = session.max_frame();
    let m = if max == crate::sync::proto::MAX_OPENING_FRAME {
        tokio::time::timeout_at(proof_by, io.recv_within(max)).await.map_err(|_| {
            net(format!("{} did not prove its right to the space within {:?}", peer.short(), super::HANDSHAKE))
        })??
    } else {
        io.recv_within(max).await?
    };
    match session.receive(m) {
        Ok(()) => Ok(true),
        Err(e) => Err(fail(io, session, e).await),
    }
}

/// Run a joining device's `Join` session (the ledgers only) to its end, persisting what the
/// peer's ledger brings.
pub(super) async fn drive_join(
    sh: &Shared,
    io: &mut Framed,
    session: &mut Session,
    ledger: &LedgerFile,
    peer: DeviceId,
) -> Result<(), Error> {
    let proof_by = tokio::time::Instant::now() + super::HANDSHAKE;
    loop {
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::Note(n) => tracing::info!("{n}"),
                Event::LedgerChanged => {
                    ledger.merge_from(session.ledger_mut())?;
                }
                Event::Authenticated { listen } => sh.remember(&session.space(), peer, &listen),
                Event::Finished => {}
                other => {
                    let e = SessionError::Misuse("a join session asked for more than its ledgers");
                    tracing::warn!("join session: unexpected {other:?}");
                    return Err(fail(io, session, e).await);
                }
            }
        }
        if !next(io, session, proof_by, peer).await? {
            return Ok(());
        }
    }
}

/// The agreement an audit of `seeder` is recorded under: its active one, else its newest.
fn agreement_naming(view: &cobox_agreements::LedgerView, seeder: &DeviceId) -> Option<cobox_agreements::AgreementId> {
    view.active_for(&seeder.0)
        .or_else(|| {
            view.agreements
                .iter()
                .filter(|a| a.state != State::Invalid && a.agreement.seeder == seeder.0)
                .max_by_key(|a| a.agreement.start_ms)
        })
        .map(|a| a.id)
}

/// Bytes an audit's answer reads: each distinct challenged blob held, once.
fn audit_work(held: &Held, ids: Vec<BlobId>) -> tokio::task::JoinHandle<u64> {
    let h = held.clone();
    tokio::task::spawn_blocking(move || {
        let store = h.store();
        let distinct: std::collections::BTreeSet<BlobId> = ids.into_iter().collect();
        distinct.iter().filter_map(|id| store.locate(id).ok().flatten()).map(|l| u64::from(l.len)).sum()
    })
}

/// A seeder's proofs for the challenged places (`None` where it cannot read the blob), on a
/// blocking thread and off the seed's lock (only the store's handle is taken under it, so
/// sessions and sync go on meanwhile): each distinct blob is read and hashed once.
fn audit_answers(
    held: &Held,
    nonce: [u8; 32],
    ids: Vec<BlobId>,
) -> tokio::task::JoinHandle<Vec<Option<cobox_agreements::audit::Proof>>> {
    let h = held.clone();
    tokio::task::spawn_blocking(move || {
        let store = h.store();
        let mut places: std::collections::BTreeMap<BlobId, Vec<u32>> = std::collections::BTreeMap::new();
        for (at, id) in ids.iter().enumerate() {
            places.entry(*id).or_default().push(at as u32);
        }
        let mut out: Vec<Option<cobox_agreements::audit::Proof>> = vec![None; ids.len()];
        for (id, at) in places {
            let Ok(blob) = store.get(&id) else { continue };
            for (k, proof) in at.iter().zip(cobox_agreements::audit::prove_places(&nonce, &id.0, &at, &blob)) {
                out[*k as usize] = proof;
            }
        }
        out
    })
}

/// The challenge: `n` places drawn over the bytes of `population` (with replacement, so a blob
/// is named in proportion to its size and a large one at several places). With `n` at least the
/// number of blobs and unbounded (`--all`), every blob once. At most what a seeder answers.
fn draw(population: Vec<(BlobId, u64)>, n: usize) -> Vec<BlobId> {
    let cap = cobox_core::sync::session::MAX_AUDIT_IDS;
    if n == usize::MAX && population.len() <= cap {
        return population.into_iter().map(|(id, _)| id).collect();
    }
    let mut cumulative = Vec::with_capacity(population.len());
    let mut total = 0u64;
    for (_, size) in &population {
        total = total.saturating_add(*size);
        cumulative.push(total);
    }
    (0..n.min(cap))
        .filter_map(|_| {
            let mut r = [0u8; 8];
            crate::random_bytes(&mut r);
            cobox_agreements::audit::pick_by_weight(&cumulative, u64::from_le_bytes(r)).map(|i| population[i].0)
        })
        .collect()
}
