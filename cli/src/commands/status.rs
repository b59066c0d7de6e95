use super::bytes;
use crate::Ctx;
use anyhow::Result;

pub(crate) fn run(ctx: &Ctx, a: super::SpaceArg) -> Result<()> {
    let home = ctx.open_home()?;
    let space = ctx.open_space(&home, &a.space)?;
    let s = space.status()?;
    if ctx.json {
        return ctx.print_json(&s);
    }
    println!("space     {} ({})", s.name, s.id);
    println!("folder    {}", s.path);
    println!("files     {} in {} folders, {} symlinks, {}", s.files, s.dirs, s.symlinks, bytes(s.bytes));
    println!("stored    {} in {} blobs", bytes(s.stored_bytes), s.blobs);
    println!("history   {} states", s.snapshots);
    println!("last scan {}", s.last_scan.as_deref().unwrap_or("never"));
    let p = &s.pending;
    if p.added + p.changed + p.deleted == 0 {
        println!("pending   nothing: the folder matches the last scan");
    } else {
        println!("pending   {} added, {} changed, {} deleted (run `cobox scan`)", p.added, p.changed, p.deleted);
    }
    for c in &s.conflicts {
        println!("conflict  {c}");
    }
    Ok(())
}
