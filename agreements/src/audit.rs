//! Audits checked against blob ids alone. A blob's id is the BLAKE3 hash of its stored bytes, so a
//! seeder can prove it holds a blob with BLAKE3 verified ranges (`bao-tree`, what iroh-blobs uses):
//! the bytes of a few 1 KiB chunks and the hashes that tie them to the id. The auditor sends a fresh
//! random nonce with the ids; the nonce and each id's place in the challenge pick which chunk of
//! it must be shown ([`sampled_chunk`]), so no answer can be prepared ahead and none is worth
//! anything for another nonce. The last chunk is shown too: its proof fixes the blob's length,
//! which picks the chunk. A blob may be named several times (the auditor draws over bytes,
//! [`pick_by_weight`]): each place shows another chunk of it, and the seeder hashes it once.
//!
//! Whoever knows the ids checks an answer ([`check`]): an owner that no longer holds the content
//! (pruned, or a device restored from an invite with only change blobs and chunk lists) audits as
//! well as one that does.

use bao_tree::io::BaoContentItem;
use bao_tree::io::outboard::PreOrderOutboard;
use bao_tree::io::sync::{CreateOutboard, DecodeResponseIter, encode_ranges_validated};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};

/// Proofs show whole 1 KiB BLAKE3 chunks, the smallest unit, so they stay small.
const BLOCK: BlockSize = BlockSize::from_chunk_log(0);
/// BLAKE3's chunk length.
const CHUNK: u64 = 1024;
/// The longest proof accepted: two chunks and two paths through a tree of blobs up to 2^40 bytes.
pub const MAX_PROOF: usize = 2 * CHUNK as usize + 2 * 64 * 40;

/// What a seeder answers for one challenged blob.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Proof {
    /// The blob's length (bound by the proof of its last chunk).
    pub size: u64,
    /// The verified ranges: parent hashes and chunk bytes in pre-order, as `bao-tree` encodes them.
    #[serde(with = "serde_bytes")]
    pub ranges: Vec<u8>,
}

/// Which 1 KiB chunk of a `size`-byte blob a challenge with `nonce` names for blob `id` at
/// place `at` of the challenge.
pub fn sampled_chunk(nonce: &[u8; 32], id: &[u8; 32], at: u32, size: u64) -> u64 {
    let chunks = size.div_ceil(CHUNK).max(1);
    let mut h = blake3::Hasher::new_keyed(nonce);
    h.update(id);
    h.update(&at.to_le_bytes());
    let mut w = [0u8; 8];
    w.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(w) % chunks
}

fn ranges(nonce: &[u8; 32], id: &[u8; 32], at: u32, size: u64) -> ChunkRanges {
    let last = size.div_ceil(CHUNK).max(1) - 1;
    let pick = sampled_chunk(nonce, id, at, size);
    ChunkRanges::from(ChunkNum(pick)..ChunkNum(pick + 1)) | ChunkRanges::from(ChunkNum(last)..ChunkNum(last + 1))
}

/// Prove holding `blob` (whose id is `id`) against `nonce` at place `at` of the challenge.
/// `None` when the bytes are not the blob's (a damaged copy cannot prove anything).
pub fn prove(nonce: &[u8; 32], id: &[u8; 32], at: u32, blob: &[u8]) -> Option<Proof> {
    prove_places(nonce, id, &[at], blob).pop().flatten()
}

/// [`prove`] for several places naming the same blob, hashing it once.
pub fn prove_places(nonce: &[u8; 32], id: &[u8; 32], places: &[u32], blob: &[u8]) -> Vec<Option<Proof>> {
    let size = blob.len() as u64;
    let outboard = match PreOrderOutboard::<Vec<u8>>::create_sized(blob, size, BLOCK) {
        Ok(o) if o.root.as_bytes() == id => o,
        _ => return vec![None; places.len()],
    };
    places
        .iter()
        .map(|&at| {
            let mut out = Vec::new();
            encode_ranges_validated(blob, &outboard, &ranges(nonce, id, at, size), &mut out).ok()?;
            Some(Proof { size, ranges: out })
        })
        .collect()
}

