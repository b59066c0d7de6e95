//! Social recovery, the pure part: a space's recovery key split K-of-N among custodians with
//! Shamir's scheme and Feldman commitments (vsss-rs, over ristretto255), the Schnorr proof a
//! custodian gives that it still holds its share, and the messages that carry shares: a
//! deposit (dealer to custodian) and a release (custodian to a recovering device), each signed,
//! padded to a fixed length and sealed to its recipient's device key with HPKE, as key epochs
//! are ([`crate::epoch`]).
//!
//! The recovery key is the key of a manager invite the roster holds ([`crate::roster::Action::
//! Recovery`]); whoever rebuilds it redeems that invite, which takes effect only after the
//! plan's waiting period, during which any member may cancel it. The secret shared is a scalar
//! `s`; the invite's ed25519 seed is derived from it, and the plan's first commitment is `s·G`,
//! so a rebuilt secret is checked twice before it is used.
//!
//! Pure: randomness comes in as seeds, time as arguments.

/// A 32-byte key (the roster's `Key32`, named here: the roster imports this module, so this
/// one does not import the roster).
type Key32 = [u8; 32];
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use vsss_rs::{
    DefaultShare, FeldmanVerifierSet, IdentifierPrimeField, ReadableShareSet, ShareVerifierGroup, ValueGroup,
};

type Field = IdentifierPrimeField<Scalar>;
type Share = DefaultShare<Field, Field>;
type Verifier = ShareVerifierGroup<RistrettoPoint>;

/// The most custodians a plan names (a share's identifier is one byte, and a deposit carries
/// the whole plan within its fixed length).
pub const MAX_CUSTODIANS: usize = 32;
/// Every deposit and release is padded to this length before it is sealed, so its size tells
/// nothing of the plan (how many custodians, which threshold) or of the space.
pub const SEALED_LEN: usize = 8 << 10;
/// The default waiting period between a recovery's announcement and its effect.
pub const DEFAULT_WAIT_MS: i64 = 48 * 3600 * 1000;

const KEY_CONTEXT: &str = "cobox 2026-12 recovery invite key from the shared secret v1";
const PROOF_NONCE_CONTEXT: &str = "cobox 2026-12 recovery proof nonce v1";
const PROOF_CHALLENGE_CONTEXT: &str = "cobox 2026-12 recovery proof challenge v1";
const TAG_DEPOSIT: &[u8] = b"cobox recovery deposit v1\0";
const TAG_RELEASE: &[u8] = b"cobox recovery release v1\0";

/// Why a recovery step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// The setup asked for is not one that can protect the space.
    #[error("{0}")]
    Setup(String),
    /// A share, proof or message does not check out; what and why.
    #[error("{0}")]
    Refused(String),
    /// Fewer valid shares than the threshold, or shares that do not rebuild the plan's key.
    #[error("{0}")]
    NotEnough(String),
    /// Bytes that are not what they claim to be.
    #[error("malformed recovery data: {0}")]
    Malformed(String),
}

/// A recovery plan as the roster records it: who holds the shares, how many rebuild the key,
/// the public check values, and how long a recovery waits before it takes effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The recovery key's public half (the invite a recovering device redeems).
    pub key: Key32,
    /// The custodians' device keys; the one at position `j` holds share `j + 1`.
    pub custodians: Vec<Key32>,
    /// How many shares rebuild the key.
    pub threshold: u8,
    /// Feldman's commitments to the sharing polynomial (`a_j·G`, compressed), the first being
    /// `s·G`: each share's public check value follows from them.
    pub commitments: Vec<[u8; 32]>,
    /// How long a recovery waits after it is announced before it takes effect (ms).
    pub wait_ms: i64,
}

fn point(bytes: &[u8; 32]) -> Result<RistrettoPoint, RecoveryError> {
    CompressedRistretto(*bytes).decompress().ok_or_else(|| RecoveryError::Malformed("not a ristretto255 point".into()))
}

fn scalar(bytes: &[u8; 32]) -> Result<Scalar, RecoveryError> {
    Option::from(Scalar::from_canonical_bytes(*bytes)).ok_or_else(|| RecoveryError::Malformed("not a scalar".into()))
}

fn identifier(index: usize) -> Field {
    IdentifierPrimeField(Scalar::from(index as u64 + 1))
}

impl Plan {
    /// The position of `custodian` in the plan.
    pub fn index_of(&self, custodian: &Key32) -> Option<usize> {
        self.custodians.iter().position(|c| c == custodian)
    }

