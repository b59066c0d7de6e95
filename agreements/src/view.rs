//! Evaluate a ledger: verify every entry, derive each agreement's state. Nothing unverified
//! is honoured; everything that fails is reported with its reason.

use crate::entry::{Agreement, AgreementId, AuditRecord, Entry, EntryError, Revocation};
use crate::{Authority, Key32};
use std::collections::{BTreeMap, HashMap};

/// Where an agreement stands at a moment. In JSON, its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Signed by the owner, not yet by the seeder (or its term has not begun).
    Proposed,
    /// Signed by both and within its term.
    Active,
    /// Revoked by either party.
    Revoked,
    /// Past its end.
    Expired,
    /// Its proposal does not verify: never honoured.
    Invalid,
}

impl State {
    /// Lowercase name, as the CLI prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Proposed => "proposed",
            State::Active => "active",
            State::Revoked => "revoked",
            State::Expired => "expired",
            State::Invalid => "invalid",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One agreement as the ledger shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementView {
    /// Its id.
    pub id: AgreementId,
    /// The terms (as proposed; for an invalid proposal, as claimed).
    pub agreement: Agreement,
    /// Where it stands.
    pub state: State,
    /// The proposal's signatures, and the acceptance's if there is one, verify.
    pub signatures_ok: bool,
    /// The seeder countersigned.
    pub accepted: bool,
    /// The first valid revocation.
    pub revoked: Option<Revocation>,
    /// Valid audit results, oldest first.
    pub audits: Vec<AuditRecord>,
    /// The seeder's newest answer to a proposal it did not take by itself (why it waits).
    pub answer: Option<crate::entry::Answer>,
    /// The seeder's newest word on who runs it.
    pub operator: Option<crate::entry::OperatorNote>,
    /// Why it is invalid, when it is.
    pub problem: Option<String>,
}

impl AgreementView {
    /// The newest audit result.
    pub fn last_audit(&self) -> Option<&AuditRecord> {
        self.audits.last()
    }

    /// Active, and its newest audit passed within `window_ms` of `now_ms`.
    pub fn verified(&self, now_ms: i64, window_ms: i64) -> bool {
        self.state == State::Active && self.last_audit().is_some_and(|a| a.ok() && now_ms - a.time_ms <= window_ms)
    }
}

/// An entry that failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntry {
    /// Its ledger key.
    pub key: String,
    /// The agreement it claims to be about, when it decodes.
    pub agreement: Option<AgreementId>,
    /// Why it is not honoured.
    pub reason: String,
}

/// A whole ledger, evaluated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerView {
    /// Every agreement, valid or not, ordered by start time.
    pub agreements: Vec<AgreementView>,
    /// Entries that are not honoured, with reasons.
    pub invalid: Vec<InvalidEntry>,
}

impl LedgerView {
    /// Seeders with an active agreement whose newest audit passed within the window.
    pub fn replicas(&self, now_ms: i64, window_ms: i64) -> usize {
        let mut seeders: Vec<Key32> =
            self.agreements.iter().filter(|a| a.verified(now_ms, window_ms)).map(|a| a.agreement.seeder).collect();
        seeders.sort();
        seeders.dedup();
        seeders.len()
    }

    /// The active agreement with the largest quota for this seeder.
    pub fn active_for(&self, seeder: &Key32) -> Option<&AgreementView> {
        self.agreements
            .iter()
            .filter(|a| a.state == State::Active && a.agreement.seeder == *seeder)
            .max_by_key(|a| a.agreement.quota)
    }

    /// Whether a member takes blobs from `seeder`: under an active agreement, or one it
    /// countersigned that ended (revoked or expired) less than `grace_ms` ago, while it still
    /// keeps the blobs so a member that lost everything can recover. Never one merely proposed.
    pub fn serves_members(&self, seeder: &Key32, now_ms: i64, grace_ms: i64) -> bool {
        self.agreements.iter().filter(|a| a.agreement.seeder == *seeder && a.accepted).any(|a| match a.state {
            State::Active => true,
            State::Revoked => {
                let ended = a.revoked.as_ref().map_or(a.agreement.end_ms, |r| r.time_ms.min(a.agreement.end_ms));
                now_ms <= ended.saturating_add(grace_ms)
            }
            State::Expired => now_ms <= a.agreement.end_ms.saturating_add(grace_ms),
            State::Proposed | State::Invalid => false,
        })
    }

