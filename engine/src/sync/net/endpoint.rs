//! The iroh endpoint: identity, transport settings, relays and LAN discovery.

use super::{IDLE, NetConfig, net_err};
use crate::error::Error;
use crate::sync::proto::ALPN;
use iroh::endpoint::presets;
use iroh::{Endpoint, RelayMode, SecretKey};

/// Bind an endpoint whose identity is this device's key; what does not work (LAN discovery on a
/// network without multicast) is logged as a warning.
pub async fn endpoint(device_seed: [u8; 32], cfg: &NetConfig) -> Result<Endpoint, Error> {
    // A peer that vanishes (power cut, network gone) is noticed after IDLE with no packet;
    // keep-alives every third of it keep a quiet but live connection open.
    // Flow-control windows stay at noq's defaults (1.25 MB per stream): larger ones break
    // off (see Writer), and 1 MiB made loopback syncs slower and less even (3.2-5.2 s against
    // 3.2-3.9 s, docs/benchmarks.md). Transfers use several streams (lanes) instead.
    let transport = iroh::endpoint::QuicTransportConfig::builder()
        .congestion_controller_factory(cfg.congestion.factory())
        .keep_alive_interval(IDLE / 3)
        .default_path_keep_alive_interval(IDLE / 3)
        .default_path_max_idle_timeout(IDLE)
        .max_idle_timeout(IDLE.try_into().ok())
        // Lanes are the only unidirectional streams: allowing no more bounds what a peer can
        // make this side buffer on them to MAX_LANES windows.
        .max_concurrent_uni_streams(iroh::endpoint::VarInt::from_u32(u32::from(crate::sync::proto::MAX_LANES)))
        .build();
    let mut b = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&device_seed))
        .alpns(vec![ALPN.to_vec()])
        .transport_config(transport);
    b = if cfg.no_relay {
        b.relay_mode(RelayMode::Disabled)
    } else if let Some(url) = &cfg.relay {
        let url: iroh::RelayUrl = url.parse().map_err(|e| Error::Refused(format!("relay URL {url:?}: {e}")))?;
        b.relay_mode(RelayMode::custom([url]))
    } else {
        b.relay_mode(RelayMode::Default)
    };
    if !cfg.relay_ca_der.is_empty() {
        let roots = cfg.relay_ca_der.iter().map(|d| rustls_pki_types::CertificateDer::from(d.clone()));
        b = b.ca_tls_config(iroh::tls::CaTlsConfig::embedded().with_extra_roots(roots));
    }
    if let Some(addr) = cfg.bind {
        // Only the address asked for: the builder's own sockets on 0.0.0.0 and [::] would
        // otherwise listen on every interface beside it.
        b = b.clear_ip_transports().bind_addr(addr).map_err(net_err)?;
    }
    let ep = b.bind().await.map_err(net_err)?;
    if cfg.lan_discovery {
        // A network without multicast only loses LAN discovery; addresses and relays still work.
        match iroh_mdns_address_lookup::MdnsAddressLookup::builder().service_name("cobox").build(ep.id()) {
            Ok(mdns) => match ep.address_lookup() {
                Ok(services) => services.add(mdns),
                Err(e) => tracing::warn!("LAN discovery is off: {e}"),
            },
            Err(e) => tracing::warn!("LAN discovery is off: {e}"),
        }
    }
    Ok(ep)
}
