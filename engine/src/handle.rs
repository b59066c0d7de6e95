//! A space (or a seed) owned by one thread, the store-actor shape of iroh-blobs: every piece
//! of work on it is sent there and done in order, so its state changes in one place and no
//! front end, session or daemon task ever holds a lock on it. Scans, materialiser passes and
//! blob listings read and write files for seconds at a time; they run on the owner's thread,
//! never on the async workers that carry every session's network traffic.
//!
//! Readers that need only a little (a seed's stored bytes, a space's name and quarantine)
//! read the [`Snapshot`] the owner publishes after each piece of work, without waiting for it.

use crate::error::Error;
use crate::ids::SpaceId;
use crate::seed::Seed;
use crate::space::Space;
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

/// What a value shows readers between pieces of work: cheap to make, made after each one.
pub trait Snapshot: Send + 'static {
    /// The view readers get.
    type View: Send + Sync + 'static;
    /// Make the view of the value as it is now.
    fn snapshot(&self) -> Self::View;
}

/// A member space as readers see it between pieces of work.
#[derive(Clone)]
pub struct SpaceView {
    /// The space.
    pub id: SpaceId,
    /// Its name on this device.
    pub name: String,
    /// Change blobs set aside because they do not open, decode or apply.
    pub quarantined: usize,
    /// Its ledger of agreements (a file: reading it does not touch the space).
    pub ledger: crate::ledger::LedgerFile,
    /// Its blob store, thread-safe on its own: blobs are listed and read through it without
    /// waiting for the space.
    pub(crate) store: Arc<crate::store::BlobStore>,
}

impl Snapshot for Space {
    type View = SpaceView;
    fn snapshot(&self) -> SpaceView {
        SpaceView {
            id: self.info().id,
            name: self.info().name.clone(),
            quarantined: self.quarantined().len(),
            ledger: self.ledger(),
            store: self.store.clone(),
        }
    }
}

/// A seeded space as readers see it between pieces of work.
#[derive(Clone)]
pub struct SeedView {
    /// The space seeded.
    pub space: SpaceId,
    /// Bytes stored for it.
    pub used: u64,
    /// Its ledger of agreements (a file: reading it does not touch the seed).
    pub ledger: crate::ledger::LedgerFile,
    /// Its blob store (see [`SpaceView`]).
    pub(crate) store: Arc<crate::store::BlobStore>,
}

impl Snapshot for Seed {
    type View = SeedView;
    fn snapshot(&self) -> SeedView {
        SeedView {
            space: self.space(),
            used: self.used(),
            ledger: crate::replica::Replica::ledger(self),
            store: self.store.clone(),
        }
    }
}

type Job<T> = Box<dyn FnOnce(&mut T) + Send>;

/// A value owned by one thread. Clones share it; the last one dropped lets the thread finish
/// the work queued, drop the value (closing its files) and end, and waits for that, so a
/// space closed is closed when the drop returns.
pub struct Owned<T: Snapshot> {
    inner: Arc<Inner<T>>,
}

impl<T: Snapshot> Clone for Owned<T> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

struct Inner<T: Snapshot> {
    tx: Option<std::sync::mpsc::Sender<Job<T>>>,
    view: watch::Receiver<Arc<T::View>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Snapshot> Drop for Inner<T> {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take()
            // Dropped by a piece of work on the owner's own thread: it ends by itself next.
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

/// A member space owned by its thread.
pub type SpaceHandle = Owned<Space>;
/// A seed owned by its thread.
pub type SeedHandle = Owned<Seed>;

impl<T: Snapshot> Owned<T> {
    /// Give `value` to a thread of its own, named `name` in a debugger and in panics.
    pub fn new(value: T, name: String) -> Result<Self, Error> {
        let (tx, rx) = std::sync::mpsc::channel::<Job<T>>();
        let (publish, view) = watch::channel(Arc::new(value.snapshot()));
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let mut value = value;
                while let Ok(job) = rx.recv() {
                    job(&mut value);
                    publish.send_replace(Arc::new(value.snapshot()));
                }
            })
            .map_err(|e| Error::Internal("starting a space's thread", e.to_string()))?;
        Ok(Self { inner: Arc::new(Inner { tx: Some(tx), view, thread: Some(thread) }) })
    }

    /// The view published after the last piece of work.
    pub fn view(&self) -> Arc<T::View> {
        self.inner.view.borrow().clone()
    }

