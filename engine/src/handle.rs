//! Space work from async code: scans, materialiser passes and blob listings read and write
//! files for seconds at a time, so they run on tokio's blocking threads, never on the async
//! workers that carry every session's network traffic.

use crate::error::Error;
use crate::space::Space;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Run `f` on the space, under its lock, on a blocking thread.
pub async fn on_space<R: Send + 'static>(
    space: &Arc<Mutex<Space>>,
    f: impl FnOnce(&mut Space) -> Result<R, Error> + Send + 'static,
) -> Result<R, Error> {
    on_space_at(space, false, f).await
}

/// [`on_space`], at background priority when `background`: on the low-priority pool, so the
/// work (a daemon's scan and its hashing) yields the CPU and the disk to the machine's user.
pub async fn on_space_at<R: Send + 'static>(
    space: &Arc<Mutex<Space>>,
    background: bool,
    f: impl FnOnce(&mut Space) -> Result<R, Error> + Send + 'static,
) -> Result<R, Error> {
    let s = space.clone();
    let pool = if background { crate::priority::background_pool() } else { None };
    tokio::task::spawn_blocking(move || match pool {
        Some(pool) => pool.install(|| f(&mut s.blocking_lock())),
        None => f(&mut s.blocking_lock()),
    })
    .await
    .map_err(|e| Error::Net(format!("space work stopped: {e}")))?
}
