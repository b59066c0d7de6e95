//! The log. Engine code reports through `tracing`: each call site states its level and its
//! fields (`space`, `peer`, `bytes`), and a session runs in a span that carries its space and
//! peer. `cobox up` and the app install [`init`], a `tracing-subscriber` layer that writes each
//! event as one JSON object per line to `$COBOX_HOME/logs/cobox.YYYY-MM-DD.log` through
//! `tracing-appender` (a new file each day, [`KEEP`] kept); `cobox logs` reads them back.
//! One-shot commands install [`echo_only`]: what a daemon would log goes to stderr.

use crate::error::{Error, IoContext};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Daily files kept: two weeks of what the daemon did.
pub const KEEP: usize = 14;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// When (RFC 3339, UTC).
    pub time: String,
    /// When (ms since the epoch).
    pub ms: i64,
    /// `error`, `warn` (a refusal or a failure), `info` or `debug`: as the call site said.
    pub level: String,
    /// What happened.
    pub msg: String,
    /// The event's fields and those of the spans it happened in (space, peer, bytes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, serde_json::Value>,
}

impl Line {
    /// A refusal, a failure or worse.
    pub fn is_warning(&self) -> bool {
        matches!(self.level.as_str(), "warn" | "error")
    }
}

/// The log folder of a home.
pub fn dir(root: &Path) -> PathBuf {
    root.join("logs")
}

/// Log what this process's engine reports to the home's daily files; `echo`: to stderr too
/// (`cobox up`). A process logs to the first home it is set up for: a second call (tests that
/// run several daemons in one process) changes nothing.
pub fn init(root: &Path, echo: bool) -> Result<(), Error> {
    let d = dir(root);
    fs::create_dir_all(&d).at(&d)?;
    let appender = tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("cobox")
        .filename_suffix("log")
        .max_log_files(KEEP)
        .build(&d)
        .map_err(std::io::Error::other)
        .at(&d)?;
    let file = Lines(Sink::File(Mutex::new(appender))).with_filter(ours());
    let echo = echo.then(|| Echo.with_filter(ours()));
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(file).with(echo));
    Ok(())
}

/// What a daemon would log goes to stderr only (one-shot commands that run a node).
pub fn echo_only() {
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Echo.with_filter(ours())));
}

/// CoBox's own reports from info up; the libraries below (iroh, QUIC) only when they fail.
fn keep(m: &tracing::Metadata<'_>) -> bool {
    if m.target().starts_with("cobox") { *m.level() <= Level::INFO } else { *m.level() == Level::ERROR }
}