    fn verifiers(&self) -> Result<Vec<Verifier>, RecoveryError> {
        // vsss-rs keeps the generator first, then the commitments.
        let mut v = vec![ValueGroup(RISTRETTO_BASEPOINT_POINT)];
        for c in &self.commitments {
            v.push(ValueGroup(point(c)?));
        }
        Ok(v)
    }

    /// The public check value of share `index` (`s_i·G`): what its holder proves it knows the
    /// discrete logarithm of.
    pub fn check_value(&self, index: usize) -> Result<RistrettoPoint, RecoveryError> {
        if index >= self.custodians.len() {
            return Err(RecoveryError::Refused(format!("the plan has no share {}", index + 1)));
        }
        let v = self.verifiers()?;
        let at = <Vec<Verifier> as FeldmanVerifierSet<Share, Verifier>>::evaluate_at(&v, &identifier(index))
            .map_err(|e| RecoveryError::Malformed(format!("the plan's commitments: {e}")))?;
        Ok(at.0)
    }

    /// Whether `share` is share `index` of this plan (Feldman's check).
    pub fn verify_share(&self, index: usize, share: &[u8; 32]) -> Result<(), RecoveryError> {
        let value = scalar(share)?;
        if self.check_value(index)? != RISTRETTO_BASEPOINT_POINT * value {
            return Err(RecoveryError::Refused(format!(
                "share {} does not match the plan's commitments (forged or damaged)",
                index + 1
            )));
        }
        Ok(())
    }

    /// The checks a plan from someone else passes before anything is built on it.
    pub fn check(&self) -> Result<(), RecoveryError> {
        let (n, k) = (self.custodians.len(), usize::from(self.threshold));
        if k < 2 || k > n || n > MAX_CUSTODIANS || self.commitments.len() != k || self.wait_ms < 0 {
            return Err(RecoveryError::Malformed(format!(
                "a plan of {k} of {n} with {} commitments",
                self.commitments.len()
            )));
        }
        for c in &self.commitments {
            point(c)?;
        }
        Ok(())
    }
}

/// Refuse a setup that cannot protect the space: fewer than 2 shares needed (one custodian
/// alone could recover), more needed than custodians, a custodian named twice, the dealer as
/// its own custodian.
pub fn check_setup(dealer: &Key32, custodians: &[Key32], threshold: usize) -> Result<(), RecoveryError> {
    let n = custodians.len();
    if threshold < 2 {
        return Err(RecoveryError::Setup(format!(
            "a threshold of {threshold} lets one custodian alone recover the space: use --threshold 2 or more"
        )));
    }
    if threshold > n {
        return Err(RecoveryError::Setup(format!(
            "a threshold of {threshold} with {n} custodians can never be reached: name at least {threshold} custodians"
        )));
    }
    if n > MAX_CUSTODIANS {
        return Err(RecoveryError::Setup(format!("{n} custodians; at most {MAX_CUSTODIANS}")));
    }
    for (i, c) in custodians.iter().enumerate() {
        if custodians[..i].contains(c) {
            return Err(RecoveryError::Setup(format!("custodian {} is named twice", hex8(c))));
        }
        if c == dealer {
            return Err(RecoveryError::Setup(
                "this device cannot be its own custodian: it is the device whose loss recovery is for".into(),
            ));
        }
    }
    Ok(())
}

