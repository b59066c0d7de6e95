//! What every command shares: the network options, sizes for people and the async
//! runtime. Commands import from here; nothing here imports a command.

use anyhow::{Context, Result};
use cobox_engine::sync::congestion::Congestion;
use cobox_engine::sync::net::NetConfig;
use std::net::SocketAddr;

/// Bytes for people, in the units the app uses too.
pub(crate) fn bytes(n: u64) -> String {
    cobox_engine::units::format_bytes(n)
}

/// The peers `--peer` names (`ID[@IP:PORT,...]`), refused whole at the first malformed one.
pub(crate) fn peer_addrs(peers: &[String]) -> Result<Vec<cobox_engine::codes::PeerAddr>> {
    peers
        .iter()
        .map(|p| p.parse::<cobox_engine::codes::PeerAddr>().map_err(|e| anyhow::anyhow!("--peer {p}: {e}")))
        .collect()
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
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
    /// Upload limit for this device, per second, all peers together (e.g. 1M, 500K, 2MB).
    #[arg(long, value_name = "SIZE", value_parser = cobox_engine::units::parse_size)]
    limit_up: Option<u64>,
    /// Download limit for this device, per second, all peers together.
    #[arg(long, value_name = "SIZE", value_parser = cobox_engine::units::parse_size)]
    limit_down: Option<u64>,
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
    /// Beside a running daemon its network settings apply: say so when this command line gave
    /// others, rather than ignore them without a word.
    pub(crate) fn beside_daemon(&self) {
        let mut given = Vec::new();
        for (on, flag) in [
            (self.no_relay, "--no-relay"),
            (self.relay.is_some(), "--relay"),
            (self.no_mdns, "--no-mdns"),
            (self.congestion != Congestion::default(), "--congestion"),
            (self.limit_up.is_some(), "--limit-up"),
            (self.limit_down.is_some(), "--limit-down"),
        ] {
            if on {
                given.push(flag);
            }
        }
        if !given.is_empty() {
            eprintln!(
                "note: the running daemon does this with its own network settings; {} apply only without it",
                given.join(", ")
            );
        }
    }

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
            limit_up: self.limit_up.unwrap_or(0),
            limit_down: self.limit_down.unwrap_or(0),
        })
    }
}
