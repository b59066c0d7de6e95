//! A device's home directory: its identity key, its spaces, and the lock that makes one
//! process its owner.
//!
//! Layout: `device.key` (ed25519 seed, 0600), `lock`, and per space `spaces/<id>/` holding
//! `space.json`, `secret.key` (0600), `index.redb`, `packs/` and `manifest/`.

use crate::error::{Error, IoContext};
use crate::ids::{DeviceId, SpaceId};
use crate::space::Space;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Manifest shards per space: enough to keep each Automerge document small at 1M files.
pub const DEFAULT_SHARDS: u16 = 16;

/// A space as registered on this device.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpaceInfo {
    /// The space id (its signing public key).
    pub id: SpaceId,
    /// The local name.
    pub name: String,
    /// The folder it tracks.
    pub path: PathBuf,
    /// When it was created or joined here.
    pub created_ms: i64,
    /// This device's Automerge actor id for the space (hex).
    pub actor: String,
    /// Number of manifest shard documents.
    pub shards: u16,
}

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

/// Write a file atomically (temp, fsync, rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).at(&tmp)?;
    f.write_all(bytes).at(&tmp)?;
    f.sync_all().at(&tmp)?;
    fs::rename(&tmp, path).at(path)
}

fn read_key(path: &Path) -> Result<Option<[u8; 32]>, Error> {
    match fs::read(path) {
        Ok(b) => b
            .try_into()
            .map(Some)
            .map_err(|_| Error::Config { path: path.to_owned(), reason: "expected a 32-byte key".into() }),
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
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(x).join("cobox");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
        PathBuf::from(home).join(".local/share/cobox")
    }

    /// Open (creating if needed) and lock a home. Fails if another process holds it.
    pub fn open(root: &Path) -> Result<Self, Error> {
        fs::create_dir_all(root).at(root)?;
        let _ = fs::set_permissions(root, fs::Permissions::from_mode(0o700));
        let lock_path = root.join("lock");
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
        let key_path = root.join("device.key");
        let seed = match read_key(&key_path)? {
            Some(k) => k,
            None => {
                let mut k = [0u8; 32];
                crate::random_bytes(&mut k);
                write_secret(&key_path, &k)?;
                k
            }
        };
        fs::create_dir_all(root.join("spaces")).at(root.join("spaces"))?;
        Ok(Self { root: root.to_owned(), _lock: lock, signer: SigningKey::from_bytes(&seed) })
    }

    /// Read the device id without taking the lock (for `cobox id` while a daemon runs).
    pub fn peek_device_id(root: &Path) -> Result<Option<DeviceId>, Error> {
        Ok(read_key(&root.join("device.key"))?.map(|k| DeviceId(SigningKey::from_bytes(&k).verifying_key().to_bytes())))
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
        self.root.join("spaces").join(id.to_string())
    }

    /// Every space on this device, by name.
    pub fn spaces(&self) -> Result<Vec<SpaceInfo>, Error> {
        let dir = self.root.join("spaces");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).at(&dir)? {
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
        let spaces = self.spaces()?;
        if let Some(s) = spaces.iter().find(|s| s.name == query || s.id.to_string() == query) {
            return Ok(s.clone());
        }
        let q = query.to_ascii_lowercase();
        let hits: Vec<&SpaceInfo> =
            spaces.iter().filter(|s| q.len() >= 4 && s.id.to_string().starts_with(&q)).collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::SpaceNotFound(query.to_owned())),
            _ => Err(Error::Ambiguous(query.to_owned())),
        }
    }

    /// Create a new space over `path` (created if missing).
    pub fn create_space(&self, name: &str, path: &Path) -> Result<SpaceInfo, Error> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.contains('/') || name.chars().any(char::is_control) {
            return Err(Error::SpaceExists(format!(
                "invalid space name {name:?}: use 1-100 characters without '/' or control characters"
            )));
        }
        let spaces = self.spaces()?;
        if spaces.iter().any(|s| s.name == name) {
            return Err(Error::SpaceExists(format!("a space named {name:?} already exists on this device")));
        }
        fs::create_dir_all(path).at(path)?;
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
        if let Some(s) = spaces.iter().find(|s| s.path == path) {
            return Err(Error::SpaceExists(format!("{} is already the folder of space {:?}", path.display(), s.name)));
        }
        let mut secret = [0u8; 64];
        crate::random_bytes(&mut secret);
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&secret[..32]);
        let signer = SigningKey::from_bytes(&seed);
        let id = SpaceId(signer.verifying_key().to_bytes());
        let mut actor = [0u8; 16];
        crate::random_bytes(&mut actor);
        let info = SpaceInfo {
            id,
            name: name.to_owned(),
            path,
            created_ms: crate::now_ms(),
            actor: hex::encode(actor),
            shards: DEFAULT_SHARDS,
        };
        let dir = self.space_dir(&id);
        fs::create_dir_all(&dir).at(&dir)?;
        write_secret(&dir.join("secret.key"), &secret)?;
        let json = serde_json::to_vec_pretty(&info).unwrap_or_default();
        write_atomic(&dir.join("space.json"), &json)?;
        Ok(info)
    }

    /// Open a space by name or id.
    pub fn open_space(&self, query: &str) -> Result<Space, Error> {
        let info = self.resolve(query)?;
        let dir = self.space_dir(&info.id);
        let secret_path = dir.join("secret.key");
        let secret = fs::read(&secret_path).at(&secret_path)?;
        let secret: [u8; 64] = secret
            .try_into()
            .map_err(|_| Error::Config { path: secret_path.clone(), reason: "expected 64 bytes".into() })?;
        Space::open(info, dir, &secret, self.device_id())
    }
}
