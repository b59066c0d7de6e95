//! The view model: the model rebuilt from the engine, what the daemon did, and what is news
//! to the user (told once, in the Activity feed and as a desktop notification).

use super::{ConflictView, Engine, FileRow, Model, SpaceState, SpaceView, Told, Writer, hex_short, rfc3339_ns};
use cobox_engine::agreement_service;
use cobox_engine::daemon::Activity;
use cobox_engine::sync::net::Held;

/// News about seeders from their last sessions: one that said it was full, one whose copy of a
/// space was behind what a member had noted. Each is told once until it changes.
fn peer_news(m: &Model, told: &mut Told) -> Vec<String> {
    let mut news = Vec::new();
    for p in &m.peers {
        let full = p.refusal == Some(cobox_engine::sync::proto::Refusal::SeederFull);
        let short = p.device.get(..8).unwrap_or(&p.device).to_owned();
        if full && told.full.insert(p.device.clone()) {
            news.push(format!("Seeder {short} is full: it takes no more of your data until its operator frees space."));
        } else if !full {
            told.full.remove(&p.device);
        }
        match &p.stale {
            Some((space, st)) if told.stale.insert((p.device.clone(), *space)) => {
                let name = m.spaces.iter().find(|s| s.id == *space).map_or_else(|| space.short(), |s| s.name.clone());
                let who = st.device.to_string();
                let who = m.names.get(&who).cloned().unwrap_or_else(|| st.device.short());
                news.push(format!(
                    "Seeder {short} holds an old copy of {name}: it lacks changes {who} had made by {}. Sync \
                     with another seeder or a member before restoring from it.",
                    rfc3339_ns(st.time_ms.saturating_mul(1_000_000))
                ));
            }
            Some(_) => {}
            None => {
                told.stale.retain(|(d, _)| d != &p.device);
            }
        }
    }
    news
}

impl Engine {
    /// Compare what the model shows now with what the user was told: new conflicts, removed
    /// members and full seeders are news.
    pub(super) fn tell_news(&mut self) {
        let m = self.model.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut news = Vec::new();
        let mut good = Vec::new();
        for s in &m.spaces {
            let now: std::collections::BTreeSet<String> = s.conflicts.iter().map(|c| c.original.clone()).collect();
            let before = self.told.conflicts.insert(s.id, now.clone()).unwrap_or_default();
            for f in now.difference(&before) {
                news.push(format!("New conflict in {}: {f} was changed on two devices while apart.", s.name));
            }
            for f in before.difference(&now) {
                good.push(format!("The conflict over {f} in {} is settled.", s.name));
            }
            if let Some(r) = &s.roster {
                let now: std::collections::BTreeSet<String> = r.members.iter().map(|x| x.device.clone()).collect();
                let before = self.told.members.insert(s.id, now.clone());
                for x in r.members.iter().filter(|x| before.as_ref().is_some_and(|b| !b.contains(&x.device))) {
                    good.push(format!("{} joined {} (may {}).", x.name, s.name, x.role.as_str()));
                }
            }
            let removed: std::collections::BTreeSet<String> =
                s.roster.as_ref().map(|r| r.removed.iter().cloned().collect()).unwrap_or_default();
            let before = self.told.removed.insert(s.id, removed.clone()).unwrap_or_default();
            for d in removed.difference(&before) {
                news.push(format!("{d} was removed from {}.", s.name));
            }
        }
        news.extend(peer_news(&m, &mut self.told));
        news.extend(health_news(&m, &mut self.told));
        if std::mem::replace(&mut self.told.primed, true) {
            for n in news {
                self.news(n);
            }
            for g in good {
                self.good(g);
            }
        }
    }