fn hex8(k: &Key32) -> String {
    k[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// A scalar from 64 bytes of a keyed hash: uniform, as `from_bytes_mod_order_wide` wants.
fn hash_scalar(context: &str, parts: &[&[u8]]) -> Scalar {
    let mut h = blake3::Hasher::new_derive_key(context);
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let mut wide = [0u8; 64];
    h.finalize_xof().fill(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// The recovery invite's key, from the shared secret.
pub fn key_of(secret: &Scalar) -> SigningKey {
    SigningKey::from_bytes(&blake3::derive_key(KEY_CONTEXT, secret.as_bytes()))
}

// vsss-rs draws the polynomial from epoch's deterministic CSPRNG over the caller's seed.
use crate::epoch::SeedRng;

/// A recovery key drawn and split: the key (to make the roster's invite with), the plan, and
/// each custodian's share (in the plan's order).
pub struct Dealt {
    /// The recovery invite's key.
    pub key: SigningKey,
    /// The plan the roster records.
    pub plan: Plan,
    /// Share `j + 1`, for `plan.custodians[j]`.
    pub shares: Vec<[u8; 32]>,
}

/// Draw a recovery secret from `seed` and split it `threshold`-of-`custodians.len()`.
pub fn deal(
    dealer: &Key32,
    custodians: Vec<Key32>,
    threshold: usize,
    wait_ms: i64,
    seed: [u8; 32],
) -> Result<Dealt, RecoveryError> {
    check_setup(dealer, &custodians, threshold)?;
    let n = custodians.len();
    let secret = hash_scalar("cobox 2026-12 recovery secret v1", &[&seed]);
    let rng = SeedRng(blake3::Hasher::new_keyed(&seed).update(b"polynomial").finalize_xof());
    let ids: Vec<Field> = (0..n).map(identifier).collect();
    let (shares, verifiers) = vsss_rs::feldman::split_secret_with_ids::<Share, Verifier>(
        threshold,
        n,
        &IdentifierPrimeField(secret),
        None,
        rng,
        ids,
    )
    .map_err(|e| RecoveryError::Setup(format!("splitting the key: {e}")))?;
    let commitments = verifiers.iter().skip(1).map(|v| v.0.compress().to_bytes()).collect();
    let key = key_of(&secret);
    let plan = Plan {
        key: key.verifying_key().to_bytes(),
        custodians,
        threshold: u8::try_from(threshold).map_err(|_| RecoveryError::Setup("threshold over 255".into()))?,
        commitments,
        wait_ms,
    };
    let shares = shares.iter().map(|s| s.value.0.to_bytes()).collect();
    Ok(Dealt { key, plan, shares })
}

/// Rebuild the recovery key from shares (`(index, share)`, index from 0), each checked against
/// the plan first: a forged or damaged share is named, a duplicate refused, and fewer than the
/// threshold rebuild nothing.
pub fn combine(plan: &Plan, shares: &[(usize, [u8; 32])]) -> Result<SigningKey, RecoveryError> {
    plan.check()?;
    let mut seen = std::collections::BTreeSet::new();
    for (index, share) in shares {
        if !seen.insert(*index) {
            return Err(RecoveryError::Refused(format!("share {} was given twice", index + 1)));
        }
        plan.verify_share(*index, share)?;
    }
    let k = usize::from(plan.threshold);
    if shares.len() < k {
        return Err(RecoveryError::NotEnough(format!(
            "{} of the {k} shares needed: ask {} more custodian(s) to approve",
            shares.len(),
            k - shares.len()
        )));
    }
    let set: Vec<Share> = shares
        .iter()
        .map(|(i, s)| Ok(DefaultShare { identifier: identifier(*i), value: IdentifierPrimeField(scalar(s)?) }))
        .collect::<Result<_, RecoveryError>>()?;
    let secret = set.combine().map_err(|e| RecoveryError::NotEnough(format!("combining the shares: {e}")))?.0;
    let first = plan.commitments.first().ok_or_else(|| RecoveryError::Malformed("no commitments".into()))?;
    let key = key_of(&secret);
    if RISTRETTO_BASEPOINT_POINT * secret != point(first)? || key.verifying_key().to_bytes() != plan.key {
        return Err(RecoveryError::NotEnough("the shares do not rebuild the plan's key".into()));
    }
    Ok(key)
}

/// A custodian's proof that it holds share `index` of a plan, bound to a verifier's nonce: a
/// Schnorr proof of knowledge of `s_i` for the check value `s_i·G`, which shows nothing of
/// `s_i`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The commitment `k·G`, compressed.
    pub r: [u8; 32],
    /// The response `k + c·s_i`.
    pub z: [u8; 32],
}

fn challenge(plan_key: &Key32, index: usize, check: &RistrettoPoint, r: &[u8; 32], nonce: &[u8; 32]) -> Scalar {
    hash_scalar(
        PROOF_CHALLENGE_CONTEXT,
        &[plan_key, &(index as u64).to_le_bytes(), check.compress().as_bytes(), r, nonce],
    )
}

/// Prove holding `share` (share `index` of `plan`) to whoever sent `nonce`. The proof's own
/// nonce is derived from the share and the challenge nonce (as EdDSA derives its own), so
/// no randomness is needed and none can leak the share.
pub fn prove(plan: &Plan, index: usize, share: &[u8; 32], nonce: &[u8; 32]) -> Result<Proof, RecoveryError> {
    let s = scalar(share)?;
    let check = plan.check_value(index)?;
    let k = hash_scalar(PROOF_NONCE_CONTEXT, &[share, nonce, &plan.key]);
    let r = (RISTRETTO_BASEPOINT_POINT * k).compress().to_bytes();
    let c = challenge(&plan.key, index, &check, &r, nonce);
    Ok(Proof { r, z: (k + c * s).to_bytes() })
}

/// Check a custodian's proof for share `index` against the plan's check value.
pub fn verify_proof(plan: &Plan, index: usize, nonce: &[u8; 32], proof: &Proof) -> Result<(), RecoveryError> {
    let check = plan.check_value(index)?;
    let r = point(&proof.r)?;
    let z = scalar(&proof.z)?;
    let c = challenge(&plan.key, index, &check, &proof.r, nonce);
    if RISTRETTO_BASEPOINT_POINT * z != r + check * c {
        return Err(RecoveryError::Refused(format!("custodian {}'s proof does not verify", index + 1)));
    }
    Ok(())
}

/// What a dealer hands one custodian: its share, and enough of the plan to check it and to
/// reach the space, signed by the dealer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposit {
    /// The space.
    pub space: Key32,
    /// The space's name, as the dealer calls it (shown to the custodian).
    pub name: String,
    /// The roster operation that made the recovery invite.
    pub op: [u8; 32],
    /// The plan.
    pub plan: Plan,
    /// Which share this is (from 0).
    pub index: u8,
    /// The share.
    pub share: [u8; 32],
    /// Where members and seeders of the space were reachable at setup (`ID@ADDR,...`).
    pub peers: Vec<String>,
    /// The device that dealt it.
    pub dealer: Key32,
    /// When (ms since the epoch, by the dealer's clock).
    pub made_ms: i64,
}

/// A message signed by its sender: the postcard bytes and the signature over tag and bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Signed {
    body: Vec<u8>,
    sig: Vec<u8>,
}

fn sign_padded(tag: &[u8], body: Vec<u8>, by: &SigningKey) -> Result<Vec<u8>, RecoveryError> {
    sign_padded_len(tag, body, by, SEALED_LEN)
}

fn unpad_verify(tag: &[u8], padded: &[u8], by: &Key32) -> Result<Vec<u8>, RecoveryError> {
    unpad_verify_len(tag, padded, by, SEALED_LEN)
}

/// The signed message inside a padded one (its signature not checked yet).
fn unpad(padded: &[u8], len: usize) -> Result<Signed, RecoveryError> {
    if padded.len() != len {
        return Err(RecoveryError::Malformed("not a padded recovery message".into()));
    }
    let (l, rest) = padded.split_at(4);
    let n = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
    let raw = rest.get(..n).ok_or_else(|| RecoveryError::Malformed("its length is wrong".into()))?;
    postcard::from_bytes(raw).map_err(|e| RecoveryError::Malformed(e.to_string()))
}

fn seal_context(tag: &[u8], to: &Key32) -> Vec<u8> {
    let mut c = tag.to_vec();
    c.extend_from_slice(to);
    c
}

impl Deposit {
    /// Sign as the dealer, pad and seal to `custodian`; `seed` for HPKE's ephemeral key.
    pub fn seal(&self, dealer: &SigningKey, custodian: &Key32, seed: [u8; 32]) -> Result<Vec<u8>, RecoveryError> {
        let body = postcard::to_stdvec(self).map_err(|e| RecoveryError::Malformed(e.to_string()))?;
        let padded = sign_padded(TAG_DEPOSIT, body, dealer)?;
        crate::epoch::seal(custodian, &padded, &seal_context(TAG_DEPOSIT, custodian), seed)
            .map_err(|e| RecoveryError::Refused(format!("sealing to the custodian: {e}")))
    }

    /// Open a deposit sealed to `me` and check it: signed by the dealer it names, its plan
    /// sound, its share the plan's share for `me`. With it, the signed deposit a release
    /// forwards.
    pub fn open(me: &SigningKey, sealed: &[u8]) -> Result<(Self, Vec<u8>), RecoveryError> {
        let mine = me.verifying_key().to_bytes();
        let padded = crate::epoch::open(me, sealed, &seal_context(TAG_DEPOSIT, &mine))
            .map_err(|_| RecoveryError::Refused("the deposit is not sealed to this device".into()))?;
        let d = Self::from_signed(&padded)?;
        if d.plan.custodians.get(usize::from(d.index)) != Some(&mine) {
            return Err(RecoveryError::Refused("the deposit's share is not this device's".into()));
        }
        Ok((d, padded))
    }

    /// A signed deposit (unsealed, padded), checked as [`Deposit::open`] checks it but for
    /// whose share it is.
    pub fn from_signed(padded: &[u8]) -> Result<Self, RecoveryError> {
        // The signer is named inside: decode first, then check the signature by that key.
        let d: Deposit = postcard::from_bytes(&unpad(padded, SEALED_LEN)?.body)
            .map_err(|e| RecoveryError::Malformed(e.to_string()))?;
        unpad_verify(TAG_DEPOSIT, padded, &d.dealer)?;
        d.plan.check()?;
        d.plan.verify_share(usize::from(d.index), &d.share)?;
        Ok(d)
    }

    /// The deposit signed and padded, unsealed: what a custodian forwards in a release.
    pub fn signed(&self, dealer: &SigningKey) -> Result<Vec<u8>, RecoveryError> {
        let body = postcard::to_stdvec(self).map_err(|e| RecoveryError::Malformed(e.to_string()))?;
        sign_padded(TAG_DEPOSIT, body, dealer)
    }
}

/// A recovering device's request, as its code carries it: the space, the device, where it
/// listens, and a nonce that makes each request's approvals its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The space to recover.
    pub space: Key32,
    /// The recovering device.
    pub device: Key32,
    /// Where it listens (`IP:PORT`).
    pub addrs: Vec<String>,
    /// Fresh for each request.
    pub nonce: [u8; 16],
}

