//! Seeding: `agreement propose/list/revoke`, `seed`, `audit`, `stats`.

use crate::Ctx;
use crate::args::bytes;
use crate::args::{NetArgs, runtime};
use anyhow::{Context, Result, bail};
use cobox_engine::agreement_service;
use cobox_engine::codes::{PeerAddr, SeedCode};
use cobox_engine::ops;
use cobox_engine::ops::{AUDIT_SAMPLE, AuditOptions};
use cobox_engine::sync::net::{Node, NodeSetup, parse_peer};

#[derive(clap::Subcommand)]
pub(crate) enum AgreementCmd {
    /// Sign a proposal for a seeder to store a space; prints the seed code to give it.
    Propose(ProposeArgs),
    /// Every agreement on this device: parties, quota, term, state, signatures.
    List,
    /// Print a waiting proposal's seed code again (for a seeder's operator who lost it).
    Code {
        /// Agreement id or a prefix of it (at least 6 characters).
        id: String,
    },
    /// Revoke an agreement (as its owner side or as its seeder).
    Revoke {
        /// Agreement id or a prefix of it (at least 6 characters).
        id: String,
    },
}

#[derive(clap::Args)]
pub(crate) struct ProposeArgs {
    /// Space name or id.
    space: String,
    /// The seeder's device id (`cobox id` on it), optionally with @IP:PORT.
    #[arg(long)]
    seeder: String,
    /// Bytes it may store: 500M, 20G, 1T (powers of 1024) or a plain number.
    #[arg(long, value_parser = cobox_engine::units::parse_size)]
    quota: u64,
    /// Length of the term in days.
    #[arg(long)]
    days: u32,
    /// Free-text terms.
    #[arg(long, default_value = "")]
    terms: String,
}

pub(crate) fn agreement(ctx: &Ctx, c: AgreementCmd) -> Result<()> {
    match c {
        AgreementCmd::Propose(a) => propose(ctx, a),
        AgreementCmd::List => list(ctx),
        AgreementCmd::Code { id } => {
            let code = agreement_service::seed_code(&ctx.home, &id)
                .with_context(|| format!("finding the seed code of agreement {id:?}"))?;
            let text = code.encode()?;
            if ctx.json {
                return ctx.print_json(&serde_json::json!({ "seed_code": text }));
            }
            println!("{text}");
            Ok(())
        }
        AgreementCmd::Revoke { id } => {
            let s = agreement_service::revoke(&ctx.home, &id).with_context(|| format!("revoking agreement {id:?}"))?;
            if ctx.json {
                return ctx.print_json(&s);
            }
            println!("revoked agreement {} (space {}, seeder {})", &s.id[..12], &s.space[..8], &s.seeder[..8]);
            eprintln!(
                "the seeder stops accepting blobs once it syncs the ledger, and deletes them after its grace period"
            );
            Ok(())
        }
    }
}

fn propose(ctx: &Ctx, a: ProposeArgs) -> Result<()> {
    let addr = parse_peer(&a.seeder).context("reading --seeder (expected a device id, optionally ID@IP:PORT)")?;
    let seeder = PeerAddr {
        device: cobox_engine::DeviceId(*addr.id.as_bytes()),
        addrs: a.seeder.split_once('@').map(|(_, x)| x.split(',').map(str::to_owned).collect()).unwrap_or_default(),
    };
    let (s, code) = agreement_service::propose(&ctx.home, &a.space, &seeder, a.quota, a.days, &a.terms)
        .with_context(|| format!("proposing an agreement for {:?}", a.space))?;
    let text = code.encode()?;
    if ctx.json {
        return ctx.print_json(&serde_json::json!({ "agreement": s, "seed_code": text }));
    }
    println!("{text}");
    eprintln!(
        "proposed agreement {}: {} for {} days. On the seeder run: cobox seed <the code above>",
        &s.id[..12],
        bytes(s.quota),
        a.days
    );
    if code.owner.addrs.is_empty() {
        eprintln!("note: no address is known for this device; start `cobox up` before the seeder uses the code");
    }
    Ok(())
}

