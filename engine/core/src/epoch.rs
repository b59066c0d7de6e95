//! Key epochs: when a member is removed, a manager draws a fresh content key (a new epoch) and
//! seals it to every remaining member device with HPKE (RFC 9180, base mode:
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305), carried in the roster. Blobs
//! written from then on are sealed under the new epoch, which the removed device never gets.
//!
//! A device's X25519 key pair is its ed25519 device key converted (the secret scalar, and the
//! public key's Montgomery form), as libsodium's `crypto_sign_ed25519_*_to_curve25519` do, so
//! no second key has to be published or trusted: the roster already names each device by its
//! ed25519 key. An invite's one-use key is converted the same way, so keys can be sealed to a
//! device that has not joined yet.
//!
//! Each sealing carries every epoch key the sealer holds (36 bytes each), so a device that
//! opens any one of them holds the whole history's keys. Pure: the caller passes the seed of
//! HPKE's ephemeral key.

use ed25519_dalek::{SigningKey, VerifyingKey};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use std::collections::BTreeMap;

/// An epoch's id: 0 is the space's first key (from its secret); later ones are derived from
/// their key ([`epoch_id`]).
pub type EpochId = u32;

/// Keys of epochs by id.
pub type EpochKeys = BTreeMap<EpochId, [u8; 32]>;

const INFO: &[u8] = b"cobox 2026-11 key epoch sealing v1";
/// Largest sealed payload opened: 100,000 epochs.
const MAX_EPOCHS: usize = 100_000;

/// Why sealed epoch keys could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// The recipient's key is not a usable curve point.
    #[error("the recipient's key cannot receive sealed keys")]
    BadRecipient,
    /// Not sealed to this key, or altered.
    #[error("the sealed keys do not open with this device's key")]
    Open,
    /// Opened, but not a list of epoch keys.
    #[error("the sealed keys are malformed")]
    Malformed,
    /// HPKE could not seal.
    #[error("sealing failed")]
    Seal,
}

/// The id of an epoch with this key (never 0, which is the space's first).
pub fn epoch_id(key: &[u8; 32]) -> EpochId {
    let h = blake3::derive_key("cobox 2026-11 key epoch id v1", key);
    let id = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    id.max(1)
}

/// A deterministic CSPRNG from the caller's random seed: HPKE's ephemeral key here, a recovery
/// key's polynomial in the recovery module.
pub(crate) struct SeedRng(pub(crate) blake3::OutputReader);

impl rand_core::TryRng for SeedRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for SeedRng {}

fn recipient(public: &[u8; 32]) -> Result<<X25519HkdfSha256 as hpke::Kem>::PublicKey, EpochError> {
    let key = VerifyingKey::from_bytes(public).map_err(|_| EpochError::BadRecipient)?;
    <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&key.to_montgomery().to_bytes())
        .map_err(|_| EpochError::BadRecipient)
}

/// Seal `keys` to the device (or invite) whose ed25519 public key is `to`, for use in
/// `context` (the space and roster operation it belongs to, bound as associated data).
pub fn seal_keys(to: &[u8; 32], keys: &EpochKeys, context: &[u8], seed: [u8; 32]) -> Result<Vec<u8>, EpochError> {
    let mut plain = Vec::with_capacity(keys.len() * 36);
    for (id, key) in keys {
        plain.extend_from_slice(&id.to_le_bytes());
        plain.extend_from_slice(key);
    }
    seal(to, &plain, context, seed)
}

/// HPKE base mode to the X25519 form of the ed25519 key `to`: the encapsulated key, then the
/// ciphertext.
pub(crate) fn seal(to: &[u8; 32], plain: &[u8], context: &[u8], seed: [u8; 32]) -> Result<Vec<u8>, EpochError> {
    let pk = recipient(to)?;
    let mut rng = SeedRng(blake3::Hasher::new_keyed(&seed).update(to).finalize_xof());
    let (enc, ct) = hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        INFO,
        plain,
        context,
        &mut rng,
    )
    .map_err(|_| EpochError::Seal)?;
    let mut out = enc.to_bytes().to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Open what [`seal`] sealed to `me`.
pub(crate) fn open(me: &SigningKey, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, EpochError> {
    if sealed.len() < 32 {
        return Err(EpochError::Open);
    }
    let (enc, ct) = sealed.split_at(32);
    let sk =
        <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&me.to_scalar_bytes()).map_err(|_| EpochError::Open)?;
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| EpochError::Open)?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &sk,
        &enc,
        INFO,
        ct,
        context,
    )
    .map_err(|_| EpochError::Open)
}

