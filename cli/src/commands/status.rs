use crate::Ctx;
use crate::args::bytes;
use anyhow::Result;

pub(crate) fn run(ctx: &Ctx, a: super::SpaceArg) -> Result<()> {
    let s: cobox_engine::Status = match crate::control::daemon(&ctx.home) {
        Some(d) => d.call("GET", &format!("/api/spaces/{}/status", crate::control::segment(&a.space)))?,
        None => {
            let home = ctx.open_home()?;
            cobox_engine::ops::status(&ctx.open_space(&home, &a.space)?, &ctx.home, &[])?
        }
    };
    if ctx.json {
        return ctx.print_json(&s);
    }
    println!("space     {} ({})", s.name, s.id);
    println!("folder    {}", s.path);
    println!("files     {} in {} folders, {} symlinks, {}", s.files, s.dirs, s.symlinks, bytes(s.bytes));
    println!("stored    {} in {} blobs", bytes(s.stored_bytes), s.blobs);
    println!("history   {} state{}", s.snapshots, if s.snapshots == 1 { "" } else { "s" });
    println!("last scan {}", s.last_scan.as_deref().unwrap_or("never"));
    let p = &s.pending;
    if p.added + p.changed + p.deleted == 0 {
        println!("pending   nothing: the folder matches the last scan");
    } else {
        println!("pending   {} added, {} changed, {} deleted (run `cobox scan`)", p.added, p.changed, p.deleted);
    }
    let live: Vec<_> = s
        .agreements
        .iter()
        .filter(|a| {
            a.state == cobox_engine::agreements::State::Active || a.state == cobox_engine::agreements::State::Proposed
        })
        .collect();
    println!(
        "replicas  {} verified of {} wanted ({} seeding agreements in force or proposed){}",
        s.replicas,
        s.replicas_target,
        live.len(),
        if s.replicas < s.replicas_target { " - below target" } else { "" }
    );
    for a in live {
        let audit = a
            .last_audit
            .as_ref()
            .map(|x| format!("last audit {} {}/{}", x.time, x.passed, x.challenged))
            .unwrap_or_else(|| "never audited".into());
        println!("seeder    {} {} {} quota, {audit}", &a.seeder[..8], a.state, bytes(a.quota));
    }
    for c in &s.conflicts {
        println!("conflict  {}", cobox_engine::util::printable(c));
    }
    if let Some(free) = s.disk_free {
        println!("disk      {} free", bytes(free));
    }
    for p in &s.peers {
        let how = match (&p.ok, &p.error) {
            (true, _) => "ok".to_owned(),
            (false, Some(e)) => format!("failed: {}", cobox_engine::util::printable(e)),
            (false, None) => "failed".to_owned(),
        };
        println!("peer      {} last session {} {how}", &p.device[..8.min(p.device.len())], p.last);
        if let Some(t) = &p.behind_since {
            println!(
                "          its copy is behind: it lacks changes a member had made by {t}; do not restore from it alone"
            );
        }
    }
    if let Some(e) = &s.last_error {
        println!("last error {} {}", e.time, e.msg);
    }
    for r in &s.recovering {
        println!("recovery  {r}");
    }
    if let Some(w) = &s.recovery_warning {
        println!("recovery  warning: {w}");
    }
    if !s.not_written.is_empty() {
        println!("not written {} path(s), retried at the next sync:", s.not_written.len());
        for w in &s.not_written {
            println!("  {w}");
        }
    }
    if s.waiting_changes > 0 {
        println!(
            "waiting: {} missing change(s) hold back edits this device received; they show once those arrive \
             (if a removed device wrote them, they never will: docs/security.md, \"Whose changes are taken\")",
            s.waiting_changes
        );
    }
    for q in &s.quarantined {
        println!("set aside change {q} (not applied: a newer CoBox may read it; the rest of the space is fine)");
    }
    Ok(())
}
