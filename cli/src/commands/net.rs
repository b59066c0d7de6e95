use crate::Ctx;
use anyhow::{Context, Result, bail};
use cobox_engine::sync::net::{Log, NetConfig, Node, parse_peer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

fn stderr_log() -> Log {
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
    let space = ctx.open_space(&home, &a.space)?;
    let id = space.info().id;
    let peers: Vec<String> = if a.peer.is_empty() {
        home.peers()?.into_iter().map(|(dev, addrs)| format!("{dev}@{}", addrs.join(","))).collect()
    } else {
        a.peer.clone()
    };
    if peers.is_empty() {
        bail!("no peer to sync with: pass --peer ID@IP:PORT (the other device's `cobox up` prints it)");
    }
    let cfg = NetConfig { bind: None, no_relay: a.net.no_relay, relay: a.net.relay.clone(), relay_ca_der: Vec::new() };
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
    /// Seconds between rescans and syncs with known peers.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    #[command(flatten)]
    net: NetArgs,
}

pub(crate) fn up(ctx: &Ctx, a: UpArgs) -> Result<()> {
    let home = ctx.open_home()?;
    let mut spaces = Vec::new();
    for info in home.spaces()? {
        spaces.push(ctx.open_space(&home, &info.id.to_string())?);
    }
    let ids: Vec<_> = spaces.iter().map(|s| s.info().id).collect();
    let folders: Vec<_> = spaces.iter().map(|s| (s.info().id, s.info().path.clone())).collect();
    let cfg =
        NetConfig { bind: a.bind, no_relay: a.net.no_relay, relay: a.net.relay.clone(), relay_ca_der: Vec::new() };
    let rt = runtime()?;
    rt.block_on(async {
        let node = Arc::new(Node::start(home.device_seed(), spaces, &cfg, stderr_log()).await?);
        let mut syncs = tokio::task::JoinSet::new();
        let addr = node.addr_string();
        let listen: Vec<String> =
            addr.split_once('@').map(|(_, a)| a.split(',').map(str::to_owned).collect()).unwrap_or_default();
        home.set_listening(&listen)?;
        println!("listening {addr}");
        eprintln!("cobox up: {} spaces, listening on {addr}; Ctrl-C stops", ids.len());
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("SIGTERM handler")?;
        // Changes in the folders arrive debounced; the periodic tick is the fallback for
        // filesystems where events are lost (network mounts) and for peers' changes.
        let (_watch, mut changed) = cobox_engine::watch::watch(&folders, Duration::from_secs(2))?;
        let mut tick = tokio::time::interval(Duration::from_secs(a.interval.max(1)));
        // The first tick fires at once: catch up with known peers on start.
        loop {
            let todo: Vec<cobox_engine::SpaceId> = tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                Some(id) = changed.recv() => vec![id],
                _ = tick.tick() => ids.clone(),
            };
            let peers = home.peers().unwrap_or_default();
            for id in &todo {
                refresh(&node, &peers, id, &mut syncs).await;
            }
            // Reap finished peer syncs.
            while syncs.try_join_next().is_some() {}
        }
        eprintln!("cobox up: shutting down");
        syncs.shutdown().await;
        if let Ok(node) = Arc::try_unwrap(node) {
            node.shutdown().await;
        }
        let _ = home.set_listening(&[]);
        Ok::<_, anyhow::Error>(())
    })
}

/// Record local changes of a space, then sync it with every known peer. Peer syncs run as
/// background tasks: dialing a peer that is off must not hold up the daemon or other peers.
async fn refresh(
    node: &Arc<Node>,
    peers: &std::collections::BTreeMap<String, Vec<String>>,
    id: &cobox_engine::SpaceId,
    syncs: &mut tokio::task::JoinSet<()>,
) {
    if let Some(s) = node.space(id) {
        let mut s = s.lock().await;
        match s.scan(&cobox_engine::NoProgress) {
            Ok(r) if r.snapshot.is_some() => {
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
