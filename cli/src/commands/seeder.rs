//! `cobox seeder`: administer seeders from an owner's device (pair, status, policy), and on a
//! seeder, make a pairing code and list or remove its administrators.

use crate::Ctx;
use crate::args::{NetArgs, bytes, runtime};
use anyhow::{Context, Result, bail};
use cobox_engine::admin::{PairCode, Policy, Report, Request, Response};
use cobox_engine::codes::PeerAddr;
use cobox_engine::seeder_admin;
use cobox_engine::sync::net::{Node, NodeSetup, dial_addr};
use cobox_engine::{DeviceId, Home, now_ms};

#[derive(clap::Subcommand)]
pub(crate) enum SeederCmd {
    /// Pair this device with a seeder as its administrator, from a code its `cobox up` printed
    /// (or by its ID@IP:PORT, when its operator started it with `--admin` this device).
    Pair {
        /// The pairing code (`cobox-pair-...`), or ID@IP:PORT.
        code: String,
        /// This device's name in the seeder's log.
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// The seeders this device administers.
    List,
    /// Give a seeder (or any device) a name on this device, shown instead of its id ("" forgets
    /// it); nobody else sees it.
    Name {
        /// The device's id.
        device: String,
        /// What to call it.
        name: String,
    },
    /// Ask seeders this device administers how they are: disk, spaces, agreements, quota per
    /// owner, last audits, recent errors and remote actions.
    Status {
        /// A seeder's id (or its first characters); default: every one.
        seeder: Option<String>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Set a seeder's standing policy: whose proposals it countersigns by itself, up to what quota.
    Policy {
        /// The seeder's id (or its first characters).
        seeder: String,
        /// Countersign this owner's proposals by itself (repeat; replaces the list).
        #[arg(long, value_name = "ID")]
        seed_for: Vec<String>,
        /// Countersign for no owner by itself any more.
        #[arg(long, conflicts_with = "seed_for")]
        no_seed_for: bool,
        /// The largest quota countersigned by itself (e.g. 500G).
        #[arg(long, value_name = "SIZE", value_parser = cobox_engine::units::parse_size)]
        max_quota: Option<u64>,
        /// Who runs the seeder (an organisation or a person), told to the owners it seeds for
        /// ("" stops telling).
        #[arg(long, value_name = "NAME", value_parser = cobox_engine::seeder_admin::parse_operator)]
        operator: Option<String>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// On a seeder: a new pairing code (works once, for a day) for a device to administer it.
    PairingCode,
    /// On a seeder: the devices that administer it.
    Admins,
    /// On a seeder: stop a device administering it.
    Unpair {
        /// The administrator's device id.
        device: String,
    },
}

/// Who sends the requests: the running daemon's endpoint when one holds the home (a second
/// endpoint with the same key would contend with it on a relay), else a node of our own.
enum Client {
    Daemon(crate::control::Daemon),
    Own(Node),
}

/// A client with this device's key: the seeder knows an administrator by the key its
/// connection proves.
async fn client(ctx: &Ctx, net: &NetArgs) -> Result<Client> {
    if let Some(d) = crate::control::daemon(&ctx.home) {
        net.beside_daemon();
        return Ok(Client::Daemon(d));
    }
    let seed = match Home::peek_device_seed(&ctx.home)? {
        Some(s) => s,
        None => ctx.open_home()?.device_seed(),
    };
    let mut cfg = net.config(None)?;
    // Dialed by the address the code or the list gives; nothing to announce on the LAN.
    cfg.lan_discovery = false;
    Ok(Client::Own(Node::start_with(seed, NodeSetup::default(), &cfg).await?))
}

impl Client {
    async fn shutdown(self) {
        if let Client::Own(node) = self {
            node.shutdown().await;
        }
    }
}

async fn ask(client: &Client, seeder: &PeerAddr, req: &Request) -> Result<Response> {
    let answer = match client {
        Client::Own(node) => node.admin(dial_addr(seeder)?, req).await?,
        Client::Daemon(d) => {
            let body = cobox_engine::api::SeederAsk { seeder: seeder.to_string(), request: req.clone() };
            d.post_async("/api/seeders/ask", &body).await?
        }
    };
    match answer {
        Response::Refused(why) => bail!("seeder {} refused: {why}", seeder.device.short()),
        r => Ok(r),
    }
}

pub(crate) fn run(ctx: &Ctx, c: SeederCmd) -> Result<()> {
    let root = ctx.home.clone();
    match c {
        SeederCmd::Pair { code, name, net } => {
            // A code, or the seeder's address when its operator named this device (--admin).
            let (seeder, req) = if code.trim().to_ascii_lowercase().starts_with(cobox_engine::admin::PAIR_PREFIX) {
                let code = PairCode::parse(&code).context("reading the pairing code")?;
                (code.seeder, Request::Pair { secret: code.secret, name })
            } else {
                let p: PeerAddr = code.parse().map_err(|e| {
                    anyhow::anyhow!("{e}: give the pairing code the seeder's `cobox up` printed, or ID@IP:PORT")
                })?;
                (Home::with_known_addrs(&root, p)?, Request::Report)
            };
            let rt = runtime()?;
            rt.block_on(async {
                let node = client(ctx, &net).await?;
                let r = ask(&node, &seeder, &req).await;
                node.shutdown().await;
                r
            })?;
            seeder_admin::remember_seeder(&root, seeder.clone(), now_ms())?;
            if ctx.json {
                return ctx.print_json(&serde_json::json!({ "paired": seeder.device.to_string() }));
            }
            println!("paired with seeder {}: `cobox seeder status` asks how it is", seeder.device);
            Ok(())
        }
        SeederCmd::List => {
            let all = seeder_admin::seeders(&root)?;
            let names = seeder_admin::local_names(&root)?;
            let name = |s: &seeder_admin::PairedSeeder| names.get(&s.seeder.device.to_string()).cloned();
            if ctx.json {
                let v: Vec<_> = all
                    .iter()
                    .map(|s| {
                        serde_json::json!({ "seeder": s.seeder.to_string(), "paired_ms": s.paired_ms, "name": name(s) })
                    })
                    .collect();
                return ctx.print_json(&v);
            }
            if all.is_empty() {
                println!("no seeders: pair with one from the code its `cobox up` prints (cobox seeder pair CODE)");
            }
            for s in all {
                let called = name(&s).map(|n| format!("  ({})", cobox_engine::util::printable(&n))).unwrap_or_default();
                println!("{}{called}  paired {}", s.seeder, cobox_engine::util::rfc3339(s.paired_ms));
            }
            Ok(())
        }
        SeederCmd::Name { device, name } => {
            let d: DeviceId = device.parse().map_err(|e| anyhow::anyhow!("{device:?}: {e}"))?;
            seeder_admin::set_local_name(&root, d, &name)?;
            match name.trim() {
                "" => println!("{} has no name here any more", d.short()),
                n => println!("{} is called {n} on this device", d.short()),
            }
            Ok(())
        }
        SeederCmd::Status { seeder, net } => {
            let targets = match seeder {
                Some(q) => vec![seeder_admin::find_seeder(&root, &q)?],
                None => seeder_admin::seeders(&root)?,
            };
            if targets.is_empty() {
                bail!("no seeders to ask: pair with one first (cobox seeder pair CODE)");
            }
            let rt = runtime()?;
            let answers = rt.block_on(async {
                let node = client(ctx, &net).await?;
                let mut out = Vec::new();
                for t in &targets {
                    out.push((
                        t.seeder.clone(),
                        ask(&node, &seeder_admin::reach(&root, &t.seeder), &Request::Report).await,
                    ));
                }
                node.shutdown().await;
                Ok::<_, anyhow::Error>(out)
            })?;
            let mut reports = Vec::new();
            let mut failed = None;
            for (who, r) in answers {
                match r {
                    Ok(Response::Report(rep)) => reports.push(rep),
                    Ok(_) => failed = Some(anyhow::anyhow!("seeder {} gave no report", who.device.short())),
                    Err(e) => {
                        eprintln!("warning: {e}");
                        failed = Some(e);
                    }
                }
            }
            if ctx.json {
                ctx.print_json(&reports)?;
            } else {
                reports.iter().for_each(print_report);
            }
            match (reports.is_empty(), failed) {
                (true, Some(e)) => Err(e),
                _ => Ok(()),
            }
        }
        SeederCmd::Policy { seeder, seed_for, no_seed_for, max_quota, operator, net } => {
            let target = seeder_admin::reach(&root, &seeder_admin::find_seeder(&root, &seeder)?.seeder);
            let owners = seed_for
                .iter()
                .map(|s| s.parse())
                .collect::<Result<Vec<DeviceId>, _>>()
                .context("--seed-for takes a device id (`cobox id` on the owner's device)")?;
            if owners.is_empty() && !no_seed_for && max_quota.is_none() && operator.is_none() {
                bail!("nothing to change: give --seed-for ID, --no-seed-for, --max-quota SIZE or --operator NAME");
            }
            let rt = runtime()?;
            let set = rt.block_on(async {
                let node = client(ctx, &net).await?;
                let r = async {
                    // Read, change what was asked, write: the rest of the policy stays.
                    let Response::Report(now) = ask(&node, &target, &Request::Report).await? else {
                        bail!("the seeder gave no report");
                    };
                    let mut p = now.policy;
                    if !owners.is_empty() || no_seed_for {
                        p.seed_for = owners;
                    }
                    if let Some(q) = max_quota {
                        p.max_quota = q;
                    }
                    if let Some(o) = &operator {
                        p.operator = o.clone();
                    }
                    match ask(&node, &target, &Request::SetPolicy(p)).await? {
                        Response::Policy(p) => Ok(p),
                        _ => bail!("the seeder did not confirm the policy"),
                    }
                }
                .await;
                node.shutdown().await;
                r
            })?;
            if ctx.json {
                return ctx.print_json(&set);
            }
            print_policy(&set);
            Ok(())
        }
        SeederCmd::PairingCode => {
            let home_id = match Home::peek_device_id(&root)? {
                Some(id) => id,
                None => ctx.open_home()?.device_id(),
            };
            // Where the running daemon listens (none: the code carries the id alone).
            let addrs = Home::listening_at(&root)?;
            let code = seeder_admin::new_pairing(&root, home_id, addrs, now_ms())?;
            if ctx.json {
                return ctx.print_json(&serde_json::json!({ "code": code }));
            }
            println!("{code}");
            eprintln!("on the device that will administer this seeder: cobox seeder pair CODE (works once, for a day)");
            Ok(())
        }
        SeederCmd::Admins => {
            let all = seeder_admin::admins(&root)?;
            if ctx.json {
                let v: Vec<_> = all
                    .iter()
                    .map(|a| serde_json::json!({ "device": a.device.to_string(), "name": a.name, "since_ms": a.since_ms }))
                    .collect();
                return ctx.print_json(&v);
            }
            if all.is_empty() {
                println!("no administrators: `cobox seeder pairing-code` makes a code to pair one");
            }
            for a in all {
                println!("{}  {}  since {}", a.device, a.name, cobox_engine::util::rfc3339(a.since_ms));
            }
            Ok(())
        }
        SeederCmd::Unpair { device } => {
            let d: DeviceId = device.parse().map_err(|e| anyhow::anyhow!("{device:?}: {e}"))?;
            if !seeder_admin::remove_admin(&root, &d)? {
                bail!("{} is not an administrator of this seeder", d.short());
            }
            println!("{} no longer administers this seeder", d.short());
            Ok(())
        }
    }
}

fn print_policy(p: &Policy) {
    let owners: Vec<String> = p.seed_for.iter().map(ToString::to_string).collect();
    println!(
        "policy    seeds for {} by itself, up to {} per agreement",
        if owners.is_empty() { "no owner".to_owned() } else { owners.join(", ") },
        bytes(p.max_quota)
    );
    if !p.operator.is_empty() {
        println!("operator  {}", p.operator);
    }
}

fn print_report(r: &Report) {
    println!("seeder    {}", r.device);
    let free = r.disk_free.map_or_else(|| "unknown".to_owned(), bytes);
    println!("disk      {} held, {} free{}", bytes(r.held_bytes), free, if r.full() { " - FULL" } else { "" });
    print_policy(&r.policy);
    for o in &r.owners {
        println!("owner     {}: {} held of {} agreed", o.owner.short(), bytes(o.used), bytes(o.quota));
    }
    for s in &r.spaces {
        let audit = s.last_audit.as_ref().map_or_else(
            || "never audited".to_owned(),
            |a| format!("last audit {} {}/{}", cobox_engine::util::rfc3339(a.at_ms), a.passed, a.challenged),
        );
        println!("space     {}: {} in {} blobs, {audit}", s.space.short(), bytes(s.bytes), s.blobs);
        for a in &s.agreements {
            println!(
                "  agreement {} from {}: {}, {}, until {}",
                &a.id[..8.min(a.id.len())],
                a.owner.short(),
                a.state,
                bytes(a.quota),
                cobox_engine::util::rfc3339(a.expires_ms)
            );
        }
    }
    for e in &r.errors {
        println!("error     {} {}", cobox_engine::util::rfc3339(e.at_ms), cobox_engine::util::printable(&e.text));
    }
    for e in &r.actions {
        println!("action    {} {}", cobox_engine::util::rfc3339(e.at_ms), cobox_engine::util::printable(&e.text));
    }
}
