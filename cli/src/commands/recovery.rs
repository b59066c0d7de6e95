//! `cobox recovery`: social recovery. A manager splits a recovery key among custodians (any
//! CoBox devices) so that a few of them together can give the space back after every device
//! is lost, while none alone learns anything; custodians prove now and then that they still
//! hold their share; a new device asks, custodians approve after comparing a fingerprint by
//! voice, and the recovery takes effect after a waiting period any member may cancel in.

use crate::Ctx;
use crate::args::{NetArgs, runtime};
use anyhow::{Context, Result, bail};
use cobox_engine::codes::PeerAddr;
use cobox_engine::ops::{Approved, RecoveryReport};
use cobox_engine::sync::net::{Node, NodeSetup};
use cobox_engine::{Home, SpaceId};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub(crate) enum RecoveryCmd {
    /// Split a new recovery key among custodians: THRESHOLD of them together rebuild it. Any
    /// earlier setup's shares become worthless.
    Setup {
        /// Space name or id.
        space: String,
        /// A custodian device (`ID` or `ID@IP:PORT`; repeat).
        #[arg(long = "custodian", value_name = "ID", required = true)]
        custodians: Vec<String>,
        /// How many custodians together rebuild the key (2 or more).
        #[arg(long)]
        threshold: usize,
        /// How long a recovery waits after it is announced before it takes effect, during
        /// which any member device can cancel it (e.g. 48h, 30m, 10s).
        #[arg(long, default_value = "48h", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Ask each custodian to prove it still holds its share (the daemon does it weekly).
    Check {
        /// Space name or id.
        space: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// A space's recovery: custodians, when each last proved its share, the threshold; the
    /// shares this device keeps for others; the recoveries it asked for.
    Status {
        /// Space name or id (default: what this device keeps and asked for).
        space: Option<String>,
    },
    /// On a new device: ask for a space back. Prints a code to give custodians by any channel
    /// and a fingerprint to read out to them. `cobox up` must run here to take their shares.
    Request {
        /// The space's id.
        space: String,
        /// The folder to restore the space into.
        #[arg(long)]
        path: PathBuf,
        /// A member or seeder to join through (`ID@IP:PORT`; repeat), beside those the
        /// custodians' shares name.
        #[arg(long)]
        peer: Vec<String>,
    },
    /// On a custodian: release this device's share to the device whose request code this is,
    /// once its fingerprint matches what the person asking reads out.
    Approve {
        /// The request code (`cobox-recover-...`).
        code: String,
        /// Do not ask to confirm the fingerprint (scripts that compared it otherwise).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Cancel a recovery of the space announced and not yet in effect: it grants nothing.
    Cancel {
        /// Space name or id.
        space: String,
    },
}

pub(crate) fn run(ctx: &Ctx, c: RecoveryCmd) -> Result<()> {
    match c {
        RecoveryCmd::Setup { space, custodians, threshold, wait, net } => {
            let custodians = crate::args::peer_addrs(&custodians)?;
            let body = cobox_engine::api::RecoverySetup {
                custodians: custodians.iter().map(ToString::to_string).collect(),
                threshold,
                wait_s: wait.as_secs(),
            };
            let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            let path = format!("/api/spaces/{}/recovery/setup", crate::control::segment(&space));
            let r: RecoveryReport = with_node(ctx, &net, &path, Some(&body), |node, root| async move {
                cobox_engine::ops::recovery_setup(&node, &root, &space, custodians, threshold, wait_ms).await
            })
            .context("setting up recovery")?;
            print_report(ctx, &r)?;
            if r.custodians.iter().any(|c| !c.delivered) {
                eprintln!(
                    "note: custodians not reached get their share at the next check (cobox recovery check, or the daemon's weekly one)"
                );
            }
            Ok(())
        }
        RecoveryCmd::Check { space, net } => {
            let path = format!("/api/spaces/{}/recovery/check", crate::control::segment(&space));
            let r: RecoveryReport = with_node(ctx, &net, &path, None::<&()>, |node, root| async move {
                cobox_engine::ops::recovery_check(&node, &root, &space).await
            })
            .context("checking the custodians")?;
            print_report(ctx, &r)
        }
        RecoveryCmd::Status { space: Some(space) } => {
            let r = cobox_engine::ops::recovery_status(&ctx.home, &space)?;
            print_report(ctx, &r)
        }
        RecoveryCmd::Status { space: None } => {
            let kept = cobox_engine::recovery::custody(&ctx.home)?;
            let asked = cobox_engine::recovery::requests(&ctx.home)?;
            if ctx.json {
                let asked: Vec<_> = asked
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "space": SpaceId(r.request.space).to_string(),
                            "fingerprint": r.request.fingerprint(),
                            "shares": r.shares.len(),
                            "needed": r.plan.as_ref().map(|p| p.threshold),
                            "joined": r.joined,
                        })
                    })
                    .collect();
                return ctx.print_json(&serde_json::json!({ "custody": kept, "requests": asked }));
            }
            for k in &kept {
                println!(
                    "keeping   share {} of {} ({} needed) of space {} ({:?}) for device {}, dealt {}",
                    k.share,
                    k.of,
                    k.threshold,
                    &k.space[..8],
                    k.name,
                    &k.dealer[..8],
                    k.made
                );
            }
            for r in &asked {
                let need = r.plan.as_ref().map_or_else(|| "?".to_owned(), |p| p.threshold.to_string());
                let state = if r.joined { "key rebuilt, joining" } else { "waiting for custodians" };
                println!(
                    "asked     space {}: {} of {need} shares, {state}; fingerprint {}",
                    SpaceId(r.request.space).short(),
                    r.shares.len(),
                    r.request.fingerprint()
                );
            }
            if kept.is_empty() && asked.is_empty() {
                println!("this device keeps no recovery shares and asked for no recovery");
            }
            Ok(())
        }
        RecoveryCmd::Request { space, path, peer } => {
            let id: SpaceId =
                space.parse().context("the space's id (64 hex characters, as `cobox status` shows it)")?;
            for p in &peer {
                p.parse::<PeerAddr>().map_err(anyhow::Error::msg)?;
            }
            let addrs = Home::listening_at(&ctx.home).unwrap_or_default();
            if addrs.is_empty() {
                bail!("start `cobox up` on this device first: custodians send their shares to it");
            }
            let path = std::path::absolute(&path).with_context(|| format!("resolving {}", path.display()))?;
            let r = cobox_engine::recovery::request(&ctx.home, id, path, addrs, peer)?;
            let code = r.encode()?;
            if ctx.json {
                return ctx.print_json(&serde_json::json!({ "code": code, "fingerprint": r.fingerprint() }));
            }
            println!("{code}");
            eprintln!(
                "give this code to the space's recovery custodians by any channel; each runs\n  cobox recovery approve CODE\n\
                 and must see the fingerprint {} (read it out to them). The space comes back once enough\n\
                 approve and the waiting period is over; `cobox recovery status` shows how far it is.",
                r.fingerprint()
            );
            Ok(())
        }
        RecoveryCmd::Approve { code, yes, net } => {
            let request = cobox_engine::recovery::Request::parse(&code)?;
            eprintln!(
                "device {} asks for space {} back; its fingerprint is {}",
                &hex::encode(request.device)[..8],
                SpaceId(request.space).short(),
                request.fingerprint()
            );
            if !yes {
                eprint!("Does the person asking read out the same fingerprint? Release your share [y/N] ");
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer).context("reading the answer")?;
                if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    bail!("not approved: nothing was released");
                }
            }
            let body = cobox_engine::api::RecoveryApprove { code: code.clone() };
            let a: Approved = with_node(ctx, &net, "/api/recovery/approve", Some(&body), |node, root| async move {
                cobox_engine::ops::recovery_approve(&node, &root, &code).await
            })
            .context("approving the recovery")?;
            if ctx.json {
                return ctx.print_json(&a);
            }
            println!(
                "released share to device {} for space {} ({:?}): it holds {} of the {} needed",
                &a.device[..8],
                &a.space[..8],
                a.name,
                a.have,
                a.need
            );
            Ok(())
        }
        RecoveryCmd::Cancel { space } => {
            let devices = cobox_engine::recovery::cancel(&ctx.home, &space)?;
            if ctx.json {
                let d: Vec<String> = devices.iter().map(ToString::to_string).collect();
                return ctx.print_json(&serde_json::json!({ "cancelled": d }));
            }
            for d in devices {
                println!("cancelled the recovery by device {}: it grants nothing", d.short());
            }
            eprintln!("members and seeders hear of it at their next sync");
            Ok(())
        }
    }
}