fn list(ctx: &Ctx) -> Result<()> {
    let l = agreement_service::list(&ctx.home, cobox_engine::now_ms()).context("reading the ledgers")?;
    if ctx.json {
        return ctx.print_json(&l);
    }
    if l.agreements.is_empty() {
        println!("no agreements; `cobox agreement propose SPACE --seeder ID --quota SIZE --days N` makes one");
    }
    for a in &l.agreements {
        println!(
            "{}  {:<8}  space {} ({})  owner {}  seeder {}  {}  until {}  signatures {}{}",
            &a.id[..12],
            a.state,
            a.space_name.as_deref().unwrap_or("seeded"),
            &a.space[..8],
            &a.owner[..8],
            &a.seeder[..8],
            bytes(a.quota),
            a.end.get(..10).unwrap_or(&a.end),
            if a.signatures_ok { "ok" } else { "INVALID" },
            a.problem.as_deref().map(|p| format!(" ({p})")).unwrap_or_default()
        );
        if let Some(why) = &a.answer {
            println!("              the seeder answered: {}", cobox_engine::util::printable(why));
        }
        if let Some(x) = &a.last_audit {
            println!(
                "              last audit {}: {}/{} blobs {}",
                x.time,
                x.passed,
                x.challenged,
                if x.ok { "passed" } else { "FAILED" }
            );
        }
    }
    for i in &l.invalid {
        println!("invalid entry in space {}: {} (not honoured)", &i.space[..8], i.reason);
    }
    Ok(())
}

#[derive(clap::Args)]
pub(crate) struct SeedArgs {
    /// The seed code (`cobox agreement propose` on the owner's device).
    code: String,
    /// Countersign without asking (the terms are still printed first).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    net: NetArgs,
}

/// Countersign and take the space's blobs now; `cobox up` keeps the seed current.
pub(crate) fn seed(ctx: &Ctx, a: SeedArgs) -> Result<()> {
    let code = SeedCode::parse(&a.code).context("reading the seed code")?;
    if code.owner.addrs.is_empty() {
        bail!("the seed code carries no address for the owner: ask them to start `cobox up` and propose again");
    }
    if let Some(d) = crate::control::daemon(&ctx.home) {
        a.net.beside_daemon();
        return seed_through(ctx, &d, &a, &code);
    }
    let home = ctx.open_home()?;
    let cfg = a.net.config(None)?;
    let rt = runtime()?;
    let result = rt.block_on(async {
        // What the node logs (refusals, sessions) goes to stderr.
        cobox_engine::logfile::echo_only();
        let node = Node::start_with(home.device_seed(), NodeSetup::default(), &cfg).await?;
        // A first session only fetches the owner's ledger, so the terms can be shown (and
        // agreed to) before anything is countersigned or stored.
        let r = async {
            let terms = ops::seed_fetch(&node, home.root(), &code).await?;
            eprintln!("{}", terms.terms);
            let taken = match ask(a.yes) {
                Ok(()) => ops::seed_accept(&node, home.root(), &code).await,
                Err(e) => Err(e),
            };
            // Nothing is kept of a seed this command registered and did not take.
            if taken.is_err() && terms.fresh {
                ops::seed_cancel(&node, home.root(), &code)?;
            }
            taken
        }
        .await;
        node.shutdown().await;
        r
    });
    let report = result.map_err(|e| anyhow::Error::new(e).context("seeding from the owner"))?;
    if ctx.json {
        return ctx.print_json(&report);
    }
    match &report.agreement {
        Some(id) => println!(
            "seeding space {} under agreement {}: holding {} ({} blobs received); `cobox up` keeps it current",
            code.space.short(),
            &id[..12],
            bytes(report.stored_bytes),
            report.stats.received_blobs
        ),
        None => bail!("the agreement is not active (expired, revoked or not for this device); nothing is seeded"),
    }
    Ok(())
}

