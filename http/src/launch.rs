//! Starting and stopping a daemon, once for `cobox up` and the app: the standing seeding
//! policy and the saved transfer limits come from the home, the control socket is served so
//! the CLI works beside either, and a stop takes it all apart in order.

use cobox_engine::daemon::{Activity, Daemon, Schedule};
use cobox_engine::sync::net::{NetConfig, SeedPolicy};
use cobox_engine::{Error, Home};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

/// A daemon started by [`launch`].
pub struct Launched {
    /// The daemon: run it with [`Daemon::run`].
    pub daemon: Arc<Daemon>,
    /// Why the control socket is not served, if it is not (the daemon works; the CLI beside it
    /// does its work in process instead, and waits for the home's lock).
    pub control_error: Option<String>,
    control: Option<JoinHandle<()>>,
    root: PathBuf,
}

/// Start a daemon on `home`: the standing seeding policy (an administrator's, or what `cobox
/// up` recorded) and the limits saved in the home apply, unless `net` sets its own; the control
/// socket is served before this returns, so whoever waits for the daemon may ask at once.
/// With it comes what the daemon does, as it does it (dropped, nothing is kept).
pub async fn launch(
    home: Arc<Home>,
    net: &NetConfig,
    schedule: Schedule,
) -> Result<(Launched, UnboundedReceiver<Activity>), Error> {
    let standing = cobox_engine::seeder_admin::standing_policy(home.root())?;
    let policy = SeedPolicy {
        owners: standing.seed_for,
        max_quota: standing.max_quota,
        accept: Vec::new(),
        operator: standing.operator,
    };
    let (daemon, activity) = Daemon::start(&home, net, policy, schedule).await?;
    let (control, control_error) = match crate::bind_control(home.root()) {
        Ok(l) => {
            let api = crate::Api::control(daemon.clone(), home.clone());
            (Some(tokio::spawn(crate::serve_control(l, api))), None)
        }
        Err(e) => (None, Some(format!("cannot serve the control socket in {}: {e}", home.root().display()))),
    };
    Ok((Launched { daemon, control_error, control, root: home.root().to_owned() }, activity))
}

impl Launched {
    /// After [`Daemon::run`] returned: stop serving the control socket, then close every
    /// connection. Other handles on the daemon (an HTTP API's) must be gone first.
    pub async fn shut_down(self) {
        if let Some(c) = self.control {
            c.abort();
            // Awaited, so its handle on the daemon is gone before the daemon is taken apart.
            let _ = c.await;
            let _ = std::fs::remove_file(self.root.join(crate::CONTROL_SOCKET));
        }
        if let Ok(d) = Arc::try_unwrap(self.daemon)
            && let Ok(n) = Arc::try_unwrap(d.into_node())
        {
            n.shutdown().await;
        }
    }
}
