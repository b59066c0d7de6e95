//! Social recovery from the app: set up custodians, check them, cancel a recovery announced in
//! a space, and approve someone's request as a custodian. The same operations as `cobox
//! recovery` (`cobox_engine::ops`).

use super::{Engine, Outcome, done};
use cobox_engine::SpaceId;
use cobox_engine::codes::PeerAddr;

impl Engine {
    pub(super) fn recovery_setup(
        &self,
        space: SpaceId,
        custodians: Vec<PeerAddr>,
        threshold: usize,
        wait_ms: i64,
    ) -> Outcome {
        let (node, root) = (self.daemon.node().clone(), self.home.root().to_owned());
        let r = self
            .rt
            .block_on(async move {
                cobox_engine::ops::recovery_setup(&node, &root, &space.to_string(), custodians, threshold, wait_ms)
                    .await
            })
            .map_err(|e| format!("Could not set up recovery: {e}"))?;
        let held = r.custodians.iter().filter(|c| c.delivered).count();
        let n = r.custodians.len();
        if held < n {
            return Err(format!(
                "Recovery is set up ({} of {n} needed), but {} custodian(s) could not be reached yet: they get their share at the next check.",
                r.threshold,
                n - held
            ));
        }
        done(format!("Recovery is set up: any {} of the {n} custodians can give this space back.", r.threshold))
    }

    pub(super) fn recovery_check(&self, space: SpaceId) -> Outcome {
        let (node, root) = (self.daemon.node().clone(), self.home.root().to_owned());
        let r = self
            .rt
            .block_on(async move { cobox_engine::ops::recovery_check(&node, &root, &space.to_string()).await })
            .map_err(|e| format!("Could not check the custodians: {e}"))?;
        let proved = r.custodians.iter().filter(|c| c.error.is_none() && c.proved.is_some()).count();
        let said = format!("{proved} of {} custodians proved they still hold their share.", r.custodians.len());
        match r.warning {
            Some(w) => Err(format!("{said} {w}")),
            None => done(said),
        }
    }

    pub(super) fn recovery_cancel(&self, space: &SpaceId) -> Outcome {
        let cancelled = cobox_engine::recovery::cancel(self.home.root(), &space.to_string())
            .map_err(|e| format!("Could not cancel the recovery: {e}"))?;
        if cancelled.is_empty() {
            return Err("No recovery of this space is waiting to take effect.".into());
        }
        // Members and seeders hear of it at once, not at the next scheduled sync.
        self.sync_background(*space);
        done(format!(
            "Recovery cancelled: device(s) {} will not be let in.",
            cancelled.iter().map(|d| d.short()).collect::<Vec<_>>().join(", ")
        ))
    }

    pub(super) fn recovery_approve(&self, code: String) -> Outcome {
        let (node, root) = (self.daemon.node().clone(), self.home.root().to_owned());
        let a = self
            .rt
            .block_on(async move { cobox_engine::ops::recovery_approve(&node, &root, &code).await })
            .map_err(|e| format!("Could not give the share: {e}"))?;
        done(format!(
            "Share given to device {} for space '{}': it holds {} of the {} it needs.",
            a.device.get(..8).unwrap_or(&a.device),
            a.name,
            a.have,
            a.need
        ))
    }
}
