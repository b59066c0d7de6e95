//! The CLI beside a running daemon: commands that need the home's lock ask the `cobox up`
//! that holds it, over its control socket (`$COBOX_HOME/control.sock`, the HTTP API's routes),
//! and print what they would have printed themselves.

use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
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
    /// One request; the answer's JSON, or its error as an error that says it came from the daemon.
    pub(crate) fn call<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str) -> Result<T> {
        self.call_with(method, path, "")
    }

    /// [`Daemon::call`] with a JSON body.
    pub(crate) fn call_with<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str, body: &str) -> Result<T> {
        let mut s = self.send(method, path, body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).context("reading the running daemon's answer")?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").context("the running daemon's answer has no body")?;
        let (code, chunked) = status(head);
        let body = if chunked { unchunk(body) } else { body.to_owned() };
        if !(200..300).contains(&code) {
            return Err(refusal(body));
        }
        serde_json::from_str(&body).context("the running daemon's answer is not what this command reads")
    }

    /// Write one request on a new connection to the socket.
    fn send(&self, method: &str, path: &str, body: &str) -> Result<UnixStream> {
        let mut s = UnixStream::connect(&self.path).context("reaching the running daemon's control socket")?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: cobox\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .context("asking the running daemon")?;
        Ok(s)
    }

    /// A request whose answer streams progress (`?progress=1`: JSON lines `start`, `advance`,
    /// `warn`, then `result` or `error`), drawn on `progress` as it arrives.
    pub(crate) fn call_progress<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &str,
        progress: &dyn cobox_engine::Progress,
    ) -> Result<T> {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(self.send(method, &format!("{path}?progress=1"), body)?);
        let mut head = String::new();
        loop {
            let mut l = String::new();
            if r.read_line(&mut l).context("reading the running daemon's answer")? == 0 || l == "\r\n" {
                break;
            }
            head.push_str(&l);
        }
        let (code, chunked) = status(&head);
        if !(200..300).contains(&code) {
            let mut rest = String::new();
            r.read_to_string(&mut rest).context("reading the running daemon's answer")?;
            return Err(refusal(if chunked { unchunk(&rest) } else { rest }));
        }
        let mut pending = String::new();
        let mut result = None;
        let mut handle = |line: &str| -> Result<()> {
            if line.trim().is_empty() {
                return Ok(());
            }
            let v: serde_json::Value =
                serde_json::from_str(line).context("the running daemon's progress is not JSON")?;
            if let Some(st) = v.get("start") {
                progress.start(st["phase"].as_str().unwrap_or(""), st["total"].as_u64().unwrap_or(0));
            } else if let Some(n) = v.get("advance").and_then(serde_json::Value::as_u64) {
                progress.advance(n);
            } else if let Some(w) = v.get("warn").and_then(serde_json::Value::as_str) {
                progress.warn(w);
            } else if let Some(e) = v.get("error").and_then(serde_json::Value::as_str) {
                bail!("{e} (answered by the running daemon)");
            } else if let Some(x) = v.get("result") {
                result = Some(x.clone());
            }
            Ok(())
        };
        loop {
            let piece = if chunked {
                let mut size = String::new();
                if r.read_line(&mut size)? == 0 {
                    break;
                }
                let n = usize::from_str_radix(size.trim(), 16).context("a damaged chunk from the running daemon")?;
                if n == 0 {
                    break;
                }
                let mut buf = vec![0u8; n + 2];
                r.read_exact(&mut buf).context("reading the running daemon's progress")?;
                buf.truncate(n);
                String::from_utf8_lossy(&buf).into_owned()
            } else {
                let mut l = String::new();
                if r.read_line(&mut l)? == 0 {
                    break;
                }
                l
            };
            pending.push_str(&piece);
            while let Some(i) = pending.find('\n') {
                let line: String = pending.drain(..=i).collect();
                handle(&line)?;
            }
        }
        handle(&pending)?;
        let v = result.context("the running daemon ended without a result")?;
        serde_json::from_value(v).context("the running daemon's answer is not what this command reads")
    }
}

/// The status code of an answer's head, and whether its body is chunked.
fn status(head: &str) -> (u16, bool) {
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, head.to_ascii_lowercase().contains("transfer-encoding: chunked"))
}

/// The daemon's refusal as an error: its `error` field, or the body as it came.
fn refusal(body: String) -> anyhow::Error {
    let why = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(body);
    anyhow::anyhow!("{why} (answered by the running daemon)")
}

/// A chunked HTTP body, joined.
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
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
