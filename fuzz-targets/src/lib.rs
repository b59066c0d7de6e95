//! Fuzz targets: every decoder a peer or a user feeds, each a function of raw bytes that must
//! return (with an error, usually) and never panic, hang or allocate without bound. The same
//! functions run under libFuzzer (`fuzz/`, `scripts/fuzz-campaign.sh`) for long campaigns and,
//! for a bounded number of generated inputs, in `cargo test` (`tests/bounded.rs`).
//!
//! Inputs are split and shaped with `arbitrary`'s `Unstructured`, so a target can take several
//! messages or a choice and its bytes from one input.

use arbitrary::Unstructured;
use cobox_agreements::{Entry as LedgerEntry, Ledger};
use cobox_core::codes::{Invite, PeerAddr, SeedCode};
use cobox_core::crypto::BlobKind;
use cobox_core::entry::{Entry, decode_chunk_list, validate_path};
use cobox_core::ignores::Ignores;
use cobox_core::manifest::{ChangeBody, Manifest};
use cobox_core::sync::proto::{Msg, Purpose, Role};
use cobox_core::sync::reconcile::{Reconciler, check_step};
use cobox_core::sync::session::{SeedPolicy, Session, Setup, evaluate};
use cobox_core::{BlobId, DeviceId, SpaceId};
use ed25519_dalek::SigningKey;

/// A named target.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by the name its libFuzzer binary has.
pub const TARGETS: &[Target] = &[
    ("codes", codes),
    ("wire", wire),
    ("reconcile", reconcile),
    ("session", session),
    ("ledger_changes", ledger_changes),
    ("ledger_entry", ledger_entry),
    ("change_blob", change_blob),
    ("manifest_entry", manifest_entry),
    ("ignore_rules", ignore_rules),
    ("http_bodies", http_bodies),
    ("roster", roster),
    ("sealed_blob", sealed_blob),
    ("audit_proof", audit_proof),
    ("heads_note", heads_note),
];

/// Invite codes, seed codes and `ID@IP:PORT` peer addresses, as a user pastes them.
pub fn codes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = Invite::parse(&text);
    let _ = SeedCode::parse(&text);
    if let Ok(p) = text.parse::<PeerAddr>() {
        // What parses prints and parses back to the same.
        assert_eq!(p.to_string().parse::<PeerAddr>().ok().map(|q| q.device), Some(p.device));
    }
}

/// One frame body as a peer sends it.
pub fn wire(data: &[u8]) {
    if let Ok(m) = Msg::decode(data) {
        // A message that decodes encodes again to a frame of the same body.
        if let Ok(frame) = m.frame() {
            assert_eq!(Msg::decode(&frame[4..]).ok(), Some(m));
        }
    }
    if data.len() >= 4 {
        let _ = Msg::check_len([data[0], data[1], data[2], data[3]]);
    }
}

/// A reconciliation step a peer sends, answered by a set it shaped.
pub fn reconcile(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let n = u.int_in_range(0..=64u16).unwrap_or(0);
    let mut set = std::collections::BTreeSet::new();
    for _ in 0..n {
        let Ok(id) = u.arbitrary::<[u8; 32]>() else { break };
        set.insert(BlobId(id));
    }
    let Ok(Msg::Reconcile { items, .. }) = Msg::decode(u.take_rest()) else { return };
    if check_step(&items).is_ok() {
        let reply = Reconciler::new(set.clone()).respond(&items);
        // One step's reply is bounded by the set: each id listed at most once per item.
        let listed: usize = reply.iter().map(|i| i.weight()).sum();
        assert!(listed <= (set.len() + 1) * (items.len() + 1) * 16, "reply of {listed} for {}", set.len());
    }
}

/// A whole session from the listener's side, every message after its `Hello` chosen by the
/// input: whatever arrives, the session refuses or goes on, and never panics.
pub fn session(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let space_key = SigningKey::from_bytes(&[42; 32]);
    let space = SpaceId(space_key.verifying_key().to_bytes());
    let me = SigningKey::from_bytes(&[1; 32]);
    let peer = DeviceId(SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes());
    let member = u.arbitrary::<bool>().unwrap_or(true);
    let setup = Setup {
        space,
        me: DeviceId(me.verifying_key().to_bytes()),
        device_key: me,
        peer,
        role: if member { Role::Member } else { Role::Seeder },
        space_key: member.then(|| space_key.clone()),
        purpose: Purpose::Sync,
        nonce: [3; 32],
        listen: Vec::new(),
        now_ms: 1_800_000_000_000,
        policy: SeedPolicy::default(),
        evaluate,
        metadata_only: u.arbitrary::<bool>().unwrap_or(false),
    };
    let hello = Msg::Hello {
        space,
        device: peer,
        nonce: [4; 32],
        role: if u.arbitrary::<bool>().unwrap_or(true) { Role::Member } else { Role::Seeder },
        purpose: match u.arbitrary::<u8>().unwrap_or(0) % 3 {
            0 => Purpose::Sync,
            1 => Purpose::Audit,
            _ => Purpose::Metadata,
        },
        listen: Vec::new(),
        ledger: Vec::new(),
    };
    let (mut s, r) = Session::accept(setup, Ledger::new(), hello);
    if r.is_err() {
        return;
    }
    for _ in 0..16 {
        let Ok(len) = u.int_in_range(0..=4096u16) else { break };
        let Ok(body) = u.bytes(usize::from(len).min(u.len())) else { break };
        let Ok(m) = Msg::decode(body) else { continue };
        if s.receive(m).is_err() || s.is_over() {
            break;
        }
        while s.poll_transmit().is_some() {}
        while let Some(ev) = s.poll_event() {
            if ev == cobox_core::sync::session::Event::NeedBlobs {
                let _ = s.reconcile(Default::default());
            }
        }
    }
}