    /// A validly proposed agreement (any state but invalid) names this device as seeder.
    pub fn names_seeder(&self, seeder: &Key32) -> bool {
        self.agreements.iter().any(|a| a.state != State::Invalid && a.agreement.seeder == *seeder)
    }

    /// Find an agreement by full id or unambiguous hex prefix (at least 6 characters).
    pub fn find(&self, query: &str) -> Result<&AgreementView, String> {
        let q = query.trim().to_ascii_lowercase();
        let hits: Vec<&AgreementView> =
            self.agreements.iter().filter(|a| q.len() >= 6 && a.id.to_string().starts_with(&q)).collect();
        match hits.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("no agreement {query:?} in this ledger")),
            _ => Err(format!("{query:?} matches several agreements; give more characters")),
        }
    }
}

/// Verify every entry of a space's ledger and derive each agreement's state at `now_ms`.
pub fn evaluate(space: &Key32, entries: &[(String, Vec<u8>)], now_ms: i64, authority: &dyn Authority) -> LedgerView {
    evaluate_with(space, entries, now_ms, &mut Verified::default(), authority)
}

/// Signature checks already made. An entry's verdict depends only on its bytes and the space
/// (the agreement it is checked against is fixed by the id it names, a hash), so a daemon that
/// evaluates a ledger growing with audits every session verifies each entry once.
#[derive(Debug, Default)]
pub struct Verified {
    verdicts: HashMap<[u8; 32], Result<(), EntryError>>,
}

impl Verified {
    /// Entries remembered.
    pub fn len(&self) -> usize {
        self.verdicts.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.verdicts.is_empty()
    }

    /// Forget everything (a long-running process bounds its memory this way).
    pub fn clear(&mut self) {
        self.verdicts.clear();
    }

    fn check(&mut self, key: [u8; 32], verify: impl FnOnce() -> Result<(), EntryError>) -> Result<(), EntryError> {
        self.verdicts.entry(key).or_insert_with(verify).clone()
    }
}

/// How far ahead of this device's clock a revocation may be dated and still count (devices'
/// clocks drift; a date further ahead is a party trying to block the other's revocation).
pub const MAX_CLOCK_SKEW_MS: i64 = 15 * 60 * 1000;

