//! Invite and seed codes: short, copy-pasteable text that carries what a new member device
//! (invite) or a seeder (seed code: no secret) needs.
//!
//! `cobox-invite-` or `cobox-seed-` followed by lowercase RFC 4648 base32 (no padding) of
//! `version (1) | kind (1, 3 = older member invites, refused; 2 = seed code; 4 = pairing code; 5 = member invite) | postcard(payload) | checksum`, where the
//! checksum is the first 4 bytes of BLAKE3 over everything before it. Whitespace and case are
//! ignored when parsing, so a code survives being wrapped or retyped in capitals.

use crate::ids::{DeviceId, SpaceId};
use serde::{Deserialize, Serialize};

/// Text every invite code starts with.
pub const INVITE_PREFIX: &str = "cobox-invite-";
/// Text every seed code starts with.
pub const SEED_PREFIX: &str = "cobox-seed-";
const CODE_VERSION: u8 = 1;
/// Invites made before rosters (the space secret alone), and before codes held no secret (the
/// secret beside the invite's key): refused now.
const KIND_OLD_INVITES: [u8; 2] = [1, 3];
const KIND_SEED: u8 = 2;
const KIND_INVITE: u8 = 5;
/// A seeder's pairing code (`admin::PairCode`).
pub(crate) const KIND_PAIR: u8 = 4;

/// What a seed code carries: which space and agreement, and where the owner is. No secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedCode {
    /// The space (its public key: all a seeder ever learns of it).
    pub space: SpaceId,
    /// The proposed agreement to countersign.
    pub agreement: [u8; 32],
    /// The owner device and its addresses.
    pub owner: PeerAddr,
}

/// A peer to dial: its device id and the socket addresses it was last seen at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddr {
    /// The device.
    pub device: DeviceId,
    /// `IP:PORT` strings.
    pub addrs: Vec<String>,
}

impl std::fmt::Display for PeerAddr {
    /// `ID@ADDR,ADDR`, or the bare id when no address is known (found on the LAN by mDNS).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.addrs.is_empty() {
            write!(f, "{}", self.device)
        } else {
            write!(f, "{}@{}", self.device, self.addrs.join(","))
        }
    }
}

impl std::str::FromStr for PeerAddr {
    type Err = String;

    /// `ID@ADDR[,ADDR...]` or a bare `ID`; each ADDR an `IP:PORT` or a relay URL, checked when
    /// dialed.
    fn from_str(s: &str) -> Result<Self, String> {
        let (id, addrs) = s.split_once('@').unwrap_or((s, ""));
        let device: DeviceId = id.trim().parse().map_err(|e| format!("peer {s:?}: {e}"))?;
        let addrs = addrs.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect();
        Ok(PeerAddr { device, addrs })
    }
}

/// What a member invite carries: no secret. The space secret is sealed to the invite's key
/// in the `Invite` roster operation, which the joining device reads from the ledger a member
/// or seeder hands over once it has accepted the redemption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The space.
    pub space: SpaceId,
    /// The inviter's name for the space, suggested to the new device.
    pub name: String,
    /// Devices to sync with first.
    pub peers: Vec<PeerAddr>,
    /// The invite's one-use key (its seed): the joining device signs its redemption with it.
    pub key: [u8; 32],
    /// The roster operation that made the invite (the redemption follows it).
    pub op: [u8; 32],
}

/// Why a code was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodeError {
    /// Not this kind of code at all.
    #[error("this is not a CoBox {0} code: it should start with {1}")]
    Prefix(&'static str, &'static str),
    /// A character outside the code's alphabet.
    #[error("the code has a character that cannot be in a CoBox code near position {0}; check for typos")]
    Alphabet(usize),
    /// The checksum does not match: mistyped, truncated or altered.
    #[error("the code is mistyped or incomplete (its checksum does not match); copy it again")]
    Checksum,
    /// Made by a newer CoBox.
    #[error("the code was made by a newer CoBox (code version {0}); update CoBox to use it")]
    Version(u8),
    /// An invite made by an older CoBox: before rosters (it names no role and could be used
    /// forever), or carrying the space secret (a leaked copy would read the space for good).
    #[error(
        "this invite code was made by an older CoBox and is no longer accepted; ask a manager of the space for a new one (cobox invite SPACE --role ROLE)"
    )]
    OldInvite,
    /// Right checksum, wrong content.
    #[error("the code is damaged: {0}")]
    Malformed(String),
    /// Ours could not be encoded (no code was made).
    #[error("cannot encode the code: {0}")]
    Encode(String),
}