/// Text every recovery request code starts with.
pub const REQUEST_PREFIX: &str = "cobox-recover-";
const KIND_REQUEST: u8 = 6;

impl Request {
    /// Encode as a code to pass to custodians by any channel.
    pub fn encode(&self) -> Result<String, crate::codes::CodeError> {
        crate::codes::encode_code(REQUEST_PREFIX, KIND_REQUEST, self)
    }

    /// Parse a request code.
    pub fn parse(text: &str) -> Result<Self, crate::codes::CodeError> {
        crate::codes::parse_code(text, "recovery request", REQUEST_PREFIX, KIND_REQUEST)
    }

    /// What approvals are bound to: every field, each with its length.
    pub fn id(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("cobox 2026-12 recovery request id v1");
        h.update(&self.space).update(&self.device).update(&self.nonce);
        for a in &self.addrs {
            h.update(&(a.len() as u64).to_le_bytes()).update(a.as_bytes());
        }
        *h.finalize().as_bytes()
    }

    /// Twelve digits the requester reads out and each custodian compares, so a code swapped on
    /// the way (a stranger's request) is caught by voice.
    pub fn fingerprint(&self) -> String {
        let id = self.id();
        let n = u64::from_le_bytes([id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7]]) % 1_000_000_000_000;
        let d = format!("{n:012}");
        format!("{}-{}-{}", &d[..4], &d[4..8], &d[8..])
    }
}

