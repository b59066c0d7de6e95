//! Audit arithmetic. The owner sends a fresh nonce and blob ids; the seeder answers
//! BLAKE3(nonce ‖ ciphertext) for each, which it cannot compute without the bytes, and which
//! is worthless for any other nonce. The owner computes the same from its own copy.

/// The answer for one blob.
pub fn answer(nonce: &[u8; 32], ciphertext: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(nonce);
    h.update(ciphertext);
    *h.finalize().as_bytes()
}

/// How many answers match the expected ones (a missing answer never matches).
pub fn score(expected: &[[u8; 32]], answers: &[Option<[u8; 32]>]) -> u32 {
    expected.iter().zip(answers.iter().chain(std::iter::repeat(&None))).filter(|(e, a)| a.as_ref() == Some(*e)).count()
        as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_answer_fails_a_fresh_nonce() {
        let blob = b"sealed bytes";
        let old = answer(&[1; 32], blob);
        let fresh = [2; 32];
        assert_eq!(score(&[answer(&fresh, blob)], &[Some(old)]), 0);
        assert_eq!(score(&[answer(&fresh, blob)], &[Some(answer(&fresh, blob))]), 1);
        assert_eq!(score(&[answer(&fresh, blob)], &[None]), 0);
        assert_eq!(score(&[answer(&fresh, blob), answer(&fresh, b"x")], &[]), 0, "missing answers fail");
        assert_ne!(answer(&fresh, blob), answer(&fresh, b"sealed bytez"));
    }
}
