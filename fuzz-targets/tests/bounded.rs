//! A bounded fuzz run of every target inside `cargo test`: valid inputs of each kind, then
//! deterministic mutations of them (bit flips, cuts, splices, inserted runs) and random bytes,
//! each fed to the target. A panic fails the test and names the target and the input's
//! number, which replays: inputs come from BLAKE3 in XOF mode keyed by target and number.
//! `COBOX_FUZZ_RUNS` sets the inputs per target (default 5,000); `scripts/fuzz-campaign.sh` runs
//! the same targets under libFuzzer for as long as you like.

use cobox_agreements::{Agreement, Entry as LedgerEntry, Ledger};
use cobox_core::codes::{Invite, PeerAddr, SeedCode};
use cobox_core::entry::{Content, Entry, Kind, encode_chunk_list};
use cobox_core::manifest::{Manifest, Snapshot};
use cobox_core::sync::proto::{Msg, Purpose, Role};
use cobox_core::sync::reconcile::Reconciler;
use cobox_core::{BlobId, DeviceId, SpaceId};
use cobox_fuzz_targets::TARGETS;
use ed25519_dalek::SigningKey;

/// Deterministic bytes for input `n` of `target`.
fn stream(target: &str, n: usize) -> blake3::OutputReader {
    let mut h = blake3::Hasher::new_derive_key("cobox 2026-11 bounded fuzz v1");
    h.update(target.as_bytes());
    h.update(&(n as u64).to_le_bytes());
    h.finalize_xof()
}

/// Valid inputs of each kind, the seeds mutations start from.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let space_key = SigningKey::from_bytes(&[42; 32]);
    let space = SpaceId(space_key.verifying_key().to_bytes());
    let dev = DeviceId([9; 32]);
    let peer = PeerAddr { device: dev, addrs: vec!["127.0.0.1:4000".into(), "[::1]:4001".into()] };
    let agreement = Agreement {
        space: space.0,
        owner: [1; 32],
        seeder: [8; 32],
        quota: 1 << 30,
        start_ms: 1_000,
        end_ms: 2_000_000_000_000,
        terms: "keep it".into(),
        nonce: [3; 16],
    };
    let proposal = LedgerEntry::propose(agreement, &SigningKey::from_bytes(&[1; 32]));
    let frame_body = |m: &Msg| m.frame().expect("frame")[4..].to_vec();
    match target {
        "codes" => {
            let invite = Invite { space, name: "garden".into(), peers: vec![peer.clone()], key: [5; 32], op: [6; 32] };
            let seed = SeedCode { space, agreement: [4; 32], owner: peer.clone() };
            vec![
                invite.encode().expect("invite").into_bytes(),
                seed.encode().expect("seed").into_bytes(),
                peer.to_string().into_bytes(),
            ]
        }
        "wire" | "session" => {
            let ids: Vec<BlobId> = (0..5u8).map(|i| BlobId([i; 32])).collect();
            let step = Reconciler::new(ids.iter().copied().collect()).start();
            vec![
                frame_body(&Msg::Hello {
                    space,
                    device: dev,
                    nonce: [1; 32],
                    role: Role::Member,
                    purpose: Purpose::Sync,
                    listen: vec!["127.0.0.1:1".into()],
                    ledger: vec![[2; 32]],
                }),
                frame_body(&Msg::Proof { sig: vec![7; 64], genesis: Vec::new() }),
                frame_body(&Msg::Credential(proposal.encode())),
                frame_body(&Msg::Ledger(vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1, 0])),
                frame_body(&Msg::Reconcile { items: step, more: false }),
                frame_body(&Msg::Want { ids: ids.clone(), more: true }),
                frame_body(&Msg::AuditChallenge { nonce: [1; 32], ids }),
                frame_body(&Msg::Blob { id: BlobId([1; 32]), data: vec![1, 2, 3] }),
                frame_body(&Msg::Lanes(8)),
                frame_body(&Msg::Redeem(vec![9; 40])),
            ]
        }
        "reconcile" => {
            let theirs: std::collections::BTreeSet<BlobId> = (0..100u8).map(|i| BlobId([i; 32])).collect();
            let mut out = vec![0u8; 1];
            out[0] = 40;
            out.extend((0..40u8).flat_map(|i| [i * 3; 32]));
            out.extend(frame_body(&Msg::Reconcile { items: Reconciler::new(theirs).start(), more: false }));
            vec![out]
        }
        "ledger_changes" => {
            let mut l = Ledger::new();
            l.insert(&proposal).expect("insert");
            vec![l.changes_since(&[])]
        }
        "ledger_entry" => vec![proposal.encode()],
        "change_blob" => {
            let mut m = Manifest::new(4, [5; 32], &[6; 16]);
            let e = Entry {
                kind: Kind::File { size: 3, content: Content::Single(BlobId([1; 32])) },
                mtime_ns: 5,
                mode: 0o644,
                device: [1; 8],
            };
            m.set("a/b.txt", &e).expect("set");
            let snap =
                Snapshot { time_ms: 1, device: dev, added: 1, changed: 0, deleted: 0, renamed: 0, heads: vec![] };
            let (body, _) = m.commit(snap).expect("a change");
            vec![body.encode().expect("encode")]
        }
        "manifest_entry" => {
            let e = Entry {
                kind: Kind::File { size: 9, content: Content::List { list: BlobId([2; 32]), chunks: 2 } },
                mtime_ns: 7,
                mode: 0o755,
                device: [2; 8],
            };
            vec![
                e.encode().expect("entry"),
                Entry { kind: Kind::Symlink { target: "../x".into() }, ..e.clone() }.encode().expect("link"),
                encode_chunk_list(&[(BlobId([3; 32]), 10), (BlobId([4; 32]), 20)]),
                b"docs/a/b.txt".to_vec(),
            ]
        }
        "ignore_rules" => vec![b"*.tmp\n!keep.tmp\n/build/\n**/cache/**\n# comment\n[a-z]?.log\n".to_vec()],
        "http_bodies" => vec![
            serde_json::to_vec(&serde_json::json!({
                "space": "docs", "seeder": format!("{dev}@127.0.0.1:9"), "quota": 1024, "days": 7, "terms": "ok"
            }))
            .expect("json"),
        ],
        "roster" => {
            use cobox_core::roster::{Action, Op, Role, SignedOp, genesis, op_id};
            let space = SigningKey::from_bytes(&[7; 32]);
            let creator = SigningKey::from_bytes(&[1; 32]);
            let sign = |op: Op, space_key: Option<&SigningKey>| {
                SignedOp::sign(op, &creator, space_key).expect("sign").encode().expect("encode")
            };
            let (genesis, space_id) = genesis(&space, &creator).expect("genesis");
            let add = sign(
                Op {
                    space: space_id,
                    author: creator.verifying_key().to_bytes(),
                    deps: vec![op_id(&genesis)],
                    action: Action::Add { device: [2; 32], role: Role::Write, name: b"laptop".to_vec() },
                },
                None,
            );
            // Two ops, each after two length bytes: near how the target splits its input (arbitrary
            // maps the bytes into a range), so mutations start from valid operations.
            let mut out = Vec::new();
            for op in [genesis, add] {
                out.extend_from_slice(&(op.len() as u16).to_be_bytes());
                out.extend(op);
            }
            vec![out]
        }
        "sealed_blob" => {
            // Sealed with the key the target opens with: each kind, compressed and not, and an
            // unpadded version 1 blob.
            let keys = cobox_core::crypto::SpaceKeys::derive(&[3; 32]);
            use cobox_core::crypto::BlobKind;
            vec![
                keys.seal(BlobKind::Chunk, b"a small chunk"),
                keys.seal(BlobKind::ChunkList, &[7; 72]),
                keys.seal(BlobKind::Chunk, "compressible text ".repeat(40).as_bytes()),
                keys.seal_change(&SigningKey::from_bytes(&[4; 32]), [1; 24], b"a change"),
                keys.seal_unpadded(BlobKind::Chunk, 0, [2; 24], b"old"),
            ]
        }
        "audit_proof" => {
            // A valid proof, laid out as the target reads it: size, id, then the ranges.
            let blob: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
            let id = *blake3::hash(&blob).as_bytes();
            let p = cobox_agreements::audit::prove(&[9; 32], &id, 0, &blob).expect("a proof");
            let mut out = p.size.to_le_bytes().to_vec();
            out.extend_from_slice(&id);
            out.extend(p.ranges);
            vec![out]
        }
        "heads_note" => {
            let key = SigningKey::from_bytes(&[4; 32]);
            let note = cobox_core::heads::HeadsNote {
                space: [7; 32],
                device: key.verifying_key().to_bytes(),
                time_ms: 1_000,
                heads: vec![vec![[1; 32]], vec![], vec![[2; 32], [3; 32]], vec![]],
            };
            vec![note.sign(&key).expect("a note")]
        }
        other => panic!("no seeds for target {other}"),
    }
}

