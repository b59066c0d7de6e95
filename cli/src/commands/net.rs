use crate::Ctx;
use anyhow::{Context, Result, bail};
use cobox_engine::DeviceId;
use cobox_engine::sync::congestion::Congestion;
use cobox_engine::sync::net::{Held, Log, NetConfig, Node, NodeSetup, SeedPolicy, parse_peer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

pub(crate) fn stderr_log() -> Log {
    Arc::new(|m: &str| eprintln!("{m}"))
}

#[derive(clap::Args)]
pub(crate) struct NetArgs {
    /// Use no relay servers: direct addresses only.
    #[arg(long)]
    no_relay: bool,
    /// Use this iroh-relay server (a cooperative's own) instead of the default ones.
    #[arg(long, value_name = "URL", conflicts_with = "no_relay")]
    relay: Option<String>,
    /// Trust this certificate (PEM or DER) for the relay: a cooperative relay's self-signed one.
    #[arg(long, value_name = "FILE", requires = "relay")]
    relay_ca: Option<std::path::PathBuf>,
    /// Do not announce or look for devices on the local network (mDNS).
    #[arg(long)]
    no_mdns: bool,
    /// Congestion control: auto (Cubic on local links, BBRv3 on long or lossy ones), cubic or bbr.
    #[arg(long, value_name = "auto|cubic|bbr", default_value = "auto")]
    congestion: Congestion,
}

/// The DER certificates in a PEM file, or the file itself when it is DER.
fn read_certs(path: &std::path::Path) -> Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the relay certificate {}", path.display()))?;
    let Ok(text) = std::str::from_utf8(&bytes) else { return Ok(vec![bytes]) };
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Ok(vec![bytes]);
    }
    let mut out = Vec::new();
    for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let body = block.split("-----END CERTIFICATE-----").next().unwrap_or("");
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        out.push(
            data_encoding::BASE64
                .decode(b64.as_bytes())
                .with_context(|| format!("{} holds a damaged PEM certificate", path.display()))?,
        );
    }
    Ok(out)
}

impl NetArgs {
    pub(crate) fn config(&self, bind: Option<SocketAddr>) -> Result<NetConfig> {
        let relay_ca_der = match &self.relay_ca {
            Some(p) => read_certs(p)?,
            None => Vec::new(),
        };
        Ok(NetConfig {
            bind,
            no_relay: self.no_relay,
            relay: self.relay.clone(),
            relay_ca_der,
            lan_discovery: !self.no_mdns,
            congestion: self.congestion,
        })
    }
}

#[derive(clap::Args)]
pub(crate) struct SyncArgs {
    /// Space name or id.
    space: String,
    /// The peer: ID@IP:PORT (several addresses separated by commas). Default: every peer in the address book.
    #[arg(long)]
    peer: Vec<String>,
    /// Exit 0 once both sides hold the same state (the default too; kept for scripts).
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    net: NetArgs,
}

