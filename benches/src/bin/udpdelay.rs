//! A UDP relay that delays every datagram, for measuring sync over long round trips where the
//! kernel has no `netem` (this VM): `udpdelay LISTEN UPSTREAM BIND_IP DELAY_MS [LOSS_PERCENT]`.
//!
//! Datagrams from a client arriving at LISTEN go to UPSTREAM from a socket bound at BIND_IP (one
//! per client), and the replies go back the same way; each waits DELAY_MS first, so the round
//! trip grows by twice that; with LOSS_PERCENT, that share of datagrams (either way) is dropped
//! at random. `scripts/wan-bench.sh` puts the two devices in separate network
//! namespaces so this relay is the only path between them.

use anyhow::{Context, Result};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::time::Instant;

/// A datagram, when it may leave, and where to.
type Delayed = (Instant, Vec<u8>, SocketAddr);

/// Whether to drop the next datagram: true `loss` percent of the time (xorshift; no need for
/// a good generator here).
fn lose(state: &mut u64, loss: f64) -> bool {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    loss > 0.0 && (*state % 1_000_000) as f64 / 10_000.0 < loss
}

/// Sends what it is given through `sock` once each datagram's time has come, dropping `loss`
/// percent. The delay is the same for all, so the queue is already in order.
fn delayed_sender(sock: Arc<UdpSocket>, loss: f64) -> UnboundedSender<Delayed> {
    let (tx, mut rx) = unbounded_channel::<Delayed>();
    tokio::spawn(async move {
        // Each direction its own seed (the clock and its socket's port), so drops do not pair up.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let port = sock.local_addr().map_or(0, |a| a.port());
        let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (u64::from(nanos) << 16) ^ u64::from(port);
        let mut queue: VecDeque<Delayed> = VecDeque::new();
        loop {
            let Some(&(due, _, _)) = queue.front() else {
                match rx.recv().await {
                    Some(d) => queue.push_back(d),
                    None => return,
                }
                continue;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {
                    while queue.front().is_some_and(|d| d.0 <= Instant::now()) {
                        if let Some((_, bytes, to)) = queue.pop_front()
                            && !lose(&mut rng, loss)
                        {
                            let _ = sock.send_to(&bytes, to).await;
                        }
                    }
                }
                d = rx.recv() => match d {
                    Some(d) => queue.push_back(d),
                    None => return,
                },
            }
        }
    });
    tx
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: udpdelay LISTEN UPSTREAM BIND_IP DELAY_MS [LOSS_PERCENT]";
    let listen: SocketAddr = args.first().context(usage)?.parse()?;
    let upstream: SocketAddr = args.get(1).context(usage)?.parse()?;
    let bind_ip: IpAddr = args.get(2).context(usage)?.parse()?;
    let delay = Duration::from_millis(args.get(3).context(usage)?.parse()?);
    let loss: f64 = args.get(4).map(|l| l.parse()).transpose()?.unwrap_or(0.0);
    let front = Arc::new(UdpSocket::bind(listen).await?);
    let to_clients = delayed_sender(front.clone(), loss);
    let mut to_upstream: HashMap<SocketAddr, UnboundedSender<Delayed>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, client) = front.recv_from(&mut buf).await?;
        let tx = match to_upstream.get(&client) {
            Some(tx) => tx.clone(),
            None => {
                let sock = Arc::new(UdpSocket::bind((bind_ip, 0)).await?);
                let back = to_clients.clone();
                let s = sock.clone();
                tokio::spawn(async move {
                    let mut b = vec![0u8; 65536];
                    while let Ok((n, _)) = s.recv_from(&mut b).await {
                        let _ = back.send((Instant::now() + delay, b[..n].to_vec(), client));
                    }
                });
                let tx = delayed_sender(sock, loss);
                to_upstream.insert(client, tx.clone());
                tx
            }
        };
        let _ = tx.send((Instant::now() + delay, buf[..n].to_vec(), upstream));
    }
}
