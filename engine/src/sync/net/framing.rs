//! Frames over one stream, counted, with small blobs gathered into full packets. The streams
//! are traits ([`ByteSink`], [`ByteSource`]) that iroh's QUIC streams and tokio's in-memory
//! `DuplexStream` both implement, so the framing is tested without a network.

use super::{STALL, Traffic, net, net_err};
use crate::error::Error;
use crate::ids::BlobId;
use crate::sync::proto::Msg;
use iroh::endpoint::{Connection, RecvStream, SendStream};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Where frames go: bytes written in order, owned buffers without a copy where the stream can.
pub(super) trait ByteSink: Send {
    /// Write all of `b`.
    fn write_all(&mut self, b: &[u8]) -> impl Future<Output = Result<(), Error>> + Send;
    /// Write an owned buffer (QUIC takes it without copying).
    fn write_owned(&mut self, b: bytes::Bytes) -> impl Future<Output = Result<(), Error>> + Send;
    /// End the stream after what was written.
    fn end(&mut self) -> impl Future<Output = ()> + Send;
}

/// Where frames come from: `Ok(None)` at the end of the stream.
pub(super) trait ByteSource: Send {
    /// Read some bytes into `buf`.
    fn read_some(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<Option<usize>, Error>> + Send;
}

impl ByteSink for SendStream {
    async fn write_all(&mut self, b: &[u8]) -> Result<(), Error> {
        SendStream::write_all(self, b).await.map_err(net_err)
    }

    async fn write_owned(&mut self, b: bytes::Bytes) -> Result<(), Error> {
        self.write_chunk(b).await.map_err(net_err)
    }

    async fn end(&mut self) {
        let _ = self.finish();
    }
}

impl ByteSource for RecvStream {
    async fn read_some(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        self.read(buf).await.map_err(net_err)
    }
}

impl ByteSink for tokio::io::DuplexStream {
    async fn write_all(&mut self, b: &[u8]) -> Result<(), Error> {
        tokio::io::AsyncWriteExt::write_all(self, b).await.map_err(net)
    }

    async fn write_owned(&mut self, b: bytes::Bytes) -> Result<(), Error> {
        tokio::io::AsyncWriteExt::write_all(self, &b).await.map_err(net)
    }

    async fn end(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
    }
}

impl ByteSource for tokio::io::DuplexStream {
    async fn read_some(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        match tokio::io::AsyncReadExt::read(self, buf).await.map_err(net)? {
            0 if !buf.is_empty() => Ok(None),
            n => Ok(Some(n)),
        }
    }
}

/// Frames out on one QUIC stream, counting bytes.
///
/// Small blobs are gathered into writes of [`GATHER`] bytes. noq-proto 1.4.0 fails a connection
/// ("too many gaps in stream buffer") when a stream holds over 1,024 received packets that it
/// cannot merge, and it never merges well-filled ones, however small. Written one by one,
/// small blobs left a sender that reads them from disk as small packets; a receiver that paused
/// reading for a moment (planning 10,000 new files) then held thousands, and a first sync of a
/// folder of 10,000 small files failed every time. Gathered, they go out as full packets, and a
/// 1.25 MB window holds ~1,090 of those: too few for noq to compact (it does at 2,048 pieces, or
/// when packets are mostly empty). quinn fixed the merging upstream (quinn-rs/quinn#2814); noq
/// 1.4.0 does not have it. The wire format is unchanged: only how writes are grouped.
pub(super) struct Writer<S: ByteSink = SendStream> {
    pub(super) send: S,
    pub(super) traffic: Arc<Traffic>,
    pub(super) bytes: u64,
    /// Small blob frames not yet written.
    pub(super) gathered: Vec<u8>,
}

/// Small blob frames are written together once they reach this many bytes.
pub(super) const GATHER: usize = 64 << 10;

impl<S: ByteSink> Writer<S> {
    pub(super) fn new(send: S, traffic: Arc<Traffic>) -> Self {
        Self { send, traffic, bytes: 0, gathered: Vec::new() }
    }