/// Input `n` of `target`: a seed as is, a mutated seed, or random bytes.
fn input(target: &str, seeds: &[Vec<u8>], n: usize) -> Vec<u8> {
    let mut r = stream(target, n);
    let mut word = [0u8; 8];
    let mut next = |r: &mut blake3::OutputReader| {
        r.fill(&mut word);
        u64::from_le_bytes(word) as usize
    };
    if n < seeds.len() {
        return seeds[n].clone();
    }
    let mut data = seeds[next(&mut r) % seeds.len()].clone();
    match next(&mut r) % 6 {
        0 => {
            let mut bytes = vec![0u8; next(&mut r) % 2048];
            r.fill(&mut bytes);
            return bytes;
        }
        1 if !data.is_empty() => {
            let cut = next(&mut r) % data.len();
            data.truncate(cut);
        }
        2 => {
            let at = next(&mut r) % (data.len() + 1);
            let run = vec![[0u8, 0xff, 0x7f, 0x80][next(&mut r) % 4]; next(&mut r) % 300];
            data.splice(at..at, run);
        }
        3 if seeds.len() > 1 => {
            let other = &seeds[next(&mut r) % seeds.len()];
            let at = next(&mut r) % (data.len() + 1);
            data.splice(at..at, other.iter().copied());
        }
        _ => {}
    }
    for _ in 0..(1 + next(&mut r) % 8) {
        if data.is_empty() {
            break;
        }
        let i = next(&mut r) % data.len();
        data[i] ^= 1 << (next(&mut r) % 8);
    }
    data
}

#[test]
fn every_target_survives_a_bounded_run() {
    let runs: usize = std::env::var("COBOX_FUZZ_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    for (name, target) in TARGETS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "{name}: mutations start from valid inputs");
        let started = std::time::Instant::now();
        for n in 0..runs {
            let data = input(name, &seeds, n);
            let r = std::panic::catch_unwind(|| target(&data));
            assert!(
                r.is_ok(),
                "target {name} panicked on input {n} ({} bytes): {:02x?}",
                data.len(),
                &data[..data.len().min(64)]
            );
        }
        eprintln!("{name}: {runs} inputs in {:?}", started.elapsed());
    }
}