/// Whether `proof` shows the chunks `nonce` picks of blob `id` at place `at`, each verified
/// against the id.
pub fn check(nonce: &[u8; 32], id: &[u8; 32], at: u32, proof: &Proof) -> bool {
    if proof.ranges.len() > MAX_PROOF || proof.size == 0 {
        return false;
    }
    let wanted = ranges(nonce, id, at, proof.size);
    let mut reader = std::io::Cursor::new(&proof.ranges[..]);
    let tree = BaoTree::new(proof.size, BLOCK);
    let mut leaves = 0;
    for item in DecodeResponseIter::new(blake3::Hash::from_bytes(*id), tree, &mut reader, &wanted) {
        match item {
            Ok(BaoContentItem::Leaf(_)) => leaves += 1,
            Ok(BaoContentItem::Parent(_)) => {}
            Err(_) => return false,
        }
    }
    // Every byte sent is accounted for, and the chunks asked for came.
    leaves >= 1 && reader.position() == proof.ranges.len() as u64
}

/// How many proofs pass (a missing one never does).
pub fn score(nonce: &[u8; 32], ids: &[[u8; 32]], proofs: &[Option<Proof>]) -> u32 {
    ids.len() as u32 - failures(nonce, ids, proofs).len() as u32
}

/// The places in `ids` whose proof is missing or does not pass: the blobs to name.
pub fn failures(nonce: &[u8; 32], ids: &[[u8; 32]], proofs: &[Option<Proof>]) -> Vec<usize> {
    ids.iter()
        .zip(proofs.iter().chain(std::iter::repeat(&None)))
        .enumerate()
        .filter(|(i, (id, p))| !p.as_ref().is_some_and(|p| check(nonce, id, *i as u32, p)))
        .map(|(i, _)| i)
        .collect()
}

/// The chance that `challenges` chunks drawn at random over the bytes (with replacement) catch
/// a seeder missing a `missing` share of them: `1 - (1 - missing)^challenges`.
pub fn detection_probability(missing: f64, challenges: u32) -> f64 {
    1.0 - (1.0 - missing.clamp(0.0, 1.0)).powi(challenges.min(i32::MAX as u32) as i32)
}

/// Chunk proofs needed so that a seeder missing a `missing` share of the bytes is caught with
/// probability `confidence` by one audit: the least `n` with `1 - (1 - missing)^n >= confidence`.
pub fn challenges_for(missing: f64, confidence: f64) -> u32 {
    let (m, c) = (missing.clamp(1e-9, 1.0), confidence.clamp(0.0, 1.0 - 1e-12));
    if m >= 1.0 {
        return 1;
    }
    ((1.0 - c).ln() / (1.0 - m).ln()).ceil().max(1.0) as u32
}

/// The default audit: losing 1% of the bytes is caught with 99% probability (459 proofs, about
/// 1.5 MB on the wire).
pub const DEFAULT_CHALLENGES: u32 = 459;