/// A custodian's approval of a request: its deposit, forwarded to the recovering device and
/// bound to that request, signed by the custodian.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The request approved ([`Request::id`]).
    pub request: [u8; 32],
    /// The custodian.
    pub custodian: Key32,
    /// The dealer's signed deposit (padded, unsealed).
    pub deposit: Vec<u8>,
}

impl Release {
    /// Sign as the custodian, pad and seal to the recovering device.
    pub fn seal(&self, custodian: &SigningKey, to: &Key32, seed: [u8; 32]) -> Result<Vec<u8>, RecoveryError> {
        let body = postcard::to_stdvec(self).map_err(|e| RecoveryError::Malformed(e.to_string()))?;
        // A deposit is itself the fixed length: a release holds one and its own few fields.
        let padded = sign_padded_len(TAG_RELEASE, body, custodian, 2 * SEALED_LEN)?;
        crate::epoch::seal(to, &padded, &seal_context(TAG_RELEASE, to), seed)
            .map_err(|e| RecoveryError::Refused(format!("sealing to the recovering device: {e}")))
    }

    /// Open a release sealed to `me` for `request`, from `custodian` (the peer the network
    /// proved): each refusal names what was wrong.
    pub fn open(
        me: &SigningKey,
        sealed: &[u8],
        request: &Request,
        custodian: &Key32,
    ) -> Result<Deposit, RecoveryError> {
        let mine = me.verifying_key().to_bytes();
        let padded = crate::epoch::open(me, sealed, &seal_context(TAG_RELEASE, &mine))
            .map_err(|_| RecoveryError::Refused("the approval is not sealed to this device".into()))?;
        let body = unpad_verify_len(TAG_RELEASE, &padded, custodian, 2 * SEALED_LEN)?;
        let r: Release = postcard::from_bytes(&body).map_err(|e| RecoveryError::Malformed(e.to_string()))?;
        if r.custodian != *custodian {
            return Err(RecoveryError::Refused("the approval names another custodian than the one sending it".into()));
        }
        if r.request != request.id() {
            return Err(RecoveryError::Refused(
                "the approval is for another request (replayed from an earlier one, or meant for another device)"
                    .into(),
            ));
        }
        let d = Deposit::from_signed(&r.deposit)?;
        if d.space != request.space {
            return Err(RecoveryError::Refused("the approval is for another space".into()));
        }
        if d.plan.custodians.get(usize::from(d.index)) != Some(custodian) {
            return Err(RecoveryError::Refused("the share is not the one the plan gave this custodian".into()));
        }
        Ok(d)
    }
}