/// `cobox seed` beside a running daemon: it fetches the owner's ledger and says the terms;
/// asked here, it countersigns and takes the blobs, or forgets a seed it had just registered.
fn seed_through(ctx: &Ctx, d: &crate::control::Daemon, a: &SeedArgs, code: &SeedCode) -> Result<()> {
    let body = cobox_engine::api::SeedCode { code: a.code.clone() };
    let fetched: cobox_engine::ops::SeedTerms = d.post("/api/seed/fetch", &body).context("seeding from the owner")?;
    eprintln!("{}", fetched.terms);
    if let Err(e) = ask(a.yes) {
        if fetched.fresh {
            let _: cobox_engine::api::Forgotten = d.post("/api/seed/cancel", &body)?;
        }
        return Err(anyhow::Error::new(e).context("seeding from the owner"));
    }
    let v: cobox_engine::ops::SeedReport = d.post("/api/seed/accept", &body).context("seeding from the owner")?;
    if ctx.json {
        return ctx.print_json(&v);
    }
    match &v.agreement {
        Some(id) => println!(
            "seeding space {} under agreement {}: holding {} ({} blobs received); `cobox up` keeps it current",
            code.space.short(),
            &id[..12.min(id.len())],
            bytes(v.stored_bytes),
            v.stats.received_blobs
        ),
        None => bail!("the agreement is not active (expired, revoked or not for this device); nothing is seeded"),
    }
    Ok(())
}

/// Print the seed code's agreement as the owner's ledger states it and, at a terminal without
/// `--yes`, ask before countersigning.
/// Without `--yes`, ask before countersigning; with no terminal to ask at, refuse (a script
/// accepts terms only by saying so).
fn ask(yes: bool) -> Result<(), cobox_engine::Error> {
    let refused = |why: String| cobox_engine::Error::Refused(why);
    if yes {
        return Ok(());
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(refused(
            "not countersigned: there is no terminal to ask at; pass --yes to accept these terms".into(),
        ));
    }
    eprint!("countersign and hold this space's encrypted blobs? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| refused(format!("reading the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(refused("not countersigned: nothing is held".into()))
    }
}

/// The seed code's agreement as the owner's ledger `view` states it, in one line; an error if
/// the ledger lacks it or it is invalid.

#[derive(clap::Args)]
pub(crate) struct AuditArgs {
    /// Space name or id.
    space: String,
    /// Challenge every blob the space names.
    #[arg(long, conflicts_with = "sample")]
    all: bool,
    /// Blobs to challenge, drawn at random: a seeder missing a share f of them is caught with
    /// probability 1 - (1 - f)^N.
    #[arg(long, default_value_t = AUDIT_SAMPLE)]
    sample: usize,
    /// Audit only this seeder: ID@IP:PORT (default: every seeder with an active agreement).
    #[arg(long)]
    peer: Vec<String>,
    #[command(flatten)]
    net: NetArgs,
}

/// One seeder's audit: the seeder as given, the sync's failure before the audit, the result.
type AuditEntry = (String, Option<String>, Result<cobox_engine::agreement_service::AuditSummary, String>);

