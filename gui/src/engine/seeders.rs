//! Commands on seeding: agreements proposed and revoked, audits, the seeders this device
//! administers, and this device's transfer limits.

use super::{Engine, Outcome, SeederView, done, update_model};
use cobox_engine::codes::PeerAddr;
use cobox_engine::daemon::AUDIT_SAMPLE;
use cobox_engine::sync::net::parse_peer;
use cobox_engine::{Home, SpaceId, agreement_service};

impl Engine {
    pub(super) fn propose(&self, id: &SpaceId, seeder: &str, quota: u64, days: u32) -> Outcome {
        let addr = parse_peer(seeder.trim())
            .map_err(|_| "The seeder id should be 64 characters (0-9, a-f), as `cobox id` prints it on the seeder.")?;
        let peer = PeerAddr {
            device: cobox_engine::DeviceId(*addr.id.as_bytes()),
            addrs: seeder
                .split_once('@')
                .map(|(_, x)| x.split(',').map(|a| a.trim().to_owned()).collect())
                .unwrap_or_default(),
        };
        let (a, code) = agreement_service::propose(self.home.root(), &id.to_string(), &peer, quota, days, "")
            .map_err(|e| format!("Could not propose: {e}"))?;
        let c = code.encode().map_err(|e| format!("Proposed, but the seed code failed: {e}"))?;
        self.update(|m| m.seed_code = Some(c));
        done(format!("Proposed agreement {}. Give the seed code to the seeder.", &a.id[..12]))
    }

    pub(super) fn seed_code(&self, id: &str) -> Outcome {
        let code = agreement_service::seed_code(self.home.root(), id).map_err(|e| format!("No seed code: {e}"))?;
        let c = code.encode().map_err(|e| format!("The seed code failed: {e}"))?;
        self.update(|m| m.seed_code = Some(c));
        done("The seed code is below: send it to the seeder's operator.")
    }

    pub(super) fn revoke(&self, id: &str) -> Outcome {
        let a = agreement_service::revoke(self.home.root(), id).map_err(|e| format!("Could not revoke: {e}"))?;
        done(format!("Revoked agreement {}.", &a.id[..12]))
    }

    /// Audit every seeder with an active agreement, as `cobox audit` does (`ops::audit`).
    pub(super) fn audit(&self, id: SpaceId) -> Outcome {
        let node = self.daemon.node().clone();
        let root = self.home.root().to_owned();
        let opts = cobox_engine::ops::AuditOptions::asked(Vec::new(), AUDIT_SAMPLE);
        let audits = self
            .rt
            .block_on(async move { cobox_engine::ops::audit(&node, &root, &id, &opts).await })
            .map_err(|e| format!("Could not check the seeders: {e}"))?;
        if audits.is_empty() {
            return Err("No seeder with an active agreement to check.".into());
        }
        let passed = audits.iter().filter(|a| a.result.as_ref().is_ok_and(|x| x.ok())).count();
        let said = format!("{passed} of {} seeders proved they hold the data.", audits.len());
        if passed < audits.len() { Err(said) } else { done(said) }
    }

    /// Administer a seeder: pair from its code (or its ID@IP:PORT when it named this device).
    pub(super) fn pair_seeder(&self, code: &str, call_it: &str) -> Outcome {
        let (seeder, req) = if code.trim().to_ascii_lowercase().starts_with(cobox_engine::admin::PAIR_PREFIX) {
            let c = cobox_engine::admin::PairCode::parse(code)
                .map_err(|e| format!("That pairing code does not work: {e}"))?;
            // The seeder's log names its administrators: this device by its name.
            let me = cobox_engine::members::device_name(self.home.root()).unwrap_or_else(|| "CoBox app".into());
            (c.seeder, cobox_engine::admin::Request::Pair { secret: c.secret, name: me })
        } else {
            let p = code
                .trim()
                .parse::<PeerAddr>()
                .map_err(|_| "Paste the pairing code the seeder's `cobox up` printed (cobox-pair-...).")?;
            (cobox_engine::seeder_admin::reach(self.home.root(), &p), cobox_engine::admin::Request::Report)
        };
        self.ask_seeder(&seeder, &req).map_err(|e| format!("Could not pair: {e}"))?;
        cobox_engine::seeder_admin::remember_seeder(self.home.root(), seeder.clone(), cobox_engine::now_ms())
            .map_err(|e| format!("Paired, but could not remember the seeder: {e}"))?;
        if !call_it.trim().is_empty() {
            cobox_engine::seeder_admin::set_local_name(self.home.root(), seeder.device, call_it)
                .map_err(|e| format!("Paired, but could not keep its name: {e}"))?;
        }
        self.ask_seeders();
        let called = if call_it.trim().is_empty() { seeder.device.short() } else { call_it.trim().to_owned() };
        done(format!("Paired with seeder {called}: you administer it now."))
    }

