//! Content-defined chunking that chunk sizes do not betray. Pure.
//!
//! Truong, Merz, Scarlata, Günther and Paterson ("Breaking and Fixing Content-Defined Chunking",
//! IACR ePrint 2025/558) recover the secret of chunkers that cut where bits of a keyed rolling
//! hash are zero (a keyed gear table, as CoBox used, included) from chunk sizes alone, and then
//! recognise known files. Their fix, followed here, is *hash then encrypt*: a rolling universal
//! hash compresses the last [`WINDOW`] bytes to a field element, a block cipher under a secret key
//! encrypts it, and the cut decision looks only at the cipher's output. A boundary then says
//! only that a pseudo-random function of one window fell below a threshold; it yields no
//! equation about the secrets.
//!
//! - Universal hash: a polynomial over the prime field of the Mersenne prime `p = 2^61 - 1`, the
//!   window's bytes as coefficients, evaluated at a secret point (a polynomial hash as the paper's
//!   reference UHF, over a field whose reduction is two shifts and adds: the Goldilocks field first
//!   tried cost 8.9 ns a byte here). Rolled in two interleaved lanes (even and odd positions, each
//!   two bytes a step) so the multiplications overlap; each value is the window's alone, taken
//!   to its canonical form before it is encrypted, so boundaries resynchronise after an edit.
//!   Two independent points, both hashes in the one block the cipher encrypts, so two windows
//!   collide with probability at most 2^-104 (one point's bound, 2^-52, was thinner than the
//!   paper's); the second point costs a multiplication a byte and no cipher work.
//! - PRF: AES-128 under a secret key, on the two hashes as a block, batched so AES-NI pipelines it.
//! - Cut after the first position at or past [`MIN_SIZE`] whose output's low 64 bits fall below
//!   `2^64 / (AVG_SIZE - MIN_SIZE)`; at [`MAX_SIZE`] if none does.
//!
//! The secrets derive from the chunker key of the space's current key epoch, so boundaries differ
//! between spaces, stay the same within one epoch (dedup), and change when a removal draws a new
//! epoch: a removed device cannot compute where new uploads are cut.

use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};

/// Smallest chunk (except a file's last). Bytes before it are not looked at, so it sets the
/// chunker's cost (a position looked at costs two hash steps and an AES block), and how far an
/// edit's damage cascades: after an insert, the positions the old cuts skipped are looked at, and a
/// cut among them shifts every later chunk until the two sequences meet again. Measured with
/// `workflow insert` (100 KiB into a 100 MiB file, docs/benchmarks.md): at 896 KiB, 2.8 MiB added
/// on average and 28 MiB at worst; at 640 KiB, 1.3 and 2.5, at a third of the speed.
pub const MIN_SIZE: usize = 640 * 1024;
/// Target average chunk size.
pub const AVG_SIZE: usize = 1024 * 1024;
/// Largest chunk.
pub const MAX_SIZE: usize = 8 * 1024 * 1024;
/// Bytes a cut decision depends on.
pub const WINDOW: usize = 64;
/// Positions whose outputs are computed together (AES-NI encrypts eight blocks at once).
const BATCH: usize = 64;

/// The Mersenne prime 2^61 - 1.
const P: u64 = (1 << 61) - 1;

/// `x mod p`, not necessarily canonical: below 2^62 for any `x` below 2^124.
fn fold(x: u128) -> u64 {
    let s = fold_once(x);
    (s & P) + (s >> 61)
}

/// `x mod p` in one step: below `2^61 + (x >> 61) + 1`.
fn fold_once(x: u128) -> u64 {
    (x as u64 & P) + (x >> 61) as u64
}

/// The canonical form of a folded value.
fn canon(h: u64) -> u64 {
    let r = (h & P) + (h >> 61);
    if r >= P { r - P } else { r }
}

fn mul(a: u64, b: u64) -> u64 {
    canon(fold(u128::from(a) * u128::from(b)))
}

/// A hash-then-encrypt chunker keyed per space and key epoch.
pub struct Chunker {
    aes: aes::Aes128,
    /// The universal hash's two secret evaluation points `k1`, `k2`.
    points: [u64; 2],
    /// `k1^2`, `k2^2`: a lane steps two bytes at a time.
    squares: [u64; 2],
    /// Per byte `b`, for each point `k`: `b*k` (the byte between a lane's steps), and `p - b*k^64`
    /// and `p - b*k^65` (the two bytes leaving the window), as one table of six.
    steps: Box<[[u64; 6]; 256]>,
    threshold: u64,
    min: usize,
}