    /// Rebuild the model from the engine.
    pub(super) fn refresh(&self) {
        let mut spaces = Vec::new();
        // A home whose spaces cannot be listed is not a home without spaces: keep what was
        // shown and say why, rather than show the first-run screen.
        let infos = match self.home.spaces() {
            Ok(i) => i,
            Err(e) => {
                let why = format!("could not read this device's spaces in {}: {e}", self.home.root().display());
                self.update(|m| {
                    m.spaces_error = Some(why);
                    m.ready = true;
                });
                return;
            }
        };
        let (last_syncs, syncing) = {
            let m = self.model.lock().unwrap_or_else(|p| p.into_inner());
            (m.spaces.iter().map(|s| (s.id, s.last_sync.clone())).collect::<Vec<_>>(), m.syncing.clone())
        };
        for info in infos {
            let Some(s) = self.daemon.node().space(&info.id) else {
                if cobox_engine::Home::join_pending_at(self.home.root(), &info.id) {
                    let last_sync = last_syncs.iter().find(|(id, _)| *id == info.id).and_then(|(_, l)| l.clone());
                    spaces.push(SpaceView {
                        id: info.id,
                        name: info.name.clone(),
                        path: info.path.clone(),
                        status: None,
                        files: Vec::new(),
                        writers: Vec::new(),
                        conflicts: Vec::new(),
                        agreements: Vec::new(),
                        state: SpaceState::Joining,
                        last_sync,
                        ignores: String::new(),
                        roster: None,
                        recovery: None,
                    });
                }
                continue;
            };
            // Read in one piece of work on the blocking pool; the lock is not held here after.
            // The status every front end shows (`ops::status`: recoveries and their warnings too).
            let (root, seen) = (self.home.root().to_owned(), self.daemon.node().peers_seen());
            let read = self.on(&s, move |s| {
                Ok((cobox_engine::ops::status(s, &root, &seen), s.files(), s.device_names(), s.ignore_rules()))
            });
            let (status, files, names, ignores) = match read {
                Ok(r) => r,
                Err(e) => (Err(e), Ok(Vec::new()), Default::default(), Ok(String::new())),
            };
            let (status, mut error) = match status {
                Ok(st) => (Some(st), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let entries = files.unwrap_or_else(|e| {
                error = Some(e.to_string());
                Vec::new()
            });
            let by = |d: &[u8; 8]| names.get(&d[..]).cloned().unwrap_or_else(|| hex_short(d));
            // `files()` is in path order.
            let size_of = |p: &str| {
                let i = entries.binary_search_by(|(q, _)| q.as_str().cmp(p)).ok()?;
                let e = &entries[i].1;
                Some((e.size(), rfc3339_ns(e.mtime_ns), by(&e.device)))
            };
            let mut writers: Vec<([u8; 8], Writer)> = Vec::new();
            let mut files: Vec<FileRow> = Vec::new();
            for (p, e) in entries.iter().filter(|(_, e)| matches!(e.kind, cobox_engine::entry::Kind::File { .. })) {
                let idx = match writers.iter().position(|(d, _)| *d == e.device) {
                    Some(i) => i,
                    None => {
                        let short = hex_short(&e.device);
                        writers.push((e.device, Writer { label: by(&e.device), short }));
                        writers.len() - 1
                    }
                };
                files.push(FileRow {
                    path: p.as_str().into(),
                    size: e.size(),
                    mtime_ns: e.mtime_ns,
                    // Past 65,535 writers (never, in practice) the later ones share the last index.
                    by: u16::try_from(idx).unwrap_or(u16::MAX),
                });
            }
            files.shrink_to_fit();
            let conflicts: Vec<ConflictView> = entries
                .iter()
                .filter(|(_, e)| matches!(e.kind, cobox_engine::entry::Kind::File { .. }))
                .filter_map(|(p, e)| {
                    let original = cobox_engine::conflict_original(p)?;
                    let (osize, omod, oby) = size_of(&original).unwrap_or((0, "gone".into(), String::new()));
                    Some(ConflictView {
                        copy: p.clone(),
                        original,
                        copy_size: e.size(),
                        original_size: osize,
                        copy_modified: rfc3339_ns(e.mtime_ns),
                        original_modified: omod,
                        copy_by: by(&e.device),
                        original_by: oby,
                    })
                })
                .collect();
            drop(entries);
            let last_sync = last_syncs.iter().find(|(id, _)| *id == info.id).and_then(|(_, l)| l.clone());
            let state = if let Some(e) = &error {
                SpaceState::Error(e.clone())
            } else if syncing.contains(&info.id) {
                SpaceState::Syncing
            } else if !conflicts.is_empty() {
                SpaceState::Conflicts(conflicts.len())
            } else if matches!(&last_sync, Some((_, Some(_)))) {
                SpaceState::Offline
            } else {
                SpaceState::InSync
            };
            let agreements = status.as_ref().map(|st| st.agreements.clone()).unwrap_or_default();
            let ignores = ignores.unwrap_or_else(|e| {
                error.get_or_insert(e.to_string());
                String::new()
            });
            let roster =
                cobox_engine::members::list(self.home.root(), &info.id.to_string(), cobox_engine::now_ms()).ok();
            spaces.push(SpaceView {
                id: info.id,
                name: info.name.clone(),
                path: info.path.clone(),
                status,
                files,
                writers: writers.into_iter().map(|(_, w)| w).collect(),
                conflicts,
                agreements,
                state,
                last_sync,
                ignores,
                roster,
                // None when this device set no recovery up (or its record cannot be read: the
                // status's warning line says so then).
                recovery: cobox_engine::ops::recovery_status(self.home.root(), &info.id.to_string()).ok(),
            });
        }
        let mut seeds = Vec::new();
        for (id, h) in self.daemon.node().held() {
            if let Held::Seed(s) = h {
                seeds.push((id, s.view().used));
            }
        }
        let stats = agreement_service::stats(self.home.root(), cobox_engine::now_ms(), &|id| {
            seeds.iter().find(|(s, _)| s == id).map(|(_, u)| *u)
        })
        .ok();
        // Names this device gave (seeders), then the rosters' (members name themselves or are
        // named by a manager: those win).
        let mut names: std::collections::BTreeMap<String, String> =
            cobox_engine::seeder_admin::local_names(self.home.root()).unwrap_or_else(|e| {
                tracing::warn!("cannot read the names given to devices here: {e}");
                Default::default()
            });
        names.extend(
            spaces
                .iter()
                .filter_map(|s| s.roster.as_ref())
                .flat_map(|r| r.members.iter())
                .filter(|m| !m.name.is_empty())
                .map(|m| (m.device.clone(), m.name.clone())),
        );
        let (custody, custody_error) = match cobox_engine::recovery::custody(self.home.root()) {
            Ok(c) => (c, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let network = Some(cobox_engine::ops::network(self.daemon.node(), self.home.root()).map_err(|e| e.to_string()));
        // The past shown follows the network too: a sync brings states and deletions.
        let past_of = self.model.lock().unwrap_or_else(|p| p.into_inner()).past.as_ref().map(|p| p.space);
        let past = past_of.map(|id| self.read_past(id));
        self.update(|m| {
            if let Some(p) = past {
                m.past = Some(p);
            }
            m.network = network;
            m.custody = custody;
            m.custody_error = custody_error;
            m.names = names;
            m.spaces = spaces;
            m.spaces_error = None;
            m.seeds = seeds;
            m.stats = stats;
            m.ready = true;
        });
    }

    /// Show what the daemon did: scans with changes and audits redraw the spaces; syncs mark
    /// their space while they run.
    pub(super) fn take_activity(&mut self) {
        let mut refresh = false;
        while let Ok(a) = self.activity.try_recv() {
            match a {
                Activity::Audited { space, seeder, result, refusal } => {
                    let name =
                        self.home.spaces().ok().and_then(|v| v.into_iter().find(|i| i.id == space)).map(|i| i.name);
                    let name = name.unwrap_or_else(|| space.short());
                    let short = seeder.get(..8).unwrap_or(&seeder).to_owned();
                    match &result {
                        Ok(r) if !r.ok() => self.news(format!(
                            "Seeder {short} failed an audit of {name}: it proved {} of {} blobs.",
                            r.passed, r.challenged
                        )),
                        Err(_) if refusal == Some(cobox_engine::sync::proto::Refusal::SeederFull) => {}
                        Err(e) => self.news(format!("Seeder {short} could not be audited for {name}: {e}")),
                        Ok(r) => self.good(format!(
                            "Seeder {short} proved it holds {name}: {} of {} pieces checked.",
                            r.passed, r.challenged
                        )),
                    }
                    refresh = true;
                }
                Activity::Scanned { .. } | Activity::SeedExpired(_) | Activity::Served(_) => refresh = true,
                Activity::Recovering { space, device, until_ms } => {
                    let name =
                        self.home.spaces().ok().and_then(|v| v.into_iter().find(|i| i.id == space)).map(|i| i.name);
                    self.news(format!(
                        "Device {} is recovering {} as a manager. It takes effect {} unless a member cancels it \
                         (cobox recovery cancel). If no one you know lost their devices, cancel it now.",
                        device.short(),
                        name.unwrap_or_else(|| space.short()),
                        rfc3339_ns(until_ms.saturating_mul(1_000_000))
                    ));
                    refresh = true;
                }
                Activity::SyncStarted(id) => self.update(|m| {
                    if !m.syncing.contains(&id) {
                        m.syncing.push(id);
                    }
                    if let Some(s) = m.spaces.iter_mut().find(|s| s.id == id) {
                        s.state = SpaceState::Syncing;
                    }
                }),
                Activity::SyncEnded { space, error, moved } => {
                    // A failure, or anything that moved, changes what the screens show; a
                    // periodic sync that moved nothing only updates its time and state.
                    refresh |= moved || error.is_some();
                    // A sync the person asked for says how it ended.
                    if self.asked_sync.borrow_mut().remove(&space) {
                        let name = self
                            .model
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .spaces
                            .iter()
                            .find(|s| s.id == space)
                            .map(|s| s.name.clone())
                            .unwrap_or_else(|| space.short());
                        match &error {
                            Some(e) => self.notice(true, format!("Could not sync {name}: {e}")),
                            None if moved => self.notice(false, format!("Synced {name}: changes came or went.")),
                            None => self.notice(false, format!("Synced {name}: already up to date.")),
                        }
                    }
                    self.update(|m| {
                        m.syncing.retain(|s| *s != space);
                        if let Some(s) = m.spaces.iter_mut().find(|s| s.id == space) {
                            s.last_sync = Some((cobox_engine::now_ms(), error));
                            if s.state == SpaceState::Syncing {
                                s.state = if s.conflicts.is_empty() {
                                    SpaceState::InSync
                                } else {
                                    SpaceState::Conflicts(s.conflicts.len())
                                };
                            }
                        }
                    });
                }
            }
        }
        if refresh {
            self.refresh();
        }
    }
}

#[cfg(test)]
mod news_tests {
    use super::*;
    use cobox_engine::SpaceId;
    use cobox_engine::space::Stale;
    use cobox_engine::sync::net::PeerSeen;

    /// A seeder whose copy was behind is news once, by the name of the member whose changes it
    /// lacks; again only after a session found it caught up and then behind once more.
    #[test]
    fn a_stale_seeder_is_news_once() {
        let space = SpaceId([4; 32]);
        let ana = cobox_engine::DeviceId([9; 32]);
        let behind = Stale { device: ana, time_ms: 1_800_000_000_000, missing: 2 };
        let seeder = |stale: Option<Stale>| PeerSeen {
            device: "5eed".repeat(16),
            last_ms: 1_800_000_100_000,
            ok: true,
            error: None,
            refusal: None,
            stale: stale.map(|s| (space, s)),
        };
        let mut m = Model::default();
        m.names.insert(ana.to_string(), "Ana's laptop".into());
        m.peers = vec![seeder(Some(behind))];
        let mut told = Told::default();
        let news = peer_news(&m, &mut told);
        assert_eq!(news.len(), 1, "{news:?}");
        assert!(news[0].starts_with("Seeder 5eed5eed holds an old copy of"), "{}", news[0]);
        assert!(news[0].contains("Ana's laptop had made by"), "{}", news[0]);
        assert!(peer_news(&m, &mut told).is_empty(), "told once");
        m.peers = vec![seeder(None)];
        assert!(peer_news(&m, &mut told).is_empty());
        m.peers = vec![seeder(Some(behind))];
        assert_eq!(peer_news(&m, &mut told).len(), 1, "behind again is news again");
    }
}

/// A peer whose audit or online score fell below the healthy mark is news once, not at every
/// audit; once healthy again, a new fall is news again.
fn health_news(m: &Model, told: &mut Told) -> Vec<String> {
    let Some(Ok(net)) = &m.network else { return Vec::new() };
    let mut news = Vec::new();
    let mut now = std::collections::BTreeSet::new();
    for s in &net.spaces {
        for x in &s.seeders {
            let (audit, online) = (x.audit_score, x.online_score);
            if audit >= cobox_engine::overview::HEALTHY_SCORE && online >= cobox_engine::overview::HEALTHY_SCORE {
                continue;
            }
            let key = (s.space.clone(), x.device.clone());
            if !told.unhealthy.contains(&key) {
                let who = x.device.get(..8).unwrap_or(&x.device).to_owned();
                news.push(if audit < cobox_engine::overview::HEALTHY_SCORE {
                    format!(
                        "Seeder {who} is failing audits of {} (audit score {audit:.2}): it may have lost data.",
                        s.name
                    )
                } else {
                    format!("Seeder {who} of {} is often unreachable (online score {online:.2}).", s.name)
                });
            }
            now.insert(key);
        }
    }
    told.unhealthy = now;
    news
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeder below the healthy mark is news once, not at every refresh (each audit); healthy
    /// again and then failing again is news again.
    #[test]
    fn an_unhealthy_seeder_is_told_once_until_it_recovers() {
        let mut m = Model { network: Some(Ok(crate::snapshots::network())), ..Model::default() };
        let mut told = Told::default();
        let news = health_news(&m, &mut told);
        assert_eq!(news.len(), 1, "{news:?}");
        assert!(news[0].contains("failing audits of Garden co-op"), "{news:?}");
        assert!(health_news(&m, &mut told).is_empty(), "told once");
        let set = |m: &mut Model, audit: f64| {
            if let Some(Ok(n)) = &mut m.network {
                n.spaces[0].seeders[1].audit_score = audit;
            }
        };
        set(&mut m, 0.95);
        assert!(health_news(&m, &mut told).is_empty());
        set(&mut m, 0.5);
        assert_eq!(health_news(&m, &mut told).len(), 1, "a new fall is news");
    }
}