    /// Send a message now, after any gathered blobs.
    pub(super) async fn send(&mut self, m: &Msg) -> Result<(), Error> {
        let f = m.frame().map_err(|e| Error::Net(e.to_string()))?;
        self.count_sent(f.len());
        self.traffic.up.take(f.len()).await;
        self.flush().await?;
        self.send.write_all(&f).await
    }

    /// Send one blob. A large one goes out as it is, without being copied into a message; a
    /// small one is gathered with the next, and written with them or before the next message.
    pub(super) async fn send_blob(&mut self, id: &BlobId, data: Vec<u8>) -> Result<(), Error> {
        let head = crate::sync::proto::blob_head(id, data.len());
        self.count_sent(head.len() + data.len());
        self.traffic.up.take(head.len() + data.len()).await;
        if head.len() + data.len() < GATHER {
            self.gathered.extend_from_slice(&head);
            self.gathered.extend_from_slice(&data);
            return if self.gathered.len() >= GATHER { self.flush().await } else { Ok(()) };
        }
        self.flush().await?;
        self.send.write_all(&head).await?;
        self.send.write_owned(bytes::Bytes::from(data)).await
    }

    /// Write the gathered blobs.
    pub(super) async fn flush(&mut self) -> Result<(), Error> {
        if self.gathered.is_empty() {
            return Ok(());
        }
        let out = std::mem::replace(&mut self.gathered, Vec::with_capacity(GATHER + (GATHER >> 2)));
        self.send.write_owned(bytes::Bytes::from(out)).await
    }

    /// Write what is gathered and end the stream.
    pub(super) async fn finish(&mut self) {
        let _ = self.flush().await;
        self.send.end().await;
    }

