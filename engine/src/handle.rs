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
    .map_err(|e| Error::Internal("work on the space", e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic in space work is the device's own failure, not the network's (the HTTP API
    /// answered it with 502 Bad Gateway, as if a peer had failed).
    #[tokio::test]
    async fn a_panic_in_space_work_is_reported_as_this_devices_failure() {
        let home = tempfile::tempdir().unwrap();
        let folder = tempfile::tempdir().unwrap();
        let h = crate::Home::open(home.path()).unwrap();
        h.create_space("s", folder.path()).unwrap();
        let space = Arc::new(Mutex::new(h.open_space("s").unwrap()));
        let e = on_space(&space, |_| -> Result<(), Error> { panic!("a bug") }).await.unwrap_err();
        assert!(matches!(e, Error::Internal(..)), "{e:?}");
        assert!(e.to_string().contains("stopped unexpectedly") && e.to_string().contains("bug"), "{e}");
        // The space's lock was released: the next piece of work runs.
        assert!(on_space(&space, |s| Ok(s.info().name.clone())).await.is_ok());
    }
}
