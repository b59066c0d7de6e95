//! One module per subcommand.

pub mod gc;
pub mod history;
pub mod id;
pub mod restore;
pub mod scan;
pub mod space;
pub mod status;
pub mod verify;

/// Bytes for people.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