pub(crate) fn encode_code<T: Serialize>(prefix: &str, kind: u8, payload: &T) -> Result<String, CodeError> {
    let mut raw = vec![CODE_VERSION, kind];
    raw.extend(postcard::to_stdvec(payload).map_err(|e| CodeError::Encode(e.to_string()))?);
    let sum = blake3::hash(&raw);
    raw.extend_from_slice(&sum.as_bytes()[..4]);
    Ok(format!("{prefix}{}", data_encoding::BASE32_NOPAD.encode(&raw).to_ascii_lowercase()))
}

pub(crate) fn parse_code<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
    prefix: &'static str,
    kind: u8,
) -> Result<T, CodeError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    let body = compact.strip_prefix(prefix).ok_or(CodeError::Prefix(what, prefix))?;
    let upper = body.to_ascii_uppercase();
    let raw = data_encoding::BASE32_NOPAD.decode(upper.as_bytes()).map_err(|e| match e.kind {
        // A cut code ends in a wrong length or stray trailing bits.
        data_encoding::DecodeKind::Length | data_encoding::DecodeKind::Trailing => CodeError::Checksum,
        _ => CodeError::Alphabet(prefix.len() + e.position),
    })?;
    if raw.len() < 6 {
        return Err(CodeError::Checksum);
    }
    let (payload, sum) = raw.split_at(raw.len() - 4);
    if blake3::hash(payload).as_bytes()[..4] != *sum {
        return Err(CodeError::Checksum);
    }
    if payload[0] != CODE_VERSION {
        return Err(CodeError::Version(payload[0]));
    }
    if kind == KIND_INVITE && KIND_OLD_INVITES.contains(&payload[1]) {
        return Err(CodeError::OldInvite);
    }
    if payload[1] != kind {
        return Err(CodeError::Malformed(format!("unknown code kind {}", payload[1])));
    }
    let (v, rest) = postcard::take_from_bytes(&payload[2..]).map_err(|e| CodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodeError::Malformed("trailing bytes".into()));
    }
    Ok(v)
}

impl Invite {
    /// Encode as text.
    pub fn encode(&self) -> Result<String, CodeError> {
        encode_code(INVITE_PREFIX, KIND_INVITE, self)
    }

    /// Parse a code, with an error that says what to do.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        parse_code(text, "invite", INVITE_PREFIX, KIND_INVITE)
    }
}

impl SeedCode {
    /// Encode as text.
    pub fn encode(&self) -> Result<String, CodeError> {
        encode_code(SEED_PREFIX, KIND_SEED, self)
    }

    /// Parse a code, with an error that says what to do.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        parse_code(text, "seed", SEED_PREFIX, KIND_SEED)
    }
}

/// A proposal as the HTTP API takes it: `{"space", "seeder": "ID[@IP:PORT,...]", "quota",
/// "days", "terms"?}`. Parsed here, in the pure core, so the fuzz targets reach it.
#[derive(Debug, Deserialize)]
pub struct ProposeRequest {
    /// Space name or id.
    pub space: String,
    /// The seeder: its device id, with addresses after `@` when known.
    pub seeder: String,
    /// Bytes it may hold.
    pub quota: u64,
    /// Length of the term.
    pub days: u32,
    /// Free-text terms.
    #[serde(default)]
    pub terms: String,
}

