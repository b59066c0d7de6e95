use crate::Ctx;
use crate::args::bytes;
use anyhow::{Context, Result};

pub(crate) fn run(ctx: &Ctx, a: super::SpaceArg) -> Result<()> {
    let r: cobox_engine::ScanReport = match crate::control::daemon(&ctx.home) {
        Some(d) => {
            let bar = crate::progress::Bar::new();
            d.post_progress(&format!("/api/spaces/{}/scan", crate::control::segment(&a.space)), None::<&()>, &bar)
                .with_context(|| format!("scanning {:?}", a.space))?
        }
        None => {
            let home = ctx.open_home()?;
            let mut space = ctx.open_space(&home, &a.space)?;
            let bar = crate::progress::Bar::new();
            let r = space.scan(&bar).with_context(|| format!("scanning {}", space.info().path.display()))?;
            drop(bar);
            r
        }
    };
    if ctx.json {
        return ctx.print_json(&r);
    }
    // Added, changed and unchanged count folders and links too: name them, so the numbers add up.
    let n = |k: u64, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    println!(
        "scanned {}, {} and {} ({}): {} added, {} changed, {} deleted ({} renamed), {} unchanged",
        n(r.files, "file", "files"),
        n(r.dirs, "folder", "folders"),
        n(r.symlinks, "link", "links"),
        bytes(r.bytes_total),
        r.added,
        r.changed,
        r.deleted,
        r.renamed,
        r.unchanged
    );
    if r.ignored > 0 {
        let paths = if r.ignored == 1 { "path" } else { "paths" };
        println!("{} {paths} left out by {}", r.ignored, cobox_engine::ignores::IGNORE_FILE);
    }
    println!("read {}, stored {} new blobs ({})", bytes(r.bytes_read), r.new_blobs, bytes(r.new_blob_bytes));
    match &r.snapshot {
        Some(id) => println!("history entry {id}"),
        None => println!("no changes to record"),
    }
    if !r.warnings.is_empty() {
        println!("{} warnings (shown above)", r.warnings.len());
    }
    Ok(())
}
