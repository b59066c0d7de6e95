//! `cobox network`: the co-op's network at a glance. For each space, how many seeders were
//! verified within the last day, each seeder's completion and scores, each member's last sync
//! and share ratio; for a seeder, what it holds for whom; the network's measures.

use crate::Ctx;
use anyhow::{Context, Result};
use cobox_engine::overview::NetworkReport;
use cobox_engine::units::format_bytes as bytes;

pub(crate) fn run(ctx: &Ctx) -> Result<()> {
    // The daemon's record is the newest (it saves every half minute); without one, the home's.
    let r: NetworkReport = match crate::control::daemon(&ctx.home) {
        Some(d) => d.call("GET", "/api/network")?,
        None => {
            let home = ctx.open_home()?;
            cobox_engine::ops::network_here(&home).context("reading the network's health")?
        }
    };
    if ctx.json {
        return ctx.print_json(&r);
    }
    let short = |d: &str| d.get(..8).unwrap_or(d).to_owned();
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    for s in &r.spaces {
        println!("space {} ({}): {}", s.name, short(&s.space), s.headline);
        for x in &s.seeders {
            println!(
                "  seeder {}{}  {}  holds {} of {} ({})  quota {} used  audit {:.2}  online {:.2}  last seen {}{}",
                short(&x.device),
                x.operator.as_deref().map_or_else(String::new, |o| format!(" ({o})")),
                x.state,
                x.held_bytes.map_or_else(|| "?".into(), bytes),
                s.needs_bytes.map_or_else(|| "?".into(), bytes),
                x.completion.map_or_else(|| "not audited".into(), pct),
                x.quota_used.map_or_else(|| "?".into(), pct),
                x.audit_score,
                x.online_score,
                x.last_seen.as_deref().unwrap_or("never"),
                if x.verified { "  verified" } else { "" }
            );
        }
        for m in &s.members {
            if m.me {
                continue;
            }
            println!(
                "  member {} ({})  last sync {}  online {:.2}  share ratio {}",
                m.name,
                short(&m.device),
                m.last_sync.as_deref().unwrap_or("never"),
                m.online_score,
                m.share_ratio.map_or_else(|| "-".into(), |x| format!("{x:.2}"))
            );
        }
    }
    for s in &r.seeding {
        println!(
            "seeding {} for {}: {} held of a {} quota",
            short(&s.space),
            s.owners.iter().map(|o| short(o)).collect::<Vec<_>>().join(", "),
            s.used.map_or_else(|| "?".into(), bytes),
            bytes(s.quota)
        );
    }
    let m = &r.measures;
    println!(
        "network: {} devices, {} seeders from {} organisations, {} active agreements, share ratio {}{}",
        m.devices,
        m.seeders,
        m.organisations,
        m.agreements,
        m.share_ratio.map_or_else(|| "-".into(), |x| format!("{x:.2}")),
        if m.under_target > 0 {
            format!(", {} space(s) below their copy target", m.under_target)
        } else {
            String::new()
        }
    );
    // The measures a week and a month ago, from the points kept.
    for days in [7, 30] {
        let then = r.at_ms - days * 86_400_000;
        if let Some(p) = r.measures_history.iter().rev().find(|p| p.start_ms <= then) {
            println!(
                "{days} days ago: {} devices, {} seeders from {} organisations, {} active agreements",
                p.devices, p.seeders, p.organisations, p.agreements
            );
        }
    }
    Ok(())
}
