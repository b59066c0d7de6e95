use crate::Ctx;
use anyhow::Result;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Space name or id.
    space: String,
    /// Only states that changed this path.
    path: Option<String>,
}

pub(crate) fn run(ctx: &Ctx, a: Args) -> Result<()> {
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
