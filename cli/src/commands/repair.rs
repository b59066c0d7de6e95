//! `cobox repair`: heal a damaged store from the space's other copies.

use crate::Ctx;
use anyhow::{Context, Result, bail};

/// Drop every blob missing or corrupt here, sync (with `--peer`, or every known peer: members
/// and seeders), then verify: what a peer held a good copy of is back.
pub(crate) fn run(ctx: &Ctx, a: super::net::SyncArgs) -> Result<()> {
    if crate::control::daemon(&ctx.home).is_some() {
        bail!("a daemon holds this device's spaces: stop it (cobox up, or the app) first, then repair");
    }
    let space = a.space.clone();
    let dropped = {
        let home = ctx.open_home()?;
        let s = ctx.open_space(&home, &space)?;
        s.drop_bad_blobs().context("checking the store")?
    };
    if dropped.is_empty() {
        eprintln!("every stored blob is intact");
    } else {
        eprintln!("{} blob(s) missing or corrupt here: fetching good copies from the space's peers", dropped.len());
        // What could be fetched was; the verify below says what is still missing.
        if let Err(e) = super::net::sync(ctx, a) {
            eprintln!("warning: {e:#}");
        }
    }
    let home = ctx.open_home()?;
    let s = ctx.open_space(&home, &space)?;
    let r = s.verify(&cobox_engine::NoProgress).context("verifying after the repair")?;
    let still: std::collections::BTreeSet<&str> = r.missing.iter().chain(&r.corrupt).map(|b| b.blob.as_str()).collect();
    let healed = dropped.iter().filter(|id| !still.contains(id.to_string().as_str())).count();
    println!("healed {healed} of {} blob(s); checked {} blobs", dropped.len(), r.blobs_checked);
    if !r.ok() {
        bail!(
            "{} blob(s) are still missing (first: {}): no peer reached held them; repair again with --peer naming a member or seeder that does",
            still.len(),
            still.first().copied().unwrap_or_default()
        );
    }
    Ok(())
}
