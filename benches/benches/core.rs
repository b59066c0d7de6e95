//! Criterion benchmarks of the hot paths, each beside its ceiling in the same run: memcpy and
//! raw BLAKE3 over the same bytes.

use cobox_engine::chunk::Chunker;
use cobox_engine::crypto::{BlobKind, SpaceKeys};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn data(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    blake3::Hasher::new().update(b"bench").finalize_xof().fill(&mut v);
    v
}

fn pipeline(c: &mut Criterion) {
    let input = data(32 << 20);
    let keys = SpaceKeys::derive(&[1; 32]);
    let chunker = Chunker::new(&keys.chunker_key());
    let mut g = c.benchmark_group("pipeline-32MiB");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.sample_size(10);
    g.bench_function("memcpy", |b| b.iter(|| black_box(input.clone())));
    g.bench_function("blake3", |b| b.iter(|| black_box(blake3::hash(&input))));
    g.bench_function("chunk (hash then encrypt)", |b| b.iter(|| black_box(chunker.chunks(&input).count())));
    g.bench_function("chunk+seal+id (one core)", |b| {
        b.iter(|| {
            for ch in chunker.chunks(&input) {
                let s = keys.seal(BlobKind::Chunk, ch);
                black_box(cobox_engine::BlobId::of(&s));
            }
        })
    });
    let sealed: Vec<Vec<u8>> = chunker.chunks(&input).map(|ch| keys.seal(BlobKind::Chunk, ch)).collect();
    g.bench_function("open (one core)", |b| {
        b.iter(|| {
            for s in &sealed {
                black_box(keys.open(BlobKind::Chunk, s).ok());
            }
        })
    });
    g.finish();
}

fn entries(c: &mut Criterion) {
    use cobox_engine::entry::{Content, Entry, Kind};
    let e = Entry {
        kind: Kind::File { size: 123_456, content: Content::Single(cobox_engine::BlobId([3; 32])) },
        mtime_ns: 1_760_000_000_000_000_000,
        mode: 0o644,
        device: [1; 8],
    };
    let enc = e.encode().expect("an entry encodes");
    c.bench_function("entry encode", |b| b.iter(|| black_box(e.encode().expect("an entry encodes"))));
    c.bench_function("entry decode", |b| b.iter(|| black_box(Entry::decode(&enc).ok())));
}

/// A roster history: a genesis, then `n` more operations by the manager (adds, renames and
/// removals of 50 devices, as a long-lived cooperative's would be), each after the last.
fn roster_log(n: usize) -> (cobox_engine::roster::Key32, Vec<Vec<u8>>) {
    use cobox_engine::roster::{Action, Op, Role, SignedOp, op_id};
    use ed25519_dalek::SigningKey;
    let space_key = SigningKey::from_bytes(&[9; 32]);
    let me = SigningKey::from_bytes(&[1; 32]);
    let (genesis, space) = cobox_engine::roster::genesis(&space_key, &me).expect("genesis");
    let mut log = Vec::with_capacity(n + 1);
    let mut last = vec![op_id(&genesis)];
    log.push(genesis);
    let mut members = std::collections::BTreeSet::new();
    for i in 1..=n {
        let device = SigningKey::from_bytes(&[(i % 50 + 2) as u8; 32]).verifying_key().to_bytes();
        let action = match i {
            _ if !members.contains(&device) => {
                members.insert(device);
                Action::Add { device, role: Role::Write, name: vec![i as u8; 40] }
            }
            _ if i % 7 == 0 => {
                members.remove(&device);
                Action::Remove { device }
            }
            _ => Action::Rename { device, name: vec![i as u8; 40] },
        };
        let op = Op { space, author: me.verifying_key().to_bytes(), deps: last.clone(), action };
        let bytes = SignedOp::sign(op, &me, None).expect("sign").encode().expect("encode");
        last = vec![op_id(&bytes)];
        log.push(bytes);
    }
    (space, log)
}

