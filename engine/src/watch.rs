//! Folder watching for the daemon: file-system events, debounced, turned into "space X changed".

use crate::error::Error;
use crate::ids::SpaceId;
use crate::scan::TMP_PREFIX;
use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use std::path::PathBuf;
use std::time::Duration;

/// Keeps the watches alive; dropping it stops them.
pub struct Watcher {
    _inner: Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
}

/// Watch each space's folder. Bursts of events within `debounce` arrive as one notice per space.
/// The materialiser's own temp files are ignored.
pub fn watch(
    folders: &[(SpaceId, PathBuf)],
    debounce: Duration,
) -> Result<(Watcher, tokio::sync::mpsc::UnboundedReceiver<SpaceId>), Error> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let roots: Vec<(SpaceId, PathBuf)> = folders.to_vec();
    let mut debouncer = new_debouncer(debounce, move |res: DebounceEventResult| {
        let Ok(events) = res else { return };
        let mut seen = Vec::new();
        for ev in events {
            let tmp = ev.path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(TMP_PREFIX));
            if tmp {
                continue;
            }
            if let Some((id, _)) = roots.iter().find(|(_, root)| ev.path.starts_with(root))
                && !seen.contains(id)
            {
                seen.push(*id);
            }
        }
        for id in seen {
            let _ = tx.send(id);
        }
    })
    .map_err(|e| Error::Net(format!("cannot start watching folders: {e}")))?;
    for (_, root) in folders {
        debouncer
            .watcher()
            .watch(root, RecursiveMode::Recursive)
            .map_err(|e| Error::Net(format!("cannot watch {}: {e}", root.display())))?;
    }
    Ok((Watcher { _inner: debouncer }, rx))
}
