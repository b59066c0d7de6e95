//! Members as people see them: the roster of a space listed with names, and what a manager (or
//! a member, of itself) changes: roles, names, removals, invites cancelled. Like the agreements
//! service this reads and writes only the home's files (each ledger under its own lock), so it
//! works while the daemon runs; the daemon's next session carries each change to the peers.

use crate::crypto::SpaceKeys;
use crate::error::Error;
use crate::home::Home;
use crate::ids::DeviceId;
use crate::ledger::LedgerFile;
use cobox_core::roster::{Action, Key32, Role, RosterView};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A member as `cobox member list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MemberSummary {
    /// The device id (hex).
    pub device: String,
    /// Its name, or its short id when it has none.
    pub name: String,
    /// `read`, `write` or `manage` (in JSON).
    #[serde(with = "crate::util::role_name")]
    pub role: Role,
    /// Whether it is this device.
    pub me: bool,
}

/// Where an invite stands. In JSON, its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InviteState {
    /// It can still be used.
    Pending,
    /// A device joined with it.
    Used,
    /// A manager cancelled it.
    Cancelled,
    /// Its time ran out.
    Expired,
}

impl std::fmt::Display for InviteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            InviteState::Pending => "pending",
            InviteState::Used => "used",
            InviteState::Cancelled => "cancelled",
            InviteState::Expired => "expired",
        })
    }
}

/// An invite as `cobox member list` and `cobox invite list` show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InviteSummary {
    /// The invite key's short id (what `cobox invite cancel` takes).
    pub id: String,
    /// The role it grants (in JSON, its name).
    #[serde(with = "crate::util::role_name")]
    pub role: Role,
    /// The joiner's name, if the manager gave one.
    pub name: Option<String>,
    /// When it stops working (RFC 3339).
    pub expires: String,
    /// Where it stands.
    pub state: InviteState,
    /// The device that used it.
    pub used_by: Option<String>,
    /// The manager that made it (its name).
    pub by: String,
}

/// The roster of one space, for people and JSON.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Roster {
    /// The space's name.
    pub space: String,
    /// Members now.
    pub members: Vec<MemberSummary>,
    /// Devices removed (short ids).
    pub removed: Vec<String>,
    /// Invites, newest expiry first.
    pub invites: Vec<InviteSummary>,
    /// Roster operations shown invalid and not honoured, and why.
    pub invalid: Vec<String>,
    /// The key epoch new content is sealed under (hex; `00000000`: the space's first key).
    pub key_epoch: String,
    /// Whether this device holds it.
    pub key_held: bool,
}

/// What a command acts on: one space's files, keys and this device.
struct Ctx {
    name: String,
    space: Key32,
    ledger: LedgerFile,
    /// Sealing keys (names are sealed under the current epoch).
    keys: SpaceKeys,
    /// Every epoch key this device holds, to hand to others.
    all: cobox_core::epoch::EpochKeys,
    device: SigningKey,
}

impl Ctx {
    fn open(root: &Path, space: &str) -> Result<Self, Error> {
        let (info, dir, secret) = Home::space_files(root, space)?;
        let ledger = LedgerFile::new(info.id, &dir);
        let device = Home::device_key_at(root)?;
        let invite = crate::ledger::invite_key_at(&dir);
        let view = ledger.roster()?;
        let (keys, _) = crate::ledger::space_keys(&info.id, &secret, &view, &device, invite.as_ref());
        let all = crate::ledger::epoch_keys(&info.id, &secret, &view, &device, invite.as_ref());
        Ok(Self { name: info.name, space: info.id.0, ledger, keys, all, device })
    }

    fn me(&self) -> Key32 {
        self.device.verifying_key().to_bytes()
    }

    /// The roster, and this device's role on it (an error that says why when it has none).
    fn roster(&self) -> Result<(RosterView, Role), Error> {
        let view = self.ledger.roster()?;
        match view.role(&self.me()) {
            Some(role) => Ok((view, role)),
            None => Err(Error::Refused(format!("this device is not a member of space {:?}: {}", self.name, {
                let why = view.why_not(&self.me());
                if view.authors.contains(&self.me()) {
                    why
                } else {
                    format!("{why}; if the space was made before rosters, open it once (cobox status) to upgrade it")
                }
            }))),
        }
    }

    fn manager(&self) -> Result<RosterView, Error> {
        let (view, role) = self.roster()?;
        if role != Role::Manage {
            return Err(Error::Refused(format!(
                "only a manager of space {:?} may do that; this device's role is {role}",
                self.name
            )));
        }
        Ok(view)
    }

    fn name_of(&self, view: &RosterView, device: &Key32) -> String {
        view.members.get(device).and_then(|m| self.keys.open_name(&m.name)).unwrap_or_else(|| short(device))
    }

    /// A member by name (any case) or by an id prefix of at least 4 hex digits.
    fn find(&self, view: &RosterView, query: &str) -> Result<Key32, Error> {
        let q = query.trim();
        let by_name: Vec<Key32> = view
            .members
            .keys()
            .filter(|d| self.keys.open_name(&view.members[*d].name).is_some_and(|n| n.eq_ignore_ascii_case(q)))
            .copied()
            .collect();
        let hexq = q.to_ascii_lowercase();
        let by_id: Vec<Key32> = if hexq.len() >= 4 && hexq.chars().all(|c| c.is_ascii_hexdigit()) {
            view.members.keys().filter(|d| hex::encode(d).starts_with(&hexq)).copied().collect()
        } else {
            Vec::new()
        };
        match (by_name.as_slice(), by_id.as_slice()) {
            ([d], _) | ([], [d]) => Ok(*d),
            ([], []) => Err(Error::NotFound(format!(
                "no member of space {:?} is named or has an id starting {q:?} (see cobox member list)",
                self.name
            ))),
            _ => Err(Error::NotFound(format!(
                "{q:?} matches several members of space {:?}: give more of the id (see cobox member list)",
                self.name
            ))),
        }
    }
}

fn short(d: &Key32) -> String {
    DeviceId(*d).short()
}

/// The roster of a space with names opened.
pub fn list(root: &Path, space: &str, now_ms: i64) -> Result<Roster, Error> {
    let c = Ctx::open(root, space)?;
    let view = c.ledger.roster()?;
    let me = c.me();
    let mut members: Vec<MemberSummary> = view
        .members
        .iter()
        .map(|(d, m)| MemberSummary { device: hex::encode(d), name: c.name_of(&view, d), role: m.role, me: *d == me })
        .collect();
    members.sort_by(|a, b| (b.role == Role::Manage, &a.name).cmp(&(a.role == Role::Manage, &b.name)));
    let mut invites: Vec<(i64, InviteSummary)> = view
        .invites
        .iter()
        .map(|(k, i)| {
            let state = match (i.redeemed_by, i.cancelled) {
                (Some(_), _) => InviteState::Used,
                (None, true) => InviteState::Cancelled,
                (None, false) if i.expires_ms < now_ms => InviteState::Expired,
                _ => InviteState::Pending,
            };
            let summary = InviteSummary {
                id: short(k),
                role: i.role,
                name: c.keys.open_name(&i.name),
                expires: crate::util::rfc3339(i.expires_ms),
                state,
                used_by: i.redeemed_by.map(|d| c.name_of(&view, &d)),
                by: c.name_of(&view, &i.by),
            };
            (i.expires_ms, summary)
        })
        .collect();
    invites.sort_by_key(|(e, _)| std::cmp::Reverse(*e));
    Ok(Roster {
        space: c.name,
        members,
        removed: view.removed.iter().map(short).collect(),
        invites: invites.into_iter().map(|(_, i)| i).collect(),
        invalid: view.invalid.values().cloned().collect(),
        key_epoch: format!("{:08x}", view.current_epoch),
        key_held: c.keys.holds(view.current_epoch),
    })
}

/// Remove a member (a manager's act; it starts refusing the device at every peer that
/// learns of it). Returns its name.
pub fn remove(root: &Path, space: &str, query: &str) -> Result<String, Error> {
    let c = Ctx::open(root, space)?;
    let view = c.manager()?;
    let device = c.find(&view, query)?;
    if device == c.me() {
        return Err(Error::Refused("to take this device out of the space, use cobox member leave".into()));
    }
    let name = c.name_of(&view, &device);
    c.ledger.add_roster_op(&c.device, Action::Remove { device }, None)?;
    // A new key epoch for everyone who stays (and every invite still open, a recovery code
    // among them): what is written from now on is sealed under a key the removed device
    // never gets. Its own open invites die with it (it made them, it cannot be trusted).
    let after = c.ledger.roster()?;
    let stay = staying(&after, crate::now_ms());
    let mut fresh = [0u8; 32];
    crate::random_bytes(&mut fresh);
    hand_keys(&c, &stay, Some(fresh))?;
    Ok(name)
}

/// Who a new key epoch is sealed to: every member, and every invite still open whose maker
/// is not removed.
fn staying(view: &RosterView, now_ms: i64) -> Vec<Key32> {
    let mut to: Vec<Key32> = view.members.keys().copied().collect();
    to.extend(view.open_invites(now_ms).filter(|(_, i)| !view.removed.contains(&i.by)).map(|(k, _)| *k));
    to
}

/// Record a key hand-out: every epoch key this device holds (and `fresh`, a new epoch, which
/// then becomes the current one) sealed to each of `to`. Returns the epoch.
fn hand_keys(c: &Ctx, to: &[Key32], fresh: Option<[u8; 32]>) -> Result<u32, Error> {
    let mut all = c.all.clone();
    let epoch = match fresh {
        Some(k) => {
            let id = cobox_core::epoch::epoch_id(&k);
            all.insert(id, k);
            id
        }
        None => c.keys.current(),
    };
    let context = cobox_core::epoch::context(&c.space, epoch);
    let mut sealed = Vec::with_capacity(to.len());
    for d in to {
        let mut seed = [0u8; 32];
        crate::random_bytes(&mut seed);
        let s = cobox_core::epoch::seal_keys(d, &all, &context, seed)
            .map_err(|e| Error::Refused(format!("sealing keys to device {}: {e}", short(d))))?;
        sealed.push((*d, s));
    }
    c.ledger.add_roster_op(&c.device, Action::Keys { epoch, sealed }, None)?;
    Ok(epoch)
}

/// What a manager's device does after its sessions: a member that lacks the current key
/// epoch (it joined by an invite made before the last rotation) is handed it; and when the
/// current epoch reached a device since removed (two managers rotated at once, each removing
/// another device), a new one is drawn for the devices that stay. Returns what it did, for
/// the log; nothing on a device that is not a manager or lacks the current key itself.
pub fn upkeep(root: &Path, space: &str) -> Result<Option<String>, Error> {
    let c = Ctx::open(root, space)?;
    let view = c.ledger.roster()?;
    let current = view.current_epoch;
    if view.role(&c.me()) != Some(Role::Manage) || current == 0 || !c.keys.holds(current) {
        return Ok(None);
    }
    let holders = view.holders(current);
    if holders.iter().any(|d| view.removed.contains(d)) {
        let stay = staying(&view, crate::now_ms());
        let mut fresh = [0u8; 32];
        crate::random_bytes(&mut fresh);
        let epoch = hand_keys(&c, &stay, Some(fresh))?;
        return Ok(Some(format!(
            "space {:?}: drew key epoch {epoch:08x}, as the last one had reached a removed device",
            c.name
        )));
    }
    // An invite made under the current epoch carries it already.
    let lacking: Vec<Key32> = staying(&view, crate::now_ms())
        .into_iter()
        .filter(|d| !holders.contains(d) && view.invites.get(d).is_none_or(|i| i.epoch != current))
        .collect();
    if lacking.is_empty() {
        return Ok(None);
    }
    hand_keys(&c, &lacking, None)?;
    let names: Vec<String> = lacking.iter().map(|d| c.name_of(&view, d)).collect();
    Ok(Some(format!("space {:?}: handed the current key to {}", c.name, names.join(", "))))
}

/// Change a member's role.
pub fn set_role(root: &Path, space: &str, query: &str, role: Role) -> Result<String, Error> {
    let c = Ctx::open(root, space)?;
    let view = c.manager()?;
    let device = c.find(&view, query)?;
    let managers = view.members.values().filter(|m| m.role == Role::Manage).count();
    if view.role(&device) == Some(Role::Manage) && role != Role::Manage && managers == 1 {
        return Err(Error::Refused(
            "the space's last manager cannot step down: make another member a manager first".into(),
        ));
    }
    c.ledger.add_roster_op(&c.device, Action::SetRole { device, role }, None)?;
    Ok(c.name_of(&view, &device))
}

/// Rename a member (a manager any, a member itself).
pub fn rename(root: &Path, space: &str, query: &str, name: &str) -> Result<(), Error> {
    let name = check_name(name)?;
    let c = Ctx::open(root, space)?;
    let (view, role) = c.roster()?;
    let device = c.find(&view, query)?;
    if device != c.me() && role != Role::Manage {
        return Err(Error::Refused(
            "only a manager renames another member; name this device with cobox device name".into(),
        ));
    }
    c.ledger.add_roster_op(&c.device, Action::Rename { device, name: c.keys.seal_name(name) }, None)?;
    Ok(())
}

/// Leave a space: this device removes itself from the roster; the peers refuse it from their
/// next session on. Its folder and copy stay on its disk.
pub fn leave(root: &Path, space: &str) -> Result<(), Error> {
    let c = Ctx::open(root, space)?;
    let (view, role) = c.roster()?;
    let managers = view.members.values().filter(|m| m.role == Role::Manage).count();
    if role == Role::Manage && managers == 1 && view.members.len() > 1 {
        return Err(Error::Refused(
            "this device is the space's last manager: make another member a manager before leaving".into(),
        ));
    }
    c.ledger.add_roster_op(&c.device, Action::Remove { device: c.me() }, None)?;
    Ok(())
}

/// Cancel an invite not yet used, by its id (or a prefix of at least 4 hex digits).
pub fn cancel_invite(root: &Path, space: &str, query: &str) -> Result<(), Error> {
    let c = Ctx::open(root, space)?;
    let view = c.manager()?;
    let q = query.trim().to_ascii_lowercase();
    let found: Vec<(&Key32, _)> =
        view.invites.iter().filter(|(k, _)| q.len() >= 4 && hex::encode(k).starts_with(&q)).collect();
    let [(key, invite)] = found.as_slice() else {
        return Err(Error::NotFound(format!(
            "no single invite of space {:?} has an id starting {q:?} (see cobox invite list)",
            c.name
        )));
    };
    if invite.redeemed_by.is_some() {
        return Err(Error::Refused("that invite was already used: remove the member instead".into()));
    }
    if invite.cancelled {
        return Ok(());
    }
    c.ledger.add_roster_op(&c.device, Action::Cancel { invite: **key }, None)?;
    Ok(())
}

/// Name this device in every space it is a member of (and for the ones it joins later, it
/// keeps the name in `$COBOX_HOME/device-name`). Returns how many rosters changed.
pub fn name_device(root: &Path, name: &str) -> Result<usize, Error> {
    let name = check_name(name)?;
    // The first command on a new machine may be this one.
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    crate::util::write_atomic(&root.join(crate::home::DEVICE_NAME), name.as_bytes())?;
    let mut n = 0;
    for info in Home::spaces_at(root)? {
        let c = Ctx::open(root, &info.id.to_string())?;
        // A member, or a device that joined and has not met the space yet (its redemption
        // is its own operation): the name follows it there.
        let view = c.ledger.roster()?;
        if view.role(&c.me()).is_some() || (view.authors.contains(&c.me()) && !view.removed.contains(&c.me())) {
            c.ledger.add_roster_op(&c.device, Action::Rename { device: c.me(), name: c.keys.seal_name(name) }, None)?;
            n += 1;
        }
    }
    Ok(n)
}

/// This device's name, if it was given one.
pub fn device_name(root: &Path) -> Option<String> {
    crate::home::device_name_at(root)
}

/// The names a space's roster gives its devices (for "changed by" and peer lists).
pub fn names(root: &Path, space: &str) -> Result<BTreeMap<DeviceId, String>, Error> {
    let c = Ctx::open(root, space)?;
    let view = c.ledger.roster()?;
    Ok(view.members.iter().filter_map(|(d, m)| c.keys.open_name(&m.name).map(|n| (DeviceId(*d), n))).collect())
}

fn check_name(name: &str) -> Result<&str, Error> {
    crate::util::valid_name(name).ok_or_else(|| Error::InvalidMemberName(crate::util::shortened(name)))
}