fn roster(c: &mut Criterion) {
    use cobox_engine::epoch::{EpochKeys, context, epoch_id, seal_keys};
    use cobox_engine::roster::{Action, Op, SignedOp};
    let mut g = c.benchmark_group("roster");
    g.sample_size(10);
    // A rotation in a 50-device space: a fresh key, with the 9 epochs before it, sealed to the
    // 49 devices that stay, and the operation signed; its size is printed once.
    let me = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let stay: Vec<[u8; 32]> =
        (0..49u8).map(|i| ed25519_dalek::SigningKey::from_bytes(&[i + 2; 32]).verifying_key().to_bytes()).collect();
    let mut held: EpochKeys = (0..10u8).map(|i| (u32::from(i), [i; 32])).collect();
    let rotate = |held: &mut EpochKeys| {
        let fresh = [77u8; 32];
        let epoch = epoch_id(&fresh);
        held.insert(epoch, fresh);
        let ctx = context(&[9; 32], epoch);
        let sealed: Vec<([u8; 32], Vec<u8>)> =
            stay.iter().map(|d| (*d, seal_keys(d, held, &ctx, [5; 32]).expect("seal"))).collect();
        let op = Op {
            space: [9; 32],
            author: me.verifying_key().to_bytes(),
            deps: vec![],
            action: Action::Keys { epoch, sealed },
        };
        SignedOp::sign(op, &me, None).expect("sign").encode().expect("encode")
    };
    eprintln!("a rotation in a 50-device space (10 epochs): {} bytes in the ledger", rotate(&mut held).len());
    g.bench_function("rotate in a 50-device space", |b| b.iter(|| black_box(rotate(&mut held.clone()).len())));
    // What a session adds: it evaluates the roster (a cooperative's 100 operations) about four
    // times; each change received is one lookup.
    let (space, log) = roster_log(100);
    g.bench_function("open 100 operations", |b| {
        b.iter(|| black_box(cobox_engine::roster::evaluate(&space, &log).members.len()))
    });
    let view = cobox_engine::roster::evaluate(&space, &log);
    let writer = *view.members.keys().next().expect("a member");
    g.bench_function("check one change's author", |b| {
        b.iter(|| black_box(view.may_write(Some(&writer), Some(&[3; 32]), &[4; 32]).is_ok()))
    });
    for n in [1_000usize, 10_000] {
        let (space, log) = roster_log(n);
        g.bench_function(format!("open {n} operations"), |b| {
            b.iter(|| black_box(cobox_engine::roster::evaluate(&space, &log).members.len()))
        });
    }
    g.finish();
}

/// An audit of 1,000 blobs of 1 MiB with range proofs: the seeder proves (reads and hashes each
/// blob whole), the owner checks against the ids alone. Prints the bytes a proof set moves.
fn audit(c: &mut Criterion) {
    use cobox_engine::agreements::audit::{check, prove};
    let blobs: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| {
            let mut v = vec![0u8; 1 << 20];
            blake3::Hasher::new().update(&i.to_le_bytes()).finalize_xof().fill(&mut v);
            v
        })
        .collect();
    let ids: Vec<[u8; 32]> = blobs.iter().map(|b| *blake3::hash(b).as_bytes()).collect();
    let nonce = [7u8; 32];
    let proofs: Vec<_> = blobs
        .iter()
        .zip(&ids)
        .enumerate()
        .map(|(i, (b, id))| prove(&nonce, id, i as u32, b).expect("a proof"))
        .collect();
    let bytes: usize = proofs.iter().map(|p| p.ranges.len() + 8).sum();
    eprintln!(
        "audit of 1,000 blobs of 1 MiB: {bytes} bytes of proofs ({} per blob), 32,000 bytes of ids",
        bytes / 1000
    );
    let mut g = c.benchmark_group("audit-1000x1MiB");
    g.sample_size(10);
    g.bench_function("seeder proves", |b| {
        b.iter(|| {
            for (i, (blob, id)) in blobs.iter().zip(&ids).enumerate() {
                black_box(prove(&nonce, id, i as u32, blob));
            }
        })
    });
    g.bench_function("owner checks", |b| {
        b.iter(|| {
            for (i, (p, id)) in proofs.iter().zip(&ids).enumerate() {
                assert!(check(&nonce, id, i as u32, p));
            }
        })
    });
    g.finish();
}

/// A recovery check of 10 custodians (a 6-of-10 plan): each custodian's Schnorr proof of its
/// share, and the dealer's verification of all ten against the plan's commitments.
fn recovery(c: &mut Criterion) {
    use cobox_engine::recovery::{Plan, Proof};
    let key = |n: u8| ed25519_dalek::SigningKey::from_bytes(&[n; 32]).verifying_key().to_bytes();
    let dealt = cobox_engine::recovery_core::deal(&key(1), (2..12).map(key).collect(), 6, 0, [7; 32]).expect("deal");
    let plan: Plan = dealt.plan.clone();
    let nonce = [9u8; 32];
    let proofs: Vec<Proof> = (0..10)
        .map(|i| cobox_engine::recovery_core::prove(&plan, i, &dealt.shares[i], &nonce).expect("prove"))
        .collect();
    let mut g = c.benchmark_group("recovery check, 10 custodians");
    g.bench_function("custodians prove", |b| {
        b.iter(|| {
            for i in 0..10 {
                black_box(cobox_engine::recovery_core::prove(&plan, i, &dealt.shares[i], &nonce).expect("prove"));
            }
        })
    });
    g.bench_function("dealer verifies", |b| {
        b.iter(|| {
            for (i, p) in proofs.iter().enumerate() {
                cobox_engine::recovery_core::verify_proof(&plan, i, &nonce, p).expect("verifies");
            }
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline, entries, roster, audit, recovery);
criterion_main!(benches);
