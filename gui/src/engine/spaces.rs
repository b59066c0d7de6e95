//! Commands on spaces and their members: create, join, check, sync, settings, invites.

use super::{Engine, Outcome, done};
use cobox_engine::codes::Invite;
use cobox_engine::{Home, SpaceId};

impl Engine {
    pub(super) fn create(&mut self, name: &str, path: &std::path::Path) -> Outcome {
        let info = self
            .home
            .create_space(name, path)
            .and_then(|i| {
                self.add_space(self.home.open_space(&i.id.to_string())?)?;
                Ok(i)
            })
            .map_err(|e| format!("Could not create the space: {e}"))?;
        let s = self.space(&info.id).ok_or("The space was created but is not open.")?;
        match self.on(&s, |s| s.scan(&cobox_engine::NoProgress)) {
            Ok(_) => done(format!("Created '{}' over {}.", info.name, info.path.display())),
            Err(e) => Err(format!("Created '{}', but could not check its folder: {e}", info.name)),
        }
    }

    pub(super) fn join(&mut self, code: &str, path: &std::path::Path) -> Outcome {
        let inv = Invite::parse(code).map_err(|e| format!("That invite code does not work: {e}"))?;
        // The code holds no secret: the space opens when a peer accepts the invite, tried now
        // and at every scheduled sync until one does.
        let info = self.home.join(&inv, path, None).map_err(|e| format!("Could not join: {e}"))?;
        self.sync_background(info.id);
        done(format!("Joined '{}'. The folder fills once a member accepts the invite.", info.name))
    }

    pub(super) fn scan(&self, id: &SpaceId) -> Outcome {
        let s = self.space(id).ok_or(super::GONE)?;
        let r = self
            .on(&s, |s| s.scan(&cobox_engine::NoProgress))
            .map_err(|e| format!("Could not check the folder: {e}"))?;
        done(format!("Checked the folder: {} added, {} changed, {} deleted.", r.added, r.changed, r.deleted))
    }

    /// Sync in the background until converged, as `cobox sync` does (the daemon's
    /// `sync_now`); the daemon's activity says when it starts and ends.
    pub(super) fn sync(&self, id: SpaceId) -> Outcome {
        match self.home.peers() {
            Ok(book) if book.is_empty() => Err("No other device is known yet: invite one, or join with a code.".into()),
            Ok(book) => {
                self.asked_sync.borrow_mut().insert(id);
                self.sync_background(id);
                let n = book.len();
                done(format!(
                    "Syncing with the {} this device knows...",
                    if n == 1 { "device".into() } else { format!("{n} devices") }
                ))
            }
            Err(e) => Err(format!("Could not read the address book: {e}")),
        }
    }

    pub(super) fn set_target(&self, id: &SpaceId, copies: u32) -> Outcome {
        let s = self.space(id).ok_or(super::GONE)?;
        self.on(&s, move |s| s.set_replicas_target(copies)).map_err(|e| format!("Could not save the target: {e}"))?;
        Ok(None)
    }

    pub(super) fn set_ignores(&self, id: &SpaceId, rules: String) -> Outcome {
        let s = self.space(id).ok_or(super::GONE)?;
        let (bad, r) = self
            .on(&s, move |s| {
                let bad = s.set_ignore_rules(&rules)?;
                Ok((bad, s.scan(&cobox_engine::NoProgress)?))
            })
            .map_err(|e| format!("Could not save the ignore rules: {e}"))?;
        if !bad.is_empty() {
            return Err(format!("Saved, but {}", bad.join("; ")));
        }
        let paths = if r.ignored == 1 { "path" } else { "paths" };
        done(format!("Saved the ignore rules: {} {paths} left out.", r.ignored))
    }

    pub(super) fn invite(
        &self,
        id: SpaceId,
        role: cobox_engine::roster::Role,
        name: Option<String>,
        days: u32,
    ) -> Outcome {
        let expires_ms = cobox_engine::now_ms() + i64::from(days.max(1)) * 86_400_000;
        let request = cobox_engine::home::InviteRequest { role, expires_ms, name };
        let failed = |e: &dyn std::fmt::Display| format!("Could not make an invite code: {e}");
        let invite = Home::invite(self.home.root(), &id.to_string(), &request).map_err(|e| failed(&e))?;
        let code = invite.encode().map_err(|e| failed(&e))?;
        self.update(|m| m.invite = Some((id, code)));
        Ok(None)
    }

    pub(super) fn remove_member(&self, id: &SpaceId, device: &str) -> Outcome {
        let name = cobox_engine::members::remove(self.home.root(), &id.to_string(), device)
            .map_err(|e| format!("Could not remove the member: {e}"))?;
        done(format!(
            "Removed {name}. Devices that hear of it stop syncing with it; what it already had stays readable to it."
        ))
    }

    pub(super) fn name_device(&self, name: &str) -> Outcome {
        let n = cobox_engine::members::name_device(self.home.root(), name)
            .map_err(|e| format!("Could not name this device: {e}"))?;
        let named = cobox_engine::members::device_name(self.home.root());
        self.update(|m| m.device_name = named);
        self.refresh();
        done(match n {
            0 => format!("This device is called {name}; the spaces it joins will know it so."),
            _ => format!(
                "This device is called {name} in its {}.",
                if n == 1 { "space".into() } else { format!("{n} spaces") }
            ),
        })
    }

    pub(super) fn rename_member(&self, id: &SpaceId, device: &str, name: &str) -> Outcome {
        cobox_engine::members::rename(self.home.root(), &id.to_string(), device, name)
            .map_err(|e| format!("Could not rename the member: {e}"))?;
        self.refresh();
        done(format!("Renamed to {name}; other devices see it at their next sync."))
    }

    pub(super) fn cancel_invite(&self, id: &SpaceId, invite: &str) -> Outcome {
        cobox_engine::members::cancel_invite(self.home.root(), &id.to_string(), invite)
            .map_err(|e| format!("Could not cancel the invite: {e}"))?;
        done("Invite cancelled: the code no longer works.")
    }
}