/// Seal the space secret (64 bytes: signing seed, root key) to an invite's key `to`, for the
/// `Invite` operation that carries it: only the code's holder opens it, from a ledger that a
/// member or seeder hands over only once it has accepted the redemption.
pub fn seal_secret(to: &[u8; 32], secret: &[u8; 64], space: &[u8; 32], seed: [u8; 32]) -> Result<Vec<u8>, EpochError> {
    seal(to, secret, &secret_context(space), seed)
}

/// Open a space secret sealed by [`seal_secret`] with the invite's key.
pub fn open_secret(me: &SigningKey, sealed: &[u8], space: &[u8; 32]) -> Result<[u8; 64], EpochError> {
    open(me, sealed, &secret_context(space))?.try_into().map_err(|_| EpochError::Malformed)
}

fn secret_context(space: &[u8; 32]) -> Vec<u8> {
    let mut c = b"cobox space secret\0".to_vec();
    c.extend_from_slice(space);
    c
}

/// Open keys sealed to `me` (a device key, or an invite's) by [`seal_keys`].
pub fn open_keys(me: &SigningKey, sealed: &[u8], context: &[u8]) -> Result<EpochKeys, EpochError> {
    let plain = open(me, sealed, context)?;
    if plain.len() % 36 != 0 || plain.len() / 36 > MAX_EPOCHS {
        return Err(EpochError::Malformed);
    }
    let mut keys = EpochKeys::new();
    for item in plain.chunks_exact(36) {
        let id = u32::from_le_bytes([item[0], item[1], item[2], item[3]]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&item[4..]);
        keys.insert(id, key);
    }
    Ok(keys)
}

/// What a sealing is bound to: the space, and the kind and epoch of the operation carrying it.
pub fn context(space: &[u8; 32], epoch: EpochId) -> Vec<u8> {
    let mut c = b"cobox epoch keys\0".to_vec();
    c.extend_from_slice(space);
    c.extend_from_slice(&epoch.to_le_bytes());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> EpochKeys {
        [(0u32, [1u8; 32]), (epoch_id(&[2; 32]), [2u8; 32])].into_iter().collect()
    }

    #[test]
    fn a_sealed_secret_opens_only_with_the_invite_key_and_for_its_space() {
        let invite = SigningKey::from_bytes(&[7; 32]);
        let mut secret = [4u8; 64];
        secret[63] = 9;
        let sealed = seal_secret(&invite.verifying_key().to_bytes(), &secret, &[3; 32], [5; 32]).unwrap();
        assert_eq!(open_secret(&invite, &sealed, &[3; 32]), Ok(secret));
        assert_eq!(open_secret(&SigningKey::from_bytes(&[8; 32]), &sealed, &[3; 32]), Err(EpochError::Open));
        assert_eq!(open_secret(&invite, &sealed, &[2; 32]), Err(EpochError::Open), "another space's");
        // Epoch keys sealed to the same invite are not a secret, nor the other way round.
        let keys = seal_keys(&invite.verifying_key().to_bytes(), &keys(), &context(&[3; 32], 0), [5; 32]).unwrap();
        assert_eq!(open_secret(&invite, &keys, &[3; 32]), Err(EpochError::Open));
        assert_eq!(open_keys(&invite, &sealed, &context(&[3; 32], 0)), Err(EpochError::Open));
    }

    #[test]
    fn sealed_keys_open_only_for_their_device_and_context() {
        let dev = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let ctx = context(&[3; 32], 9);
        let sealed = seal_keys(&dev.verifying_key().to_bytes(), &keys(), &ctx, [5; 32]).unwrap();
        assert_eq!(open_keys(&dev, &sealed, &ctx), Ok(keys()));
        assert_eq!(open_keys(&other, &sealed, &ctx), Err(EpochError::Open));
        assert_eq!(open_keys(&dev, &sealed, &context(&[3; 32], 10)), Err(EpochError::Open));
        let mut bad = sealed.clone();
        bad[40] ^= 1;
        assert_eq!(open_keys(&dev, &bad, &ctx), Err(EpochError::Open));
        assert_eq!(open_keys(&dev, &sealed[..20], &ctx), Err(EpochError::Open));
        // Another seed, another ciphertext, the same keys.
        let again = seal_keys(&dev.verifying_key().to_bytes(), &keys(), &ctx, [6; 32]).unwrap();
        assert_ne!(again, sealed);
        assert_eq!(open_keys(&dev, &again, &ctx), Ok(keys()));
    }

    #[test]
    fn epoch_ids_are_never_the_first() {
        assert_ne!(epoch_id(&[0; 32]), 0);
        assert_ne!(epoch_id(&[1; 32]), epoch_id(&[2; 32]));
    }
}
