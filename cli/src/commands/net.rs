use crate::Ctx;
use crate::args::{NetArgs, runtime};
use anyhow::{Context, Result, bail};
use cobox_engine::DeviceId;
use cobox_engine::daemon::Schedule;
use cobox_engine::seeder_admin;
use cobox_engine::sync::net::Node;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub(crate) struct SyncArgs {
    /// Space name or id.
    pub(crate) space: String,
    /// The peer: ID@IP:PORT (several addresses separated by commas). Default: every peer in the address book.
    #[arg(long)]
    pub(crate) peer: Vec<String>,
    #[command(flatten)]
    net: NetArgs,
}

pub(crate) fn sync(ctx: &Ctx, a: SyncArgs) -> Result<()> {
    // Beside a running daemon, it syncs (with its own network settings) and answers.
    let results = match crate::control::daemon(&ctx.home) {
        Some(d) => {
            a.net.beside_daemon();
            let body = cobox_engine::api::SyncPeers { peers: a.peer.clone() };
            let path = format!("/api/spaces/{}/sync", crate::control::segment(&a.space));
            let answers: Vec<cobox_engine::api::SyncRun> =
                d.post(&path, &body).with_context(|| format!("syncing {:?}", a.space))?;
            if answers.is_empty() {
                bail!("no peer to sync with: pass --peer ID@IP:PORT (the other device's `cobox up` prints it)");
            }
            answers
                .into_iter()
                .map(|run| {
                    let r = match run.ran {
                        cobox_engine::api::Ran::Stats(st) => Ok(st),
                        cobox_engine::api::Ran::Error(e) => Err(anyhow::anyhow!("{e}")),
                    };
                    (run.peer, r)
                })
                .collect()
        }
        None => sync_here(ctx, &a)?,
    };
    let mut ok = 0;
    let mut last_err = None;
    let mut report = Vec::new();
    let mut not_written = 0;
    for (p, r) in results {
        match r {
            Ok(stats) => {
                ok += 1;
                not_written = not_written.max(stats.not_written);
                report.push(serde_json::json!({ "peer": p, "stats": stats }));
                if !ctx.json {
                    println!(
                        "in sync with {}: received {} blobs ({}), sent {} blobs ({}), {} changes applied",
                        &p[..8.min(p.len())],
                        stats.received_blobs,
                        crate::args::bytes(stats.received_bytes),
                        stats.sent_blobs,
                        crate::args::bytes(stats.sent_bytes),
                        stats.changes_applied
                    );
                }
                if let Some(st) = stats.stale {
                    eprintln!(
                        "warning: seeder {} handed over less than members had: device {} noted {} heads on {} that \
                         this device lacks. Its copy is stale; sync with another seeder or a member.",
                        &p[..8.min(p.len())],
                        st.device.short(),
                        st.missing,
                        chrono::DateTime::from_timestamp_millis(st.time_ms).map(|t| t.to_rfc3339()).unwrap_or_default()
                    );
                }
            }
            Err(e) => {
                eprintln!("warning: sync with {p} failed: {e}");
                last_err = Some(e);
            }
        }
    }
    if ctx.json {
        ctx.print_json(&report)?;
    }
    match (ok, last_err) {
        (0, Some(e))
            if e.downcast_ref::<cobox_engine::Error>().and_then(cobox_engine::Error::refusal)
                == Some(cobox_engine::sync::proto::Refusal::InviteRefused)
                && crate::control::daemon(&ctx.home).is_none() =>
        {
            // A joined space no peer ever accepted holds nothing shared: it goes, the folder stays.
            let home = ctx.open_home()?;
            let info = home.resolve(&a.space).with_context(|| format!("finding space {:?}", a.space))?;
            let pending = cobox_engine::Home::join_pending_at(home.root(), &info.id);
            if !pending && !ctx.open_space(&home, &a.space)?.unconfirmed() {
                return Err(e.context(format!("syncing {:?}", a.space)));
            }
            home.remove_space(&a.space).with_context(|| format!("removing space {:?}", a.space))?;
            Err(e.context(format!(
                "the space {:?} was removed from this device (its folder stays): ask a manager for a new invite",
                a.space
            )))
        }
        (0, Some(e)) => Err(e.context(format!("syncing {:?}", a.space))),
        // Received but not in the folder: not a success, whatever moved.
        _ if not_written > 0 => bail!(
            "{not_written} path(s) could not be written into the folder of {:?} (`cobox status {}` says which and why: a full disk, a read-only folder, something in the way); they stay pending and are written at the next sync once that is fixed",
            a.space,
            a.space
        ),
        _ => Ok(()),
    }
}

