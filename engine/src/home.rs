//! A device's home directory: its identity key, its spaces, and the lock that makes one
//! process its owner.
//!
//! Layout: `device.key` (ed25519 seed, 0600), `lock`, and per space `spaces/<id>/` holding
//! `space.json`, `secret.key` (0600), `index.redb`, `packs/` and `manifest/`.

use crate::crypto::space_signing_key;
use crate::error::{Error, IoContext};
use crate::ids::{DeviceId, SpaceId};
use crate::space::Space;
pub use crate::space::SpaceInfo;
use crate::util::{read_json, write_atomic};
use ed25519_dalek::SigningKey;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Peers besides the inviter that an invite carries at most.
pub const INVITE_EXTRA_PEERS: usize = 4;

/// Every path in a home, in one place (docs/formats.md, "Home directory").
pub mod paths {
    use crate::ids::SpaceId;
    use std::path::{Path, PathBuf};

    /// The lock one process holds while it owns the home.
    pub fn lock(root: &Path) -> PathBuf {
        root.join("lock")
    }
    /// This device's ed25519 seed (0600).
    pub fn device_key(root: &Path) -> PathBuf {
        root.join(crate::util::HOME_KEY)
    }
    /// The folder of every member space.
    pub fn spaces(root: &Path) -> PathBuf {
        root.join(crate::util::HOME_SPACES)
    }
    /// One member space's folder.
    pub fn space(root: &Path, id: &SpaceId) -> PathBuf {
        spaces(root).join(id.to_string())
    }
    /// The folder of every seeded space.
    pub fn seeds(root: &Path) -> PathBuf {
        root.join("seeds")
    }
    /// One seeded space's folder.
    pub fn seed(root: &Path, id: &SpaceId) -> PathBuf {
        seeds(root).join(id.to_string())
    }
    /// The address book.
    pub fn peers(root: &Path) -> PathBuf {
        root.join("peers.json")
    }
    /// Where the running daemon listens.
    pub fn listening(root: &Path) -> PathBuf {
        root.join("listen.json")
    }
    /// Which spaces each peer was met in (so a space's id is only ever sent to its peers).
    pub fn peer_spaces(root: &Path) -> PathBuf {
        root.join("peer-spaces.json")
    }
    /// The HTTP API's bearer token (0600).
    pub fn api_token(root: &Path) -> PathBuf {
        root.join("api-token")
    }
    /// The device's upload and download limits (set in the app; `cobox up` flags override).
    pub fn limits(root: &Path) -> PathBuf {
        root.join("limits.json")
    }
}

/// The device's transfer limits, bytes per second (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Upload.
    pub up: u64,
    /// Download.
    pub down: u64,
}

/// Manifest shards per space: enough to keep each Automerge document small at 1M files.
pub const DEFAULT_SHARDS: u16 = 16;

/// An open, locked home directory.
pub struct Home {
    root: PathBuf,
    _lock: File,
    signer: SigningKey,
}

/// Write a secret file atomically with mode 0600.
pub(crate) fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).at(&tmp)?;
    f.write_all(bytes).at(&tmp)?;
    f.sync_all().at(&tmp)?;
    fs::rename(&tmp, path).at(path)
}

fn resolve_in<'a>(spaces: &'a [SpaceInfo], query: &str) -> Result<&'a SpaceInfo, Error> {
    if let Some(s) = spaces.iter().find(|s| s.name == query || s.id.to_string() == query) {
        return Ok(s);
    }
    let q = query.to_ascii_lowercase();
    let hits: Vec<&SpaceInfo> = spaces.iter().filter(|s| q.len() >= 4 && s.id.to_string().starts_with(&q)).collect();
    match hits.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::SpaceNotFound(query.to_owned())),
        _ => Err(Error::Ambiguous(query.to_owned())),
    }
}

/// Read a JSON file, or the default when it does not exist.
/// The file in a home holding the name `cobox device name` gave this device.
pub(crate) const DEVICE_NAME: &str = "device-name";

/// This device's name, if it was given one.
pub(crate) fn device_name_at(root: &Path) -> Option<String> {
    fs::read_to_string(root.join(DEVICE_NAME)).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Make a key file readable by its owner only again (a copy, a restore from a backup or an
/// editor may have widened it): keys are never left readable to other local users.
fn keep_private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).at(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).at(path)?;
    }
    Ok(())
}

fn read_secret(dir: &Path, name: &str) -> Result<[u8; 64], Error> {
    let secret_path = dir.join("secret.key");
    let secret = match fs::read(&secret_path) {
        Ok(s) => s,
        // A space joined by an invite gets its secret at its first sync.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.join(crate::ledger::INVITE_KEY).exists() => {
            return Err(Error::JoinPending(name.to_owned()));
        }
        Err(e) => return Err(Error::io(&secret_path, e)),
    };
    keep_private(&secret_path)?;
    secret.try_into().map_err(|_| Error::Config { path: secret_path.clone(), reason: "expected 64 bytes".into() })
}