pub(crate) fn sync(ctx: &Ctx, a: SyncArgs) -> Result<()> {
    let _ = a.once;
    let home = ctx.open_home()?;
    let mut space = ctx.open_space(&home, &a.space)?;
    // Local edits go out in this sync, and the materialiser knows the folder as it is. Its
    // sessions do not scan again (the flag is never raised): one scan per command.
    let _scanned = space.scan_when_flagged();
    space.scan(&cobox_engine::NoProgress).with_context(|| format!("scanning {}", space.info().path.display()))?;
    let id = space.info().id;
    let peers: Vec<String> = if a.peer.is_empty() {
        home.peers()?.into_iter().map(|(dev, addrs)| format!("{dev}@{}", addrs.join(","))).collect()
    } else {
        a.peer.clone()
    };
    if peers.is_empty() {
        bail!("no peer to sync with: pass --peer ID@IP:PORT (the other device's `cobox up` prints it)");
    }
    let cfg = a.net.config(None)?;
    let rt = runtime()?;
    let results = rt.block_on(async {
        let node = Node::start(home.device_seed(), vec![space], &cfg, stderr_log()).await?;
        let mut out = Vec::new();
        for p in &peers {
            let r = match parse_peer(p) {
                Ok(addr) => node.sync_until_converged(&id, addr, 6).await,
                Err(e) => Err(e),
            };
            out.push((p.clone(), r));
        }
        node.shutdown().await;
        Ok::<_, cobox_engine::Error>(out)
    })?;
    let mut ok = 0;
    let mut last_err = None;
    let mut report = Vec::new();
    for (p, r) in results {
        match r {
            Ok(stats) => {
                ok += 1;
                if let Some((dev, addrs)) = p.split_once('@')
                    && let Ok(d) = dev.parse()
                {
                    home.remember_peer(&d, &addrs.split(',').map(str::to_owned).collect::<Vec<_>>())?;
                }
                report.push(serde_json::json!({ "peer": p, "stats": stats }));
                if !ctx.json {
                    println!(
                        "in sync with {}: received {} blobs ({}), sent {} blobs ({}), {} changes applied",
                        &p[..8.min(p.len())],
                        stats.received_blobs,
                        super::bytes(stats.received_bytes),
                        stats.sent_blobs,
                        super::bytes(stats.sent_bytes),
                        stats.changes_applied
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
        (0, Some(e)) => Err(anyhow::Error::new(e).context(format!("syncing {:?}", a.space))),
        _ => Ok(()),
    }
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
    /// The largest quota accepted from --seed-for owners (e.g. 500G).
    #[arg(long, value_name = "SIZE", value_parser = super::seeding::parse_size, default_value = "10G")]
    max_quota: u64,
    /// Serve the HTTP JSON API here; the bearer token is in $COBOX_HOME/api-token.
    #[arg(long, value_name = "IP:PORT")]
    http: Option<SocketAddr>,
    /// Seconds between audits of this device's seeders.
    #[arg(long, default_value_t = 3600)]
    audit_every: u64,
    /// Seconds a seeder keeps a space's blobs after its agreements end.
    #[arg(long, default_value_t = 7 * 86400)]
    seed_grace: u64,
    #[command(flatten)]
    net: NetArgs,
}

pub(crate) fn up(ctx: &Ctx, a: UpArgs) -> Result<()> {
    let home = ctx.open_home()?;
    let mut spaces = Vec::new();
    let mut folders = Vec::new();
    for info in home.spaces()? {
        let mut s = ctx.open_space(&home, &info.id.to_string())?;
        folders.push((s.info().id, s.info().path.clone(), s.scan_when_flagged()));
        spaces.push(s);
    }
    let mut seeds = Vec::new();
    for s in home.seeds()? {
        seeds.push(home.open_seed(&s.space, false).with_context(|| format!("opening seed {}", s.space.short()))?);
    }
    let owners = a
        .seed_for
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<DeviceId>, _>>()
        .context("--seed-for takes a device id (`cobox id` on the owner's device)")?;
    let setup = NodeSetup {
        spaces,
        seeds,
        policy: SeedPolicy { owners, max_quota: a.max_quota, accept: Vec::new() },
        home: Some(ctx.home.clone()),
    };
    let cfg = a.net.config(a.bind)?;
    let grace_ms = i64::try_from(a.seed_grace.saturating_mul(1000)).unwrap_or(i64::MAX);
    let rt = runtime()?;
    rt.block_on(async {
        let node = Arc::new(Node::start_with(home.device_seed(), setup, &cfg, stderr_log()).await?);
        if !cfg.no_relay && !node.reach_relay(Duration::from_secs(5)).await {
            eprintln!("cobox up: no relay reached yet; handing out direct addresses only for now");
        }
        node.advertise();
        let mut syncs = tokio::task::JoinSet::new();
        let addr = node.addr_string();
        home.set_listening(&node.addrs())?;
        println!("listening {addr}");
        let _http = match a.http {
            Some(at) => {
                let token = home.api_token()?;
                let listener =
                    tokio::net::TcpListener::bind(at).await.with_context(|| format!("binding the HTTP API to {at}"))?;
                let api = super::http::Api {
                    node: node.clone(),
                    root: ctx.home.clone(),
                    token_hash: blake3::hash(token.as_bytes()),
                };
                println!("http http://{}", listener.local_addr().unwrap_or(at));
                Some(tokio::spawn(super::http::serve(listener, api)))
            }
            None => None,
        };
        eprintln!("cobox up: {} spaces held, listening on {addr}; Ctrl-C stops", node.held().len());
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("SIGTERM handler")?;
        // Changes in the folders arrive debounced; the periodic tick is the fallback for peers'
        // changes, and every --rescan seconds for filesystems where events are lost.
        let cobox_engine::watch::Watching { watcher: _watcher, mut changed, unwatched } =
            cobox_engine::watch::watch(&folders, Duration::from_secs(2))?;
        for (id, why) in unwatched {
            eprintln!("space {}: {why}; its folder is rescanned before every sync instead", id.short());
            if let Some(s) = node.space(&id) {
                s.lock().await.scan_always();
            }
        }
        let rescan_every = Duration::from_secs(a.rescan.max(1));
        let mut last_rescan: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(a.interval.max(1)));
        let every = Duration::from_secs(a.audit_every.max(1));
        let mut audit_tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // The first tick fires at once: catch up with known peers on start.
        loop {
            let (todo, full): (Vec<cobox_engine::SpaceId>, bool) = tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                Some(id) = changed.recv() => (vec![id], false),
                _ = tick.tick() => {
                    // Addresses change (a relay reached later, a new network): invites and
                    // peers get the current ones.
                    node.advertise();
                    let _ = home.set_listening(&node.addrs());
                    expire_seeds(&node, &ctx.home, grace_ms).await;
                    let full = last_rescan.is_none_or(|t| t.elapsed() >= rescan_every);
                    if full {
                        last_rescan = Some(tokio::time::Instant::now());
                    }
                    (node.held().into_iter().map(|(id, _)| id).collect(), full)
                }
                _ = audit_tick.tick() => {
                    audit_all(&node, &ctx.home, &mut syncs).await;
                    (Vec::new(), false)
                }
            };
            let peers = home.peers().unwrap_or_default();
            for id in &todo {
                refresh(&node, &peers, id, full, &mut syncs).await;
            }
            // Reap finished peer syncs.
            while syncs.try_join_next().is_some() {}
        }
        eprintln!("cobox up: shutting down");
        syncs.shutdown().await;
        if let Some(h) = _http {
            h.abort();
        }
        if let Ok(node) = Arc::try_unwrap(node) {
            node.shutdown().await;
        }
        let _ = home.set_listening(&[]);
        Ok::<_, anyhow::Error>(())
    })
}

/// Delete seeds whose agreements all ended longer than the grace period ago.
async fn expire_seeds(node: &Arc<Node>, root: &std::path::Path, grace_ms: i64) {
    let now = cobox_engine::now_ms();
    for (id, h) in node.held() {
        let Held::Seed(s) = h else { continue };
        let past = {
            let s = s.lock().await;
            s.ledger().view(now).map(|v| s.past_grace(&v, now, grace_ms)).unwrap_or(false)
        };
        if past {
            node.forget(&id);
            drop(s);
            match cobox_engine::Home::remove_seed(root, &id) {
                Ok(()) => eprintln!(
                    "space {}: agreements ended and the grace period passed; seeded blobs deleted",
                    id.short()
                ),
                Err(e) => eprintln!("space {}: deleting the expired seed failed: {e}", id.short()),
            }
        }
    }
}

/// Audit every seeder of every member space, in the background.
async fn audit_all(node: &Arc<Node>, root: &std::path::Path, syncs: &mut tokio::task::JoinSet<()>) {
    let book = cobox_engine::Home::peers_at(root).unwrap_or_default();
    for (id, h) in node.held() {
        let Held::Member(s) = h else { continue };
        let Ok(view) = s.lock().await.ledger().view(cobox_engine::now_ms()) else { continue };
        let targets = super::seeding::audit_targets(&view, &book);
        if targets.is_empty() {
            continue;
        }
        let node = node.clone();
        syncs.spawn(async move {
            for (t, r) in super::seeding::audit_seeders(&node, &id, &targets, super::seeding::AUDIT_SAMPLE).await {
                match r {
                    Ok(rec) => eprintln!(
                        "audit of {} for space {}: {}/{} blobs proven{}",
                        &t[..8],
                        id.short(),
                        rec.passed,
                        rec.challenged,
                        if rec.ok() { "" } else { " - FAILED" }
                    ),
                    Err(e) => eprintln!("audit of {} for space {} could not run: {e}", &t[..8], id.short()),
                }
            }
        });
    }
}
/// Record local changes of a space (all of them with `full`, else only if its watcher saw
/// any), then sync it with every known peer. Peer syncs run as background tasks: dialing a peer
/// that is off must not hold up the daemon or other peers.
async fn refresh(
    node: &Arc<Node>,
    peers: &std::collections::BTreeMap<String, Vec<String>>,
    id: &cobox_engine::SpaceId,
    full: bool,
    syncs: &mut tokio::task::JoinSet<()>,
) {
    if let Some(s) = node.space(id) {
        let mut s = s.lock().await;
        let scanned = if full { s.scan(&cobox_engine::NoProgress).map(Some) } else { s.scan_if_changed() };
        match scanned {
            Ok(Some(r)) if r.snapshot.is_some() => {
                eprintln!("space {}: {} added, {} changed, {} deleted", id.short(), r.added, r.changed, r.deleted)
            }
            Ok(_) => {}
            Err(e) => eprintln!("scan of {} failed: {e}", id.short()),
        }
    }
    for (dev, addrs) in peers {
        let Ok(p) = parse_peer(&format!("{dev}@{}", addrs.join(","))) else { continue };
        let (node, id, short) = (node.clone(), *id, dev.chars().take(8).collect::<String>());
        syncs.spawn(async move {
            match tokio::time::timeout(Duration::from_secs(120), node.sync_once(&id, p)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => eprintln!("sync of {} with {short} failed: {e}", id.short()),
                Err(_) => eprintln!("sync of {} with {short} timed out", id.short()),
            }
        });
    }
}