/// Where a draw `r` (uniform over `0..total`) falls among blobs of the given cumulative sizes
/// (`cumulative[i]` is the sum of the first `i + 1` sizes): the blob holding that byte, so a blob
/// is picked in proportion to its size. `None` when there are no bytes.
pub fn pick_by_weight(cumulative: &[u64], r: u64) -> Option<usize> {
    let total = *cumulative.last()?;
    if total == 0 {
        return None;
    }
    let byte = r % total;
    Some(cumulative.partition_point(|&c| c <= byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: usize, seed: u8) -> Vec<u8> {
        let mut v = vec![0u8; n];
        blake3::Hasher::new_keyed(&[seed; 32]).finalize_xof().fill(&mut v);
        v
    }

    fn id(b: &[u8]) -> [u8; 32] {
        *blake3::hash(b).as_bytes()
    }

    #[test]
    fn an_honest_proof_passes_and_is_worthless_for_another_nonce() {
        for n in [53, 1024, 1025, 300_000, 1 << 20, (1 << 20) + 12_345] {
            let b = blob(n, 1);
            let (i, nonce) = (id(&b), [7; 32]);
            let p = prove(&nonce, &i, 0, &b).unwrap();
            assert!(check(&nonce, &i, 0, &p), "{n}");
            assert!(p.ranges.len() <= MAX_PROOF, "{n}: {}", p.ranges.len());
            // For blobs of many chunks another nonce picks another chunk.
            if n > 100_000 {
                let other = [8; 32];
                assert_ne!(sampled_chunk(&nonce, &i, 0, p.size), sampled_chunk(&other, &i, 0, p.size));
                assert!(!check(&other, &i, 0, &p), "{n}: a replayed proof");
                // Another place in the challenge picks another chunk, too.
                assert_ne!(sampled_chunk(&nonce, &i, 0, p.size), sampled_chunk(&nonce, &i, 1, p.size));
                assert!(!check(&nonce, &i, 1, &p), "{n}: a proof moved to another place");
            }
            // Another blob's id, another length, or a flipped byte: refused.
            assert!(!check(&nonce, &id(b"x"), 0, &p));
            let mut longer = p.clone();
            longer.size += 1;
            assert!(!check(&nonce, &i, 0, &longer));
            for at in [0, p.ranges.len() / 2, p.ranges.len() - 1] {
                let mut bad = p.clone();
                bad.ranges[at] ^= 1;
                assert!(!check(&nonce, &i, 0, &bad), "{n}: flip at {at}");
            }
            let mut extra = p.clone();
            extra.ranges.push(0);
            assert!(!check(&nonce, &i, 0, &extra));
        }
    }

    /// A seeder that lost part of a blob fails when the nonce picks a chunk in that part: it
    /// cannot prove from the damaged copy, and what it has in place of the chunk does not verify.
    #[test]
    fn a_seeder_missing_a_chunk_fails_when_the_sample_hits_it() {
        let b = blob(1 << 20, 2);
        let (i, size) = (id(&b), b.len() as u64);
        // A nonce whose sampled chunk lies in the second half, which the seeder no longer has.
        let nonce = (0u32..)
            .map(|k| *blake3::hash(&k.to_le_bytes()).as_bytes())
            .find(|n| sampled_chunk(n, &i, 0, size) >= 512 && sampled_chunk(n, &i, 1, size) >= 512)
            .unwrap();
        let c = sampled_chunk(&nonce, &i, 1, size) as usize;
        let mut kept = b.clone();
        kept[512 * 1024..].fill(0);
        assert_eq!(prove(&nonce, &i, 0, &kept), None, "damaged bytes do not hash to the id");
        let honest = prove(&nonce, &i, 1, &b).unwrap();
        let at = honest.ranges.windows(1024).position(|w| w == &b[c * 1024..(c + 1) * 1024]).unwrap();
        let mut forged = honest.clone();
        forged.ranges[at..at + 1024].copy_from_slice(&kept[c * 1024..(c + 1) * 1024]);
        assert!(!check(&nonce, &i, 1, &forged));
        let first = prove(&nonce, &i, 0, &b).unwrap();
        assert_eq!(score(&nonce, &[i, i], &[Some(first), Some(forged)]), 1);
        assert_eq!(score(&nonce, &[i], &[None]), 0);
        assert_eq!(score(&nonce, &[i], &[]), 0, "a missing answer fails");
    }

    /// The default audit is sized to its promise, and a draw picks blobs in proportion to size.
    #[test]
    fn the_default_audit_catches_one_percent_lost_with_99_percent() {
        assert_eq!(challenges_for(0.01, 0.99), DEFAULT_CHALLENGES);
        assert!(detection_probability(0.01, DEFAULT_CHALLENGES) >= 0.99);
        assert!(detection_probability(0.01, DEFAULT_CHALLENGES - 1) < 0.99);
        let cumulative = [10, 10, 40];
        let hits: Vec<usize> = (0..40).filter_map(|r| pick_by_weight(&cumulative, r)).collect();
        assert_eq!(hits.iter().filter(|&&i| i == 0).count(), 10);
        assert_eq!(hits.iter().filter(|&&i| i == 1).count(), 0, "an empty blob is never picked");
        assert_eq!(hits.iter().filter(|&&i| i == 2).count(), 30);
        assert_eq!(pick_by_weight(&[], 5), None);
        // Proofs at 459 places stay under 2 MB (the promise on the wire).
        let b = blob(4 << 20, 3);
        let i = id(&b);
        let places: Vec<u32> = (0..DEFAULT_CHALLENGES).collect();
        let bytes: usize =
            prove_places(&[1; 32], &i, &places, &b).iter().map(|p| p.as_ref().unwrap().ranges.len()).sum();
        assert!(bytes < 2_000_000, "{bytes}");
    }

    /// The detection table checked against a simulation (deterministic draws): a seeder that
    /// kept each blob's hash tree but dropped a share of its 1 KiB chunks, audited with the
    /// default sample drawn over the bytes. Losing 1% of the chunks is caught at about the rate
    /// `detection_probability` says; losing 1 KiB of every blob of a space of 64 KiB blobs in
    /// every trial.
    #[test]
    fn the_detection_table_holds_in_simulation() {
        let mut state = 0u64;
        let mut next = move || {
            state += 1;
            let h = blake3::hash(&state.to_le_bytes());
            u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap())
        };
        // 2,000 blobs of 4 to 256 chunks.
        let sizes: Vec<u64> = (0..2000).map(|_| 4 + next() % 253).collect();
        let mut cumulative = Vec::new();
        let mut total = 0;
        for s in &sizes {
            total += s;
            cumulative.push(total);
        }
        let audit = |lost: &dyn Fn(usize, u64) -> bool, next: &mut dyn FnMut() -> u64| -> bool {
            (0..DEFAULT_CHALLENGES).any(|_| {
                let b = pick_by_weight(&cumulative, next()).unwrap();
                let chunk = next() % sizes[b];
                lost(b, chunk) || lost(b, sizes[b] - 1)
            })
        };
        // 1% of the chunks lost, spread over every blob but never a last chunk.
        let trials = 400;
        let caught = (0..trials)
            .filter(|t| {
                let salt = *t as u64;
                let sizes = &sizes;
                let lost = move |b: usize, c: u64| {
                    c + 1 != sizes[b]
                        && u64::from_le_bytes(
                            blake3::hash(&[salt.to_le_bytes(), (b as u64).to_le_bytes(), c.to_le_bytes()].concat())
                                .as_bytes()[..8]
                                .try_into()
                                .unwrap(),
                        ) % 100
                            == 0
                };
                audit(&lost, &mut next)
            })
            .count();
        let rate = caught as f64 / trials as f64;
        let expected = detection_probability(0.01, DEFAULT_CHALLENGES);
        assert!((rate - expected).abs() < 0.03, "caught {rate}, the table says {expected}");
        // 1 KiB of every 64 KiB blob (the middle chunk), in a space of such blobs.
        let small: Vec<u64> = vec![64; 2000];
        let mut cum = Vec::new();
        let mut t = 0;
        for s in &small {
            t += s;
            cum.push(t);
        }
        for _ in 0..20 {
            let caught = (0..DEFAULT_CHALLENGES).any(|_| {
                let b = pick_by_weight(&cum, next()).unwrap();
                next() % small[b] == 32
            });
            assert!(caught, "losing 1 KiB of every 64 KiB blob is caught: 1 - (63/64)^459 > 99.9%");
        }
    }

    #[test]
    fn detection_grows_with_the_sample() {
        assert!((detection_probability(0.1, 32) - 0.9657).abs() < 1e-3);
        assert!((detection_probability(0.01, 32) - 0.2750).abs() < 1e-3);
        assert!(detection_probability(0.01, 300) > 0.95);
        assert_eq!(detection_probability(0.0, 1000), 0.0);
        assert_eq!(detection_probability(1.0, 1), 1.0);
    }
}
