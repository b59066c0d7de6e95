//! Content-defined chunking (FastCDC v2020) with a gear table keyed per space. Pure.
//!
//! A public gear table lets anyone who knows a file predict its chunk boundaries, and so
//! recognise it from blob sizes alone. Deriving all 256 entries from a space key makes
//! boundaries unpredictable without that key.

use fastcdc::v2020::{Normalization, cut_gear, select_masks};

/// Smallest chunk (except a file's last).
pub const MIN_SIZE: usize = 512 * 1024;
/// Target average chunk size.
pub const AVG_SIZE: usize = 1024 * 1024;
/// Largest chunk.
pub const MAX_SIZE: usize = 8 * 1024 * 1024;

/// A FastCDC chunker with a keyed gear table.
pub struct Chunker {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    /// Build the gear table from a 32-byte key (BLAKE3 XOF output, 8 bytes per entry).
    pub fn new(gear_key: &[u8; 32]) -> Self {
        let mut bytes = [0u8; 256 * 8];
        blake3::Hasher::new_keyed(gear_key).finalize_xof().fill(&mut bytes);
        let mut gear = Box::new([0u64; 256]);
        let mut gear_ls = Box::new([0u64; 256]);
        for (i, c) in bytes.chunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            gear[i] = u64::from_le_bytes(w);
            gear_ls[i] = gear[i] << 1;
        }
        let (mask_s, mask_l) = select_masks(AVG_SIZE, Normalization::Level1);
        Self { gear, gear_ls, mask_s, mask_l }
    }

    /// Length of the next chunk at the start of `data`. The caller must pass at least
    /// `MAX_SIZE` bytes unless `data` runs to the end of the file.
    pub fn next_len(&self, data: &[u8]) -> usize {
        let (_, cut) = cut_gear(
            data,
            MIN_SIZE,
            AVG_SIZE,
            MAX_SIZE,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        cut.max(1).min(data.len())
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
