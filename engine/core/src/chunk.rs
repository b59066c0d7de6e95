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
//! - PRF: AES-128 under a secret key, on the hash as a block, batched so AES-NI pipelines it.
//! - Cut after the first position at or past [`MIN_SIZE`] whose output's low 64 bits fall below
//!   `2^64 / (AVG_SIZE - MIN_SIZE)`; at [`MAX_SIZE`] if none does.
//!
//! Both secrets derive from the space's chunker key, so boundaries differ between spaces and
//! stay the same within one (dedup).

use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};

/// Smallest chunk (except a file's last). Bytes before it are not looked at, which is what makes
/// an AES block per position affordable: seven eighths of the average, so an eighth of the bytes
/// are looked at (at half, this chunker cost the ingest of the mixed folder 2.5 s of 4.4; at a
/// quarter, 1.2 s of 3.1).
pub const MIN_SIZE: usize = 896 * 1024;
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

/// A hash-then-encrypt chunker keyed per space.
pub struct Chunker {
    aes: aes::Aes128,
    /// The universal hash's secret evaluation point `k`.
    point: u64,
    /// `k^2`: a lane steps two bytes at a time.
    point2: u64,
    /// Per byte `b`: `b*k` (the byte between a lane's steps), and `p - b*k^64` and `p - b*k^65`
    /// (the two bytes leaving the window), as one table of three.
    steps: Box<[[u64; 3]; 256]>,
    threshold: u64,
}

impl Chunker {
    /// Derive the evaluation point and the AES key from a 32-byte chunker key.
    pub fn new(key: &[u8; 32]) -> Self {
        let aes_key = blake3::derive_key("cobox 2026-11 chunker prf key v2", key);
        // The first candidate point whose square is below 2^58, so a lane takes one fold a step
        // (`roll`); one in eight qualifies, which leaves the hash's collision bound at 2^-52.
        let mut candidates = blake3::Hasher::new_derive_key("cobox 2026-11 chunker hash point v2");
        let mut xof = candidates.update(key).finalize_xof();
        let point = loop {
            let mut w = [0u8; 16];
            xof.fill(&mut w);
            // A 122-bit value reduced mod p is as good as uniform; 0 and 1 would hash every window alike.
            let k = canon(fold(u128::from_le_bytes(w) & ((1 << 122) - 1)));
            if k > 1 && mul(k, k) < 1 << 58 {
                break k;
            }
        };
        let mut k_w = 1u64;
        for _ in 0..WINDOW {
            k_w = mul(k_w, point);
        }
        let k_w1 = mul(k_w, point);
        let mut steps = Box::new([[0u64; 3]; 256]);
        for (b, slot) in steps.iter_mut().enumerate() {
            let b = b as u64;
            *slot = [mul(b, point), P - mul(b, k_w), P - mul(b, k_w1)];
        }
        Self {
            aes: aes::Aes128::new(GenericArray::from_slice(&aes_key[..16])),
            point,
            point2: mul(point, point),
            steps,
            threshold: u64::MAX / (AVG_SIZE - MIN_SIZE) as u64,
        }
    }

    /// The universal hash of `window` (exactly [`WINDOW`] bytes), from scratch.
    fn hash(&self, window: &[u8]) -> u64 {
        window.iter().fold(0, |h, &b| canon(fold(u128::from(h) * u128::from(self.point) + u128::from(b))))
    }

    /// Whether a cut follows the last byte of `window` (exactly [`WINDOW`] bytes), from scratch.
    #[cfg(test)]
    fn cuts_after(&self, window: &[u8]) -> bool {
        let mut block = GenericArray::default();
        block[..8].copy_from_slice(&self.hash(window).to_le_bytes());
        self.aes.encrypt_block(&mut block);
        let mut out = [0u8; 8];
        out.copy_from_slice(&block[..8]);
        u64::from_le_bytes(out) < self.threshold
    }

    /// Length of the next chunk at the start of `data`. The caller must pass at least
    /// `MAX_SIZE` bytes unless `data` runs to the end of the file.
    pub fn next_len(&self, data: &[u8]) -> usize {
        if data.len() <= MIN_SIZE {
            return data.len();
        }
        let end = data.len().min(MAX_SIZE);
        // The hash of the window ending at position `at` (inclusive) decides a cut after `at`;
        // the first position looked at is `MIN_SIZE - 1`. Lane `t % 2` holds the hash of the
        // window two positions before the `t`-th position looked at.
        let first = MIN_SIZE - 1;
        let mut lane0 = self.hash(&data[first - 1 - WINDOW..first - 1]);
        let mut lane1 = self.hash(&data[first - WINDOW..first]);
        // The hashes go in the low 8 bytes of zeroed blocks; the cipher writes elsewhere.
        let mut blocks = [GenericArray::default(); BATCH];
        let mut outs = [GenericArray::default(); BATCH];
        let mut at = first;
        while at < end {
            let n = BATCH.min(end - at);
            // Two positions a step, one per lane, kept in registers so the two multiplications
            // overlap (through an array indexed by parity they did not).
            for (pair, out) in blocks[..n].chunks_mut(2).enumerate() {
                let i = at + 2 * pair;
                lane0 = self.roll(lane0, data, i);
                out[0][..8].copy_from_slice(&canon(lane0).to_le_bytes());
                if let Some(b) = out.get_mut(1) {
                    lane1 = self.roll(lane1, data, i + 1);
                    b[..8].copy_from_slice(&canon(lane1).to_le_bytes());
                }
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

    /// The hash of the window ending at `i` from that of the window ending at `i - 2`:
    /// `H(i) = k^2 H(i-2) + b(i) + k b(i-1) - k^64 b(i-64) - k^65 b(i-65)`. Each term is below
    /// 2^61, so their sum is below 2^63; with the lane below 2^63 and `k^2` below 2^58 the
    /// product is below 2^121, and one fold leaves the lane below 2^62 + 1.
    #[inline(always)]
    fn roll(&self, lane: u64, data: &[u8], i: usize) -> u64 {
        let w = &data[i - WINDOW - 1..=i];
        let step = u64::from(w[WINDOW + 1])
            + self.steps[usize::from(w[WINDOW])][0]
            + self.steps[usize::from(w[1])][1]
            + self.steps[usize::from(w[0])][2];
        fold_once(u128::from(lane) * u128::from(self.point2) + u128::from(step))
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
            Chunker::new(&keys.gear).chunks(&data).map(<[u8]>::len).collect()
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
