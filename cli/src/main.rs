//! `cobox`: the command line. It only translates between people and `cobox-engine`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod args;
mod commands;
mod control;
mod progress;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// CoBox: a peer-to-peer cooperative cloud. Your folder, chunked, encrypted and versioned.
#[derive(Parser)]
#[command(name = "cobox", version, about, propagate_version = true)]
struct Cli {
    /// State directory of this device (default: $COBOX_HOME, else the platform data dir).
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Print one JSON value on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print this device's id (created on first use).
    Id,
    /// Create and list spaces.
    #[command(subcommand)]
    Space(commands::space::SpaceCmd),
    /// Record the folder's local changes in the manifest.
    Scan(commands::SpaceArg),
    /// Files, bytes, storage, last scan and pending local changes.
    Status(commands::SpaceArg),
    /// Past states of a space, or of one path, newest first.
    History(commands::history::Args),
    /// Put a deleted file or folder back as it was before its deletion, for every member.
    Undelete(commands::history::UndeleteArgs),
    /// Write a space (or one path) as it is now or as it was at a time.
    Restore(commands::restore::Args),
    /// Re-hash every stored blob and report what is corrupt or missing.
    Verify(commands::SpaceArg),
    /// Heal a damaged store: drop what is missing or corrupt, fetch good copies from the
    /// space's members and seeders, verify again.
    Repair(commands::net::SyncArgs),
    /// Remove blobs that no retained state references.
    Gc(commands::gc::Args),
    /// Make a member invite code for a space (works once, until it expires); list or cancel invites.
    Invite(commands::invite::InviteArgs),
    /// The space's members: list, remove, role, rename, leave.
    #[command(subcommand)]
    Member(commands::members::MemberCmd),
    /// This device: name it.
    #[command(subcommand)]
    Device(commands::members::DeviceCmd),
    /// Join a space from an invite code.
    Join(commands::invite::JoinArgs),
    /// Sync a space with a peer now, both ways, until both hold the same state.
    Sync(commands::net::SyncArgs),
    /// The daemon: accept syncs, rescan and sync with known peers, seed, audit; SIGINT/SIGTERM stop it.
    Up(commands::net::UpArgs),
    /// Seeding agreements: propose, list, revoke.
    #[command(subcommand)]
    Agreement(commands::seeding::AgreementCmd),
    /// On a seeder: countersign a proposal from its seed code and take the space's blobs.
    Seed(commands::seeding::SeedArgs),
    /// Challenge a space's seeders to prove they hold its blobs; results go to the ledger.
    Audit(commands::seeding::AuditArgs),
    /// What the daemon (`cobox up` or the app) logged: the newest lines, or follow them.
    Logs(commands::logs::Args),
    /// Administer seeders: pair, status, policy; on a seeder, pairing codes and administrators.
    #[command(subcommand)]
    Seeder(commands::seeder::SeederCmd),
    /// Social recovery: custodians who together, and only together, give a space back.
    #[command(subcommand)]
    Recovery(commands::recovery::RecoveryCmd),
    /// Run `cobox up` as a systemd service: install (and enable) or uninstall.
    #[command(subcommand)]
    Service(commands::service::ServiceCmd),
    /// Bytes this device seeds for others and others seed for it, and the share ratio.
    Stats,
    /// The network at a glance: verified copies per space, each seeder's and member's health
    /// (scores, last contact, completion), what this device seeds for whom.
    Network,
    /// The whole story in a temp dir on loopback: two devices, a seeder, a conflict, an audit, a restore.
    Demo(commands::demo::DemoArgs),
}

/// What every command gets.
pub(crate) struct Ctx {
    home: PathBuf,
    json: bool,
}

impl Ctx {
    fn open_home(&self) -> Result<cobox_engine::Home> {
        use anyhow::Context;
        cobox_engine::Home::open(&self.home).with_context(|| format!("opening cobox home {}", self.home.display()))
    }