/// Run a network operation through the running daemon (`path` on its control socket) or, when
/// none runs, on a node of this process's own with the device's key.
fn with_node<B, T, F, Fut>(ctx: &Ctx, net: &NetArgs, path: &str, body: Option<&B>, here: F) -> Result<T>
where
    B: serde::Serialize,
    T: serde::de::DeserializeOwned,
    F: FnOnce(std::sync::Arc<Node>, PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<T, cobox_engine::Error>>,
{
    if let Some(d) = crate::control::daemon(&ctx.home) {
        net.beside_daemon();
        return match body {
            Some(b) => d.post(path, b),
            None => d.post(path, &serde_json::json!({})),
        };
    }
    let home = ctx.open_home()?;
    let mut cfg = net.config(None)?;
    cfg.lan_discovery = false;
    let rt = runtime()?;
    rt.block_on(async {
        cobox_engine::logfile::echo_only();
        let node = std::sync::Arc::new(Node::start_with(home.device_seed(), NodeSetup::default(), &cfg).await?);
        let out = here(node.clone(), home.root().to_owned()).await;
        if let Ok(n) = std::sync::Arc::try_unwrap(node) {
            n.shutdown().await;
        }
        Ok(out?)
    })
}

fn print_report(ctx: &Ctx, r: &RecoveryReport) -> Result<()> {
    if ctx.json {
        return ctx.print_json(r);
    }
    println!(
        "recovery of {} ({}): {} of {} custodians rebuild the key; a recovery waits {} before it takes effect",
        r.name,
        &r.space[..8],
        r.threshold,
        r.custodians.len(),
        humantime::format_duration(std::time::Duration::from_secs(u64::try_from(r.wait_s).unwrap_or(0)))
    );
    for c in &r.custodians {
        let state = match (&c.proved, &c.error, c.delivered) {
            (_, _, false) => {
                format!("share not delivered yet{}", c.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())
            }
            (_, Some(e), _) => e.clone(),
            (Some(t), None, _) => format!("proved its share {t}"),
            (None, None, _) => "holds its share; not checked yet".to_owned(),
        };
        println!("custodian {} {state}", &c.device[..8]);
    }
    if let Some(w) = &r.warning {
        println!("warning: {w}");
    }
    Ok(())
}