impl ProposeRequest {
    /// Parse a request body and the seeder in it; the error says what is wrong.
    pub fn parse(body: &[u8]) -> Result<(Self, PeerAddr), String> {
        let r: Self = serde_json::from_slice(body).map_err(|e| format!("the request body: {e}"))?;
        let seeder = match r.seeder.split_once('@') {
            Some(_) => r.seeder.parse::<PeerAddr>().map_err(|e| format!("the seeder: {e}"))?,
            None => PeerAddr {
                device: r.seeder.parse().map_err(|e| format!("the seeder's device id: {e}"))?,
                addrs: Vec::new(),
            },
        };
        if r.terms.len() > cobox_agreements::MAX_TERMS {
            return Err(format!("the terms are over {} bytes", cobox_agreements::MAX_TERMS));
        }
        Ok((r, seeder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Invite {
        let space = SpaceId([8; 32]);
        Invite {
            space,
            name: "co-op files".into(),
            peers: vec![PeerAddr { device: DeviceId([1; 32]), addrs: vec!["127.0.0.1:4433".into()] }],
            key: [3; 32],
            op: [4; 32],
        }
    }

    /// A code from before rosters (the secret alone), and one from before codes held no secret
    /// (the secret beside the invite's key), are refused with what to do.
    #[test]
    fn invites_that_carry_the_secret_are_refused() {
        #[derive(Serialize)]
        struct Old {
            space: SpaceId,
            secret: Vec<u8>,
            name: String,
            peers: Vec<PeerAddr>,
        }
        #[derive(Serialize)]
        struct WithSecret {
            space: SpaceId,
            secret: Vec<u8>,
            name: String,
            peers: Vec<PeerAddr>,
            key: [u8; 32],
            op: [u8; 32],
        }
        let i = sample();
        let old = Old { space: i.space, secret: vec![5; 64], name: i.name.clone(), peers: i.peers.clone() };
        let code = encode_code(INVITE_PREFIX, 1, &old).unwrap();
        assert_eq!(Invite::parse(&code), Err(CodeError::OldInvite));
        let with =
            WithSecret { space: i.space, secret: vec![5; 64], name: i.name, peers: i.peers, key: i.key, op: i.op };
        let code = encode_code(INVITE_PREFIX, 3, &with).unwrap();
        assert_eq!(Invite::parse(&code), Err(CodeError::OldInvite));
    }

    #[test]
    fn peer_addresses_print_and_parse_back() {
        let p = PeerAddr {
            device: DeviceId([7; 32]),
            addrs: vec!["127.0.0.1:4433".into(), "https://relay.example".into()],
        };
        assert_eq!(p.to_string().parse::<PeerAddr>(), Ok(p.clone()));
        let bare = PeerAddr { device: DeviceId([7; 32]), addrs: vec![] };
        assert_eq!(bare.to_string(), DeviceId([7; 32]).to_string());
        assert_eq!(bare.to_string().parse::<PeerAddr>(), Ok(bare));
        assert!("nothex@1.2.3.4:5".parse::<PeerAddr>().is_err());
    }

    #[test]
    fn round_trip_tolerates_case_and_wrapping() {
        let code = sample().encode().unwrap();
        assert!(code.starts_with(INVITE_PREFIX));
        assert_eq!(Invite::parse(&code).unwrap(), sample());
        let wrapped: String = code
            .to_uppercase()
            .chars()
            .enumerate()
            .flat_map(|(i, c)| if i % 40 == 39 { vec![c, '\n', ' '] } else { vec![c] })
            .collect();
        assert_eq!(Invite::parse(&wrapped).unwrap(), sample());
    }

    #[test]
    fn typos_get_clear_errors() {
        let code = sample().encode().unwrap();
        assert_eq!(Invite::parse("hello"), Err(CodeError::Prefix("invite", INVITE_PREFIX)));
        let seed = SeedCode { space: sample().space, agreement: [3; 32], owner: sample().peers[0].clone() };
        assert_eq!(SeedCode::parse(&seed.encode().unwrap()).unwrap(), seed);
        assert!(
            matches!(Invite::parse(&seed.encode().unwrap()), Err(CodeError::Prefix(..))),
            "a seed code is no invite"
        );
        let as_invite = seed.encode().unwrap().replacen(SEED_PREFIX, INVITE_PREFIX, 1);
        assert!(Invite::parse(&as_invite).is_err(), "nor when its prefix is swapped");
        assert_eq!(Invite::parse(&code[..code.len() - 7]), Err(CodeError::Checksum));
        let mut bad: Vec<char> = code.chars().collect();
        let i = INVITE_PREFIX.len() + 10;
        bad[i] = if bad[i] == 'a' { 'b' } else { 'a' };
        assert_eq!(Invite::parse(&bad.iter().collect::<String>()), Err(CodeError::Checksum));
        bad[i] = '1';
        assert!(matches!(Invite::parse(&bad.iter().collect::<String>()), Err(CodeError::Alphabet(_))));
    }

    proptest! {
        #[test]
        fn any_single_substitution_is_refused(pos in 0usize..1000, ch in "[a-z2-7]") {
            let code = sample().encode().unwrap();
            let mut chars: Vec<char> = code.chars().collect();
            let i = INVITE_PREFIX.len() + pos % (chars.len() - INVITE_PREFIX.len());
            let c = ch.chars().next().unwrap();
            prop_assume!(chars[i] != c);
            chars[i] = c;
            prop_assert!(Invite::parse(&chars.iter().collect::<String>()).is_err());
        }

        #[test]
        fn garbage_never_panics(s in ".{0,300}") {
            let _ = Invite::parse(&s);
            let _ = Invite::parse(&format!("{INVITE_PREFIX}{s}"));
        }
    }
}
