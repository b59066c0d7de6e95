use crate::Ctx;
use crate::args::bytes;
use anyhow::{Context, Result, bail};
use cobox_engine::At;
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Space name or id.
    space: String,
    /// Where to write the files (created if missing). Files already there under a name the
    /// restore writes are left alone and the restore refused, unless --overwrite.
    dir: PathBuf,
    /// An RFC 3339 time (2026-11-24T10:00:00Z) or a history id; default: the latest state.
    #[arg(long)]
    at: Option<String>,
    /// Restore only this file or folder.
    #[arg(long)]
    path: Option<String>,
    /// Replace files already in DIR under the names the restore writes.
    #[arg(long)]
    overwrite: bool,
}

/// Parse `--at`: an RFC 3339 time, else a history id (hex).
pub(crate) fn run(ctx: &Ctx, a: Args) -> Result<()> {
    let at = match &a.at {
        Some(s) => At::parse(s)?,
        None => At::Latest,
    };
    let r: cobox_engine::RestoreReport = match crate::control::daemon(&ctx.home) {
        Some(d) => {
            let dir = std::path::absolute(&a.dir).with_context(|| format!("resolving {}", a.dir.display()))?;
            let body =
                cobox_engine::api::Restore { dir, at: a.at.clone(), path: a.path.clone(), overwrite: a.overwrite };
            let path = format!("/api/spaces/{}/restore", crate::control::segment(&a.space));
            let bar = crate::progress::Bar::new();
            d.post_progress(&path, Some(&body), &bar)
                .with_context(|| format!("restoring {:?} to {}", a.space, a.dir.display()))?
        }
        None => {
            let home = ctx.open_home()?;
            let space = ctx.open_space(&home, &a.space)?;
            let bar = crate::progress::Bar::new();
            let r = space
                .restore(&a.dir, &at, a.path.as_deref(), a.overwrite, &bar)
                .with_context(|| format!("restoring {:?} to {}", a.space, a.dir.display()))?;
            drop(bar);
            r
        }
    };
    if ctx.json {
        ctx.print_json(&r)?;
    } else {
        println!(
            "restored {} files ({}), {} folders, {} symlinks into {}",
            r.files,
            bytes(r.bytes),
            r.dirs,
            r.symlinks,
            a.dir.display()
        );
        for e in &r.errors {
            println!("failed: {}", cobox_engine::util::printable(e));
        }
    }
    if !r.errors.is_empty() {
        bail!("{} paths could not be restored: {}", r.errors.len(), r.errors[0]);
    }
    Ok(())
}
