//! Moving blobs: out over the session's stream and lanes, in with checks and storing on
//! blocking threads (a member writes files as they complete).

use super::framing::{Framed, Reader, Writer};
use super::held::Held;
use super::{STALL, SyncStats, Traffic, net, net_err, reason};
use crate::error::Error;
use crate::ids::BlobId;
use crate::sync::proto::Msg;
use iroh::endpoint::Connection;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Lanes a sender opens for the chunks of one transfer (see [`Msg::Lanes`]): the most a
/// receiver accepts. At a 100 ms round trip 8 moved 294 MiB in 8.3 s against 13.5 s with 4; on
/// loopback they cost nothing measurable (docs/benchmarks.md, session 8).
const LANES: u8 = crate::sync::proto::MAX_LANES;

/// A blob on its way, with its id.
type Outgoing = (BlobId, Vec<u8>);

/// A blob read for sending, and whether it goes first on the session's stream (a change or a
/// chunk list) rather than over a lane.
type Read = (BlobId, Vec<u8>, bool);

/// The lanes of a transfer: one queue they all take from (a free lane takes the next blob, so
/// a slow one holds up no other), and the tasks writing them (each returns the bytes it sent).
struct Lanes {
    queue: tokio::sync::mpsc::Sender<Outgoing>,
    tasks: Vec<tokio::task::JoinHandle<Result<u64, Error>>>,
}

pub(super) async fn send_blobs(
    held: &Held,
    io: &mut Framed,
    ids: &[BlobId],
    stats: &mut SyncStats,
) -> Result<(), Error> {
    // Blobs are read on a blocking thread a few dozen ahead of the network.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Read>(32);
    let (store, mut ids) = (held.store(), ids.to_vec());
    let reader = tokio::task::spawn_blocking(move || {
        // Unsorted still works: the receiver then writes files only after the session.
        let first = store.send_order(&mut ids).ok();
        for (i, id) in ids.into_iter().enumerate() {
            // Asked for something we do not hold (or hold damaged): skip it, the peer keeps wanting it.
            let Ok(data) = store.get(&id) else { continue };
            let early = first.map_or_else(|| !crate::crypto::is_chunk(&data), |n| i < n);
            if tx.blocking_send((id, data, early)).is_err() {
                break;
            }
        }
    });
    // Changes and chunk lists (sent first) go on the session's stream, so the receiver can plan
    // the files; the chunks go over the lanes, each taking the next as it is free.
    let mut lanes: Option<Lanes> = None;
    let mut result = Ok(());
    while let Some((id, data, early)) = rx.recv().await {
        stats.sent_blobs += 1;
        stats.sent_bytes += data.len() as u64;
        if lanes.is_none() && early {
            if let Err(e) = io.out.send_blob(&id, data).await {
                result = Err(e);
                break;
            }
            continue;
        }
        let lanes = match &mut lanes {
            Some(l) => l,
            None => match open_lanes(io).await {
                Ok(l) => lanes.insert(l),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            },
        };
        // Every lane failed (each drops its share of the queue); their errors are collected below.
        if lanes.queue.send((id, data)).await.is_err() {
            break;
        }
    }
    drop(rx);
    let _ = reader.await;
    if let Some(Lanes { queue, tasks }) = lanes {
        drop(queue);
        for task in tasks {
            match task.await {
                Ok(Ok(n)) => io.lane_bytes += n,
                Ok(Err(e)) => result = result.and(Err(e)),
                Err(e) => result = result.and(Err(net(e))),
            }
        }
    }
    result
}

/// Announce and open the lanes, each with a task that writes blobs from the shared queue
/// until it is closed, then `Done`.
async fn open_lanes(io: &mut Framed) -> Result<Lanes, Error> {
    io.send(&Msg::Lanes(LANES)).await?;
    // A few blobs queued: the reader thread stays ahead, memory stays bounded.
    let (queue, rx) = tokio::sync::mpsc::channel::<Outgoing>(usize::from(LANES));
    let rx = Arc::new(Mutex::new(rx));
    let mut tasks = Vec::new();
    for _ in 0..LANES {
        let send = io.conn.open_uni().await.map_err(net_err)?;
        let mut w = Writer::new(send, io.out.traffic.clone());
        let rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some((id, data)) = next else { break };
                w.send_blob(&id, data).await?;
            }
            w.send(&Msg::Done).await?;
            w.finish().await;
            Ok(w.bytes)
        }));
    }
    Ok(Lanes { queue, tasks })
}

/// What a lane reader hands back: blobs and bytes taken, or why it stopped.
type LaneResult = Result<(u64, u64, u64), String>;