pub(crate) fn audit(ctx: &Ctx, a: AuditArgs) -> Result<()> {
    let results: Vec<AuditEntry> = match crate::control::daemon(&ctx.home) {
        Some(d) => {
            a.net.beside_daemon();
            let body = cobox_engine::api::Audit { all: a.all, peers: a.peer.clone() };
            let path = format!("/api/spaces/{}/audit", crate::control::segment(&a.space));
            let answers: Vec<cobox_engine::api::AuditRun> = d.post(&path, &body)?;
            if answers.is_empty() {
                bail!("space {:?} has no seeder with an active agreement to audit", a.space);
            }
            answers
                .into_iter()
                .map(|run| {
                    let r = match (run.result, run.error) {
                        (Some(r), _) => Ok(r),
                        (None, e) => Err(e.unwrap_or_else(|| "the daemon gave no result".to_owned())),
                    };
                    (run.seeder, run.sync_error, r)
                })
                .collect()
        }
        None => audit_here(ctx, &a)?,
    };
    let mut json = Vec::new();
    let mut failed = 0;
    for (t, synced, r) in results {
        let short = &t[..8.min(t.len())];
        if let Some(e) = &synced {
            eprintln!("warning: syncing with {short} failed: {e}");
        }
        match r {
            Ok(s) => {
                if !s.ok {
                    failed += 1;
                }
                if !ctx.json {
                    println!(
                        "seeder {short}: {} ({}/{} blobs proven, holds {})",
                        if s.ok { "passed" } else { "FAILED" },
                        s.passed,
                        s.challenged,
                        bytes(s.stored_bytes)
                    );
                }
                json.push(serde_json::json!({ "seeder": t, "result": s }));
            }
            Err(e) => {
                failed += 1;
                eprintln!("seeder {short}: audit could not run: {e}");
                json.push(serde_json::json!({ "seeder": t, "error": e }));
            }
        }
    }
    if ctx.json {
        ctx.print_json(&json)?;
    }
    if failed > 0 {
        bail!("{failed} of {} seeders failed or missed the audit", json.len());
    }
    Ok(())
}

/// `cobox audit` with no daemon running: open the space and audit from here.
fn audit_here(ctx: &Ctx, a: &AuditArgs) -> Result<Vec<AuditEntry>> {
    let home = ctx.open_home()?;
    let id = home.resolve(&a.space).with_context(|| format!("finding space {:?}", a.space))?.id;
    // A space joined by an invite opens once a seeder or member lets it in, in the audit.
    let spaces = if cobox_engine::Home::join_pending_at(home.root(), &id) {
        Vec::new()
    } else {
        vec![ctx.open_space(&home, &a.space)?]
    };
    let seeders = crate::args::peer_addrs(&a.peer)?;
    let opts = AuditOptions::asked(seeders, if a.all { usize::MAX } else { a.sample });
    let cfg = a.net.config(None)?;
    let rt = runtime()?;
    let results = rt.block_on(async {
        // What the node logs (refusals, sessions) goes to stderr.
        cobox_engine::logfile::echo_only();
        let node = Node::start(home.device_seed(), spaces, &cfg).await?;
        let out = cobox_engine::ops::audit(&node, home.root(), &id, &opts).await;
        node.shutdown().await;
        out
    })?;
    if results.is_empty() {
        bail!("space {:?} has no seeder with an active agreement to audit", a.space);
    }
    Ok(results
        .into_iter()
        .map(|a| {
            let r = a.result.map(|rec| cobox_engine::agreement_service::audit_summary(&rec)).map_err(|e| e.to_string());
            (a.seeder.to_string(), a.synced.err().map(|e| e.to_string()), r)
        })
        .collect())
}

pub(crate) fn stats(ctx: &Ctx) -> Result<()> {
    let st: agreement_service::Stats = match crate::control::daemon(&ctx.home) {
        Some(d) => d.call("GET", "/api/stats")?,
        None => {
            let home = ctx.open_home()?;
            agreement_service::stats(&ctx.home, cobox_engine::now_ms(), &|id| {
                home.open_seed(id, false).ok().map(|s| s.used())
            })?
        }
    };
    if ctx.json {
        return ctx.print_json(&st);
    }
    println!("seeding for others  {}", bytes(st.seeded_for_others));
    println!("others seed for us  {}", bytes(st.seeded_by_others));
    match st.share_ratio {
        Some(r) => println!("share ratio         {r:.2}"),
        None => println!("share ratio         - (nobody seeds for this device yet)"),
    }
    for (peer, p) in &st.peers {
        println!("peer {}  we seed {}  they seed {}", &peer[..8], bytes(p.seeded_for_them), bytes(p.seeded_for_us));
    }
    Ok(())
}
