//! Folder watching for the daemon: file-system events, debounced, turned into "space X changed".
//!
//! Access events (a file opened or read) are dropped: the scanner itself reads files, and
//! counting those would make every scan trigger the next one.

use crate::error::Error;
use crate::ids::SpaceId;
use crate::scan::TMP_PREFIX;
use notify_debouncer_mini::notify::{self, EventKind, RecursiveMode, Watcher as _};
use std::path::PathBuf;
use std::time::Duration;

/// Keeps the watches alive; dropping it stops them.
pub struct Watcher {
    _inner: notify::RecommendedWatcher,
}

/// Watch each space's folder. Changes within `debounce` of each other arrive as one notice per
/// space. The materialiser's own temp files are ignored.
pub fn watch(
    folders: &[(SpaceId, PathBuf)],
    debounce: Duration,
) -> Result<(Watcher, tokio::sync::mpsc::UnboundedReceiver<SpaceId>), Error> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (raw_tx, raw_rx) = std::sync::mpsc::channel::<SpaceId>();
    let roots: Vec<(SpaceId, PathBuf)> = folders.to_vec();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, EventKind::Access(_)) {
            return;
        }
        for path in &ev.paths {
            let tmp = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(TMP_PREFIX));
            if tmp {
                continue;
            }
            if let Some((id, _)) = roots.iter().find(|(_, root)| path.starts_with(root)) {
                let _ = raw_tx.send(*id);
            }
        }
    })
    .map_err(|e| Error::Net(format!("cannot start watching folders: {e}")))?;
    for (_, root) in folders {
        watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(|e| Error::Net(format!("cannot watch {}: {e}", root.display())))?;
    }
    // Debounce: after the first event, wait until the folder has been quiet for `debounce`.
    std::thread::Builder::new()
        .name("cobox-watch".into())
        .spawn(move || {
            while let Ok(first) = raw_rx.recv() {
                let mut ids = vec![first];
                // A file written without pause still gets scanned every ten quiet periods.
                let deadline = std::time::Instant::now() + debounce * 10;
                while let Ok(id) = raw_rx.recv_timeout(debounce) {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                    if std::time::Instant::now() > deadline {
                        break;
                    }
                }
                for id in ids {
                    if tx.send(id).is_err() {
                        return;
                    }
                }
            }
        })
        .map_err(|e| Error::Net(format!("cannot start the watch thread: {e}")))?;
    Ok((Watcher { _inner: watcher }, rx))
}