/// Read one lane until its `Done`: only wanted blobs are passed on. When the store has
/// stopped (a refusal), the lane is read to its end all the same, so the sender finishes and
/// then reads the refusal.
async fn read_lane(
    conn: Connection,
    traffic: Arc<Traffic>,
    wanted: Arc<std::collections::HashSet<BlobId>>,
    tx: tokio::sync::mpsc::Sender<Outgoing>,
) -> LaneResult {
    let recv = match tokio::time::timeout(STALL, conn.accept_uni()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("lane not opened: {e}")),
        Err(_) => return Err("peer stalled opening a lane".into()),
    };
    let mut r = Reader { recv, traffic, bytes: 0, first_wait: None };
    let (mut blobs, mut bytes) = (0, 0);
    let mut storing = true;
    loop {
        match r.recv().await.map_err(|e| reason(&e))? {
            Msg::Blob { id, data } => {
                if !wanted.contains(&id) {
                    return Err(format!("unrequested blob {id}"));
                }
                blobs += 1;
                bytes += data.len() as u64;
                if storing && tx.send((id, data)).await.is_err() {
                    storing = false;
                }
            }
            Msg::Done => return Ok((blobs, bytes, r.bytes)),
            _ => return Err("unexpected message on a lane".into()),
        }
    }
}

/// Receive blobs until the peer's next control message (its `Want` to a dialer, its `Done` to a
/// listener), which is returned for the session. Only blobs we asked for are accepted; a
/// blocking worker checks each against its id (and a seeder against its quota) and stores it
/// while the next frames arrive.
pub(super) async fn receive(
    held: &Held,
    io: &mut Framed,
    wanted: &[BlobId],
    stats: &mut SyncStats,
    quota: u64,
    from_seeder: bool,
    progress: &Arc<super::Receiving>,
) -> Result<Msg, Error> {
    // Large transfers to a member write files while the rest arrives.
    let stream = wanted.len() >= STREAM_FROM;
    let wanted: Arc<std::collections::HashSet<BlobId>> = Arc::new(wanted.iter().copied().collect());
    // A seeder only appends what arrives to a pack, so a short queue keeps up with the network;
    // a short queue also keeps a seeder serving several owners at once small (docs/operations.md).
    let depth = if matches!(held, Held::Seed(_)) { 8 } else { 32 };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Outgoing>(depth);
    let (h, counted) = (held.clone(), progress.clone());
    let store = tokio::task::spawn_blocking(move || -> Result<usize, Error> {
        match &h {
            Held::Member(s) => receive_member(s, &mut rx, stream, from_seeder, &counted),
            Held::Seed(s) => {
                while let Some(batch) = next_batch(&mut rx) {
                    let stored = s.run_blocking(move |s| -> Result<usize, Error> {
                        let mut n = 0;
                        for (id, data) in &batch {
                            s.receive_blob(id, data, quota)?;
                            n += data.len();
                        }
                        Ok(n)
                    })?;
                    counted.stored(stored.map_err(super::seeder_error)?);
                }
                // Durable before the session goes on: a write that failed (a full disk) is
                // refused to the member now, which would otherwise count the blobs as held.
                s.view().store.flush().map_err(|e| super::seeder_error(e.into()))?;
                Ok(0)
            }
        }
    });
    let mut had_lanes = false;
    let net_result = loop {
        match io.recv().await {
            Ok(Msg::Blob { id, data }) => {
                if !wanted.contains(&id) {
                    break Err(format!("unrequested blob {id}"));
                }
                stats.received_blobs += 1;
                stats.received_bytes += data.len() as u64;
                if tx.send((id, data)).await.is_err() {
                    break Ok(None); // the worker stopped on a bad blob; its error is reported below
                }
            }
            Ok(Msg::Lanes(n)) if !had_lanes && (1..=crate::sync::proto::MAX_LANES).contains(&n) => {
                had_lanes = true;
                let mut lanes = tokio::task::JoinSet::new();
                for _ in 0..n {
                    let (conn, traffic, w, tx) = (io.conn.clone(), io.inn.traffic.clone(), wanted.clone(), tx.clone());
                    lanes.spawn(read_lane(conn, traffic, w, tx));
                }
                // The session's stream is quiet until the lanes end (the sender's next message
                // follows them), so it is not read, nor timed, meanwhile. A lane that fails ends
                // the others.
                let mut failed = None;
                while let Some(r) = lanes.join_next().await {
                    match r.unwrap_or_else(|e| Err(e.to_string())) {
                        Ok((blobs, bytes, wire)) => {
                            stats.received_blobs += blobs;
                            stats.received_bytes += bytes;
                            io.lane_bytes += wire;
                        }
                        Err(why) => {
                            lanes.abort_all();
                            failed = failed.or(Some(why));
                        }
                    }
                }
                if let Some(why) = failed {
                    break Err(why);
                }
            }
            Ok(Msg::Lanes(_)) => break Err("unexpected message during transfer".to_owned()),
            // Any other message ends the transfer; the session judges it.
            Ok(m) => break Ok(Some(m)),
            Err(e) => {
                drop(tx);
                let _ = store.await;
                // Keep what arrived: a broken connection resumes without re-sending it.
                let _ = held.flush().await;
                return Err(e);
            }
        }
    };
    drop(tx);
    let stored = store.await.map_err(|e| Error::Net(e.to_string()))?;
    if let Ok(n) = &stored {
        stats.changes_applied += *n as u64;
    }
    if let Err(e) = stored {
        // What was stored before the refusal stays: nothing is lost on either side.
        let _ = held.flush().await;
        let why = reason(&e);
        let _ = io.send(&Msg::Refused { reason: why.clone(), code: super::refusal_of(&e) }).await;
        io.finish().await;
        // Read on (and drop) what the peer is still sending, so its writes complete and it reads
        // the refusal rather than a broken connection. Bounded: a peer cannot keep us here.
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(m) = io.recv().await {
                if m == Msg::Done {
                    break;
                }
            }
        })
        .await;
        // A full seeder knows itself so (its administrators' reports say it); any other store
        // error is the refusal the peer heard.
        return Err(match e {
            Error::SeederFull => Error::SeederFull,
            _ => Error::Refused(why),
        });
    }
    match net_result {
        Ok(Some(next)) => Ok(next),
        Ok(None) => Err(net("the blob store stopped taking blobs")),
        Err(why) => Err(io.refuse(why).await),
    }
}

