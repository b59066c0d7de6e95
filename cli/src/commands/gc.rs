use crate::Ctx;
use crate::args::bytes;
use anyhow::{Context, Result};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Space name or id.
    space: String,
    /// Keep states restorable for this long (e.g. 30d, 12h); older ones are pruned.
    /// Without it every recorded state is kept and only unreferenced blobs go.
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
}

pub(crate) fn run(ctx: &Ctx, a: Args) -> Result<()> {
    let keep = match &a.keep_within {
        Some(s) => Some(
            humantime::parse_duration(s)
                .with_context(|| format!("--keep-within {s:?} is not a duration like 30d or 12h"))?
                .as_millis() as i64,
        ),
        None => None,
    };
    let r: cobox_engine::GcReport = match crate::control::daemon(&ctx.home) {
        Some(d) => {
            let path = format!("/api/spaces/{}/gc", crate::control::segment(&a.space));
            d.post(&path, &cobox_engine::api::Gc { keep_within_ms: keep })?
        }
        None => {
            let home = ctx.open_home()?;
            ctx.open_space(&home, &a.space)?.gc(keep)?
        }
    };
    if ctx.json {
        return ctx.print_json(&r);
    }
    println!(
        "removed {} blobs, freed {} ({} packs rewritten); {} states kept",
        r.blobs_removed,
        bytes(r.bytes_freed),
        r.packs_rewritten,
        r.states_kept
    );
    if let Some(t) = &r.pruned_before {
        println!("states before {t} can no longer be restored");
    }
    Ok(())
}