fn ours() -> tracing_subscriber::filter::FilterFn<fn(&tracing::Metadata<'_>) -> bool> {
    // The hint lets `tracing` skip the libraries' debug and trace calls (many per packet) at
    // their call sites, before any filter is asked.
    tracing_subscriber::filter::filter_fn(keep as fn(&tracing::Metadata<'_>) -> bool).with_max_level_hint(Level::INFO)
}

/// A layer that writes each event as a [`Line`] to the daily file (or keeps it, in tests).
struct Lines(Sink);

enum Sink {
    File(Mutex<tracing_appender::rolling::RollingFileAppender>),
    #[cfg(test)]
    Memory(std::sync::Arc<Mutex<Vec<Line>>>),
}

/// A subscriber that keeps each line in memory, and the lines: a test sets it as its
/// thread's default and reads what the engine logged.
#[cfg(test)]
pub(crate) fn capture() -> (impl Subscriber + Send + Sync, std::sync::Arc<Mutex<Vec<Line>>>) {
    let kept = std::sync::Arc::new(Mutex::new(Vec::new()));
    (tracing_subscriber::registry().with(Lines(Sink::Memory(kept.clone())).with_filter(ours())), kept)
}

/// A layer that prints each event's message to stderr.
struct Echo;

/// The fields a span was opened with, kept for the events inside it.
struct SpanFields(BTreeMap<String, serde_json::Value>);

#[derive(Default)]
struct Fields {
    msg: String,
    map: BTreeMap<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, serde_json::Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, serde_json::Value::String(value.to_owned()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.msg = match value {
                serde_json::Value::String(s) => s,
                v => v.to_string(),
            };
        } else {
            self.map.insert(field.name().to_owned(), value);
        }
    }
}

/// The line for `event`: its fields, then those of its spans that it does not set itself.
fn line_of<S: Subscriber + for<'a> LookupSpan<'a>>(event: &Event<'_>, ctx: &Context<'_, S>) -> Line {
    let mut f = Fields::default();
    event.record(&mut f);
    if let Some(scope) = ctx.event_scope(event) {
        for span in scope {
            if let Some(SpanFields(sf)) = span.extensions().get::<SpanFields>() {
                for (k, v) in sf {
                    f.map.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    let ms = crate::now_ms();
    Line {
        time: crate::util::rfc3339(ms),
        ms,
        level: event.metadata().level().as_str().to_ascii_lowercase(),
        msg: crate::util::printable(&f.msg).into_owned(),
        fields: f.map,
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Lines {
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(f.map));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let line = line_of(event, &ctx);
        match &self.0 {
            Sink::File(f) => {
                let Ok(mut text) = serde_json::to_string(&line) else { return };
                text.push('\n');
                // A line that cannot be written is dropped: the log must never stop the daemon.
                let _ = f.lock().unwrap_or_else(|p| p.into_inner()).write_all(text.as_bytes());
            }
            #[cfg(test)]
            Sink::Memory(kept) => kept.lock().unwrap_or_else(|p| p.into_inner()).push(line),
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Echo {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        eprintln!("{}", crate::util::printable(&f.msg));
    }
}

/// The log's files, newest first: the daily files by date, then those of older versions
/// (`cobox.log`, then `cobox.log.1` to `.5`).
fn newest_first(root: &Path) -> Vec<PathBuf> {
    let d = dir(root);
    let mut daily: Vec<String> = fs::read_dir(&d)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("cobox.") && n.ends_with(".log") && n != "cobox.log")
                .collect()
        })
        .unwrap_or_default();
    // Dated names sort as their dates.
    daily.sort_unstable_by(|a, b| b.cmp(a));
    let mut out: Vec<PathBuf> = daily.into_iter().map(|n| d.join(n)).collect();
    out.push(d.join("cobox.log"));
    out.extend((1..=5).map(|k| d.join(format!("cobox.log.{k}"))));
    out
}

/// The lines of one log file, or none when it does not exist.
fn lines_of(path: &Path) -> Result<Vec<Line>, Error> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t.lines().filter(|l| !l.trim().is_empty()).map(parse).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).at(path),
    }
}

/// The last `n` lines of the log, oldest first, across files. A line that is not JSON (a torn
/// write at a crash) is shown as its text. Older files are read only when the newer ones hold
/// fewer than `n` lines.
pub fn tail(root: &Path, n: usize) -> Result<Vec<Line>, Error> {
    let mut newest: Vec<Line> = Vec::new();
    for path in newest_first(root) {
        if newest.len() >= n {
            break;
        }
        let want = n - newest.len();
        newest.extend(lines_of(&path)?.into_iter().rev().take(want));
    }
    newest.reverse();
    Ok(newest)
}

/// The newest warning in the log (a refusal or a failure), for health reports: files are read
/// newest first, and reading stops at the first that holds one.
pub fn last_warning(root: &Path) -> Option<Line> {
    newest_first(root).iter().find_map(|p| lines_of(p).ok()?.into_iter().rev().find(Line::is_warning))
}

/// One line of the file.
pub fn parse(l: &str) -> Line {
    serde_json::from_str(l).unwrap_or_else(|_| Line {
        time: String::new(),
        ms: 0,
        level: "info".into(),
        msg: crate::util::printable(l).into_owned(),
        fields: BTreeMap::new(),
    })
}

/// The file being written now (the newest), for `cobox logs --follow`, which looks again as
/// it goes: a new day starts a new file.
pub fn live_file(root: &Path) -> PathBuf {
    newest_first(root).into_iter().find(|p| p.exists()).unwrap_or_else(|| dir(root).join("cobox.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each event is a line with the level its call site gave, its fields and its session
    /// span's; the tail reads across the daily files, newest last.
    #[test]
    fn events_are_lines_with_levels_and_fields_read_across_days() {
        let home = tempfile::tempdir().unwrap();
        let d = dir(home.path());
        fs::create_dir_all(&d).unwrap();
        let old = Line {
            time: "2026-12-05T10:00:00.000Z".into(),
            ms: 1,
            level: "info".into(),
            msg: "a day before".into(),
            fields: BTreeMap::new(),
        };
        fs::write(d.join("cobox.2026-12-05.log"), serde_json::to_string(&old).unwrap() + "\n").unwrap();
        let appender = tracing_appender::rolling::RollingFileAppender::builder()
            .filename_prefix("cobox")
            .filename_suffix("log")
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .build(&d)
            .unwrap();
        let sub = tracing_subscriber::registry().with(Lines(Sink::File(Mutex::new(appender))).with_filter(ours()));
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("session", space = "1a2b", peer = "3c4d");
            let _in = span.enter();
            tracing::info!(bytes = 42u64, "synced");
            tracing::warn!(peer = "5e6f", "refused: not a member");
            tracing::info!(target: "iroh", "a library's chatter");
        });
        let t = tail(home.path(), 10).unwrap();
        assert_eq!(t.len(), 3, "{t:?}");
        assert_eq!(t[0].msg, "a day before", "the older day's file first");
        assert_eq!((t[1].msg.as_str(), t[1].level.as_str()), ("synced", "info"));
        assert_eq!(t[1].fields["bytes"], 42);
        assert_eq!(t[1].fields["space"], "1a2b", "from the session's span");
        assert_eq!((t[2].level.as_str(), t[2].fields["peer"].as_str()), ("warn", Some("5e6f")), "its own field wins");
        assert_eq!(last_warning(home.path()).map(|l| l.msg), Some("refused: not a member".into()));
        assert_ne!(live_file(home.path()), d.join("cobox.2026-12-05.log"), "today's file is written now");
        // A torn line (a crash mid-write) reads as text; control characters never reach a terminal.
        fs::write(live_file(home.path()), "{\"time\":\ntorn\u{1b}[2J\n").unwrap();
        let t = tail(home.path(), 2).unwrap();
        assert_eq!(t[1].msg, "torn\\u{1b}[2J");
    }
}
