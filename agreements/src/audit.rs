//! Audits checked against blob ids alone. A blob's id is the BLAKE3 hash of its stored bytes, so a
//! seeder can prove it holds a blob with BLAKE3 verified ranges (`bao-tree`, what iroh-blobs uses):
//! the bytes of a few 1 KiB chunks and the hashes that tie them to the id. The auditor sends a fresh
//! random nonce with the ids; the nonce picks which chunk of each blob must be shown
//! ([`sampled_chunk`]), so no answer can be prepared ahead and none is worth anything for another
//! nonce. The last chunk is shown too: its proof fixes the blob's length, which picks the chunk.
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

/// Which 1 KiB chunk of a `size`-byte blob a challenge with `nonce` names for blob `id`.
pub fn sampled_chunk(nonce: &[u8; 32], id: &[u8; 32], size: u64) -> u64 {
    let chunks = size.div_ceil(CHUNK).max(1);
    let h = blake3::keyed_hash(nonce, id);
    let mut w = [0u8; 8];
    w.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(w) % chunks
}

fn ranges(nonce: &[u8; 32], id: &[u8; 32], size: u64) -> ChunkRanges {
    let last = size.div_ceil(CHUNK).max(1) - 1;
    let pick = sampled_chunk(nonce, id, size);
    ChunkRanges::from(ChunkNum(pick)..ChunkNum(pick + 1)) | ChunkRanges::from(ChunkNum(last)..ChunkNum(last + 1))
}

/// Prove holding `blob` (whose id is `id`) against `nonce`. `None` when the bytes are not the
/// blob's (a damaged copy cannot prove anything).
pub fn prove(nonce: &[u8; 32], id: &[u8; 32], blob: &[u8]) -> Option<Proof> {
    let size = blob.len() as u64;
    let outboard = PreOrderOutboard::<Vec<u8>>::create_sized(blob, size, BLOCK).ok()?;
    if outboard.root.as_bytes() != id {
        return None;
    }
    let mut out = Vec::new();
    encode_ranges_validated(blob, &outboard, &ranges(nonce, id, size), &mut out).ok()?;
    Some(Proof { size, ranges: out })
}

/// Whether `proof` shows the chunks `nonce` picks of blob `id`, each verified against the id.
pub fn check(nonce: &[u8; 32], id: &[u8; 32], proof: &Proof) -> bool {
    if proof.ranges.len() > MAX_PROOF || proof.size == 0 {
        return false;
    }
    let wanted = ranges(nonce, id, proof.size);
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
        .filter(|(_, (id, p))| !p.as_ref().is_some_and(|p| check(nonce, id, p)))
        .map(|(i, _)| i)
        .collect()
}

/// The chance that `challenges` blobs drawn at random (with replacement) catch a seeder missing
/// a `missing` share of them: `1 - (1 - missing)^challenges`.
pub fn detection_probability(missing: f64, challenges: u32) -> f64 {
    1.0 - (1.0 - missing.clamp(0.0, 1.0)).powi(challenges.min(i32::MAX as u32) as i32)
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
            let p = prove(&nonce, &i, &b).unwrap();
            assert!(check(&nonce, &i, &p), "{n}");
            assert!(p.ranges.len() <= MAX_PROOF, "{n}: {}", p.ranges.len());
            // For blobs of many chunks another nonce picks another chunk.
            if n > 100_000 {
                let other = [8; 32];
                assert_ne!(sampled_chunk(&nonce, &i, p.size), sampled_chunk(&other, &i, p.size));
                assert!(!check(&other, &i, &p), "{n}: a replayed proof");
            }
            // Another blob's id, another length, or a flipped byte: refused.
            assert!(!check(&nonce, &id(b"x"), &p));
            let mut longer = p.clone();
            longer.size += 1;
            assert!(!check(&nonce, &i, &longer));
            for at in [0, p.ranges.len() / 2, p.ranges.len() - 1] {
                let mut bad = p.clone();
                bad.ranges[at] ^= 1;
                assert!(!check(&nonce, &i, &bad), "{n}: flip at {at}");
            }
            let mut extra = p.clone();
            extra.ranges.push(0);
            assert!(!check(&nonce, &i, &extra));
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
            .find(|n| sampled_chunk(n, &i, size) >= 512)
            .unwrap();
        let c = sampled_chunk(&nonce, &i, size) as usize;
        let mut kept = b.clone();
        kept[512 * 1024..].fill(0);
        assert_eq!(prove(&nonce, &i, &kept), None, "damaged bytes do not hash to the id");
        let honest = prove(&nonce, &i, &b).unwrap();
        let at = honest.ranges.windows(1024).position(|w| w == &b[c * 1024..(c + 1) * 1024]).unwrap();
        let mut forged = honest.clone();
        forged.ranges[at..at + 1024].copy_from_slice(&kept[c * 1024..(c + 1) * 1024]);
        assert!(!check(&nonce, &i, &forged));
        assert_eq!(score(&nonce, &[i, i], &[Some(honest), Some(forged)]), 1);
        assert_eq!(score(&nonce, &[i], &[None]), 0);
        assert_eq!(score(&nonce, &[i], &[]), 0, "a missing answer fails");
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