fn read_key(path: &Path) -> Result<Option<[u8; 32]>, Error> {
    match fs::read(path) {
        Ok(b) => {
            keep_private(path)?;
            b.try_into()
                .map(Some)
                .map_err(|_| Error::Config { path: path.to_owned(), reason: "expected a 32-byte key".into() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

impl Home {
    /// `$COBOX_HOME`, else the platform data directory.
    pub fn default_root() -> PathBuf {
        if let Some(h) = std::env::var_os("COBOX_HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(h);
        }
        Self::platform_root()
    }

    /// The home `cobox` uses without `$COBOX_HOME`: the platform data directory.
    fn platform_root() -> PathBuf {
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(x).join("cobox");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
        PathBuf::from(home).join(".local/share/cobox")
    }

    /// A new home inside the folder of a space (one of the platform home's, or its own) would
    /// put its device key into the shared folder: refused before anything is created.
    fn refuse_inside_a_folder(root: &Path) -> Result<(), Error> {
        // The nearest existing ancestor, resolved, with the rest of the path on top.
        let mut existing = root.to_path_buf();
        let mut rest = Vec::new();
        while !existing.exists() {
            let Some(name) = existing.file_name().map(ToOwned::to_owned) else { break };
            rest.push(name);
            if !existing.pop() {
                break;
            }
        }
        let Ok(mut at) = fs::canonicalize(if existing.as_os_str().is_empty() { Path::new(".") } else { &existing })
        else {
            return Ok(());
        };
        at.extend(rest.iter().rev());
        let platform = Self::platform_root();
        // Another home's spaces are read as they are; one that cannot be read refuses nothing.
        let spaces = Self::list_spaces(&platform).unwrap_or_default();
        if let Some(s) = spaces.iter().find(|s| at.starts_with(&s.path)) {
            return Err(Error::InvalidPath(format!(
                "{} is inside the folder of space {:?} ({}): its device key would be shared with everyone in \
                 the space; set COBOX_HOME to a directory outside it",
                root.display(),
                s.name,
                s.path.display()
            )));
        }
        Ok(())
    }

    /// The home this process already holds (its daemon's), for work its network handlers do
    /// beside the daemon (a recovery joining its space). It takes no lock: the holder's lock
    /// stands for it, and dropping it releases nothing.
    pub(crate) fn held_here(root: &Path) -> Result<Self, Error> {
        let lock_path = paths::lock(root);
        let lock = File::open(&lock_path).at(&lock_path)?;
        let signer = Self::device_key_at(root)?;
        Ok(Self { root: root.to_owned(), _lock: lock, signer })
    }

    /// Open (creating if needed) and lock a home. Fails if another process holds it.
    pub fn open(root: &Path) -> Result<Self, Error> {
        if !paths::device_key(root).exists() {
            Self::refuse_inside_a_folder(root)?;
        }
        fs::create_dir_all(root).at(root)?;
        let _ = fs::set_permissions(root, fs::Permissions::from_mode(0o700));
        let lock_path = paths::lock(root);
        let mut lock =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock_path).at(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(Error::Locked {
                    home: root.to_owned(),
                    pid: if pid.is_empty() { String::new() } else { format!(" (pid {pid})") },
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        lock.set_len(0).at(&lock_path)?;
        write!(lock, "{}", std::process::id()).at(&lock_path)?;
        let key_path = paths::device_key(root);
        let seed = match read_key(&key_path)? {
            Some(k) => k,
            None => {
                let mut k = [0u8; 32];
                crate::random_bytes(&mut k);
                write_secret(&key_path, &k)?;
                k
            }
        };
        fs::create_dir_all(paths::spaces(root)).at(paths::spaces(root))?;
        fs::create_dir_all(paths::seeds(root)).at(paths::seeds(root))?;
        Ok(Self { root: root.to_owned(), _lock: lock, signer: SigningKey::from_bytes(&seed) })
    }

    /// Read the device id without taking the lock (for `cobox id` while a daemon runs).
    pub fn peek_device_id(root: &Path) -> Result<Option<DeviceId>, Error> {
        Ok(read_key(&paths::device_key(root))?.map(|k| DeviceId(SigningKey::from_bytes(&k).verifying_key().to_bytes())))
    }

    /// Read the device key's seed without taking the lock (a one-off connection beside a
    /// running daemon, e.g. to a seeder this device administers).
    pub fn peek_device_seed(root: &Path) -> Result<Option<[u8; 32]>, Error> {
        read_key(&paths::device_key(root))
    }

    /// The home directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        DeviceId(self.signer.verifying_key().to_bytes())
    }

    fn space_dir(&self, id: &SpaceId) -> PathBuf {
        paths::space(&self.root, id)
    }

    /// Give a space this device has just created or joined the name the device was given
    /// (`cobox device name`), so it shows by name there from its first operation.
    fn carry_device_name(root: &Path, signer: &SigningKey, info: &SpaceInfo, secret: &[u8; 64]) -> Result<(), Error> {
        let Some(name) = device_name_at(root) else { return Ok(()) };
        let dir = paths::space(root, &info.id);
        let ledger = crate::ledger::LedgerFile::new(info.id, &dir);
        let view = ledger.roster()?;
        let invite = crate::ledger::invite_key_at(&dir);
        let (keys, _) = crate::ledger::space_keys(&info.id, secret, &view, signer, invite.as_ref());
        let me = signer.verifying_key().to_bytes();
        let rename = cobox_core::roster::Action::Rename { device: me, name: keys.seal_name(&name) };
        ledger.add_roster_op(signer, rename, None)?;
        Ok(())
    }

    /// What a `Join` session does, done through two homes on one machine (tests, and tools that
    /// set devices up side by side): the home at `inviter` takes the redemption of the device
    /// at `joiner` and countersigns it, the joiner takes the inviter's ledger, and its join
    /// completes ([`Home::complete_join`]).
    #[doc(hidden)]
    pub fn join_beside(inviter: &Path, joiner: &Path, space: &SpaceId) -> Result<(), Error> {
        let theirs = crate::ledger::LedgerFile::new(*space, &paths::space(inviter, space));
        let mine = crate::ledger::LedgerFile::new(*space, &paths::space(joiner, space));
        theirs.merge_from(&mut mine.read()?)?;
        let me = Self::device_key_at(joiner)?.verifying_key().to_bytes();
        if let Some(redeem) = theirs.roster()?.awaiting.get(&me).copied() {
            let admit = cobox_core::roster::Action::Admit { redeem, at_ms: crate::now_ms(), credential: Vec::new() };
            theirs.add_roster_op(&Self::device_key_at(inviter)?, admit, None)?;
        }
        mine.merge_from(&mut theirs.read()?)?;
        Self::complete_join(joiner, space)
    }

    /// Whether `space` was joined by an invite and waits for its first sync (no secret yet).
    pub fn join_pending_at(root: &Path, space: &SpaceId) -> bool {
        let dir = paths::space(root, space);
        !dir.join("secret.key").exists() && dir.join(crate::ledger::INVITE_KEY).exists()
    }

    /// Finish joining `space` once a peer accepted this device's invite (its ledger, merged by a
    /// `Join` session, makes this device a member): open the space secret the invite's
    /// operation carries sealed to the invite's key, check that its public half is the key the
    /// space's genesis names (the space id commits to it, so no peer can hand over another),
    /// and keep it. The device's name goes on the roster then. Nothing to do for a space that
    /// holds its secret.
    pub fn complete_join(root: &Path, space: &SpaceId) -> Result<(), Error> {
        if !Self::join_pending_at(root, space) {
            return Ok(());
        }
        let info = resolve_in(&Self::list_spaces(root)?, &space.to_string())?.clone();
        let dir = paths::space(root, space);
        let refused = |why: String| Error::Refused(format!("joining space {:?}: {why}", info.name));
        let signer = Self::device_key_at(root)?;
        let invite = crate::ledger::invite_key_at(&dir).ok_or_else(|| refused("its invite key is missing".into()))?;
        let ledger = crate::ledger::LedgerFile::new(*space, &dir);
        let ops = ledger.read()?.roster_ops();
        let view = cobox_core::roster::evaluate(&space.0, &ops);
        if view.role(&signer.verifying_key().to_bytes()).is_none() {
            return Err(Error::JoinPending(info.name.clone()));
        }
        let sealed = view
            .invites
            .get(&invite.verifying_key().to_bytes())
            .map(|i| i.secret.clone())
            .ok_or_else(|| refused("the ledger does not hold its invite".into()))?;
        let secret = cobox_core::epoch::open_secret(&invite, &sealed, &space.0)
            .map_err(|e| refused(format!("the space secret in its invite: {e}")))?;
        let named = ops.iter().find_map(|op| cobox_core::roster::space_public_key(&space.0, op));
        if named != Some(space_signing_key(&secret).verifying_key().to_bytes()) {
            return Err(refused("the space secret in its invite is not the one the space's genesis names".into()));
        }
        write_secret(&dir.join("secret.key"), &secret)?;
        Self::carry_device_name(root, &signer, &info, &secret)
    }

    /// Forget a space on this device: its keys, store, manifest and ledger go; its folder and
    /// every other device's copy stay. A member should `leave` first so peers stop waiting for
    /// it. Returns what it was.
    pub fn remove_space(&self, query: &str) -> Result<SpaceInfo, Error> {
        Self::remove_space_at(&self.root, &self.resolve(query)?.id.to_string())
    }

    /// [`Home::remove_space`] for the process that owns the home and keeps only its path (the
    /// daemon, removing a space whose invite was refused).
    pub(crate) fn remove_space_at(root: &Path, query: &str) -> Result<SpaceInfo, Error> {
        let info = Self::resolve_at(root, query)?;
        let dir = paths::space(root, &info.id);
        // The registration goes first: a removal cut halfway leaves no half-open space.
        let cfg = dir.join("space.json");
        fs::remove_file(&cfg).at(&cfg)?;
        fs::remove_dir_all(&dir).at(&dir)?;
        Ok(info)
    }

    /// Every space on this device, by name.
    pub fn spaces(&self) -> Result<Vec<SpaceInfo>, Error> {
        Self::list_spaces(&self.root)
    }

    fn list_spaces(root: &Path) -> Result<Vec<SpaceInfo>, Error> {
        let dir = paths::spaces(root);
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        for e in rd {
            let e = e.at(&dir)?;
            let cfg = e.path().join("space.json");
            if !cfg.exists() {
                continue;
            }
            let bytes = fs::read(&cfg).at(&cfg)?;
            let info: SpaceInfo = serde_json::from_slice(&bytes)
                .map_err(|err| Error::Config { path: cfg.clone(), reason: err.to_string() })?;
            out.push(info);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Find a space by name, full id, or unambiguous id prefix (at least 4 characters).
    pub fn resolve(&self, query: &str) -> Result<SpaceInfo, Error> {
        resolve_in(&self.spaces()?, query).cloned()
    }

    /// Create a new space over `path` (created if missing).
    pub fn create_space(&self, name: &str, path: &Path) -> Result<SpaceInfo, Error> {
        let mut secret = [0u8; 64];
        crate::random_bytes(&mut secret);
        // The creator is the first manager, by the one genesis the space's id is made from.
        let (genesis, id) = cobox_core::roster::genesis(&space_signing_key(&secret), &self.signer)
            .map_err(|e| Error::Refused(format!("cannot sign the space's genesis: {e}")))?;
        let info = self.register_space(SpaceId(id), name, Some(path), Some(&secret))?;
        let ledger = crate::ledger::LedgerFile::new(info.id, &self.space_dir(&info.id));
        ledger.add_signed(&genesis)?;
        Self::carry_device_name(&self.root, &self.signer, &info, &secret)?;
        Ok(info)
    }

    /// Join a space from an invite: register it over `path` (created if missing), pending: the
    /// code holds no secret, so the first sync (with a member or seeder that accepts the invite)
    /// brings it, and the folder fills then ([`Home::complete_join`]). `name` defaults to the
    /// inviter's name for the space.
    pub fn join(&self, invite: &crate::codes::Invite, path: &Path, name: Option<&str>) -> Result<SpaceInfo, Error> {
        self.join_into(invite, Some(path), name)
    }

    /// Join to audit the space's seeders only: no folder, and sessions that fetch the
    /// manifest's changes and chunk lists, never content (`Purpose::Metadata`).
    pub fn join_audit_only(&self, invite: &crate::codes::Invite, name: Option<&str>) -> Result<SpaceInfo, Error> {
        self.join_into(invite, None, name)
    }

    fn join_into(
        &self,
        invite: &crate::codes::Invite,
        path: Option<&Path>,
        name: Option<&str>,
    ) -> Result<SpaceInfo, Error> {
        if self.spaces()?.iter().any(|s| s.id == invite.space) {
            return Err(Error::SpaceExists(format!("this device already holds space {}", invite.space.short())));
        }
        let info = self.register_space(invite.space, name.unwrap_or(&invite.name), path, None)?;
        // The invite's key opens the space secret and the key epochs its operation carries.
        let redeemed =
            write_secret(&self.space_dir(&info.id).join(crate::ledger::INVITE_KEY), &invite.key).and_then(|()| {
                // Redeemed here; the peer of the first sync judges it and countersigns it.
                let redeem =
                    cobox_core::roster::Action::Redeem { invite: invite_public(&invite.key), at_ms: crate::now_ms() };
                let ledger = crate::ledger::LedgerFile::new(info.id, &self.space_dir(&info.id));
                let key = SigningKey::from_bytes(&invite.key);
                ledger.add_roster_op_after(&self.signer, vec![cobox_core::roster::OpId(invite.op)], redeem, Some(&key))
            });
        if let Err(e) = redeemed {
            let _ = fs::remove_dir_all(self.space_dir(&info.id));
            return Err(e);
        }
        for p in &invite.peers {
            self.remember_peer(&info.id, &p.device, &p.addrs)?;
        }
        // Until a peer first accepts it, a refusal of the invite may remove the space again.
        let mark = self.space_dir(&info.id).join(crate::space::UNCONFIRMED);
        fs::write(&mark, b"").at(&mark)?;
        Ok(info)
    }

    /// Record a space: over the folder at `path`, or with none (audit only).
    fn register_space(
        &self,
        id: SpaceId,
        name: &str,
        path: Option<&Path>,
        secret: Option<&[u8; 64]>,
    ) -> Result<SpaceInfo, Error> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.contains('/') || name.chars().any(char::is_control) {
            return Err(Error::InvalidName(name.to_owned()));
        }
        let spaces = self.spaces()?;
        if spaces.iter().any(|s| s.name == name) {
            return Err(Error::SpaceExists(format!("a space named {name:?} already exists on this device")));
        }
        let Some(path) = path else { return self.write_space_info(id, name, PathBuf::new(), true, secret) };
        // Made here if missing, and removed again if the space is then refused.
        let created = !path.exists();
        fs::create_dir_all(path).at(path)?;
        let checked = (|| {
            let path = fs::canonicalize(path).at(path)?;
            if !path.is_dir() {
                return Err(Error::InvalidPath(format!("{} is not a directory", path.display())));
            }
            let home = fs::canonicalize(&self.root).at(&self.root)?;
            if path.starts_with(&home) || home.starts_with(&path) {
                return Err(Error::InvalidPath(format!(
                    "{} and the cobox home {} must not contain each other",
                    path.display(),
                    home.display()
                )));
            }
            // A folder inside another space's (or holding one) would record its files twice.
            if let Some(s) = spaces.iter().find(|s| s.path.starts_with(&path) || path.starts_with(&s.path)) {
                let how = if s.path == path { "is already" } else { "is inside or holds" };
                return Err(Error::SpaceExists(format!(
                    "{} {how} the folder of space {:?} ({}); pick a folder outside it",
                    path.display(),
                    s.name,
                    s.path.display()
                )));
            }
            Ok(path)
        })();
        let path = match checked {
            Ok(p) => p,
            Err(e) => {
                if created {
                    let _ = fs::remove_dir(path);
                }
                return Err(e);
            }
        };
        self.write_space_info(id, name, path, false, secret)
    }

    fn write_space_info(
        &self,
        id: SpaceId,
        name: &str,
        path: PathBuf,
        audit_only: bool,
        secret: Option<&[u8; 64]>,
    ) -> Result<SpaceInfo, Error> {
        let mut actor = [0u8; 16];
        crate::random_bytes(&mut actor);
        let info = SpaceInfo {
            id,
            name: name.to_owned(),
            path,
            created_ms: crate::now_ms(),
            actor: hex::encode(actor),
            shards: DEFAULT_SHARDS,
            replicas_target: crate::space::default_replicas_target(),
            audit_only,
        };
        let dir = self.space_dir(&id);
        fs::create_dir_all(&dir).at(&dir)?;
        if let Some(secret) = secret {
            write_secret(&dir.join("secret.key"), secret)?;
        }
        let json = crate::error::json("space.json", &info)?;
        write_atomic(&dir.join("space.json"), &json)?;
        Ok(info)
    }

    /// The device key seed (for the network endpoint, whose identity it is).
    pub fn device_seed(&self) -> [u8; 32] {
        self.signer.to_bytes()
    }

    /// Remember where a peer of `space` was reached, for later syncs without `--peer`.
    pub fn remember_peer(&self, space: &SpaceId, device: &DeviceId, addrs: &[String]) -> Result<(), Error> {
        Self::remember_peer_at(&self.root, space, device, addrs)
    }

    /// [`Home::remember_peer`] for a process that does not own the home (the daemon's
    /// sessions, `cobox agreement propose`). The newest addresses come first. The peer is
    /// recorded as one of `space`'s: syncs of other spaces do not dial it.
    pub fn remember_peer_at(root: &Path, space: &SpaceId, device: &DeviceId, addrs: &[String]) -> Result<(), Error> {
        let tags = paths::peer_spaces(root);
        let mut met: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = read_json(&tags)?;
        if met.entry(device.to_string()).or_default().insert(space.to_string()) {
            write_atomic(&tags, &crate::error::json("the peers' spaces", &met)?)?;
        }
        let path = paths::peers(root);
        let mut book: std::collections::BTreeMap<String, Vec<String>> = read_json(&path)?;
        let entry = book.entry(device.to_string()).or_default();
        if addrs.iter().all(|a| entry.contains(a)) {
            return Ok(());
        }
        let mut merged: Vec<String> = addrs.iter().filter(|a| !a.is_empty()).cloned().collect();
        merged.extend(entry.iter().filter(|a| !addrs.contains(a)).cloned());
        // Old ports of restarted peers pile up otherwise.
        merged.truncate(8);
        *entry = merged;
        let json = crate::error::json("the address book", &book)?;
        write_atomic(&path, &json)
    }

    /// The address book: device → addresses it was reached at, newest first.
    pub fn peers(&self) -> Result<AddressBook, Error> {
        Self::peers_at(&self.root)
    }

    /// The address book as peers to dial for `space`: those met in it, and those recorded
    /// before peers were recorded per space (met in no space). A space's id goes in every
    /// `Hello`, so dialing every peer for every space would tell each what else this device holds.
    pub fn peer_addrs_at(root: &Path, space: &SpaceId) -> Result<Vec<crate::codes::PeerAddr>, Error> {
        let met: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            read_json(&paths::peer_spaces(root))?;
        let mut out = Vec::new();
        for (device, addrs) in Self::peers_at(root)? {
            let met_in = met.get(&device.to_string());
            if met_in.is_some_and(|spaces| !spaces.is_empty() && !spaces.contains(&space.to_string())) {
                continue;
            }
            out.push(crate::codes::PeerAddr { device, addrs });
        }
        Ok(out)
    }

    /// `peer` with the addresses the address book knows when it names none (`--peer ID`), so a
    /// device reached before is found again with relays and LAN discovery off.
    pub fn with_known_addrs(root: &Path, mut peer: crate::codes::PeerAddr) -> Result<crate::codes::PeerAddr, Error> {
        if peer.addrs.is_empty()
            && let Some(addrs) = Self::peers_at(root)?.remove(&peer.device)
        {
            peer.addrs = addrs;
        }
        Ok(peer)
    }

    /// [`Home::peers`] without the lock. A device id that does not parse is the file's fault,
    /// said with its path, not a peer silently left out.
    pub fn peers_at(root: &Path) -> Result<AddressBook, Error> {
        let path = paths::peers(root);
        let raw: std::collections::BTreeMap<String, Vec<String>> = read_json(&path)?;
        raw.into_iter()
            .map(|(dev, addrs)| {
                let device = dev
                    .parse()
                    .map_err(|e| Error::Config { path: path.clone(), reason: format!("device {dev:?}: {e}") })?;
                Ok((device, addrs))
            })
            .collect()
    }

    /// The HTTP API's bearer token (`api-token`, 0600), created on first use.
    pub fn api_token(&self) -> Result<String, Error> {
        let path = paths::api_token(&self.root);
        match fs::read_to_string(&path) {
            Ok(t) if t.trim().len() >= 32 => {
                keep_private(&path)?;
                Ok(t.trim().to_owned())
            }
            Ok(_) => {
                Err(Error::Config { path, reason: "the token is too short; delete the file to make a new one".into() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut t = [0u8; 32];
                crate::random_bytes(&mut t);
                let t = hex::encode(t);
                write_secret(&path, t.as_bytes())?;
                Ok(t)
            }
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// The device's transfer limits (none set: no limits).
    pub fn limits_at(root: &Path) -> Result<Limits, Error> {
        read_json(&paths::limits(root))
    }

    /// Record the device's transfer limits.
    pub fn set_limits_at(root: &Path, l: &Limits) -> Result<(), Error> {
        write_atomic(&paths::limits(root), &crate::error::json("limits.json", l)?)
    }

    /// Record the addresses the running daemon listens on (read by `cobox invite`).
    pub fn set_listening(&self, addrs: &[String]) -> Result<(), Error> {
        Self::set_listening_at(&self.root, addrs)
    }

    /// [`Home::set_listening`] for the holder of the home's lock that keeps only its path.
    pub fn set_listening_at(root: &Path, addrs: &[String]) -> Result<(), Error> {
        write_atomic(&paths::listening(root), &crate::error::json("listen.json", &addrs)?)
    }

    /// Make a member invite for a space: a one-use key recorded in the roster with the role,
    /// name and expiry the manager chose. Reads and writes only files, so it works while the
    /// daemon runs.
    pub fn invite(root: &Path, query: &str, request: &InviteRequest) -> Result<crate::codes::Invite, Error> {
        let (info, dir, secret) = Self::space_files(root, query)?;
        let device_key = Self::device_key_at(root)?;
        let device = DeviceId(device_key.verifying_key().to_bytes());
        let ledger = crate::ledger::LedgerFile::new(info.id, &dir);
        let view = ledger.roster()?;
        match view.role(&device.0) {
            Some(cobox_core::roster::Role::Manage) => {}
            Some(role) => {
                return Err(Error::Refused(format!(
                    "only a manager of space {:?} invites; this device's role is {role}",
                    info.name
                )));
            }
            None => {
                return Err(Error::Refused(format!(
                    "this device is not yet on the roster of space {:?}: open it once (cobox status {}) or restart cobox up, then invite",
                    info.name, info.name
                )));
            }
        }
        let mut key = [0u8; 32];
        crate::random_bytes(&mut key);
        // The joiner gets every key epoch this device holds, sealed to the invite's key, so it
        // reads the space (also from a seeder) before any manager is online again.
        let invite_key = crate::ledger::invite_key_at(&dir);
        let (keys, missing) = crate::ledger::space_keys(&info.id, &secret, &view, &device_key, invite_key.as_ref());
        if let Some(epoch) = missing {
            return Err(Error::Refused(format!(
                "this device does not hold the space's current key (epoch {epoch:08x}) yet; sync with another manager first"
            )));
        }
        let all = crate::ledger::epoch_keys(&info.id, &secret, &view, &device_key, invite_key.as_ref());
        let mut seed = [0u8; 32];
        crate::random_bytes(&mut seed);
        let epoch = keys.current();
        let sealed = cobox_core::epoch::seal_keys(
            &invite_public(&key),
            &all,
            &cobox_core::epoch::context(&info.id.0, epoch),
            seed,
        )
        .map_err(|e| Error::Refused(format!("sealing the keys to the invite: {e}")))?;
        // Names follow one rule everywhere: the joiner's name lands on the roster as is.
        let name = match request.name.as_deref() {
            Some(n) => {
                let n =
                    crate::util::valid_name(n).ok_or_else(|| Error::InvalidMemberName(crate::util::shortened(n)))?;
                keys.seal_name(n)
            }
            None => Vec::new(),
        };
        let mut seed = [0u8; 32];
        crate::random_bytes(&mut seed);
        let sealed_secret = cobox_core::epoch::seal_secret(&invite_public(&key), &secret, &info.id.0, seed)
            .map_err(|e| Error::Refused(format!("sealing the space secret to the invite: {e}")))?;
        let action = cobox_core::roster::Action::Invite {
            key: invite_public(&key),
            role: request.role,
            name,
            expires_ms: request.expires_ms,
            keys: sealed,
            epoch,
            secret: sealed_secret,
        };
        let op = ledger.add_roster_op(&device_key, action, None)?;
        let addrs: Vec<String> = read_json(&paths::listening(root))?;
        let mut peers = vec![crate::codes::PeerAddr { device, addrs }];
        peers.extend(Self::ledger_peers(root, &info.id, &device)?);
        Ok(crate::codes::Invite { space: info.id, name: info.name.clone(), peers, key, op: op.0 })
    }

    /// The devices this space's ledger names in active agreements (seeders, and the member
    /// devices that proposed them) whose addresses the address book holds, for an invite: a
    /// new device can then sync, or restore from a seeder, while the inviter is off. At most
    /// [`INVITE_EXTRA_PEERS`] of them, seeders first, so codes stay short.
    fn ledger_peers(root: &Path, space: &SpaceId, me: &DeviceId) -> Result<Vec<crate::codes::PeerAddr>, Error> {
        let dir = paths::space(root, space);
        // Extra peers are a help, not a need: an unreadable ledger leaves the invite as it was.
        let Ok(view) = crate::ledger::LedgerFile::new(*space, &dir).view(crate::now_ms()) else {
            return Ok(Vec::new());
        };
        let active = || view.agreements.iter().filter(|a| a.state == cobox_agreements::State::Active);
        let mut named: Vec<DeviceId> = active().map(|a| DeviceId(a.agreement.seeder)).collect();
        named.extend(active().map(|a| DeviceId(a.agreement.owner)));
        let book = Self::peers_at(root)?;
        let mut out: Vec<crate::codes::PeerAddr> = Vec::new();
        for device in named {
            if out.len() == INVITE_EXTRA_PEERS {
                break;
            }
            if device == *me || out.iter().any(|p| p.device == device) {
                continue;
            }
            if let Some(addrs) = book.get(&device).filter(|a| !a.is_empty()) {
                out.push(crate::codes::PeerAddr { device, addrs: addrs.iter().take(3).cloned().collect() });
            }
        }
        Ok(out)
    }

    /// The spaces this device seeds for others.
    pub fn seeds(&self) -> Result<Vec<crate::seed::SeedInfo>, Error> {
        let dir = paths::seeds(&self.root);
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).at(&dir)? {
            let cfg = e.at(&dir)?.path().join("seed.json");
            if cfg.exists() {
                let bytes = fs::read(&cfg).at(&cfg)?;
                out.push(
                    serde_json::from_slice(&bytes)
                        .map_err(|err| Error::Config { path: cfg, reason: err.to_string() })?,
                );
            }
        }
        Ok(out)
    }

    /// Open the seed of a space, creating it when `create` is set.
    pub fn open_seed(&self, space: &SpaceId, create: bool) -> Result<crate::seed::Seed, Error> {
        Self::open_seed_at(&self.root, self.device_id(), space, create)
    }

    /// [`Home::open_seed`] for the daemon's sessions, which take seeds on under a standing policy.
    pub(crate) fn open_seed_at(
        root: &Path,
        device: DeviceId,
        space: &SpaceId,
        create: bool,
    ) -> Result<crate::seed::Seed, Error> {
        if Self::list_spaces(root)?.iter().any(|s| s.id == *space) {
            return Err(Error::SpaceExists(format!(
                "this device is a member of space {}; a member keeps its own copy and cannot also seed it",
                space.short()
            )));
        }
        let dir = paths::seed(root, space);
        let cfg = dir.join("seed.json");
        let info = match fs::read(&cfg) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| Error::Config { path: cfg.clone(), reason: e.to_string() })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                fs::create_dir_all(&dir).at(&dir)?;
                let info = crate::seed::SeedInfo { space: *space, created_ms: crate::now_ms() };
                write_atomic(&cfg, &crate::error::json("seed.json", &info)?)?;
                info
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::SpaceNotFound(format!("{} (not seeded here)", space.short())));
            }
            Err(e) => return Err(Error::io(&cfg, e)),
        };
        crate::seed::Seed::open(info, dir, device)
    }

    /// Delete a seeded space's blobs and ledger (after its agreements ended and the grace period passed).
    pub fn remove_seed(root: &Path, space: &SpaceId) -> Result<(), Error> {
        let dir = paths::seed(root, space);
        // seed.json goes first, so a crash midway leaves a directory nothing opens.
        let _ = fs::remove_file(dir.join("seed.json"));
        fs::remove_dir_all(&dir).at(&dir)
    }

    /// The device's signing key (it signs agreements, acceptances and audit results).
    pub fn device_key(&self) -> &SigningKey {
        &self.signer
    }

    /// Open a space by name or id.
    pub fn open_space(&self, query: &str) -> Result<Space, Error> {
        self.open_space_opt(query, None)
    }

    /// [`Home::open_space`] with the store's write faults given (tests).
    #[cfg(test)]
    pub(crate) fn open_space_with_faults(
        &self,
        query: &str,
        faults: std::sync::Arc<crate::store::Faults>,
    ) -> Result<Space, Error> {
        self.open_space_opt(query, Some(faults))
    }

    fn open_space_opt(
        &self,
        query: &str,
        faults: Option<std::sync::Arc<crate::store::Faults>>,
    ) -> Result<Space, Error> {
        let info = self.resolve(query)?;
        let dir = self.space_dir(&info.id);
        let secret = read_secret(&dir, &info.name)?;
        Space::open_with(info, dir, &secret, self.signer.clone(), faults)
    }

    /// [`Home::open_space`] for the process that owns the home and keeps only its path (a
    /// space whose join a sync finished).
    pub(crate) fn open_space_at(root: &Path, space: &SpaceId) -> Result<Space, Error> {
        let (info, dir, secret) = Self::space_files(root, &space.to_string())?;
        Space::open(info, dir, &secret, Self::device_key_at(root)?)
    }

    /// Set a space's damaged blob index aside and rebuild it from its packs (`cobox repair`,
    /// when the space cannot open). Opening then applies every change the packs hold.
    pub fn rebuild_index(&self, query: &str) -> Result<crate::store::Reindex, Error> {
        let info = self.resolve(query)?;
        Ok(crate::store::BlobStore::rebuild(&self.space_dir(&info.id))?)
    }

    /// Spaces (by query) with their directory and secret, read without the lock: for commands
    /// that only touch the ledger and may run beside the daemon.
    pub(crate) fn space_files(root: &Path, query: &str) -> Result<(SpaceInfo, PathBuf, [u8; 64]), Error> {
        let spaces = Self::list_spaces(root)?;
        let info = resolve_in(&spaces, query)?.clone();
        let dir = paths::space(root, &info.id);
        let secret = read_secret(&dir, &info.name)?;
        Ok((info, dir, secret))
    }

    /// Find a space by name or id without the lock (for the daemon's HTTP API).
    pub fn resolve_at(root: &Path, query: &str) -> Result<SpaceInfo, Error> {
        resolve_in(&Self::list_spaces(root)?, query).cloned()
    }

    /// Every space's registration, read without the lock.
    pub fn spaces_at(root: &Path) -> Result<Vec<SpaceInfo>, Error> {
        Self::list_spaces(root)
    }

    /// The device key, read without the lock.
    pub(crate) fn device_key_at(root: &Path) -> Result<SigningKey, Error> {
        read_key(&paths::device_key(root))?.map(|k| SigningKey::from_bytes(&k)).ok_or_else(|| Error::Config {
            path: paths::device_key(root),
            reason: "missing; run any cobox command once to create it".into(),
        })
    }

    /// Addresses the running daemon listens on (empty when none runs).
    pub fn listening_at(root: &Path) -> Result<Vec<String>, Error> {
        read_json(&paths::listening(root))
    }
}

/// The address book: each device met, with the addresses it was reached at, newest first.
pub type AddressBook = std::collections::BTreeMap<DeviceId, Vec<String>>;

/// What a manager chooses for an invite.
#[derive(Debug, Clone)]
pub struct InviteRequest {
    /// The role the joiner gets.
    pub role: cobox_core::roster::Role,
    /// When the code stops working (ms since the epoch).
    pub expires_ms: i64,
    /// The joiner's name on the roster.
    pub name: Option<String>,
}

impl InviteRequest {
    /// A writer's invite that works for seven days.
    pub fn writer() -> Self {
        Self { role: cobox_core::roster::Role::Write, expires_ms: crate::now_ms() + 7 * 86_400_000, name: None }
    }
}

/// An invite key's public half, from the seed in the code.
fn invite_public(seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer met in one space is not dialed for another (its `Hello` would name that space);
    /// one recorded before peers were kept per space is dialed for all, as before.
    #[test]
    fn a_space_is_synced_only_with_peers_met_in_it() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (SpaceId([1; 32]), SpaceId([2; 32]));
        let (p0, p1, p2) = (DeviceId([10; 32]), DeviceId([11; 32]), DeviceId([12; 32]));
        let legacy = format!("{{\"{p0}\": [\"127.0.0.1:1\"]}}");
        fs::write(paths::peers(root.path()), legacy).unwrap();
        Home::remember_peer_at(root.path(), &a, &p1, &["127.0.0.1:2".into()]).unwrap();
        Home::remember_peer_at(root.path(), &b, &p2, &["127.0.0.1:3".into()]).unwrap();
        let dial = |s: &SpaceId| -> Vec<DeviceId> {
            Home::peer_addrs_at(root.path(), s).unwrap().into_iter().map(|p| p.device).collect()
        };
        assert_eq!(dial(&a), vec![p0, p1]);
        assert_eq!(dial(&b), vec![p0, p2]);
        Home::remember_peer_at(root.path(), &b, &p1, &["127.0.0.1:2".into()]).unwrap();
        assert_eq!(dial(&b), vec![p0, p1, p2], "met in both now");
        assert_eq!(dial(&SpaceId([3; 32])), vec![p0]);
    }

    /// Key files widened since they were written (a copy, a restore) are made private again.
    #[test]
    fn key_files_are_made_private_again() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let folder = tempfile::tempdir().unwrap();
        let h = Home::open(root.path()).unwrap();
        let info = h.create_space("s", folder.path()).unwrap();
        h.api_token().unwrap();
        drop(h);
        let keys = [
            paths::device_key(root.path()),
            paths::space(root.path(), &info.id).join("secret.key"),
            paths::api_token(root.path()),
        ];
        for k in &keys {
            fs::set_permissions(k, fs::Permissions::from_mode(0o644)).unwrap();
        }
        let h = Home::open(root.path()).unwrap();
        h.open_space("s").unwrap();
        h.api_token().unwrap();
        for k in &keys {
            assert_eq!(fs::metadata(k).unwrap().permissions().mode() & 0o777, 0o600, "{}", k.display());
        }
    }
}
