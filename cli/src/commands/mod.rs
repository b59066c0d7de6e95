//! One module per subcommand.

pub(crate) mod demo;
pub(crate) mod gc;
pub(crate) mod history;
pub(crate) mod id;
pub(crate) mod invite;
pub(crate) mod logs;
pub(crate) mod members;
pub(crate) mod net;
pub(crate) mod network;
pub(crate) mod recovery;
pub(crate) mod repair;
pub(crate) mod restore;
pub(crate) mod scan;
pub(crate) mod seeder;
pub(crate) mod seeding;
pub(crate) mod service;
pub(crate) mod space;
pub(crate) mod status;
pub(crate) mod verify;

/// Commands that take only a space.
#[derive(clap::Args)]
pub(crate) struct SpaceArg {
    /// Space name or id.
    pub(crate) space: String,
}