/// [`evaluate`], reusing and adding to `verified`.
pub fn evaluate_with(
    space: &Key32,
    entries: &[(String, Vec<u8>)],
    now_ms: i64,
    verified: &mut Verified,
    authority: &dyn Authority,
) -> LedgerView {
    // The roster's verdicts are not remembered with the signatures: they change with it.
    let no_power =
        |device: &Key32, power: &'static str| EntryError::NoPower { device: hex::encode(&device[..4]), power };
    let mut invalid = Vec::new();
    let mut decoded = Vec::new();
    let verdict_key = |bytes: &[u8]| {
        let mut h = blake3::Hasher::new_derive_key("cobox 2026-11 ledger entry verdict v1");
        h.update(space);
        h.update(bytes);
        *h.finalize().as_bytes()
    };
    for (key, bytes) in entries {
        if bytes.first() == Some(&crate::ROSTER_TAG) || bytes.first() == Some(&crate::HEADS_TAG) {
            continue; // the roster's (cobox_core::roster) and heads notes (cobox_core::heads)
        }
        match Entry::decode(bytes) {
            Ok(e) if e.key() == *key => decoded.push((key.clone(), e, verdict_key(bytes))),
            Ok(e) => invalid.push(InvalidEntry {
                key: key.clone(),
                agreement: Some(e.agreement_id()),
                reason: "stored under a key that is not its hash".into(),
            }),
            Err(err) => invalid.push(InvalidEntry { key: key.clone(), agreement: None, reason: err.to_string() }),
        }
    }
    // Proposals first: every other entry is checked against the agreement it names.
    let mut views: BTreeMap<AgreementId, AgreementView> = BTreeMap::new();
    for (key, e, vk) in &decoded {
        let Entry::Proposal { agreement, owner_sig } = e else { continue };
        let id = agreement.id();
        let verdict = verified.check(*vk, || Entry::verify_proposal(agreement, owner_sig, space)).and_then(|()| {
            if authority.proposes(&agreement.owner, &id) {
                Ok(())
            } else {
                Err(no_power(&agreement.owner, "propose agreements (a manager)"))
            }
        });
        let valid_exists = views.get(&id).is_some_and(|v| v.state != State::Invalid);
        match verdict {
            Ok(()) if !valid_exists => {
                views.insert(id, view_of(id, agreement.clone(), None));
            }
            Ok(()) => {}
            Err(err) => {
                invalid.push(InvalidEntry { key: key.clone(), agreement: Some(id), reason: err.to_string() });
                views.entry(id).or_insert_with(|| view_of(id, agreement.clone(), Some(err)));
            }
        }
    }
    for (key, e, vk) in &decoded {
        if matches!(e, Entry::Proposal { .. }) {
            continue;
        }
        let id = e.agreement_id();
        let Some(v) = views.get_mut(&id).filter(|v| v.state != State::Invalid) else {
            invalid.push(InvalidEntry {
                key: key.clone(),
                agreement: Some(id),
                reason: "refers to an agreement with no valid proposal in this ledger".into(),
            });
            continue;
        };
        let power = match e {
            Entry::Revocation { revocation: r, .. }
                if r.party == crate::Party::Owner && !authority.manages(&r.device) =>
            {
                Err(no_power(&r.device, "revoke agreements (a manager)"))
            }
            Entry::Audit { record, .. } if !authority.member(&record.auditor) => {
                Err(no_power(&record.auditor, "record audits (a member)"))
            }
            _ => Ok(()),
        };
        if let Err(err) = verified.check(*vk, || e.verify_against(&v.agreement)).and(power) {
            invalid.push(InvalidEntry { key: key.clone(), agreement: Some(id), reason: err.to_string() });
            if matches!(e, Entry::Acceptance { .. }) {
                v.signatures_ok = v.accepted;
            }
            continue;
        }
        match e {
            Entry::Acceptance { .. } => {
                v.accepted = true;
                v.signatures_ok = true;
            }
            // Dated beyond the clocks' allowed skew: a party could otherwise record a revocation
            // that takes effect in years and, meanwhile, keeps the other from revoking.
            Entry::Revocation { revocation, .. } if revocation.time_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) => {
                invalid.push(InvalidEntry {
                    key: key.clone(),
                    agreement: Some(id),
                    reason: format!(
                        "dated {} s ahead of this device's clock, over the {} s allowed",
                        (revocation.time_ms - now_ms) / 1000,
                        MAX_CLOCK_SKEW_MS / 1000
                    ),
                });
            }
            Entry::Revocation { revocation, .. } => {
                if v.revoked.as_ref().is_none_or(|r| revocation.time_ms < r.time_ms) {
                    v.revoked = Some(revocation.clone());
                }
            }
            Entry::Audit { record, .. } => v.audits.push(record.clone()),
            Entry::Answer { answer, .. } => {
                if v.answer.as_ref().is_none_or(|a| (a.time_ms, &a.reason) < (answer.time_ms, &answer.reason)) {
                    v.answer = Some(answer.clone());
                }
            }
            Entry::Operator { note, .. } => {
                if v.operator.as_ref().is_none_or(|a| (a.time_ms, &a.name) < (note.time_ms, &note.name)) {
                    v.operator = Some(note.clone());
                }
            }
            Entry::Proposal { .. } => {}
        }
    }
    let mut agreements: Vec<AgreementView> = views.into_values().collect();
    for v in &mut agreements {
        v.audits.sort_by_key(|a| a.time_ms);
        if v.state == State::Invalid {
            continue;
        }
        v.state = if v.revoked.as_ref().is_some_and(|r| r.time_ms <= now_ms) {
            State::Revoked
        } else if now_ms >= v.agreement.end_ms {
            State::Expired
        } else if v.accepted && v.agreement.in_term(now_ms) {
            State::Active
        } else {
            State::Proposed
        };
    }
    agreements.sort_by_key(|a| (a.agreement.start_ms, a.id));
    LedgerView { agreements, invalid }
}

