//! Identifier newtypes. Each displays as the lowercase hex a user sees and types.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A 32-byte identifier failed to parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid {what}: expected 64 hex characters, got {got:?}")]
pub struct ParseIdError {
    what: &'static str,
    got: String,
}

macro_rules! id32 {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The first 8 hex characters, for compact display.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = || ParseIdError { what: $what, got: s.chars().take(80).collect() };
                let bytes = hex::decode(s.trim()).map_err(|_| err())?;
                let arr: [u8; 32] = bytes.try_into().map_err(|_| err())?;
                Ok(Self(arr))
            }
        }
    };
}

id32!(
    /// Content address of a stored blob: BLAKE3 of its sealed bytes.
    BlobId,
    "blob id"
);
id32!(
    /// A space: the ed25519 public key that signs its manifest changes.
    SpaceId,
    "space id"
);
id32!(
    /// A device: the ed25519 public key of its identity (and, later, its iroh endpoint).
    DeviceId,
    "device id"
);

impl BlobId {
    /// The id of `sealed` bytes.
    pub fn of(sealed: &[u8]) -> Self {
        Self(*blake3::hash(sealed).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let id = BlobId::of(b"hello");
        let s = id.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<BlobId>(), Ok(id));
        assert!("zz".parse::<BlobId>().is_err());
        assert!(s[..62].parse::<BlobId>().is_err());
        assert_eq!(id.short(), s[..8]);
    }
}
