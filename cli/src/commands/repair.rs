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
    let (dropped, unread) = {
        let home = ctx.open_home()?;
        let mut unread = 0;
        let mut s = match home.open_space(&space) {
            Ok(s) => s,
            // The index is a cache of what the packs say about themselves: rebuild it.
            Err(cobox_engine::Error::Store(e @ cobox_engine::store::StoreError::DamagedIndex { .. })) => {
                eprintln!("{e}");
                let r = home.rebuild_index(&space).context("rebuilding the blob index from the packs")?;
                report_reindex("rebuilt the index", &r);
                unread += r.corrupt;
                ctx.open_space(&home, &space)?
            }
            Err(e) => return Err(e).with_context(|| format!("opening space {space:?}")),
        };
        if let Some(r) = s.reindexed_on_open() {
            report_reindex("the index was lost", r);
            unread += r.corrupt;
        }
        let r = s.adopt_packs().context("indexing packs the index does not name")?;
        if r.packs > 0 {
            report_reindex("found packs the index did not name", &r);
            unread += r.corrupt;
        }
        (s.drop_bad_blobs().context("checking the store")?, unread)
    };
    if dropped.is_empty() && unread == 0 {
        eprintln!("every stored blob is intact");
    } else {
        eprintln!(
            "{} blob(s) missing or corrupt here: fetching good copies from the space's peers",
            dropped.len() as u64 + unread
        );
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
    if !dropped.is_empty() {
        println!("healed {healed} of {} blob(s)", dropped.len());
    }
    println!("checked {} blobs", r.blobs_checked);
    if !r.ok() {
        bail!(
            "{} blob(s) are still missing (first: {}): no peer reached held them; repair again with --peer naming a member or seeder that does",
            still.len(),
            still.first().copied().unwrap_or_default()
        );
    }
    Ok(())
}

fn report_reindex(what: &str, r: &cobox_engine::store::Reindex) {
    let aside =
        r.set_aside.as_ref().map(|p| format!(" (the damaged one is kept as {})", p.display())).unwrap_or_default();
    eprintln!("{what}{aside}: indexed {} blob(s) from {} pack(s)", r.blobs, r.packs);
    if r.corrupt > 0 {
        eprintln!("{} blob(s) in those packs are corrupt: fetching good copies from the space's peers", r.corrupt);
    }
    for p in &r.unreadable {
        eprintln!("warning: pack {} cannot be read (its list of blobs is damaged); it is left in place", p.display());
    }
}