/// Ledger changes a peer sends, merged into a ledger that already holds entries.
pub fn ledger_changes(data: &[u8]) {
    let mut l = Ledger::new();
    let _ = l.merge_changes(data);
}

/// One ledger entry (and a seeder's credential), as a peer's ledger carries it.
pub fn ledger_entry(data: &[u8]) {
    let space = [7u8; 32];
    if let Ok(e) = LedgerEntry::decode(data) {
        assert_eq!(LedgerEntry::decode(&e.encode()).ok().as_ref(), Some(&e));
        let _ = cobox_agreements::evaluate(
            &space,
            &[(e.key(), data.to_vec())],
            1_800_000_000_000,
            &cobox_agreements::AnyDevice,
        );
    }
    let _ = LedgerEntry::check_credential(data, &space, &[8; 32]);
}

/// A change blob's body (after it opened): decoded and applied to a manifest.
pub fn change_blob(data: &[u8]) {
    if let Ok(body) = ChangeBody::decode(data) {
        let mut m = Manifest::new(4, [5; 32], &[6; 16]);
        let _ = m.apply(&body);
        let _ = m.entries();
    }
}

/// A manifest entry, a chunk list and a path, as another device wrote them.
pub fn manifest_entry(data: &[u8]) {
    if let Ok(e) = Entry::decode(data)
        && let Ok(bytes) = e.encode()
    {
        assert_eq!(Entry::decode(&bytes).ok(), Some(e));
    }
    let _ = decode_chunk_list(data);
    let _ = validate_path(&String::from_utf8_lossy(data));
}

/// `.coboxignore` rules (synced from other devices), and paths tested against them.
pub fn ignore_rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (rules, _) = Ignores::parse(&text);
    for path in text.lines().take(8) {
        let _ = rules.covers(path, false);
        let _ = rules.covers(path, true);
    }
}

/// The HTTP API's request bodies.
pub fn http_bodies(data: &[u8]) {
    let _ = cobox_core::codes::ProposeRequest::parse(data);
}

/// Roster operations from peers: several, split by the input, evaluated in the order given.
pub fn roster(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while let Ok(len) = u.int_in_range(0..=1024u16) {
        let Ok(bytes) = u.bytes(usize::from(len).min(u.len())) else { break };
        ops.push(bytes.to_vec());
        if u.is_empty() {
            break;
        }
    }
    let view = cobox_core::roster::evaluate(&[7; 32], &ops);
    assert!(view.members.keys().all(|k| !view.removed.contains(k)));
}

/// A sealed blob from a peer or a seeder: its kind read, peeked, authenticated and opened as
/// each kind (versions 1 to 4, padding and the synthetic nonce checked).
pub fn sealed_blob(data: &[u8]) {
    let keys = cobox_core::crypto::SpaceKeys::derive(&[3; 32]);
    let _ = cobox_core::crypto::blob_kind(data);
    let _ = keys.peek_kind(data);
    let _ = keys.authenticate(data);
    for kind in [BlobKind::Chunk, BlobKind::ChunkList, BlobKind::Change] {
        let _ = keys.open(kind, data);
    }
}

/// A seeder's audit proof: a size and range bytes checked against an id.
pub fn audit_proof(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(size), Ok(id)) = (u.arbitrary::<u64>(), u.arbitrary::<[u8; 32]>()) else { return };
    let proof = cobox_agreements::audit::Proof { size, ranges: u.take_rest().to_vec() };
    let _ = cobox_agreements::audit::check(&[9; 32], &id, 0, &proof);
}

/// A heads note from the ledger, and a manifest asked which of its heads it lacks.
pub fn heads_note(data: &[u8]) {
    let space = SpaceId([7; 32]);
    let _ = cobox_core::heads::HeadsNote::open(data, &space);
    if let Ok(n) = postcard::from_bytes::<cobox_core::heads::HeadsNote>(data)
        && n.heads.len() <= cobox_core::heads::MAX_SHARDS
    {
        let _ = Manifest::new(4, [5; 32], &[6; 16]).missing_heads(&n.heads);
    }
}