/// Sign `body` with `by` under `tag`, then pad: its length (4 bytes), the signed message, zeros
/// up to `len`.
fn sign_padded_len(tag: &[u8], body: Vec<u8>, by: &SigningKey, len: usize) -> Result<Vec<u8>, RecoveryError> {
    let mut msg = tag.to_vec();
    msg.extend_from_slice(&body);
    let signed = Signed { body, sig: by.sign(&msg).to_bytes().to_vec() };
    let mut out = postcard::to_stdvec(&signed).map_err(|e| RecoveryError::Malformed(e.to_string()))?;
    if out.len() + 4 > len {
        return Err(RecoveryError::Setup(format!("{} bytes do not fit a sealed recovery message", out.len())));
    }
    let mut padded = (out.len() as u32).to_le_bytes().to_vec();
    padded.append(&mut out);
    padded.resize(len, 0);
    Ok(padded)
}

/// The body of a message [`sign_padded_len`] made, once its signature by `by` verifies.
fn unpad_verify_len(tag: &[u8], padded: &[u8], by: &Key32, len: usize) -> Result<Vec<u8>, RecoveryError> {
    let signed = unpad(padded, len)?;
    let mut msg = tag.to_vec();
    msg.extend_from_slice(&signed.body);
    let key = VerifyingKey::from_bytes(by).map_err(|_| RecoveryError::Malformed("not a device key".into()))?;
    let sig: [u8; 64] = signed.sig.as_slice().try_into().map_err(|_| RecoveryError::Malformed("a signature".into()))?;
    key.verify_strict(&msg, &Signature::from_bytes(&sig))
        .map_err(|_| RecoveryError::Refused("its signature does not verify (forged or altered)".into()))?;
    Ok(signed.body)
}

/// The recovery protocol's ALPN: one request per stream, postcard both ways, as admin's.
pub const ALPN: &[u8] = b"cobox/recovery/1";
/// The largest request read (a release: two padded messages, sealed).
pub const MAX_REQUEST: usize = 3 * SEALED_LEN;
/// The largest answer read.
pub const MAX_RESPONSE: usize = 4 << 10;

/// What one device asks another over [`ALPN`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ask {
    /// A dealer hands this device its share of a plan (a sealed [`Deposit`]).
    Deposit {
        /// The sealed deposit.
        sealed: Vec<u8>,
    },
    /// Prove holding the share of plan `key` of `space`, bound to `nonce`.
    Prove {
        /// The space.
        space: Key32,
        /// The plan's recovery key.
        key: Key32,
        /// Fresh from the asker.
        nonce: [u8; 32],
    },
    /// A custodian approves this device's request: its share, sealed to this device.
    Release {
        /// The sealed [`Release`].
        sealed: Vec<u8>,
    },
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// The deposit is kept.
    Held,
    /// The proof asked for.
    Proof {
        /// Which share (from 0).
        index: u8,
        /// The proof.
        proof: Proof,
    },
    /// The share was taken: how many this device holds now, and how many it needs.
    Taken {
        /// Shares held.
        have: u8,
        /// The threshold.
        need: u8,
    },
    /// Refused, and why.
    Refused(String),
}

fn decode_bounded<T: serde::de::DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, RecoveryError> {
    if bytes.len() > max {
        return Err(RecoveryError::Malformed(format!(
            "{} bytes, over the {max} a recovery message may hold",
            bytes.len()
        )));
    }
    let (v, rest) = postcard::take_from_bytes(bytes).map_err(|e| RecoveryError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(RecoveryError::Malformed("trailing bytes".into()));
    }
    Ok(v)
}