/// `cobox sync` with no daemon running: open the space, scan, sync with each peer.
fn sync_here(
    ctx: &Ctx,
    a: &SyncArgs,
) -> Result<Vec<(String, Result<cobox_engine::sync::net::SyncStats, anyhow::Error>)>> {
    let home = ctx.open_home()?;
    let id = home.resolve(&a.space).with_context(|| format!("finding space {:?}", a.space))?.id;
    let mut spaces = Vec::new();
    // A space joined by an invite is opened once a peer accepts it, in the sync.
    let _scanned = if cobox_engine::Home::join_pending_at(home.root(), &id) {
        None
    } else {
        let mut space = ctx.open_space(&home, &a.space)?;
        // Local edits go out in this sync, and the materialiser knows the folder as it is. Its
        // sessions do not scan again (the flag is never raised): one scan per command.
        let scanned = space.scan_when_flagged();
        if !space.info().audit_only {
            space
                .scan(&cobox_engine::NoProgress)
                .with_context(|| format!("scanning {}", space.info().path.display()))?;
        }
        spaces.push(space);
        Some(scanned)
    };
    let peers = crate::args::peer_addrs(&a.peer)?;
    let cfg = a.net.config(None)?;
    let rt = runtime()?;
    let runs = rt.block_on(async {
        // What the node logs (refusals, sessions) goes to stderr.
        cobox_engine::logfile::echo_only();
        let node = Node::start(home.device_seed(), spaces, &cfg).await?;
        let runs =
            cobox_engine::ops::sync(&node, home.root(), &id, &cobox_engine::ops::SyncOptions::asked(peers)).await;
        node.shutdown().await;
        runs
    })?;
    if runs.is_empty() {
        bail!("no peer to sync with: pass --peer ID@IP:PORT (the other device's `cobox up` prints it)");
    }
    Ok(runs.into_iter().map(|r| (r.peer.to_string(), r.result.map_err(anyhow::Error::new))).collect())
}

#[derive(clap::Args)]
pub(crate) struct UpArgs {
    /// Local address to listen on (default: all interfaces, a random port).
    #[arg(long, value_name = "IP:PORT")]
    bind: Option<SocketAddr>,
    /// Seconds between syncs with known peers.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    /// Seconds between full rescans of the folders. Changes are seen as they happen by watching
    /// the folders; this catches what watching misses (network mounts, lost events). A folder
    /// that cannot be watched is rescanned before every sync.
    #[arg(long, default_value_t = 3600)]
    rescan: u64,
    /// Seed for this owner device: countersign its proposals by itself (repeat for several).
    #[arg(long, value_name = "ID")]
    seed_for: Vec<String>,
    /// The largest quota accepted from --seed-for owners (e.g. 500G; default 10G).
    #[arg(long, value_name = "SIZE", value_parser = cobox_engine::units::parse_size)]
    max_quota: Option<u64>,
    /// Who runs this seeder (an organisation or a person), told to the owners it seeds for in
    /// a signed note beside each agreement, so they can count distinct organisations ("" stops).
    #[arg(long, value_name = "NAME", value_parser = cobox_engine::seeder_admin::parse_operator)]
    operator: Option<String>,
    /// Let this device administer this seeder remotely (`cobox seeder status|policy`; repeat).
    /// Without it, and with no administrator yet, `cobox up` prints a pairing code.
    #[arg(long, value_name = "ID")]
    admin: Vec<String>,
    /// Serve the HTTP JSON API here; the bearer token is in $COBOX_HOME/api-token.
    #[arg(long, value_name = "IP:PORT")]
    http: Option<SocketAddr>,
    /// Seconds between audits of this device's seeders.
    #[arg(long, default_value_t = 3600)]
    audit_every: u64,
    /// Blobs challenged per audit: a seeder missing a share f of them is caught with
    /// probability 1 - (1 - f)^N per audit.
    #[arg(long, default_value_t = cobox_engine::daemon::AUDIT_SAMPLE)]
    audit_sample: usize,
    /// Seconds between full re-hashes of each space's store; a corrupt or missing blob found
    /// is fetched again from peers (one a read meets is healed at once).
    #[arg(long, default_value_t = 7 * 86400)]
    check_every: u64,
    /// Seconds a seeder keeps a space's blobs after its agreements end.
    #[arg(long, default_value_t = 7 * 86400)]
    seed_grace: u64,
    /// Scan and hash at normal priority (by default a daemon's scans run at nice 10 and the
    /// idle I/O class, giving way to what the machine's user is doing).
    #[arg(long)]
    normal_priority: bool,
    #[command(flatten)]
    net: NetArgs,
}

