//! Folder watching for the daemon and the app: file-system events, debounced, turned into
//! "space X changed", and a flag per space that tells its sessions whether a scan is due.
//!
//! Access events (a file opened or read) are dropped: the scanner itself reads files, and
//! counting those would make every scan trigger the next one.

use crate::error::Error;
use crate::ids::SpaceId;
use crate::ignores::{IGNORE_FILE, Ignores};
use crate::space::ChangeFlag;
use crate::util::TMP_PREFIX;
use notify_debouncer_mini::notify::{self, EventKind, RecursiveMode, Watcher as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A watched folder: its space, its root, the flag its events raise.
type Root = (SpaceId, PathBuf, ChangeFlag);

/// A watched folder and its ignore rules, whose paths raise nothing (a build folder being
/// rewritten should not rescan the space every two seconds).
struct Watched {
    id: SpaceId,
    root: PathBuf,
    flag: ChangeFlag,
    ignores: Ignores,
}

impl Watched {
    fn raise(&self, tx: &std::sync::mpsc::Sender<SpaceId>) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = tx.send(self.id);
    }
}

/// Unusable rules ignore nothing here: the scan they trigger reports them.
fn rules_of(root: &Path) -> Ignores {
    crate::util::read_ignores(root).map(|(r, _)| r).unwrap_or_default()
}

/// Keeps the watches alive; dropping it stops them.
pub struct Watcher {
    inner: notify::RecommendedWatcher,
    roots: std::sync::Arc<std::sync::Mutex<Vec<Watched>>>,
}

impl Watcher {
    /// Watch one more space's folder (a space created or joined while running). On failure the
    /// caller scans that space before every session instead.
    pub fn add(&mut self, id: SpaceId, root: PathBuf, flag: ChangeFlag) -> Result<(), String> {
        if let Err(e) = self.inner.watch(&root, RecursiveMode::Recursive) {
            // Undo a partial recursive watch.
            let _ = self.inner.unwatch(&root);
            return Err(format!("cannot watch {}: {e}", root.display()));
        }
        let ignores = rules_of(&root);
        self.roots.lock().unwrap_or_else(|p| p.into_inner()).push(Watched { id, root, flag, ignores });
        Ok(())
    }
}

/// What [`watch`] started.
pub struct Watching {
    /// The watches.
    pub watcher: Watcher,
    /// Ids of spaces whose folder changed, debounced.
    pub changed: tokio::sync::mpsc::UnboundedReceiver<SpaceId>,
    /// Folders that could not be watched, and why.
    pub unwatched: Vec<(SpaceId, String)>,
}

/// Watch each space's folder, raising its flag at once on any change (so sessions scan
/// first) and sending its id once changes have been quiet for `debounce`. The materialiser's
/// own temp files, and paths the folder's `.coboxignore` rules ignore, raise nothing. A folder
/// that cannot be watched (e.g. the system's limit on watches) is returned with the reason, and
/// the others are watched all the same. When the system drops events (its queue overflowed),
/// every folder is flagged.
pub fn watch(folders: &[Root], debounce: Duration) -> Result<Watching, Error> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (raw_tx, raw_rx) = std::sync::mpsc::channel::<SpaceId>();
    let roots = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Watched>::new()));
    let seen = roots.clone();
    let inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let mut roots = seen.lock().unwrap_or_else(|p| p.into_inner());
        let ev = match res {
            Ok(ev) if !ev.need_rescan() => ev,
            // Events were lost: any folder may have changed.
            _ => return roots.iter().for_each(|w| w.raise(&raw_tx)),
        };
        if matches!(ev.kind, EventKind::Access(_)) {
            return;
        }
        for path in &ev.paths {
            let tmp = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(TMP_PREFIX));
            if tmp {
                continue;
            }
            let Some(w) = roots.iter_mut().find(|w| path.starts_with(&w.root)) else { continue };
            let rel = path.strip_prefix(&w.root).ok().and_then(Path::to_str).unwrap_or("");
            if rel == IGNORE_FILE {
                w.ignores = rules_of(&w.root);
            } else if !rel.is_empty() && !w.ignores.is_empty() {
                let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
                if w.ignores.covers(rel, is_dir) {
                    continue;
                }
            }
            w.raise(&raw_tx);
        }
    })
    .map_err(|e| Error::Net(format!("cannot start watching folders: {e}")))?;
    let mut watcher = Watcher { inner, roots };
    let mut unwatched = Vec::new();
    for (id, root, flag) in folders {
        if let Err(why) = watcher.add(*id, root.clone(), flag.clone()) {
            unwatched.push((*id, why));
        }
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
    Ok(Watching { watcher, changed: rx, unwatched })
}