    fn open_space(&self, home: &cobox_engine::Home, space: &str) -> Result<cobox_engine::Space> {
        use anyhow::Context;
        home.open_space(space).with_context(|| format!("opening space {space:?}"))
    }

    /// Print a value as JSON.
    fn print_json<T: serde::Serialize>(&self, v: &T) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(v)?);
        Ok(())
    }
}

/// Whether standard output is a pipe whose reader has gone (`cobox logs | head -1`).
fn stdout_closed() -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let out = std::io::stdout();
    let mut fds = [PollFd::new(&out, PollFlags::OUT)];
    let now = Timespec { tv_sec: 0, tv_nsec: 0 };
    poll(&mut fds, Some(&now)).is_ok() && fds[0].revents().contains(PollFlags::ERR)
}

fn main() -> ExitCode {
    // Output to a closed pipe ends the command quietly with success, as other Unix tools'
    // output does, instead of a panic from println! and exit code 101.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if stdout_closed() {
            std::process::exit(0);
        }
        default(info)
    }));
    let cli = Cli::parse();
    let ctx = Ctx { home: cli.home.clone().unwrap_or_else(cobox_engine::Home::default_root), json: cli.json };
    let result = match cli.cmd {
        Cmd::Id => commands::id::run(&ctx),
        Cmd::Space(c) => commands::space::run(&ctx, c),
        Cmd::Scan(a) => commands::scan::run(&ctx, a),
        Cmd::Status(a) => commands::status::run(&ctx, a),
        Cmd::History(a) => commands::history::run(&ctx, a),
        Cmd::Restore(a) => commands::restore::run(&ctx, a),
        Cmd::Undelete(a) => commands::history::undelete(&ctx, a),
        Cmd::Verify(a) => commands::verify::run(&ctx, a),
        Cmd::Repair(a) => commands::repair::run(&ctx, a),
        Cmd::Gc(a) => commands::gc::run(&ctx, a),
        Cmd::Invite(a) => commands::invite::invite(&ctx, a),
        Cmd::Join(a) => commands::invite::join(&ctx, a),
        Cmd::Member(c) => commands::members::member(&ctx, c),
        Cmd::Device(c) => commands::members::device(&ctx, c),
        Cmd::Sync(a) => commands::net::sync(&ctx, a),
        Cmd::Up(a) => commands::net::up(&ctx, a),
        Cmd::Agreement(c) => commands::seeding::agreement(&ctx, c),
        Cmd::Seed(a) => commands::seeding::seed(&ctx, a),
        Cmd::Audit(a) => commands::seeding::audit(&ctx, a),
        Cmd::Logs(a) => commands::logs::run(&ctx, a),
        Cmd::Seeder(c) => commands::seeder::run(&ctx, c),
        Cmd::Recovery(c) => commands::recovery::run(&ctx, c),
        Cmd::Service(c) => commands::service::run(&ctx, c),
        Cmd::Stats => commands::seeding::stats(&ctx),
        Cmd::Network => commands::network::run(&ctx),
        Cmd::Demo(a) => commands::demo::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once: network errors carry their causes in
/// their text too ("timed out: timed out"), and a line is what the README promises.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        for part in cause.to_string().split(": ") {
            let part = part.trim();
            if part.is_empty() || out.split(": ").any(|p| p == part) {
                continue;
            }
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(part);
        }
    }
    // A pasted 10,000-character input is not repeated whole.
    let out: String = out
        .split(' ')
        .map(|w| if w.len() > 200 { cobox_engine::util::shortened(w) } else { w.to_owned() })
        .collect::<Vec<_>>()
        .join(" ");
    cobox_engine::util::printable(&out.replace('\n', " ")).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_is_one_line_and_says_each_cause_once() {
        let inner = anyhow::anyhow!("connection lost: timed out: timed out");
        let e = inner.context("timed out").context("syncing \"docs\"");
        assert_eq!(super::one_line(&e), "syncing \"docs\": timed out: connection lost");
        let two = anyhow::anyhow!("first line\nsecond line").context("reading");
        assert_eq!(super::one_line(&two), "reading: first line second line");
    }
}