pub(crate) fn up(ctx: &Ctx, a: UpArgs) -> Result<()> {
    // Before the runtime's threads: a long-running daemon gives freed blobs back.
    cobox_engine::priority::small_footprint();
    let home = Arc::new(ctx.open_home()?);
    let owners = a
        .seed_for
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<DeviceId>, _>>()
        .context("--seed-for takes a device id (`cobox id` on the owner's device)")?;
    for d in &a.admin {
        let d: DeviceId = d.parse().context("--admin takes a device id (`cobox id` on the administrator's device)")?;
        if !seeder_admin::is_admin(&ctx.home, &d)? {
            seeder_admin::add_admin(&ctx.home, d, "", cobox_engine::now_ms())?;
        }
    }
    // The standing policy (an administrator may have set it), with what this command line says
    // on top; recorded, so an administrator reads what is in force.
    let standing = seeder_admin::policy(&ctx.home)?;
    let mut p = standing.clone().unwrap_or_else(seeder_admin::default_policy);
    let given = !owners.is_empty() || a.max_quota.is_some() || a.operator.is_some();
    if !owners.is_empty() {
        p.seed_for = owners;
    }
    if let Some(q) = a.max_quota {
        p.max_quota = q;
    }
    if let Some(o) = &a.operator {
        p.operator = o.clone();
    }
    if given && standing.as_ref() != Some(&p) {
        seeder_admin::set_policy(&ctx.home, &p)?;
    }
    let schedule = Schedule {
        interval: Duration::from_secs(a.interval),
        rescan: Duration::from_secs(a.rescan),
        audit_every: Duration::from_secs(a.audit_every),
        audit_sample: a.audit_sample.max(1),
        seed_grace: Duration::from_secs(a.seed_grace),
        low_priority: !a.normal_priority,
        check_every: Duration::from_secs(a.check_every),
        ..Schedule::default()
    };
    // Limits saved in the home apply unless this command line sets its own (`Daemon::start`).
    let cfg = a.net.config(a.bind)?;
    let rt = runtime()?;
    rt.block_on(async {
        cobox_engine::logfile::init(&ctx.home, true).context("opening the log in the home (logs/)")?;
        tracing::info!("cobox up {} starting", env!("CARGO_PKG_VERSION"));
        // Nothing here reads what the daemon does (the log has it): dropped, nothing is kept.
        let (launched, _) = cobox_http::launch(home.clone(), &cfg, schedule)
            .await
            .context("starting the daemon (is the folder of every space still there?)")?;
        if let Some(e) = &launched.control_error {
            bail!("{e}; the CLI beside this daemon needs it");
        }
        let daemon = launched.daemon.clone();
        let node = daemon.node().clone();
        if !cfg.no_relay && !node.reach_relay(Duration::from_secs(5)).await {
            tracing::warn!("cobox up: no relay reached yet; handing out direct addresses only for now");
        }
        // Once the relay is known, its address goes out too.
        node.advertise();
        let addr = node.addr_string();
        home.set_listening(&node.addrs())?;
        // Made before the address goes out, so a code asked for later is not replaced by it.
        // A seeder with no administrator yet says how to get one (a laptop with spaces of its
        // own and no seeds is no seeder: it stays quiet).
        let seeds = node.held().iter().filter(|(_, h)| matches!(h, cobox_engine::sync::net::Held::Seed(_))).count();
        let seeder = seeds > 0 || !p.seed_for.is_empty() || home.spaces()?.is_empty();
        if seeder && seeder_admin::admins(&ctx.home)?.is_empty() {
            let code = seeder_admin::new_pairing(&ctx.home, node.device(), node.addrs(), cobox_engine::now_ms())?;
            eprintln!(
                "cobox up: to administer this seeder from your device (the app's Seeders screen, or \
                 `cobox seeder status`), run there, once, within a day:\n  cobox seeder pair {code}"
            );
        }
        // With --json, one JSON object per line (what a script reads), else the words.
        if ctx.json {
            println!("{}", serde_json::json!({ "listening": addr, "device": node.device().to_string() }));
        } else {
            println!("listening {addr}");
        }
        let http = match a.http {
            Some(at) => {
                let token = home.api_token()?;
                let listener =
                    tokio::net::TcpListener::bind(at).await.with_context(|| format!("binding the HTTP API to {at}"))?;
                let api = cobox_http::Api {
                    node: node.clone(),
                    root: ctx.home.clone(),
                    daemon: Some((daemon.clone(), home.clone())),
                    token_hash: blake3::hash(token.as_bytes()),
                };
                // Warned before the address goes out, so whoever waits for it has the warning too.
                if !at.ip().is_loopback() {
                    eprintln!(
                        "warning: the HTTP API listens on {at}, beyond this machine, in plain HTTP: anyone on the \
                         network path can read the bearer token and what the API returns. Bind it to 127.0.0.1, \
                         or reach it through an SSH tunnel or a TLS proxy."
                    );
                }
                let url = format!("http://{}", listener.local_addr().unwrap_or(at));
                if ctx.json {
                    println!("{}", serde_json::json!({ "http": url }));
                } else {
                    println!("http {url}");
                }
                Some(tokio::spawn(cobox_http::serve(listener, api)))
            }
            None => None,
        };
        tracing::info!("cobox up: {} spaces held, listening on {addr}; Ctrl-C stops", node.held().len());
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("SIGTERM handler")?;
        let stop = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        daemon.clone().run(stop).await;
        tracing::info!("cobox up: shutting down");
        // Awaited, so their handles on the daemon are gone before it is taken apart.
        if let Some(h) = http {
            h.abort();
            let _ = h.await;
        }
        drop((node, daemon));
        launched.shut_down().await;
        Ok::<_, anyhow::Error>(())
    })
}
