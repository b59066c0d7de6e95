//! `cobox demo`: the whole story in a temp dir on loopback, through the engine's public API:
//! two member devices and a seeder, offline edits merged with a conflict copy, an agreement
//! proposed and countersigned, an audit, then every member device lost and the folder
//! restored from the seeder alone.

use crate::args::bytes;
use crate::args::runtime;
use anyhow::{Context, Result, bail, ensure};
use cobox_engine::codes::{Invite, PeerAddr};
use cobox_engine::sync::net::{NetConfig, Node, NodeSetup, parse_peer};
use cobox_engine::{Home, NoProgress, SpaceId, agreement_service};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Keep the demo's directory (its path is printed) instead of deleting it.
    #[arg(long)]
    keep: bool,
}

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

/// Path → BLAKE3 of the content, for every file under `root`.
fn tree(root: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root)?.to_string_lossy().into_owned();
                out.insert(rel, blake3::hash(&fs::read(&p)?).to_hex().to_string());
            }
        }
    }
    Ok(out)
}

fn peer(node: &Node) -> Result<cobox_engine::sync::net::EndpointAddr> {
    Ok(parse_peer(&node.addr_string())?)
}

/// A device that joined `id` by an invite (the code holds no secret) redeems it with `with`,
/// which accepts it and hands over the ledger holding the space's secret; then it syncs.
async fn join_and_sync(
    node: &Node,
    root: &Path,
    id: &SpaceId,
    with: &Node,
) -> Result<cobox_engine::sync::net::SyncStats> {
    let at = PeerAddr { device: with.device(), addrs: with.addrs() };
    cobox_engine::ops::join(node, root, id, &[at], None).await.map_err(|runs| {
        let why: Vec<String> = runs.into_iter().filter_map(|r| r.result.err()).map(|e| e.to_string()).collect();
        anyhow::anyhow!("the invite was not accepted: {}", why.join("; "))
    })?;
    Ok(node.sync_until_converged(id, peer(with)?, 6).await?)
}

