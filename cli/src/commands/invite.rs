use crate::Ctx;
use anyhow::{Context, Result};
use cobox_engine::codes::Invite;
use cobox_engine::home::InviteRequest;
use cobox_engine::roster::Role;
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct InviteArgs {
    #[command(subcommand)]
    cmd: Option<InviteCmd>,
    /// Space name or id.
    #[arg(required = true)]
    space: Option<String>,
    /// The role the new member gets: read, write or manage.
    #[arg(long, default_value = "write")]
    role: Role,
    /// How long the code works (e.g. 7d, 12h, 30m); it works once in any case.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    expires: std::time::Duration,
    /// The new member's name on the roster (e.g. "Ana's laptop").
    #[arg(long)]
    name: Option<String>,
}

#[derive(clap::Subcommand)]
enum InviteCmd {
    /// The space's invites: pending, used, cancelled, expired.
    List(super::SpaceArg),
    /// Cancel an invite not yet used (its id from `cobox invite list`).
    Cancel {
        /// Space name or id.
        space: String,
        /// The invite's id (or its first 4+ characters).
        invite: String,
    },
}

/// `cobox invite SPACE [--role] [--expires] [--name]`, `invite list`, `invite cancel`: they
/// read and write files only, so they work while the daemon runs.
pub(crate) fn invite(ctx: &Ctx, a: InviteArgs) -> Result<()> {
    match a.cmd {
        Some(InviteCmd::List(s)) => return list(ctx, &s.space),
        Some(InviteCmd::Cancel { space, invite }) => {
            cobox_engine::members::cancel_invite(&ctx.home, &space, &invite)
                .with_context(|| format!("cancelling invite {invite:?} of {space:?}"))?;
            eprintln!("cancelled invite {invite}: the code no longer works anywhere the roster reaches");
            return Ok(());
        }
        None => {}
    }
    let space = a.space.context("name the space to invite to")?;
    let expires_ms = cobox_engine::now_ms().saturating_add(i64::try_from(a.expires.as_millis()).unwrap_or(i64::MAX));
    let request = InviteRequest { role: a.role, expires_ms, name: a.name.clone() };
    let inv = cobox_engine::Home::invite(&ctx.home, &space, &request)
        .with_context(|| format!("making an invite for {space:?}"))?;
    let code = inv.encode()?;
    let expires = cobox_engine::util::rfc3339(expires_ms);
    if ctx.json {
        let peers: Vec<serde_json::Value> =
            inv.peers.iter().map(|p| serde_json::json!({ "device": p.device.to_string(), "addrs": p.addrs })).collect();
        return ctx.print_json(&serde_json::json!({
            "code": code, "space": inv.space.to_string(), "peers": peers,
            "role": a.role.to_string(), "expires": expires, "name": a.name,
        }));
    }
    println!("{code}");
    eprintln!("works once, as a {} member, until {expires}", a.role);
    if inv.peers.iter().all(|p| p.addrs.is_empty()) {
        eprintln!("note: no address is known for this device yet; start `cobox up` so the code carries one");
    }
    Ok(())
}

fn list(ctx: &Ctx, space: &str) -> Result<()> {
    let roster = cobox_engine::members::list(&ctx.home, space, cobox_engine::now_ms())
        .with_context(|| format!("reading the roster of {space:?}"))?;
    if ctx.json {
        return ctx.print_json(&roster.invites);
    }
    if roster.invites.is_empty() {
        println!("no invites");
    }
    for i in &roster.invites {
        let who = i.name.as_deref().map(|n| format!(" for {n:?}")).unwrap_or_default();
        let used = i.used_by.as_deref().map(|u| format!(" by {u}")).unwrap_or_default();
        let line = format!("{}  {:<6} {}{used}{who}  until {}  (made by {})", i.id, i.role, i.state, i.expires, i.by);
        println!("{}", cobox_engine::util::printable(&line));
    }
    Ok(())
}

#[derive(clap::Args)]
pub(crate) struct JoinArgs {
    /// The invite code (`cobox invite SPACE` on a manager's device).
    code: String,
    /// The folder to keep the space in (created if missing).
    #[arg(long, required_unless_present = "audit_only")]
    path: Option<PathBuf>,
    /// Keep no folder: only audit the space's seeders. This device then fetches the manifest's
    /// changes and chunk lists, never content (a few MB for a space of many GB).
    #[arg(long, conflicts_with = "path")]
    audit_only: bool,
    /// A local name for the space (default: the inviter's name).
    #[arg(long)]
    name: Option<String>,
}

pub(crate) fn join(ctx: &Ctx, a: JoinArgs) -> Result<()> {
    let inv = Invite::parse(&a.code).context("reading the invite code")?;
    let path = a.path.as_ref().map(std::path::absolute).transpose().context("resolving the folder's path")?;
    let into = path.as_ref().map_or_else(|| "no folder (audit only)".to_owned(), |p| p.display().to_string());
    let (id, name) = match crate::control::daemon(&ctx.home) {
        // The running daemon takes the space on and syncs it on its schedule.
        Some(d) => {
            let body = cobox_engine::api::Join {
                code: a.code.clone(),
                path: path.clone(),
                name: a.name.clone(),
                audit_only: a.audit_only,
            };
            let j: cobox_engine::api::Joined =
                d.post("/api/join", &body).with_context(|| format!("joining into {into}"))?;
            (j.id, (j.name, j.path))
        }
        None => {
            let home = ctx.open_home()?;
            let info = match &path {
                Some(p) => home.join(&inv, p, a.name.as_deref()),
                None => home.join_audit_only(&inv, a.name.as_deref()),
            }
            .with_context(|| format!("joining into {into}"))?;
            (info.id.to_string(), (info.name, info.path))
        }
    };
    let (name, path) = name;
    if ctx.json {
        return ctx.print_json(&serde_json::json!({ "id": id, "name": name, "path": path }));
    }
    println!("{id}");
    if a.audit_only {
        eprintln!(
            "joined space {name:?} to audit its seeders: `cobox audit {name}` fetches the manifest's changes and chunk lists (never content) from each seeder, then challenges it"
        );
        return Ok(());
    }
    eprintln!(
        "joined space {:?}; the invite is checked, and the folder fills, on the first sync (`cobox sync {} --peer ID@IP:PORT` or `cobox up`); if the inviter refuses the invite, the space is removed again",
        name, name
    );
    Ok(())
}