/// The two independent points of the polynomial hash, drawn from the chunker key: each the next
/// candidate whose square is below 2^58, so a lane takes one fold a step (`roll`). One in eight
/// qualifies; each point alone bounds a collision of two windows at 64/2^58 = 2^-52, the pair (the
/// cipher sees both values) at 2^-104.
fn points(key: &[u8; 32]) -> [u64; 2] {
    let mut candidates = blake3::Hasher::new_derive_key("cobox 2026-12 chunker hash points v3");
    let mut xof = candidates.update(key).finalize_xof();
    let mut next = || loop {
        let mut w = [0u8; 16];
        xof.fill(&mut w);
        // A 122-bit value reduced mod p is as good as uniform; 0 and 1 would hash every window alike.
        let k = canon(fold(u128::from_le_bytes(w) & ((1 << 122) - 1)));
        if k > 1 && mul(k, k) < 1 << 58 {
            break k;
        }
    };
    let first = next();
    let second = loop {
        let k = next();
        if k != first {
            break k;
        }
    };
    [first, second]
}

impl Chunker {
    /// Derive the evaluation points and the AES key from a 32-byte chunker key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self::with_min_size(key, MIN_SIZE)
    }

    /// The same with another minimum chunk size (for measuring the trade-off; every device of
    /// a space must cut with [`MIN_SIZE`]). The average stays [`AVG_SIZE`].
    #[doc(hidden)]
    pub fn with_min_size(key: &[u8; 32], min: usize) -> Self {
        let min = min.clamp(2 * WINDOW, AVG_SIZE / 8 * 7);
        let aes_key = blake3::derive_key("cobox 2026-12 chunker prf key v3", key);
        let points = points(key);
        let mut steps = Box::new([[0u64; 6]; 256]);
        for (j, &k) in points.iter().enumerate() {
            let mut k_w = 1u64;
            for _ in 0..WINDOW {
                k_w = mul(k_w, k);
            }
            let k_w1 = mul(k_w, k);
            for (b, slot) in steps.iter_mut().enumerate() {
                let b = b as u64;
                slot[3 * j..3 * j + 3].copy_from_slice(&[mul(b, k), P - mul(b, k_w), P - mul(b, k_w1)]);
            }
        }
        Self {
            aes: aes::Aes128::new(GenericArray::from_slice(&aes_key[..16])),
            points,
            squares: points.map(|k| mul(k, k)),
            steps,
            threshold: u64::MAX / (AVG_SIZE - min) as u64,
            min,
        }
    }

    /// The universal hash of `window` (exactly [`WINDOW`] bytes) at point `k`, from scratch.
    fn hash(window: &[u8], k: u64) -> u64 {
        window.iter().fold(0, |h, &b| canon(fold(u128::from(h) * u128::from(k) + u128::from(b))))
    }

    /// Both hashes of `window`, from scratch.
    fn hashes(&self, window: &[u8]) -> [u64; 2] {
        self.points.map(|k| Self::hash(window, k))
    }

    /// The cipher's block for a window's two hashes (canonical, so equal windows give equal blocks).
    #[inline(always)]
    fn block(h: [u64; 2]) -> [u8; 16] {
        (u128::from(canon(h[1])) << 64 | u128::from(canon(h[0]))).to_le_bytes()
    }

    /// Whether a cut follows the last byte of `window` (exactly [`WINDOW`] bytes), from scratch.
    #[cfg(test)]
    fn cuts_after(&self, window: &[u8]) -> bool {
        let mut block = GenericArray::from(Self::block(self.hashes(window)));
        self.aes.encrypt_block(&mut block);
        let mut out = [0u8; 8];
        out.copy_from_slice(&block[..8]);
        u64::from_le_bytes(out) < self.threshold
    }

    /// Length of the next chunk at the start of `data`. The caller must pass at least
    /// `MAX_SIZE` bytes unless `data` runs to the end of the file.
    pub fn next_len(&self, data: &[u8]) -> usize {
        if data.len() <= self.min {
            return data.len();
        }
        let end = data.len().min(MAX_SIZE);
        // The hashes of the window ending at position `at` (inclusive) decide a cut after `at`;
        // the first position looked at is `min - 1`. Lane `t % 2` holds the hashes of the
        // window two positions before the `t`-th position looked at.
        let first = self.min - 1;
        let mut lane0 = self.hashes(&data[first - 1 - WINDOW..first - 1]);
        let mut lane1 = self.hashes(&data[first - WINDOW..first]);
        let mut blocks = [GenericArray::default(); BATCH];
        let mut outs = [GenericArray::default(); BATCH];
        let mut at = first;
        while at < end {
            let n = BATCH.min(end - at);
            // Two positions a step, one per lane, kept in registers so the four multiplications
            // overlap (through an array indexed by parity they did not).
            // The four byte streams a step reads: two leaving the window, two entering it.
            let src = &data[at - WINDOW - 1..at + n];
            let (gone0, gone1, prev, new) = (&src[..n], &src[1..=n], &src[WINDOW..WINDOW + n], &src[WINDOW + 1..]);
            let mut raw = [[0u64; 2]; BATCH];
            for (((pair, g0), g1), (p, b)) in
                raw[..n].chunks_mut(2).zip(gone0.chunks(2)).zip(gone1.chunks(2)).zip(prev.chunks(2).zip(new.chunks(2)))
            {
                lane0 = self.roll(lane0, [g0[0], g1[0], p[0], b[0]]);
                pair[0] = lane0;
                if let (Some(out), [_, g0], [_, g1], [_, p], [_, b]) = (pair.get_mut(1), g0, g1, p, b) {
                    lane1 = self.roll(lane1, [*g0, *g1, *p, *b]);
                    *out = lane1;
                }
            }
            for (block, h) in blocks[..n].iter_mut().zip(&raw[..n]) {
                *block = GenericArray::from(Self::block(*h));
            }
            self.aes
                .encrypt_blocks_b2b(&blocks[..n], &mut outs[..n])
                .unwrap_or_else(|_| unreachable!("as many outputs as inputs"));
            for (j, block) in outs[..n].iter().enumerate() {
                let mut out = [0u8; 8];
                out.copy_from_slice(&block[..8]);
                if u64::from_le_bytes(out) < self.threshold {
                    return at + j + 1;
                }
            }
            at += n;
            if n % 2 == 1 {
                // The batch ended on lane 0: the next position is lane 1's.
                std::mem::swap(&mut lane0, &mut lane1);
            }
        }
        end
    }

    /// The hashes of the window ending at `i` from those of the window ending at `i - 2`:
    /// `H(i) = k^2 H(i-2) + b(i) + k b(i-1) - k^64 b(i-64) - k^65 b(i-65)` at each point. Each
    /// term is below 2^61, so their sum is below 2^63; with the lane below 2^64 and `k^2` below
    /// 2^58 the product is below 2^122, one fold leaves it below 2^61 + 2^61, and the lane stays
    /// below 2^61 + 2^61 + 2^63 (`canon` takes any u64).
    #[inline(always)]
    fn roll(&self, lane: [u64; 2], bytes: [u8; 4]) -> [u64; 2] {
        let [gone0, gone1, prev, new] = bytes;
        let (new, prev) = (u64::from(new), &self.steps[usize::from(prev)]);
        let (out1, out0) = (&self.steps[usize::from(gone1)], &self.steps[usize::from(gone0)]);
        let a = new + prev[0] + out1[1] + out0[2];
        let b = new + prev[3] + out1[4] + out0[5];
        // The step is added after the fold, in 64 bits: the lane's chain is then a multiply,
        // a fold and an add, with no 128-bit carry on it.
        [
            fold_once(u128::from(lane[0]) * u128::from(self.squares[0])) + a,
            fold_once(u128::from(lane[1]) * u128::from(self.squares[1])) + b,
        ]
    }

    /// Split a whole in-memory file into chunks.
    pub fn chunks<'a>(&'a self, mut data: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        std::iter::from_fn(move || {
            if data.is_empty() {
                return None;
            }
            let n = self.next_len(data);
            let (c, rest) = data.split_at(n);
            data = rest;
            Some(c)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pseudo_random(n: usize, seed: u8) -> Vec<u8> {
        let mut out = vec![0u8; n];
        blake3::Hasher::new_keyed(&[seed; 32]).finalize_xof().fill(&mut out);
        out
    }

    #[test]
    fn sizes_are_bounded_and_cover_input() {
        let data = pseudo_random(20 << 20, 1);
        let c = Chunker::new(&[1u8; 32]);
        let chunks: Vec<&[u8]> = c.chunks(&data).collect();
        assert!(chunks.len() > 5);
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        assert_eq!(total, data.len());
        for ch in &chunks[..chunks.len() - 1] {
            assert!(ch.len() >= MIN_SIZE && ch.len() <= MAX_SIZE);
        }
    }

    #[test]
    fn field_arithmetic_matches_u128_remainders() {
        let p = u128::from(P);
        for (a, b) in [(P - 1, P - 1), (0, 5), (1 << 60, 3), (123_456_789_123, 987_654_321_987), (P, 1)] {
            assert_eq!(u128::from(mul(a, b)), u128::from(a) * u128::from(b) % p);
        }
        for x in [0u128, 1, p, p + 1, (1 << 124) - 1, 3 << 122, (p - 1) * (p - 1) + (1 << 63)] {
            let f = fold(x);
            assert!(f < 1 << 62, "{x}");
            assert_eq!(u128::from(canon(f)), x % p, "{x}");
        }
    }

    /// The rolled hash is the window's alone: every cut, and none of the positions between,
    /// is what the window there decides from scratch. So boundaries after an edit resynchronise.
    #[test]
    fn each_cut_is_decided_by_its_window_alone() {
        let data = pseudo_random(24 << 20, 4);
        let c = Chunker::new(&[9u8; 32]);
        let mut start = 0;
        let mut cuts = 0;
        for ch in c.chunks(&data) {
            let end = start + ch.len();
            if ch.len() < MAX_SIZE && end < data.len() {
                assert!(c.cuts_after(&data[end - WINDOW..end]), "cut at {end}");
                cuts += 1;
            }
            for at in (start + MIN_SIZE..end - 1).step_by(4_099) {
                assert!(!c.cuts_after(&data[at - WINDOW + 1..=at]), "no cut at {at}");
            }
            start = end;
        }
        assert!(cuts >= 10, "{cuts} cuts");
    }

    /// The chunk size averages near `AVG_SIZE`.
    #[test]
    fn sizes_average_near_the_target() {
        let data = pseudo_random(96 << 20, 6);
        let c = Chunker::new(&[3u8; 32]);
        let n = c.chunks(&data).count();
        let avg = data.len() / n;
        assert!((AVG_SIZE * 3 / 4..AVG_SIZE * 5 / 4).contains(&avg), "average {avg} over {n} chunks");
    }

    /// Two spaces cut the same file in different places (their keys come from their secrets).
    #[test]
    fn two_spaces_cut_the_same_file_differently() {
        let data = pseudo_random(16 << 20, 7);
        let cuts = |root: [u8; 32]| -> Vec<usize> {
            let keys = crate::crypto::SpaceKeys::derive(&root);
            Chunker::new(&keys.chunker_key()).chunks(&data).map(<[u8]>::len).collect()
        };
        let (a, b) = (cuts([1; 32]), cuts([2; 32]));
        assert_ne!(a, b);
        let ends = |v: &[usize]| -> std::collections::BTreeSet<usize> {
            v.iter()
                .scan(0, |s, l| {
                    *s += l;
                    Some(*s)
                })
                .collect()
        };
        let shared = ends(&a).intersection(&ends(&b)).count();
        assert!(shared <= 1, "{shared} boundaries in common besides the end");
    }

    /// A new key epoch (drawn at a removal) brings a new chunker key and new boundaries.
    #[test]
    fn a_new_key_epoch_cuts_differently() {
        let data = pseudo_random(16 << 20, 8);
        let mut keys = crate::crypto::SpaceKeys::derive(&[1; 32]);
        let cut = |keys: &crate::crypto::SpaceKeys| -> Vec<usize> {
            Chunker::new(&keys.chunker_key()).chunks(&data).map(<[u8]>::len).collect()
        };
        let first = cut(&keys);
        keys.add_epoch(7, &[2; 32]);
        assert_eq!(cut(&keys), first, "holding a later epoch changes nothing until it is current");
        assert!(keys.set_current(7));
        assert_ne!(cut(&keys), first);
    }

    #[test]
    fn keys_change_boundaries() {
        let data = pseudo_random(16 << 20, 2);
        let a: Vec<usize> = Chunker::new(&[1u8; 32]).chunks(&data).map(|c| c.len()).collect();
        let b: Vec<usize> = Chunker::new(&[2u8; 32]).chunks(&data).map(|c| c.len()).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn insertion_at_start_changes_few_chunks() {
        let data = pseudo_random(64 << 20, 3);
        let c = Chunker::new(&[5u8; 32]);
        let before: std::collections::HashSet<&[u8]> = c.chunks(&data).collect();
        let mut shifted = vec![0x42u8];
        shifted.extend_from_slice(&data);
        let new = c.chunks(&shifted).filter(|ch| !before.contains(ch)).count();
        assert!(new <= 3, "{new} new chunks after a one-byte insert");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn chunks_concatenate_to_input(len in 0usize..3_000_000, seed in any::<u8>()) {
            let data = pseudo_random(len, seed);
            let c = Chunker::new(&[seed; 32]);
            let joined: Vec<u8> = c.chunks(&data).flat_map(|c| c.iter().copied()).collect();
            prop_assert_eq!(joined, data);
        }
    }
}
