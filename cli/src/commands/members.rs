//! `cobox member …` and `cobox device name`: the roster. They read and write files only, so
//! they work while the daemon runs; its next session carries each change to the peers.

use crate::Ctx;
use anyhow::{Context, Result};
use cobox_engine::members;
use cobox_engine::roster::Role;
use cobox_engine::util::printable;

#[derive(clap::Subcommand)]
pub(crate) enum MemberCmd {
    /// The space's members with names and roles, removed devices and invites.
    List(super::SpaceArg),
    /// Remove a member: every member and seeder refuses its syncs once they hear of it.
    Remove {
        /// Space name or id.
        space: String,
        /// The member's name or id (4+ characters).
        device: String,
    },
    /// Change a member's role: read, write or manage.
    Role {
        /// Space name or id.
        space: String,
        /// The member's name or id (4+ characters).
        device: String,
        /// The new role.
        role: Role,
    },
    /// Rename a member (a manager renames anyone, a member itself).
    Rename {
        /// Space name or id.
        space: String,
        /// The member's name or id (4+ characters).
        device: String,
        /// The new name.
        name: String,
    },
    /// Take this device out of a space; its folder stays on disk.
    Leave(super::SpaceArg),
}

#[derive(clap::Subcommand)]
pub(crate) enum DeviceCmd {
    /// Name this device in every space it belongs to ("Ana's laptop").
    Name {
        /// The name.
        name: String,
    },
}

pub(crate) fn member(ctx: &Ctx, c: MemberCmd) -> Result<()> {
    match c {
        MemberCmd::List(a) => list(ctx, &a.space),
        MemberCmd::Remove { space, device } => {
            let name = members::remove(&ctx.home, &space, &device)
                .with_context(|| format!("removing {device:?} from {space:?}"))?;
            eprintln!(
                "removed {}: members and seeders refuse its syncs from when they hear of it; what it already received stays readable to it",
                printable(&name)
            );
            Ok(())
        }
        MemberCmd::Role { space, device, role } => {
            let name = members::set_role(&ctx.home, &space, &device, role)
                .with_context(|| format!("changing the role of {device:?} in {space:?}"))?;
            eprintln!(
                "{name} may now {}",
                match role {
                    Role::Read => "only read",
                    Role::Write => "read and write",
                    Role::Manage => "read, write and manage members",
                }
            );
            Ok(())
        }
        MemberCmd::Rename { space, device, name } => {
            members::rename(&ctx.home, &space, &device, &name)
                .with_context(|| format!("renaming {device:?} in {space:?}"))?;
            Ok(())
        }
        MemberCmd::Leave(a) => {
            members::leave(&ctx.home, &a.space).with_context(|| format!("leaving {:?}", a.space))?;
            eprintln!(
                "left space {:?}: its members refuse this device from their next sync; the folder stays here",
                a.space
            );
            Ok(())
        }
    }
}

fn list(ctx: &Ctx, space: &str) -> Result<()> {
    let r = members::list(&ctx.home, space, cobox_engine::now_ms())
        .with_context(|| format!("reading the roster of {space:?}"))?;
    if ctx.json {
        return ctx.print_json(&r);
    }
    for m in &r.members {
        let me = if m.me { "  (this device)" } else { "" };
        println!("{:<7} {}  {}{me}", m.role, printable(&m.name), &m.device[..16]);
    }
    for d in &r.removed {
        println!("removed {d}");
    }
    let pending: Vec<_> = r.invites.iter().filter(|i| i.state == cobox_engine::members::InviteState::Pending).collect();
    if !pending.is_empty() {
        println!("pending invites:");
        for i in pending {
            let who = i.name.as_deref().map(|n| format!(" for {n:?}")).unwrap_or_default();
            println!("  {}  {}{} until {}", i.id, i.role, printable(&who), i.expires);
        }
    }
    if !r.invalid.is_empty() {
        eprintln!("{} roster operation(s) are invalid and ignored: {}", r.invalid.len(), r.invalid.join("; "));
    }
    Ok(())
}

pub(crate) fn device(ctx: &Ctx, c: DeviceCmd) -> Result<()> {
    match c {
        DeviceCmd::Name { name } => {
            let n = members::name_device(&ctx.home, &name).context("naming this device")?;
            eprintln!("this device is {name:?} in {n} space(s)");
            Ok(())
        }
    }
}
