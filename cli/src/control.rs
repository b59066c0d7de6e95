//! The CLI beside a running daemon: commands that need the home's lock ask the `cobox up`
//! that holds it, over its control socket (`$COBOX_HOME/control.sock`, the HTTP API's routes),
//! and print what they would have printed themselves. Requests and answers are the engine's
//! `api` types, the ones the routes read and write.

use anyhow::{Context, Result, bail};
use cobox_engine::api;
use http_body_util::BodyExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// A daemon answering on this home's control socket.
pub(crate) struct Daemon {
    path: std::path::PathBuf,
}

/// The running daemon of `home`, if one answers (a stale socket file does not).
pub(crate) fn daemon(home: &Path) -> Option<Daemon> {
    let path = home.join("control.sock");
    UnixStream::connect(&path).ok().map(|_| Daemon { path })
}

impl Daemon {
    /// One request with no body; the answer, or its error as an error that says it came from
    /// the daemon.
    pub(crate) fn call<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str) -> Result<T> {
        block_on(self.call_raw(method, path, Vec::new()))
    }

    /// A POST with `body` as JSON.
    pub(crate) fn post<B: serde::Serialize, T: serde::de::DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        block_on(self.post_async(path, body))
    }

    /// [`Daemon::post`] from async code (which must not start a runtime of its own).
    pub(crate) async fn post_async<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let body = serde_json::to_vec(body).context("a request to the running daemon")?;
        self.call_raw("POST", path, body).await
    }

    async fn call_raw<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str, body: Vec<u8>) -> Result<T> {
        let res = self.send(method, path, body).await?;
        let ok = res.status().is_success();
        let bytes = res.into_body().collect().await.context("reading the running daemon's answer")?.to_bytes();
        let body = String::from_utf8_lossy(&bytes);
        if !ok {
            return Err(refusal(body.into_owned()));
        }
        serde_json::from_str(&body).context("the running daemon's answer is not what this command reads")
    }

    /// One request on a new connection to the socket (HTTP/1.1, by hyper), its answer's head and
    /// the body to read.
    async fn send(&self, method: &str, path: &str, body: Vec<u8>) -> Result<hyper::Response<hyper::body::Incoming>> {
        let stream = tokio::net::UnixStream::connect(&self.path)
            .await
            .context("reaching the running daemon's control socket")?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .context("asking the running daemon")?;
        // The connection is driven beside the request; it ends with the answer.
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "cobox")
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .context("a request to the running daemon")?;
        sender.send_request(req).await.context("asking the running daemon")
    }

    /// A POST whose answer streams its progress (`?progress=1`: [`api::Progressed`] lines),
    /// drawn on `progress` as it arrives; `body` (`None`: empty) as JSON.
    pub(crate) fn post_progress<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
        progress: &dyn cobox_engine::Progress,
    ) -> Result<T> {
        let body = match body {
            Some(b) => serde_json::to_vec(b).context("a request to the running daemon")?,
            None => Vec::new(),
        };
        let mut result = None;
        let mut handle = |line: &str| -> Result<()> {
            if line.trim().is_empty() {
                return Ok(());
            }
            let event: api::Progressed<T> =
                serde_json::from_str(line).context("the running daemon's progress is not what this command reads")?;
            match event {
                api::Progressed::Start { phase, total } => progress.start(&phase, total),
                api::Progressed::Advance(n) => progress.advance(n),
                api::Progressed::Warn(w) => progress.warn(&w),
                api::Progressed::Error(e) => bail!("{e} (answered by the running daemon)"),
                api::Progressed::Result(r) => result = Some(r),
            }
            Ok(())
        };
        block_on(async {
            let res = self.send("POST", &format!("{path}?progress=1"), body).await?;
            if !res.status().is_success() {
                let bytes = res.into_body().collect().await.context("reading the running daemon's answer")?.to_bytes();
                return Err(refusal(String::from_utf8_lossy(&bytes).into_owned()));
            }
            // Lines as they come, whatever the frames they arrive in.
            let mut body = res.into_body();
            let mut pending: Vec<u8> = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.context("reading the running daemon's progress")?;
                let Some(data) = frame.data_ref() else { continue };
                pending.extend_from_slice(data);
                while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    handle(&String::from_utf8_lossy(&line))?;
                }
            }
            handle(&String::from_utf8_lossy(&pending))
        })?;
        result.context("the running daemon ended without a result")
    }
}

/// Run a request to the daemon to its end on a runtime of its own (the commands that call
/// these are not async).
fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}

/// The daemon's refusal as an error: its [`api::Failed`] words, or the body as it came.
fn refusal(body: String) -> anyhow::Error {
    let why = serde_json::from_str::<api::Failed>(&body).map(|f| f.error).unwrap_or(body);
    anyhow::anyhow!("{why} (answered by the running daemon)")
}

/// A path segment, percent-encoded.
pub(crate) fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