    pub(super) fn name_seeder(&self, device: cobox_engine::DeviceId, name: &str) -> Outcome {
        cobox_engine::seeder_admin::set_local_name(self.home.root(), device, name)
            .map_err(|e| format!("Could not name it: {e}"))?;
        Ok(None)
    }

    /// Replace a paired seeder's standing policy.
    pub(super) fn set_seeder_policy(
        &self,
        seeder: cobox_engine::DeviceId,
        policy: cobox_engine::admin::Policy,
    ) -> Outcome {
        let p = cobox_engine::seeder_admin::seeders(self.home.root())
            .map_err(|e| format!("Could not read the seeders this device administers: {e}"))?
            .into_iter()
            .find(|p| p.seeder.device == seeder)
            .ok_or("That seeder is no longer paired.")?;
        let reach = cobox_engine::seeder_admin::reach(self.home.root(), &p.seeder);
        self.ask_seeder(&reach, &cobox_engine::admin::Request::SetPolicy(policy))
            .map_err(|e| format!("Could not set the policy: {e}"))?;
        self.ask_seeders();
        done(format!("Seeder {}'s policy is set.", seeder.short()))
    }

    /// Set this device's upload and download limits (bytes per second; 0: none), now and for
    /// every daemon started on this home after.
    pub(super) fn set_limits(&self, up: u64, down: u64) -> Outcome {
        self.daemon.node().set_limits(up, down);
        let now = self.daemon.node().limits();
        self.update(|m| m.limits = now);
        Home::set_limits_at(self.home.root(), &cobox_engine::home::Limits { up, down })
            .map_err(|e| format!("The limits hold until CoBox closes, but were not saved: {e}"))?;
        done("Transfer limits set.")
    }

    /// Ask every paired seeder for its report on the runtime; each answer lands in the model.
    pub(super) fn ask_seeders(&self) {
        let paired = cobox_engine::seeder_admin::seeders(self.home.root()).unwrap_or_else(|e| {
            self.notice(true, format!("Could not read the seeders this device administers: {e}"));
            Vec::new()
        });
        let root = self.home.root().to_owned();
        self.update(|m| {
            let old = std::mem::take(&mut m.seeders);
            m.seeders = paired
                .iter()
                .map(|p| {
                    old.iter().find(|o| o.seeder.device == p.seeder.device).cloned().unwrap_or(SeederView {
                        seeder: p.seeder.clone(),
                        report: None,
                        error: None,
                    })
                })
                .collect();
        });
        for p in paired {
            let (node, model, repaint) = (self.daemon.node().clone(), self.model.clone(), self.repaint.clone());
            let reach = cobox_engine::seeder_admin::reach(&root, &p.seeder);
            self.rt.spawn(async move {
                let r = match cobox_engine::sync::net::dial_addr(&reach) {
                    Ok(addr) => node.admin(addr, &cobox_engine::admin::Request::Report).await,
                    Err(e) => Err(e),
                };
                update_model(&model, &*repaint, |m| {
                    let Some(v) = m.seeders.iter_mut().find(|v| v.seeder.device == p.seeder.device) else { return };
                    match r {
                        Ok(cobox_engine::admin::Response::Report(rep)) => {
                            v.report = Some((cobox_engine::now_ms(), rep));
                            v.error = None;
                        }
                        Ok(cobox_engine::admin::Response::Refused(why)) => v.error = Some(why),
                        Ok(_) => v.error = Some("the seeder gave no report".into()),
                        Err(e) => v.error = Some(e.to_string()),
                    }
                });
            });
        }
    }

    /// One request to a paired seeder, waited for (pairing, a policy): short, and the user asked.
    fn ask_seeder(
        &self,
        seeder: &PeerAddr,
        req: &cobox_engine::admin::Request,
    ) -> Result<cobox_engine::admin::Response, String> {
        let addr = cobox_engine::sync::net::dial_addr(seeder).map_err(|e| e.to_string())?;
        let node = self.daemon.node().clone();
        match self.rt.block_on(async move { node.admin(addr, req).await }) {
            Ok(cobox_engine::admin::Response::Refused(why)) => Err(why),
            Ok(r) => Ok(r),
            Err(e) => Err(e.to_string()),
        }
    }
}
