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
//! - Universal hash: a polynomial over the Goldilocks prime field `p = 2^64 - 2^32 + 1`, the
//!   window's bytes as coefficients, evaluated at a secret point (the paper's reference UHF);
//!   rolled one byte at a time, every value reduced to its canonical form, so it is a function of
//!   the window alone and boundaries resynchronise after an edit.
//! - PRF: AES-128 under a secret key, on the hash as a block, batched so AES-NI pipelines it.
//! - Cut after the first position at or past [`MIN_SIZE`] whose output's low 64 bits fall below
//!   `2^64 / (AVG_SIZE - MIN_SIZE)`; at [`MAX_SIZE`] if none does.
//!
//! Both secrets derive from the space's chunker key, so boundaries differ between spaces and
//! stay the same within one (dedup).

use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};

/// Smallest chunk (except a file's last). Bytes before it are not looked at.
pub const MIN_SIZE: usize = 512 * 1024;
/// Target average chunk size.
pub const AVG_SIZE: usize = 1024 * 1024;
/// Largest chunk.
pub const MAX_SIZE: usize = 8 * 1024 * 1024;
/// Bytes a cut decision depends on.
pub const WINDOW: usize = 64;
/// Positions whose outputs are computed together (AES-NI encrypts eight blocks at once).
const BATCH: usize = 64;

/// The Goldilocks prime.
const P: u64 = 0xFFFF_FFFF_0000_0001;
/// `2^64 mod p`.
const EPS: u64 = 0xFFFF_FFFF;

/// `x mod p`, canonical.
fn reduce(x: u128) -> u64 {
    let (lo, hi) = (x as u64, (x >> 64) as u64);
    let (hh, hl) = (hi >> 32, hi & EPS);
    // x = lo + hl * 2^64 + hh * 2^96, and 2^64 = EPS, 2^96 = -1 (mod p).
    let (mut t, borrow) = lo.overflowing_sub(hh);
    if borrow {
        t = t.wrapping_sub(EPS);
    }
    let (mut r, carry) = t.overflowing_add(hl * EPS);
    if carry {
        r += EPS;
    }
    if r >= P { r - P } else { r }
}

fn mul(a: u64, b: u64) -> u64 {
    reduce(u128::from(a) * u128::from(b))
}

/// `a + b - c mod p` for canonical `a`, `c` and a byte `b`.
fn add_sub(a: u64, b: u64, c: u64) -> u64 {
    reduce(u128::from(a) + u128::from(b) + u128::from(P - c))
}

/// A hash-then-encrypt chunker keyed per space.
pub struct Chunker {
    aes: aes::Aes128,
    /// The universal hash's secret evaluation point.
    point: u64,
    /// `b * point^WINDOW mod p` for each byte `b`: what a byte leaving the window takes away.
    leaving: Box<[u64; 256]>,
    threshold: u64,
}

impl Chunker {
    /// Derive the evaluation point and the AES key from a 32-byte chunker key.
    pub fn new(key: &[u8; 32]) -> Self {
        let aes_key = blake3::derive_key("cobox 2026-11 chunker prf key v2", key);
        let point_bytes = blake3::derive_key("cobox 2026-11 chunker hash point v2", key);
        let mut w = [0u8; 16];
        w.copy_from_slice(&point_bytes[..16]);
        // Uniform enough: a 128-bit value reduced mod p; zero would make every window hash alike.
        let point = reduce(u128::from_le_bytes(w)).max(2);
        let mut k_w = 1u64;
        for _ in 0..WINDOW {
            k_w = mul(k_w, point);
        }
        let mut leaving = Box::new([0u64; 256]);
        for (b, slot) in leaving.iter_mut().enumerate() {
            *slot = mul(b as u64, k_w);
        }
        Self {
            aes: aes::Aes128::new(GenericArray::from_slice(&aes_key[..16])),
            point,
            leaving,
            threshold: u64::MAX / (AVG_SIZE - MIN_SIZE) as u64,
        }
    }

    /// The universal hash of `window` (exactly [`WINDOW`] bytes), from scratch.
    fn hash(&self, window: &[u8]) -> u64 {
        window.iter().fold(0, |h, &b| add_sub(mul(h, self.point), u64::from(b), 0))
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
        // The hash of the window ending at position `i` (inclusive) decides a cut after `i`.
        let mut i = MIN_SIZE - 1;
        let mut h = self.hash(&data[MIN_SIZE - WINDOW..MIN_SIZE]);
        let mut blocks = [GenericArray::default(); BATCH];
        while i < end {
            let n = BATCH.min(end - i);
            for (j, block) in blocks[..n].iter_mut().enumerate() {
                if j > 0 || i > MIN_SIZE - 1 {
                    let at = i + j;
                    h = add_sub(mul(h, self.point), u64::from(data[at]), self.leaving[usize::from(data[at - WINDOW])]);
                }
                block[..8].copy_from_slice(&h.to_le_bytes());
                block[8..].fill(0);
            }
            self.aes.encrypt_blocks(&mut blocks[..n]);
            for (j, block) in blocks[..n].iter().enumerate() {
                let mut out = [0u8; 8];
                out.copy_from_slice(&block[..8]);
                if u64::from_le_bytes(out) < self.threshold {
                    return i + j + 1;
                }
            }
            i += n;
        }
        end
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
        for (a, b) in [(P - 1, P - 1), (0, 5), (EPS, EPS + 7), (1 << 63, 3), (123_456_789_123, 987_654_321_987)] {
            assert_eq!(u128::from(mul(a, b)), u128::from(a) * u128::from(b) % p);
        }
        assert_eq!(reduce(u128::MAX), (u128::MAX % p) as u64);
        assert_eq!(add_sub(P - 1, 255, 0), ((u128::from(P - 1) + 255) % p) as u64);
        assert_eq!(add_sub(3, 1, 7), P - 3);
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