/// The blobs waiting to be stored: at least one (waited for), then those already queued, up to
/// a few MiB, handed to the space's thread in one piece of work. `None` once the queue closed.
fn next_batch(rx: &mut tokio::sync::mpsc::Receiver<Outgoing>) -> Option<Vec<Outgoing>> {
    const MAX_BYTES: usize = 8 << 20;
    let first = rx.blocking_recv()?;
    let mut bytes = first.1.len();
    let mut batch = vec![first];
    while bytes < MAX_BYTES {
        match rx.try_recv() {
            Ok(b) => {
                bytes += b.1.len();
                batch.push(b);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Sessions wanting at least this many blobs write files during the transfer.
const STREAM_FROM: usize = 64;

/// A member stores what arrives. With `stream`, once the changes and chunk lists are in (the
/// first chunk shows it), files are written on the thread pool as their last chunk arrives.
/// Returns the changes applied on the way.
fn receive_member(
    s: &crate::handle::SpaceHandle,
    rx: &mut tokio::sync::mpsc::Receiver<Outgoing>,
    stream: bool,
    from_seeder: bool,
    counted: &super::Receiving,
) -> Result<usize, Error> {
    let mut streaming = None;
    let mut began = !stream;
    let result = rayon::in_place_scope(|scope| -> Result<(), Error> {
        while let Some(batch) = next_batch(rx) {
            let begin = !began;
            // Stored on the space's thread, a batch at a time; the first chunk begins the
            // streaming there too. What was stored before a failure still counts.
            let (stored, failed, st) = s.run_blocking(move |space| {
                let (mut stored, mut st) = (Vec::with_capacity(batch.len()), None);
                for (id, data) in batch {
                    let r = if from_seeder {
                        space.receive_sealed_blob(&id, &data)
                    } else {
                        space.receive_blob(&id, &data)
                    };
                    if let Err(e) = r {
                        return (stored, Some(e), st);
                    }
                    if begin && st.is_none() && space.keys.peek_kind(&data) == Ok(crate::crypto::BlobKind::Chunk) {
                        // Cannot plan (e.g. a chunk list that does not decrypt): all is written after.
                        st = Some(space.begin_streaming().ok());
                    }
                    stored.push((id, data.len()));
                }
                (stored, None, st)
            })?;
            if let Some(st) = st {
                began = true;
                streaming = st;
            }
            for (id, n) in stored {
                counted.stored(n);
                if let Some(st) = streaming.as_mut() {
                    for f in st.arrived(&id) {
                        let files = st.files();
                        scope.spawn(move |_| files.advance(f));
                    }
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(())
    });
    // Written files are recorded even when the session broke off.
    let changes = match streaming {
        Some(st) => s.run_blocking(move |s| s.end_streaming(st))??,
        None => 0,
    };
    result.map(|()| changes)
}
