use crate::Ctx;
use anyhow::{Context, Result};
use cobox_engine::codes::Invite;
use std::path::PathBuf;

/// `cobox invite SPACE`: works while the daemon runs (reads files only).
pub(crate) fn invite(ctx: &Ctx, a: super::SpaceArg) -> Result<()> {
    let inv = cobox_engine::Home::invite(&ctx.home, &a.space)
        .with_context(|| format!("making an invite for {:?}", a.space))?;
    let code = inv.encode()?;
    if ctx.json {
        let peers: Vec<serde_json::Value> =
            inv.peers.iter().map(|p| serde_json::json!({ "device": p.device.to_string(), "addrs": p.addrs })).collect();
        return ctx.print_json(&serde_json::json!({ "code": code, "space": inv.space.to_string(), "peers": peers }));
    }
    println!("{code}");
    if inv.peers.iter().all(|p| p.addrs.is_empty()) {
        eprintln!("note: no address is known for this device yet; start `cobox up` so the code carries one");
    }
    Ok(())
}

#[derive(clap::Args)]
pub(crate) struct JoinArgs {
    /// The invite code (`cobox invite SPACE` on a member device).
    code: String,
    /// The folder to keep the space in (created if missing).
    #[arg(long)]
    path: PathBuf,
    /// A local name for the space (default: the inviter's name).
    #[arg(long)]
    name: Option<String>,
}

pub(crate) fn join(ctx: &Ctx, a: JoinArgs) -> Result<()> {
    let inv = Invite::parse(&a.code).context("reading the invite code")?;
    let home = ctx.open_home()?;
    let info =
        home.join(&inv, &a.path, a.name.as_deref()).with_context(|| format!("joining into {}", a.path.display()))?;
    if ctx.json {
        return ctx.print_json(&serde_json::json!({ "id": info.id.to_string(), "name": info.name, "path": info.path }));
    }
    println!("{}", info.id);
    eprintln!(
        "joined space {:?}; the folder fills on the first sync (`cobox sync {} --peer ID@IP:PORT` or `cobox up`)",
        info.name, info.name
    );
    Ok(())
}
