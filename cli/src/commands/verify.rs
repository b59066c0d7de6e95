use crate::Ctx;
use crate::args::bytes;
use anyhow::{Result, bail};

pub(crate) fn run(ctx: &Ctx, a: super::SpaceArg) -> Result<()> {
    let r: cobox_engine::space::VerifyReport = match crate::control::daemon(&ctx.home) {
        Some(d) => {
            let bar = crate::progress::Bar::new();
            d.post_progress(&format!("/api/spaces/{}/verify", crate::control::segment(&a.space)), None::<&()>, &bar)?
        }
        None => {
            let home = ctx.open_home()?;
            let space = ctx.open_space(&home, &a.space)?;
            let bar = crate::progress::Bar::new();
            let r = space.verify(&bar)?;
            drop(bar);
            r
        }
    };
    if ctx.json {
        ctx.print_json(&r)?;
    } else {
        for (what, list) in [("corrupt", &r.corrupt), ("missing", &r.missing)] {
            for b in list {
                let files = if b.files.is_empty() { "no current file".to_owned() } else { b.files.join(", ") };
                let files = cobox_engine::util::printable(&files);
                println!("{what} blob {} (used by: {files})", b.blob);
            }
        }
        println!("checked {} blobs ({})", r.blobs_checked, bytes(r.bytes_checked));
        if let Some(first) = r.unindexed_packs.first() {
            println!(
                "{} pack(s) the index does not name (first: {first}): `cobox repair {}` indexes what they hold",
                r.unindexed_packs.len(),
                a.space
            );
        }
        if let Some(first) = r.not_yet_received.first() {
            let files: usize = r.not_yet_received.iter().map(|b| b.files.len()).sum();
            println!(
                "{} blobs not received yet, for {files} files from other devices (first: {}): nothing is lost; \
                 the next `cobox sync` (or a running `cobox up`) brings them",
                r.not_yet_received.len(),
                cobox_engine::util::printable(first.files.first().map_or("no current file", String::as_str))
            );
        }
    }
    if !r.ok() {
        let first = r.corrupt.first().or(r.missing.first()).map(|b| b.blob.clone()).unwrap_or_default();
        bail!(
            "verify found {} corrupt and {} missing blobs (first: {first}); `cobox repair {}` fetches good copies \
             from the space's members and seeders",
            r.corrupt.len(),
            r.missing.len(),
            a.space
        );
    }
    if !ctx.json {
        println!("all blobs intact");
    }
    Ok(())
}