impl Ask {
    /// The bytes sent.
    pub fn encode(&self) -> Result<Vec<u8>, RecoveryError> {
        postcard::to_stdvec(self).map_err(|e| RecoveryError::Malformed(e.to_string()))
    }
    /// Decode a request, bounded.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecoveryError> {
        decode_bounded(bytes, MAX_REQUEST)
    }
}

impl Answer {
    /// The bytes sent.
    pub fn encode(&self) -> Result<Vec<u8>, RecoveryError> {
        postcard::to_stdvec(self).map_err(|e| RecoveryError::Malformed(e.to_string()))
    }
    /// Decode an answer, bounded.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecoveryError> {
        decode_bounded(bytes, MAX_RESPONSE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn pk(n: u8) -> Key32 {
        device(n).verifying_key().to_bytes()
    }

    /// A 2-of-3 plan dealt by device 1 to devices 2, 3 and 4.
    fn dealt() -> Dealt {
        deal(&pk(1), vec![pk(2), pk(3), pk(4)], 2, 1000, [9; 32]).unwrap()
    }

    #[test]
    fn any_threshold_of_shares_rebuilds_the_key_and_fewer_rebuild_nothing() {
        let d = dealt();
        for pair in [[0, 1], [0, 2], [1, 2]] {
            let shares: Vec<_> = pair.iter().map(|&i| (i, d.shares[i])).collect();
            let key = combine(&d.plan, &shares).unwrap();
            assert_eq!(key.verifying_key().to_bytes(), d.plan.key);
            assert_eq!(key.to_bytes(), d.key.to_bytes());
        }
        let one = combine(&d.plan, &[(0, d.shares[0])]).unwrap_err();
        assert!(matches!(one, RecoveryError::NotEnough(_)), "{one}");
        let twice = combine(&d.plan, &[(0, d.shares[0]), (0, d.shares[0])]).unwrap_err();
        assert!(twice.to_string().contains("given twice"), "{twice}");
        // A share altered by one bit is named, not interpolated into a wrong key.
        let mut forged = d.shares[1];
        forged[0] ^= 1;
        let e = combine(&d.plan, &[(0, d.shares[0]), (1, forged)]).unwrap_err();
        assert!(e.to_string().contains("share 2 does not match"), "{e}");
        // Another share under the right index fails the same check.
        let e = combine(&d.plan, &[(0, d.shares[0]), (1, d.shares[2])]).unwrap_err();
        assert!(e.to_string().contains("share 2"), "{e}");
    }

    #[test]
    fn setups_that_cannot_protect_the_space_are_refused_with_a_reason() {
        let three = [pk(2), pk(3), pk(4)];
        for (custodians, k, words) in [
            (&three[..], 1, "one custodian alone"),
            (&three[..], 4, "can never be reached"),
            (&[pk(2), pk(2), pk(3)][..], 2, "named twice"),
            (&[pk(1), pk(2), pk(3)][..], 2, "its own custodian"),
        ] {
            let e = check_setup(&pk(1), custodians, k).unwrap_err().to_string();
            assert!(e.contains(words), "{e}");
        }
        assert!(check_setup(&pk(1), &three, 3).is_ok());
    }

    #[test]
    fn a_custodian_proves_its_share_without_showing_it() {
        let d = dealt();
        let nonce = [5; 32];
        let proof = prove(&d.plan, 1, &d.shares[1], &nonce).unwrap();
        verify_proof(&d.plan, 1, &nonce, &proof).unwrap();
        // Bound to the nonce: replayed to a fresh challenge it fails.
        assert!(verify_proof(&d.plan, 1, &[6; 32], &proof).is_err());
        // Bound to the share's place: it proves nothing for another custodian's.
        assert!(verify_proof(&d.plan, 2, &nonce, &proof).is_err());
        // A device without the share cannot make one (it guesses a wrong one).
        let guess = prove(&d.plan, 1, &Scalar::from(7u64).to_bytes(), &nonce).unwrap();
        assert!(verify_proof(&d.plan, 1, &nonce, &guess).is_err());
        // The proof carries neither the share nor anything equal to it.
        assert!(proof.z != d.shares[1] && proof.r != d.shares[1]);
    }

    fn deposit(d: &Dealt, index: u8) -> Deposit {
        Deposit {
            space: [8; 32],
            name: "co-op".into(),
            op: [3; 32],
            plan: d.plan.clone(),
            index,
            share: d.shares[usize::from(index)],
            peers: vec![],
            dealer: pk(1),
            made_ms: 1,
        }
    }

    #[test]
    fn a_deposit_opens_for_its_custodian_only_and_its_size_says_nothing() {
        let d = dealt();
        let sealed = deposit(&d, 0).seal(&device(1), &pk(2), [1; 32]).unwrap();
        let (opened, signed) = Deposit::open(&device(2), &sealed).unwrap();
        assert_eq!(opened, deposit(&d, 0));
        assert_eq!(Deposit::from_signed(&signed).unwrap(), opened);
        assert!(Deposit::open(&device(3), &sealed).is_err(), "sealed to custodian 2");
        // Sealed to the right custodian but holding another's share: refused.
        let wrong = deposit(&d, 1).seal(&device(1), &pk(2), [1; 32]).unwrap();
        assert!(Deposit::open(&device(2), &wrong).unwrap_err().to_string().contains("not this device's"));
        // Signed by a device other than the dealer it names: refused.
        let forged = deposit(&d, 0).seal(&device(9), &pk(2), [1; 32]).unwrap();
        assert!(Deposit::open(&device(2), &forged).unwrap_err().to_string().contains("signature"));
        // A plan of 5 custodians seals to the same length as one of 3.
        let big = deal(&pk(1), (2..7).map(pk).collect(), 4, 0, [2; 32]).unwrap();
        let mut dep = deposit(&big, 0);
        dep.share = big.shares[0];
        assert_eq!(dep.seal(&device(1), &pk(2), [1; 32]).unwrap().len(), sealed.len());
    }

    #[test]
    fn a_release_counts_only_for_its_request_its_space_and_its_custodian() {
        let d = dealt();
        let request = Request { space: [8; 32], device: pk(7), addrs: vec!["127.0.0.1:1".into()], nonce: [1; 16] };
        let signed = deposit(&d, 0).signed(&device(1)).unwrap();
        let release = Release { request: request.id(), custodian: pk(2), deposit: signed.clone() };
        let sealed = release.seal(&device(2), &pk(7), [4; 32]).unwrap();
        assert_eq!(Release::open(&device(7), &sealed, &request, &pk(2)).unwrap().share, d.shares[0]);
        // Replayed to a later request of the same device: refused by name.
        let later = Request { nonce: [2; 16], ..request.clone() };
        let e = Release::open(&device(7), &sealed, &later, &pk(2)).unwrap_err().to_string();
        assert!(e.contains("another request"), "{e}");
        // Sent by another device than the custodian it names.
        let e = Release::open(&device(7), &sealed, &request, &pk(3)).unwrap_err().to_string();
        assert!(e.contains("signature") || e.contains("another custodian"), "{e}");
        // A custodian forwarding a share of another space.
        let other = Request { space: [9; 32], ..request.clone() };
        let release = Release { request: other.id(), custodian: pk(2), deposit: signed.clone() };
        let sealed = release.seal(&device(2), &pk(7), [4; 32]).unwrap();
        let e = Release::open(&device(7), &sealed, &other, &pk(2)).unwrap_err().to_string();
        assert!(e.contains("another space"), "{e}");
        // Custodian 3 forwarding custodian 2's share.
        let release = Release { request: request.id(), custodian: pk(3), deposit: signed };
        let sealed = release.seal(&device(3), &pk(7), [4; 32]).unwrap();
        let e = Release::open(&device(7), &sealed, &request, &pk(3)).unwrap_err().to_string();
        assert!(e.contains("not the one the plan gave"), "{e}");
    }

    #[test]
    fn a_request_code_round_trips_and_its_fingerprint_is_twelve_digits() {
        let request = Request { space: [8; 32], device: pk(7), addrs: vec!["127.0.0.1:1".into()], nonce: [1; 16] };
        let code = request.encode().unwrap();
        assert!(code.starts_with(REQUEST_PREFIX));
        assert_eq!(Request::parse(&code.to_uppercase().replace("COBOX-RECOVER-", REQUEST_PREFIX)).unwrap(), request);
        let f = request.fingerprint();
        assert_eq!(f.len(), 14);
        assert!(f.chars().all(|c| c.is_ascii_digit() || c == '-'), "{f}");
        assert_ne!(f, Request { nonce: [2; 16], ..request }.fingerprint());
    }
}