    pub(super) fn count_sent(&mut self, n: usize) {
        self.bytes += n as u64;
        self.traffic.sent.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Frames in from one QUIC stream, counting bytes.
pub(super) struct Reader<R: ByteSource = RecvStream> {
    pub(super) recv: R,
    pub(super) traffic: Arc<Traffic>,
    pub(super) bytes: u64,
    /// The silence allowed before the next message begins, once, instead of [`STALL`].
    pub(super) first_wait: Option<Duration>,
}

impl<R: ByteSource> Reader<R> {
    /// Fill `buf`, or fail if the peer sends nothing for [`STALL`]. The limit is on silence,
    /// not on the whole read: an 8 MiB blob over a slow link may take minutes.
    pub(super) async fn read(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let mut filled = 0;
        while filled < buf.len() {
            let limit = if filled == 0 { self.first_wait.take().unwrap_or(STALL) } else { STALL };
            match tokio::time::timeout(limit, self.recv.read_some(&mut buf[filled..])).await {
                Ok(Ok(Some(n))) => filled += n,
                Ok(Ok(None)) => return Err(net("the peer ended the stream in the middle of a message")),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(net("peer stalled")),
            }
        }
        Ok(())
    }

    pub(super) async fn recv(&mut self) -> Result<Msg, Error> {
        self.recv_within(crate::sync::proto::MAX_FRAME).await
    }

    /// The next message, refused unread if its frame is over `max` bytes.
    pub(super) async fn recv_within(&mut self, max: usize) -> Result<Msg, Error> {
        let malformed = || Error::Refused(crate::sync::proto::FrameError::Malformed.to_string());
        let mut h = [0u8; 4];
        self.read(&mut h).await?;
        let n = Msg::check_len_within(h, max).map_err(|e| Error::Refused(e.to_string()))?;
        if n == 0 {
            return Err(malformed());
        }
        let mut tag = [0u8; 1];
        self.read(&mut tag).await?;
        let msg = if tag[0] == crate::sync::proto::BLOB_TAG {
            // Tag, id and at least one length byte, or it is not a blob frame.
            if n < 1 + 32 + 1 {
                return Err(malformed());
            }
            // Blobs are most of the traffic: read the data straight into its own buffer.
            let mut id = [0u8; 32];
            self.read(&mut id).await?;
            let mut varint = crate::sync::proto::VarintReader::default();
            let len = loop {
                let mut b = [0u8; 1];
                self.read(&mut b).await?;
                if let Some(len) = varint.feed(b[0]).map_err(|e| Error::Refused(e.to_string()))? {
                    break len as usize;
                }
            };
            if 1 + 32 + varint.len() + len != n {
                return Err(malformed());
            }
            let mut data = vec![0u8; len];
            self.read(&mut data).await?;
            Msg::Blob { id: BlobId(id), data }
        } else {
            let mut body = vec![0u8; n];
            body[0] = tag[0];
            self.read(&mut body[1..]).await?;
            Msg::decode(&body).map_err(|e| Error::Refused(e.to_string()))?
        };
        self.bytes += 4 + n as u64;
        self.traffic.received.fetch_add(4 + n as u64, std::sync::atomic::Ordering::Relaxed);
        self.traffic.down.take(4 + n).await;
        match msg {
            Msg::Refused { reason, code } => Err(Error::PeerRefused { code, reason }),
            m => Ok(m),
        }
    }
}

/// A session: framed messages both ways over one bidirectional QUIC stream, and the
/// connection it runs on (for the transfer's lanes).
pub(super) struct Framed {
    pub(super) out: Writer,
    pub(super) inn: Reader,
    pub(super) conn: Connection,
    /// Bytes moved on lanes.
    pub(super) lane_bytes: u64,
}

impl Framed {
    pub(super) fn new(conn: &Connection, send: SendStream, recv: RecvStream, traffic: &Arc<Traffic>) -> Self {
        Self {
            out: Writer::new(send, traffic.clone()),
            inn: Reader { recv, traffic: traffic.clone(), bytes: 0, first_wait: None },
            conn: conn.clone(),
            lane_bytes: 0,
        }
    }

    pub(super) async fn send(&mut self, m: &Msg) -> Result<(), Error> {
        self.out.send(m).await
    }

    /// Allow the peer `wait` of silence before its next message, once.
    pub(super) fn wait_longer_once(&mut self, wait: Duration) {
        self.inn.first_wait = Some(wait);
    }

    pub(super) async fn recv(&mut self) -> Result<Msg, Error> {
        self.recv_within(crate::sync::proto::MAX_FRAME).await
    }

    /// The next message, its frame at most `max` bytes (what the session allows now).
    pub(super) async fn recv_within(&mut self, max: usize) -> Result<Msg, Error> {
        // Whatever we gathered may be what the peer waits for before it answers.
        self.out.flush().await?;
        self.inn.recv_within(max).await
    }

    pub(super) async fn finish(&mut self) {
        self.out.finish().await;
    }

    /// Bytes sent and received in this session, lanes included.
    pub(super) fn wire_bytes(&self) -> u64 {
        self.out.bytes + self.inn.bytes + self.lane_bytes
    }

    pub(super) async fn refuse(&mut self, reason: String) -> Error {
        let _ = self.send(&Msg::Refused { reason: reason.clone(), code: crate::sync::proto::Refusal::Other }).await;
        self.finish().await;
        Error::Refused(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(window: usize) -> (Writer<tokio::io::DuplexStream>, Reader<tokio::io::DuplexStream>) {
        let (a, b) = tokio::io::duplex(window);
        let t = Arc::new(Traffic::default());
        (Writer::new(a, t.clone()), Reader { recv: b, traffic: t, bytes: 0, first_wait: None })
    }

    #[tokio::test]
    async fn messages_and_blobs_arrive_as_sent_small_blobs_gathered() {
        let (mut w, mut r) = ends(1 << 20);
        let small: Vec<(BlobId, Vec<u8>)> = (0..200u32).map(|i| (BlobId([i as u8; 32]), vec![i as u8; 500])).collect();
        let large = (BlobId([9; 32]), vec![7u8; GATHER * 3]);
        let sender = tokio::spawn(async move {
            w.send(&Msg::Lanes(3)).await.unwrap();
            for (id, d) in small {
                w.send_blob(&id, d).await.unwrap();
            }
            // Nothing written yet past the first message: 200 small blobs are still being gathered.
            let gathered = w.gathered.len();
            w.send_blob(&large.0, large.1).await.unwrap();
            w.send(&Msg::Done).await.unwrap();
            w.finish().await;
            (gathered, w.bytes)
        });
        assert_eq!(r.recv().await.unwrap(), Msg::Lanes(3));
        for i in 0..200u32 {
            assert_eq!(r.recv().await.unwrap(), Msg::Blob { id: BlobId([i as u8; 32]), data: vec![i as u8; 500] });
        }
        assert_eq!(r.recv().await.unwrap(), Msg::Blob { id: BlobId([9; 32]), data: vec![7u8; GATHER * 3] });
        assert_eq!(r.recv().await.unwrap(), Msg::Done);
        let (gathered, sent) = sender.await.unwrap();
        assert!(gathered > 0 && gathered < GATHER, "small blobs wait in one gathered write: {gathered}");
        assert_eq!(sent, r.bytes, "both ends count the same bytes");
        assert!(r.recv().await.is_err(), "the stream ended");
    }

    #[tokio::test]
    async fn a_frame_cut_short_or_oversized_is_an_error() {
        let (mut w, mut r) = ends(1 << 16);
        // A blob frame that claims more data than it carries, then the end of the stream.
        let mut head = crate::sync::proto::blob_head(&BlobId([1; 32]), 1000);
        head.extend_from_slice(&[0u8; 10]);
        w.send.write_all(&head).await.unwrap();
        w.finish().await;
        assert!(matches!(r.recv().await, Err(Error::Net(m)) if m.contains("middle of a message")));
        let (mut w, mut r) = ends(1 << 16);
        w.send.write_all(&(u32::MAX).to_le_bytes()).await.unwrap();
        assert!(matches!(r.recv().await, Err(Error::Refused(m)) if m.contains("over the")));
        // Before the peer's proof, a frame of a megabyte is refused from its length alone.
        let (mut w, mut r) = ends(1 << 16);
        w.send.write_all(&(1u32 << 20).to_le_bytes()).await.unwrap();
        let opening = crate::sync::proto::MAX_OPENING_FRAME;
        assert!(matches!(r.recv_within(opening).await, Err(Error::Refused(m)) if m.contains("65536-byte limit")));
    }

    /// A peer silent past the stall limit fails the read, unless the reader allowed it longer
    /// for that one message (a dialer writing what it received before it answers).
    #[tokio::test(start_paused = true)]
    async fn a_longer_wait_is_allowed_once() {
        let (mut w, mut r) = ends(1 << 16);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(STALL * 5).await;
            w.send(&Msg::Done).await.unwrap();
            tokio::time::sleep(STALL * 2).await;
            w.send(&Msg::Done).await.unwrap();
            w
        });
        r.first_wait = Some(STALL * 10);
        assert_eq!(r.recv().await.unwrap(), Msg::Done, "five stall limits of silence, allowed once");
        assert!(
            matches!(r.recv().await, Err(Error::Net(m)) if m.contains("stalled")),
            "the next read has the usual limit"
        );
        drop(sender.await.unwrap());
    }

    #[tokio::test]
    async fn a_refusal_reads_as_the_peers_words() {
        let (mut w, mut r) = ends(1 << 16);
        let full = crate::sync::proto::Refusal::SeederFull;
        w.send(&Msg::Refused { reason: "over quota".into(), code: full }).await.unwrap();
        let e = r.recv().await.unwrap_err();
        assert_eq!(e.to_string(), "refused: the peer refused: over quota");
        assert_eq!(e.refusal(), Some(full), "the kind travels with the words");
    }
}