fn view_of(id: AgreementId, agreement: Agreement, problem: Option<EntryError>) -> AgreementView {
    AgreementView {
        id,
        agreement,
        state: if problem.is_some() { State::Invalid } else { State::Proposed },
        signatures_ok: problem.is_none(),
        accepted: false,
        revoked: None,
        audits: Vec::new(),
        answer: None,
        operator: None,
        problem: problem.map(|p| p.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Party;
    use crate::entry::tests::{audit, keys, sample};
    use crate::ledger::Ledger;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    /// The roster's verdict in these tests: the owner of [`keys`] manages, and a reader
    /// (`[8; 32]`) is a member; nobody else is either.
    struct Roster;

    const READER: [u8; 32] = [8; 32];

    impl Authority for Roster {
        fn manages(&self, device: &Key32) -> bool {
            *device == keys().1.verifying_key().to_bytes()
        }
        fn member(&self, device: &Key32) -> bool {
            self.manages(device) || *device == SigningKey::from_bytes(&READER).verifying_key().to_bytes()
        }
    }

    fn eval(l: &Ledger, space: &SigningKey, now: i64) -> LedgerView {
        evaluate(&space.verifying_key().to_bytes(), &l.raw_entries(), now, &Roster)
    }

    /// Only what the roster allows counts: a reader's revocation, a proposal by a device that
    /// manages nothing and an audit by a non-member are invalid, whatever keys signed them
    /// (the shared space key among them). Before: a reader holding the space secret revoked
    /// the co-op's agreements, and seeders deleted the backups after the grace period.
    #[test]
    fn only_the_roster_grants_power_over_agreements() {
        let (s, o, d) = keys();
        let reader = SigningKey::from_bytes(&READER);
        let stranger = SigningKey::from_bytes(&[9; 32]);
        let a = sample(&s, &o, &d);
        let mut l = Ledger::new();
        l.insert(&Entry::propose(a.clone(), &o)).unwrap();
        l.insert(&Entry::accept(&a, &d)).unwrap();
        let by = |k: &SigningKey| Revocation {
            agreement: a.id(),
            device: k.verifying_key().to_bytes(),
            party: Party::Owner,
            time_ms: 1_000,
        };
        l.insert(&Entry::revoke(by(&reader), &reader)).unwrap();
        l.insert(&audit(&a, &stranger, 1_500, 4)).unwrap();
        let mut theirs = sample(&s, &reader, &d);
        theirs.nonce = [2; 16];
        l.insert(&Entry::propose(theirs.clone(), &reader)).unwrap();
        let v = eval(&l, &s, 2_000);
        let ours = v.agreements.iter().find(|x| x.id == a.id()).unwrap();
        assert_eq!(ours.state, State::Active, "the reader's revocation counts for nothing");
        assert!(ours.audits.is_empty(), "nor the stranger's audit");
        assert_eq!(v.agreements.iter().find(|x| x.id == theirs.id()).unwrap().state, State::Invalid);
        assert_eq!(
            v.invalid.iter().filter(|i| i.reason.contains("roster does not allow")).count(),
            3,
            "{:#?}",
            v.invalid
        );
        // A manager's revocation counts.
        l.insert(&Entry::revoke(by(&o), &o)).unwrap();
        assert_eq!(eval(&l, &s, 2_000).agreements.iter().find(|x| x.id == a.id()).unwrap().state, State::Revoked);
    }

    /// A seeder's answer says why a proposal waits, and leaves it open; only the seeder's
    /// signature counts, the newest answer is shown, and a long one is refused.
    #[test]
    fn a_seeders_answer_leaves_the_proposal_open() {
        let (s, o, d) = keys();
        let a = sample(&s, &o, &d);
        let mut l = Ledger::new();
        l.insert(&Entry::propose(a.clone(), &o)).unwrap();
        let said = |t: i64, why: &str| crate::entry::Answer { agreement: a.id(), time_ms: t, reason: why.into() };
        l.insert(&Entry::answer(said(1_500, "over the limit of 1 GiB"), &d)).unwrap();
        l.insert(&Entry::answer(said(1_600, "over the limit of 2 GiB"), &d)).unwrap();
        l.insert(&Entry::answer(said(1_700, "forged by the owner"), &o)).unwrap();
        l.insert(&Entry::answer(said(1_800, &"x".repeat(crate::MAX_ANSWER + 1)), &d)).unwrap();
        let v = eval(&l, &s, 2_000);
        assert_eq!(v.agreements[0].state, State::Proposed);
        assert_eq!(v.agreements[0].answer.as_ref().map(|x| x.reason.as_str()), Some("over the limit of 2 GiB"));
        assert_eq!(v.invalid.len(), 2, "{:#?}", v.invalid);
        // The operator takes it after all.
        l.insert(&Entry::accept(&a, &d)).unwrap();
        assert_eq!(eval(&l, &s, 2_000).agreements[0].state, State::Active);
    }

    /// A seeder names its operator: only its own signature counts (an owner cannot name the
    /// seeder's organisation for it), the newest note is shown, and an empty or long name is
    /// refused.
    #[test]
    fn only_the_seeder_names_its_operator() {
        let (s, o, d) = keys();
        let a = sample(&s, &o, &d);
        let mut l = Ledger::new();
        l.insert(&Entry::propose(a.clone(), &o)).unwrap();
        l.insert(&Entry::accept(&a, &d)).unwrap();
        let note = |t: i64, name: &str| crate::OperatorNote { agreement: a.id(), time_ms: t, name: name.into() };
        l.insert(&Entry::operator(note(1_500, "Tech Co-op"), &d)).unwrap();
        l.insert(&Entry::operator(note(1_600, "Rivers Tech Co-op"), &d)).unwrap();
        l.insert(&Entry::operator(note(1_700, "The Owner Itself"), &o)).unwrap();
        l.insert(&Entry::operator(note(1_800, ""), &d)).unwrap();
        l.insert(&Entry::operator(note(1_900, &"x".repeat(crate::MAX_OPERATOR + 1)), &d)).unwrap();
        let v = eval(&l, &s, 2_000);
        assert_eq!(v.agreements[0].operator.as_ref().map(|x| x.name.as_str()), Some("Rivers Tech Co-op"));
        assert_eq!(v.invalid.len(), 3, "{:#?}", v.invalid);
        assert!(v.invalid.iter().any(|i| i.reason.contains("seeder signature")), "{:#?}", v.invalid);
        // A note round-trips through the ledger's encoding.
        let e = Entry::operator(note(1_500, "Tech Co-op"), &d);
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn lifecycle_proposed_active_audited_revoked_expired() {
        let (s, o, d) = keys();
        let a = sample(&s, &o, &d);
        let mut l = Ledger::new();
        l.insert(&Entry::propose(a.clone(), &o)).unwrap();
        assert_eq!(eval(&l, &s, 2_000).agreements[0].state, State::Proposed);
        l.insert(&Entry::accept(&a, &d)).unwrap();
        let v = eval(&l, &s, 2_000);
        assert_eq!(v.agreements[0].state, State::Active);
        assert!(v.agreements[0].signatures_ok);
        assert_eq!(v.replicas(2_000, 1_000), 0, "no audit yet");
        l.insert(&audit(&a, &o, 2_000, 4)).unwrap();
        assert_eq!(eval(&l, &s, 2_500).replicas(2_500, 1_000), 1);
        assert_eq!(eval(&l, &s, 9_000).replicas(9_000, 1_000), 0, "the audit is too old");
        l.insert(&audit(&a, &o, 3_000, 3)).unwrap();
        assert_eq!(eval(&l, &s, 3_000).replicas(3_000, 1_000), 0, "the newest audit failed");
        assert_eq!(eval(&l, &s, 2_000_000).agreements[0].state, State::Expired);
        let r = Revocation {
            agreement: a.id(),
            device: d.verifying_key().to_bytes(),
            party: Party::Seeder,
            time_ms: 5_000,
        };
        l.insert(&Entry::revoke(r, &d)).unwrap();
        assert_eq!(eval(&l, &s, 4_000).agreements[0].state, State::Active);
        assert_eq!(eval(&l, &s, 5_000).agreements[0].state, State::Revoked);
        assert!(eval(&l, &s, 5_000).invalid.is_empty());
    }

    #[test]
    fn a_revocation_dated_far_ahead_counts_for_nothing_and_blocks_nothing() {
        let (s, o, d) = keys();
        let a = sample(&s, &o, &d);
        let mut l = Ledger::new();
        l.insert(&Entry::propose(a.clone(), &o)).unwrap();
        l.insert(&Entry::accept(&a, &d)).unwrap();
        // The seeder dates its revocation a year ahead.
        let year = 365 * 86_400_000;
        let late = Revocation {
            agreement: a.id(),
            device: d.verifying_key().to_bytes(),
            party: Party::Seeder,
            time_ms: 2_000 + year,
        };
        l.insert(&Entry::revoke(late, &d)).unwrap();
        let v = eval(&l, &s, 2_000);
        assert!(v.agreements[0].revoked.is_none(), "not a revocation the owner must wait for");
        assert!(v.invalid.iter().any(|i| i.reason.contains("ahead of this device's clock")), "{:?}", v.invalid);
        // Within the allowed skew it counts, and takes effect when its time comes.
        let soon = Revocation {
            agreement: a.id(),
            device: o.verifying_key().to_bytes(),
            party: Party::Owner,
            time_ms: 2_000 + MAX_CLOCK_SKEW_MS,
        };
        l.insert(&Entry::revoke(soon, &o)).unwrap();
        let v = eval(&l, &s, 2_000);
        assert_eq!(v.agreements[0].revoked.as_ref().map(|r| r.party), Some(Party::Owner));
        assert_eq!(v.agreements[0].state, State::Active);
        assert_eq!(eval(&l, &s, 2_000 + MAX_CLOCK_SKEW_MS).agreements[0].state, State::Revoked);
    }

    #[test]
    fn forgeries_are_shown_invalid_and_not_honoured() {
        let (s, o, d) = keys();
        let a = sample(&s, &o, &d);
        let outsider = SigningKey::from_bytes(&[9; 32]);
        let mut l = Ledger::new();
        // The wrong signer: an outsider signs as the owner, without the space key.
        let mut forged = a.clone();
        forged.nonce = [1; 16];
        l.insert(&Entry::propose(forged.clone(), &outsider)).unwrap();
        // Replayed for another space: a valid proposal of another space's ledger.
        let other = SigningKey::from_bytes(&[5; 32]);
        let elsewhere = sample(&other, &o, &d);
        l.insert(&Entry::propose(elsewhere.clone(), &o)).unwrap();
        // An acceptance signed by someone else than the seeder.
        l.insert(&Entry::propose(a.clone(), &o)).unwrap();
        l.insert(&Entry::accept(&a, &outsider)).unwrap();
        // A revocation by a non-party.
        let r = Revocation {
            agreement: a.id(),
            device: outsider.verifying_key().to_bytes(),
            party: Party::Owner,
            time_ms: 1,
        };
        l.insert(&Entry::revoke(r, &outsider)).unwrap();
        // An audit result whose auditor's signature does not verify.
        let mut fake = audit(&a, &o, 2_000, 4);
        if let Entry::Audit { sig, .. } = &mut fake {
            sig[0] ^= 1;
        }
        l.insert(&fake).unwrap();
        let v = eval(&l, &s, 2_000);
        let by_id = |id: AgreementId| v.agreements.iter().find(|x| x.id == id).unwrap();
        assert_eq!(by_id(forged.id()).state, State::Invalid);
        assert!(!by_id(forged.id()).signatures_ok);
        assert_eq!(by_id(elsewhere.id()).problem.as_deref(), Some("made for another space"));
        let real = by_id(a.id());
        assert_eq!(real.state, State::Proposed, "a forged acceptance does not activate it");
        assert!(real.revoked.is_none() && real.audits.is_empty());
        assert_eq!(v.invalid.len(), 5, "{:#?}", v.invalid);
        assert_eq!(v.replicas(2_000, 10_000), 0);
        // Remembered verdicts give the same view, forgeries included.
        let mut verified = Verified::default();
        let space = s.verifying_key().to_bytes();
        assert_eq!(evaluate_with(&space, &l.raw_entries(), 2_000, &mut verified, &Roster), v);
        assert_eq!(verified.len(), 6, "one verdict per entry");
        assert_eq!(evaluate_with(&space, &l.raw_entries(), 2_000, &mut verified, &Roster), v);
        // A verdict is bound to its space: the same entries judged for another space.
        let other_space = other.verifying_key().to_bytes();
        assert_eq!(
            evaluate_with(&other_space, &l.raw_entries(), 2_000, &mut verified, &Roster),
            evaluate(&other_space, &l.raw_entries(), 2_000, &Roster)
        );
    }

    proptest! {
        /// Flip any one byte of any stored entry: the ledger never honours more than before.
        #[test]
        fn a_flipped_byte_is_never_honoured(which in 0usize..3, pos in any::<usize>(), bit in 0u8..8) {
            let (s, o, d) = keys();
            let a = sample(&s, &o, &d);
            let good = [Entry::propose(a.clone(), &o), Entry::accept(&a, &d), audit(&a, &o, 2_000, 4)];
            let mut raw: Vec<(String, Vec<u8>)> = good.iter().map(|e| (e.key(), e.encode())).collect();
            let b = &mut raw[which].1;
            let i = pos % b.len();
            b[i] ^= 1 << bit;
            let v = evaluate(&s.verifying_key().to_bytes(), &raw, 2_000, &Roster);
            prop_assert_eq!(v.replicas(2_000, 10_000), 0);
            prop_assert!(!v.invalid.is_empty());
            // With the good entries' verdicts remembered first, the flipped one is still caught.
            let mut verified = Verified::default();
            let good_raw: Vec<(String, Vec<u8>)> = good.iter().map(|e| (e.key(), e.encode())).collect();
            evaluate_with(&s.verifying_key().to_bytes(), &good_raw, 2_000, &mut verified, &Roster);
            prop_assert_eq!(evaluate_with(&s.verifying_key().to_bytes(), &raw, 2_000, &mut verified, &Roster), v);
        }
    }
}