pub(crate) fn run(a: DemoArgs) -> Result<()> {
    let dir = tempfile_dir()?;
    println!("CoBox demo in {} (two devices and a seeder on loopback, relays off)", dir.display());
    let result = runtime()?.block_on(story(&dir));
    if a.keep {
        println!("\nkept {}", dir.display());
    } else {
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

fn tempfile_dir() -> Result<PathBuf> {
    let mut r = [0u8; 6];
    cobox_engine::random_bytes(&mut r);
    let d = std::env::temp_dir().join(format!("cobox-demo-{}", hex::encode(r)));
    fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

async fn story(dir: &Path) -> Result<()> {
    let cfg = NetConfig { bind: Some("127.0.0.1:0".parse()?), no_relay: true, ..NetConfig::default() };
    let (desk_root, laptop_root, seeder_root, new_root) =
        (dir.join("desk-home"), dir.join("laptop-home"), dir.join("seeder-home"), dir.join("new-home"));
    let (desk_dir, laptop_dir, new_dir) = (dir.join("desk"), dir.join("laptop"), dir.join("restored"));

    step(1, "the desk creates a space over a folder and scans it");
    fs::create_dir_all(desk_dir.join("minutes"))?;
    fs::write(desk_dir.join("minutes/assembly.txt"), "minutes of the general assembly\n")?;
    fs::write(desk_dir.join("budget.txt"), "budget: 1200\n")?;
    let mut photo = vec![0u8; 6 << 20];
    cobox_engine::random_bytes(&mut photo);
    fs::write(desk_dir.join("photo.raw"), &photo)?;
    let desk = Home::open(&desk_root)?;
    let info = desk.create_space("coop", &desk_dir)?;
    let id: SpaceId = info.id;
    let mut space = desk.open_space("coop")?;
    let r = space.scan(&NoProgress)?;
    println!("    space {} holds {} files, {}", id.short(), r.files, bytes(r.bytes_total));
    let desk_node = Node::start_with(
        desk.device_seed(),
        NodeSetup { spaces: vec![space], home: Some(desk_root.clone()), ..NodeSetup::default() },
        &cfg,
    )
    .await?;
    desk_node.advertise();
    desk.set_listening(&desk_node.addrs())?;

    step(2, "a laptop joins with an invite code and syncs");
    let invite = Home::invite(&desk_root, "coop", &cobox_engine::home::InviteRequest::writer())?.encode()?;
    println!("    invite: {}...", &invite[..48]);
    // A recovery code: a manager's invite kept offline for when every device is lost. It works
    // once, at any member or seeder holding the roster.
    let ten_years = cobox_engine::now_ms() + 10 * 365 * 86_400_000;
    let recovery = cobox_engine::home::InviteRequest {
        role: cobox_engine::roster::Role::Manage,
        expires_ms: ten_years,
        name: Some("recovery".into()),
    };
    let recovery = Home::invite(&desk_root, "coop", &recovery)?.encode()?;
    let laptop = Home::open(&laptop_root)?;
    laptop.join(&Invite::parse(&invite)?, &laptop_dir, None)?;
    let laptop_node = Node::start(laptop.device_seed(), Vec::new(), &cfg).await?;
    let st = join_and_sync(&laptop_node, &laptop_root, &id, &desk_node).await?;
    println!(
        "    laptop received {} blobs ({}); its folder has {} files",
        st.received_blobs,
        bytes(st.received_bytes),
        tree(&laptop_dir)?.len()
    );

    step(3, "both edit budget.txt while apart; the laptop also adds a file; then they sync");
    fs::write(desk_dir.join("budget.txt"), "budget: 1500 (desk)\n")?;
    fs::write(laptop_dir.join("budget.txt"), "budget: 1350 (laptop)\n")?;
    fs::write(laptop_dir.join("minutes/agenda.txt"), "1. seeding agreement\n")?;
    for (node, name) in [(&desk_node, "desk"), (&laptop_node, "laptop")] {
        let s = node.space(&id).context("space open")?;
        let r = s.run(|s| s.scan(&NoProgress)).await??;
        println!("    {name} scanned: {} added, {} changed", r.added, r.changed);
    }
    laptop_node.sync_until_converged(&id, peer(&desk_node)?, 6).await?;
    let (d, l) = (tree(&desk_dir)?, tree(&laptop_dir)?);
    ensure!(d == l, "the two folders differ after syncing");
    let conflicts: Vec<&String> = d.keys().filter(|k| k.contains(".sync-conflict-")).collect();
    ensure!(conflicts.len() == 1, "expected one conflict copy, found {conflicts:?}");
    println!("    both folders are identical: {} files; both edits kept:", d.len());
    println!("      budget.txt            {}", fs::read_to_string(desk_dir.join("budget.txt"))?.trim());
    println!("      {}  {}", conflicts[0], fs::read_to_string(desk_dir.join(conflicts[0]))?.trim());

    step(4, "the desk proposes a seeding agreement; the seeder countersigns from the seed code");
    let seeder = Home::open(&seeder_root)?;
    let seeder_id = PeerAddr { device: seeder.device_id(), addrs: Vec::new() };
    let (agreement, code) =
        agreement_service::propose(&desk_root, "coop", &seeder_id, 1 << 30, 30, "keep a copy for a month")?;
    println!("    agreement {} proposed: {} for 30 days", &agreement.id[..12], bytes(agreement.quota));
    println!("    seed code: {}...", &code.encode()?[..48]);
    let seed = seeder.open_seed(&code.space, true)?;
    let seeder_node = Node::start_with(
        seeder.device_seed(),
        NodeSetup { home: Some(seeder_root.clone()), ..NodeSetup::default() },
        &cfg,
    )
    .await?;
    seeder_node.add_seed(seed, Some(cobox_engine::agreements::AgreementId(code.agreement)))?;
    let st = seeder_node.sync_until_converged(&id, peer(&desk_node)?, 6).await?;
    let list = agreement_service::list(&desk_root, cobox_engine::now_ms())?;
    let a = list.agreements.iter().find(|x| x.id == agreement.id).context("agreement in the ledger")?;
    println!(
        "    seeder took {} blobs ({}); the agreement is {}, signatures {}",
        st.received_blobs,
        bytes(st.received_bytes),
        a.state,
        if a.signatures_ok { "verified" } else { "INVALID" }
    );
    ensure!(a.state == cobox_engine::agreements::State::Active, "the agreement did not become active");
    let names: Vec<&str> = ["budget.txt", "assembly", "minutes of the general"].to_vec();
    for n in names {
        ensure!(find_bytes(&seeder_root, n.as_bytes())?.is_none(), "the seeder's files contain {n:?}");
    }
    println!("    the seeder's files contain no file name and no plaintext (checked byte by byte)");

    step(5, "the desk audits the seeder: a verified range of every blob, checked against its id, nothing downloaded");
    let rec = desk_node.audit(&id, peer(&seeder_node)?, usize::MAX).await?;
    ensure!(rec.ok(), "the audit failed: {}/{}", rec.passed, rec.challenged);
    let status = desk_node.space(&id).context("space")?.run(|s| s.status()).await??;
    println!(
        "    {}/{} blobs proven; the space now has {} verified replica",
        rec.passed, rec.challenged, status.replicas
    );

    step(6, "disaster: the desk and the laptop are both lost");
    let expected = tree(&desk_dir)?;
    desk_node.shutdown().await;
    laptop_node.shutdown().await;
    drop((desk, laptop));
    for p in [&desk_root, &laptop_root, &desk_dir, &laptop_dir] {
        fs::remove_dir_all(p)?;
    }
    println!("    deleted both devices' homes and folders");

    step(
        7,
        "a new device joins with the recovery code (a manager's invite made in step 2) and restores from the seeder",
    );
    let fresh = Home::open(&new_root)?;
    fresh.join(&Invite::parse(&recovery)?, &new_dir, None)?;
    let new_node = Node::start(fresh.device_seed(), Vec::new(), &cfg).await?;
    let st = join_and_sync(&new_node, &new_root, &id, &seeder_node).await?;
    let got = tree(&new_dir)?;
    if got != expected {
        bail!("the restored folder differs from the lost one");
    }
    println!(
        "    received {} blobs ({}); all {} files are byte-identical to the lost folder",
        st.received_blobs,
        bytes(st.received_bytes),
        got.len()
    );
    new_node.shutdown().await;
    seeder_node.shutdown().await;
    println!("\ndemo finished: every step checked");
    Ok(())
}

/// The first file under `root` that contains `needle`.
fn find_bytes(root: &Path, needle: &[u8]) -> Result<Option<PathBuf>> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if fs::read(&p)?.windows(needle.len()).any(|w| w == needle) {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}