    /// Queue `f`; its result (or how it panicked) arrives on the receiver. With `background`,
    /// it runs on the low-priority pool, so a daemon's scan yields the CPU and the disk to the
    /// machine's user.
    fn send<R: Send + 'static>(
        &self,
        background: bool,
        f: impl FnOnce(&mut T) -> R + Send + 'static,
    ) -> oneshot::Receiver<std::thread::Result<R>> {
        let (done, rx) = oneshot::channel();
        let pool = if background { crate::priority::background_pool() } else { None };
        let job: Job<T> = Box::new(move |v: &mut T| {
            // A panic is this piece of work's failure, reported to its caller; the value and
            // its thread go on serving the next.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match pool {
                Some(pool) => pool.install(|| f(v)),
                None => f(v),
            }));
            let _ = done.send(r);
        });
        if let Some(tx) = &self.inner.tx {
            // The thread ends only once every handle is gone, so this cannot fail while one
            // is held; if it did, the receiver reports the work as stopped.
            let _ = tx.send(job);
        }
        rx
    }

    fn outcome<R>(r: Result<std::thread::Result<R>, oneshot::error::RecvError>) -> Result<R, Error> {
        match r {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(panic)) => Err(Error::Internal("work on the space", crate::util::panic_message(&panic))),
            Err(_) => Err(Error::Internal("work on the space", "its thread ended".into())),
        }
    }

    /// Queue `f` and go on without waiting for it (it reports its own failures).
    pub fn post(&self, f: impl FnOnce(&mut T) + Send + 'static) {
        drop(self.send(false, f));
    }

    /// Run `f` on the value, in turn, from async code.
    pub async fn run<R: Send + 'static>(&self, f: impl FnOnce(&mut T) -> R + Send + 'static) -> Result<R, Error> {
        Self::outcome(self.send(false, f).await)
    }

    /// [`Owned::run`] at background priority when `background`.
    pub async fn run_at<R: Send + 'static>(
        &self,
        background: bool,
        f: impl FnOnce(&mut T) -> R + Send + 'static,
    ) -> Result<R, Error> {
        Self::outcome(self.send(background, f).await)
    }

    /// Run `f` on the value, in turn, from a thread that may block (never an async worker).
    pub fn run_blocking<R: Send + 'static>(&self, f: impl FnOnce(&mut T) -> R + Send + 'static) -> Result<R, Error> {
        Self::outcome(self.send(false, f).blocking_recv())
    }
}

/// Run fallible work on a space from async code: its error, or how it stopped.
pub async fn on_space<R: Send + 'static>(
    space: &SpaceHandle,
    f: impl FnOnce(&mut Space) -> Result<R, Error> + Send + 'static,
) -> Result<R, Error> {
    space.run(f).await?
}

/// [`on_space`], at background priority when `background`.
pub async fn on_space_at<R: Send + 'static>(
    space: &SpaceHandle,
    background: bool,
    f: impl FnOnce(&mut Space) -> Result<R, Error> + Send + 'static,
) -> Result<R, Error> {
    space.run_at(background, f).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_space() -> (tempfile::TempDir, tempfile::TempDir, SpaceHandle) {
        let home = tempfile::tempdir().unwrap();
        let folder = tempfile::tempdir().unwrap();
        let h = crate::Home::open(home.path()).unwrap();
        h.create_space("s", folder.path()).unwrap();
        let space = Owned::new(h.open_space("s").unwrap(), "space".into()).unwrap();
        (home, folder, space)
    }

    /// A panic in space work is the device's own failure, not the network's (the HTTP API
    /// answered it with 502 Bad Gateway, as if a peer had failed).
    #[tokio::test]
    async fn a_panic_in_space_work_is_reported_as_this_devices_failure() {
        let (_h, _f, space) = a_space();
        let e = on_space(&space, |_| -> Result<(), Error> { panic!("a bug") }).await.unwrap_err();
        assert!(matches!(e, Error::Internal(..)), "{e:?}");
        assert!(e.to_string().contains("stopped unexpectedly") && e.to_string().contains("bug"), "{e}");
        // The space's thread goes on: the next piece of work runs.
        assert_eq!(on_space(&space, |s| Ok(s.info().name.clone())).await.unwrap(), "s");
    }

    /// Readers see the state the last piece of work left, without waiting on work queued
    /// behind it; and work is done in the order it was sent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_see_a_snapshot_while_work_runs_and_work_runs_in_order() {
        let (_h, _f, space) = a_space();
        assert_eq!(space.view().name, "s");
        let (started, wait) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let slow = space.clone();
        let first = tokio::spawn(async move {
            slow.run(move |s| {
                started.send(()).unwrap();
                held.recv().unwrap();
                s.info.name = "renamed".into();
                1
            })
            .await
        });
        wait.recv().unwrap();
        let second = tokio::spawn({
            let s = space.clone();
            async move { s.run(|s| s.info().name.clone()).await }
        });
        // The first piece of work is still running: the view is the old one, at once.
        assert_eq!(space.view().name, "s");
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), "renamed", "the second ran after the first");
        assert_eq!(space.view().name, "renamed");
    }

    /// The last handle dropped waits for the work queued, then closes the value before the
    /// drop returns, so a space can be opened again at once.
    #[test]
    fn dropping_the_last_handle_finishes_the_work_and_closes_the_value() {
        struct Probe(std::sync::mpsc::Sender<&'static str>);
        impl Snapshot for Probe {
            type View = ();
            fn snapshot(&self) {}
        }
        impl Drop for Probe {
            fn drop(&mut self) {
                let _ = self.0.send("closed");
            }
        }
        let (tx, events) = std::sync::mpsc::channel();
        let owned = Owned::new(Probe(tx), "probe".into()).unwrap();
        let other = owned.clone();
        let _queued = owned.send(false, |p| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            p.0.send("worked").unwrap();
        });
        drop(other);
        drop(owned);
        assert_eq!(events.try_recv(), Ok("worked"));
        assert_eq!(events.try_recv(), Ok("closed"));
    }
}
