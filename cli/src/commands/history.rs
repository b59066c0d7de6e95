use crate::Ctx;
use anyhow::Result;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Space name or id.
    space: String,
    /// Only states that changed this path.
    path: Option<String>,
    /// List the paths deleted and not back instead (newest first); `cobox undelete` puts one
    /// back.
    #[arg(long, conflicts_with = "path")]
    deleted: bool,
}

#[derive(clap::Args)]
pub(crate) struct UndeleteArgs {
    /// Space name or id.
    space: String,
    /// The deleted path (as `cobox history SPACE --deleted` lists it).
    path: String,
}

/// How many deleted paths a listing names at most.
const DELETED_MAX: usize = 10_000;

/// `cobox history SPACE --deleted`.
fn deleted(ctx: &Ctx, space: &str) -> Result<()> {
    let items: Vec<cobox_engine::DeletedFile> = match crate::control::daemon(&ctx.home) {
        Some(d) => d.call("GET", &format!("/api/spaces/{}/deleted", crate::control::segment(space)))?,
        None => {
            let home = ctx.open_home()?;
            ctx.open_space(&home, space)?.deleted_files(DELETED_MAX)?
        }
    };
    if ctx.json {
        return ctx.print_json(&items);
    }
    if items.is_empty() {
        println!("nothing deleted");
    }
    for d in items {
        let by = d.device_name.as_deref().map(cobox_engine::util::printable).unwrap_or(d.device.as_str().into());
        println!("{}  {}  {}", cobox_engine::util::rfc3339(d.time_ms), by, cobox_engine::util::printable(&d.path));
    }
    Ok(())
}

/// `cobox undelete SPACE PATH`: the path back as it was before its deletion, for every member.
pub(crate) fn undelete(ctx: &Ctx, a: UndeleteArgs) -> Result<()> {
    let r: cobox_engine::ScanReport = match crate::control::daemon(&ctx.home) {
        Some(d) => d.post(
            &format!("/api/spaces/{}/undelete", crate::control::segment(&a.space)),
            &cobox_engine::api::Undelete { path: a.path.clone() },
        )?,
        None => {
            let home = ctx.open_home()?;
            ctx.open_space(&home, &a.space)?.undelete(&a.path)?
        }
    };
    if ctx.json {
        return ctx.print_json(&r);
    }
    println!("{} is back in the folder; members get it at their next sync", cobox_engine::util::printable(&a.path));
    Ok(())
}

pub(crate) fn run(ctx: &Ctx, a: Args) -> Result<()> {
    if a.deleted {
        return deleted(ctx, &a.space);
    }
    let items: Vec<cobox_engine::space::HistoryItem> = match crate::control::daemon(&ctx.home) {
        Some(d) => {
            let query = a.path.as_deref().map(|p| format!("?path={}", crate::control::segment(p))).unwrap_or_default();
            d.call("GET", &format!("/api/spaces/{}/history{query}", crate::control::segment(&a.space)))?
        }
        None => {
            let home = ctx.open_home()?;
            ctx.open_space(&home, &a.space)?.history(a.path.as_deref())?
        }
    };
    if ctx.json {
        return ctx.print_json(&items);
    }
    if let (true, Some(p)) = (items.is_empty(), &a.path) {
        anyhow::bail!(
            "no history for {:?}: it was never in this space (paths are relative to its folder, like docs/a.txt; \
             `cobox history {}` lists every state)",
            p,
            a.space
        );
    }
    if items.is_empty() {
        println!("no history yet");
    }
    for h in items {
        let what = match &h.action {
            Some(act) => act.clone(),
            None => format!("+{} ~{} -{} ({} renamed)", h.added, h.changed, h.deleted, h.renamed),
        };
        let by = h.device_name.as_deref().map(cobox_engine::util::printable).unwrap_or_else(|| h.device[..8].into());
        println!("{}  {}  {}  {}", h.id, h.time, by, cobox_engine::util::printable(&what));
    }
    Ok(())
}
