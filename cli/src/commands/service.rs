//! `cobox service install|uninstall`: run `cobox up` under systemd, for this user or for the
//! whole machine (a seeder's usual shape: a `cobox` system user, its home in /var/lib/cobox).

use crate::Ctx;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The unit's name, also in the Debian package (`cli/debian/cobox.service`).
pub(crate) const UNIT: &str = "cobox.service";
/// The system service's home: systemd's `StateDirectory=cobox`.
pub(crate) const SYSTEM_HOME: &str = "/var/lib/cobox";
/// The system service's user.
pub(crate) const SYSTEM_USER: &str = "cobox";

#[derive(clap::Subcommand)]
pub(crate) enum ServiceCmd {
    /// Write a systemd unit that runs `cobox up`, enable it and start it.
    Install(InstallArgs),
    /// Stop and disable the unit and remove it (the home and its spaces stay).
    Uninstall(Where),
}

#[derive(clap::Args)]
pub(crate) struct Where {
    /// For this user (`systemctl --user`, this home), not the machine (user `cobox`, /var/lib/cobox).
    #[arg(long)]
    user: bool,
    /// Write the unit here instead of systemd's directory (for packagers), and call no systemctl.
    #[arg(long, value_name = "DIR", hide = true)]
    unit_dir: Option<PathBuf>,
    /// Only write (or remove) the unit file: no systemctl, no system user.
    #[arg(long)]
    no_enable: bool,
}

#[derive(clap::Args)]
pub(crate) struct InstallArgs {
    #[command(flatten)]
    at: Where,
    /// Options for `cobox up`, after `--` (e.g. `-- --seed-for ID --max-quota 500G`).
    #[arg(last = true, value_name = "UP_OPTIONS")]
    up: Vec<String>,
}

/// Who runs the unit and where its state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `systemctl --user`, the user's own home.
    User,
    /// The machine's: user `cobox`, `/var/lib/cobox`, started at boot.
    System,
}

/// The unit text. Pure, so the Debian package's unit is checked against it.
pub(crate) fn unit_text(mode: Mode, exe: &Path, home: &Path, up: &[String]) -> String {
    let mut exec = format!("{} up", quote(&exe.to_string_lossy()));
    for a in up {
        exec.push(' ');
        exec.push_str(&quote(a));
    }
    let mut s = String::from(
        "[Unit]\nDescription=CoBox: sync, seed and audit this device's spaces\n\
         Documentation=file:///usr/share/doc/cobox/operations.md\n\
         Wants=network-online.target\nAfter=network-online.target\n\n[Service]\nType=simple\n",
    );
    match mode {
        Mode::System => {
            s.push_str(&format!("User={SYSTEM_USER}\nGroup={SYSTEM_USER}\n"));
            s.push_str(&format!("Environment=COBOX_HOME={SYSTEM_HOME}\n"));
            // The package's options live in /etc/default/cobox, read here (the `-`: optional).
            s.push_str("EnvironmentFile=-/etc/default/cobox\n");
            exec.push_str(" $COBOX_UP_OPTIONS");
            s.push_str("StateDirectory=cobox\nStateDirectoryMode=0700\n");
            // A seeder needs no one's home folders and no privileges.
            s.push_str("NoNewPrivileges=yes\nProtectSystem=full\nProtectHome=yes\nPrivateTmp=yes\n");
        }
        Mode::User => {
            s.push_str(&format!("Environment={}\n", quote(&format!("COBOX_HOME={}", home.display()))));
        }
    }
    s.push_str(&format!("ExecStart={exec}\n"));
    // SIGTERM is `cobox up`'s clean stop; a crash is restarted, a refused start (exit 1) too, slowly.
    s.push_str("KillSignal=SIGTERM\nRestart=on-failure\nRestartSec=10\n\n[Install]\n");
    s.push_str(match mode {
        Mode::System => "WantedBy=multi-user.target\n",
        Mode::User => "WantedBy=default.target\n",
    });
    s
}

/// One word of an `ExecStart=` line: quoted when it must be, with systemd's `%` and `$` escaped.
fn quote(w: &str) -> String {
    let escaped = w.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%").replace('$', "$$");
    if !w.is_empty() && !w.chars().any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\') {
        escaped
    } else {
        format!("\"{escaped}\"")
    }
}

fn unit_dir(at: &Where, mode: Mode) -> Result<PathBuf> {
    if let Some(d) = &at.unit_dir {
        return Ok(d.clone());
    }
    Ok(match mode {
        Mode::System => PathBuf::from("/etc/systemd/system"),
        Mode::User => {
            let config = match std::env::var_os("XDG_CONFIG_HOME") {
                Some(d) if !d.is_empty() => PathBuf::from(d),
                _ => {
                    PathBuf::from(std::env::var_os("HOME").context("HOME is not set: pass --unit-dir")?).join(".config")
                }
            };
            config.join("systemd/user")
        }
    })
}

fn systemctl(mode: Mode, args: &[&str]) -> Result<()> {
    let mut c = Command::new("systemctl");
    if mode == Mode::User {
        c.arg("--user");
    }
    let out = c.args(args).output().context("running systemctl (is this a systemd machine?)")?;
    if !out.status.success() {
        bail!("systemctl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The `cobox` system user, made when missing (the Debian package's postinst does the same).
fn ensure_system_user() -> Result<()> {
    let known = Command::new("getent").args(["passwd", SYSTEM_USER]).output().is_ok_and(|o| o.status.success());
    if known {
        return Ok(());
    }
    let out = Command::new("useradd")
        .args(["--system", "--user-group", "--home-dir", SYSTEM_HOME, "--shell", "/usr/sbin/nologin", SYSTEM_USER])
        .output()
        .context("running useradd to make the cobox system user (run as root, or use --user)")?;
    if !out.status.success() {
        bail!(
            "making the cobox system user failed: {} (run as root, or use --user)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub(crate) fn run(ctx: &Ctx, c: ServiceCmd) -> Result<()> {
    match c {
        ServiceCmd::Install(a) => install(ctx, a),
        ServiceCmd::Uninstall(at) => uninstall(ctx, at),
    }
}

fn install(ctx: &Ctx, a: InstallArgs) -> Result<()> {
    let mode = if a.at.user { Mode::User } else { Mode::System };
    let exe = std::env::current_exe().context("finding this program's path")?;
    let home = std::path::absolute(&ctx.home).context("making the home's path absolute")?;
    let dir = unit_dir(&a.at, mode)?;
    let act = a.at.unit_dir.is_none() && !a.at.no_enable;
    // The system unit hides /home and /root from the service (ProtectHome), so it cannot run a
    // binary from there.
    if act && mode == Mode::System && (exe.starts_with("/home") || exe.starts_with("/root")) {
        bail!(
            "{} is under /home or /root, which the system service cannot see: copy it to /usr/local/bin \
             (`sudo install -m 755 {} /usr/local/bin/`) and run that copy, or use --user",
            exe.display(),
            exe.display()
        );
    }
    if act && mode == Mode::System {
        ensure_system_user()?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(UNIT);
    let text = unit_text(mode, &exe, &home, &a.up);
    cobox_engine::util::write_atomic(&path, text.as_bytes())
        .with_context(|| format!("writing {} (run as root, or use --user)", path.display()))?;
    if act {
        systemctl(mode, &["daemon-reload"])?;
        systemctl(mode, &["enable", "--now", UNIT])?;
    }
    if ctx.json {
        return ctx.print_json(&serde_json::json!({ "unit": path, "enabled": act }));
    }
    println!("wrote {}", path.display());
    match (act, mode) {
        (false, _) => println!("not enabled (--no-enable): `systemctl{} enable --now {UNIT}` starts it", flag(mode)),
        (true, Mode::User) => {
            println!("enabled and started: `systemctl --user status {UNIT}`; logs: `cobox logs`");
            println!("to keep it running while you are logged out: `loginctl enable-linger $USER`");
        }
        (true, Mode::System) => {
            println!("enabled and started as user {SYSTEM_USER}, home {SYSTEM_HOME}");
            println!("its commands: `sudo -u {SYSTEM_USER} cobox --home {SYSTEM_HOME} status`");
        }
    }
    Ok(())
}

fn flag(mode: Mode) -> &'static str {
    if mode == Mode::User { " --user" } else { "" }
}

fn uninstall(ctx: &Ctx, at: Where) -> Result<()> {
    let mode = if at.user { Mode::User } else { Mode::System };
    let dir = unit_dir(&at, mode)?;
    let path = dir.join(UNIT);
    let act = at.unit_dir.is_none() && !at.no_enable;
    if act {
        // Stopped before its file goes; a unit already stopped or disabled is fine.
        let _ = systemctl(mode, &["disable", "--now", UNIT]);
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("no {UNIT} in {}: nothing to uninstall", dir.display())
        }
        Err(e) => return Err(e).with_context(|| format!("removing {} (run as root, or use --user)", path.display())),
    }
    if act {
        systemctl(mode, &["daemon-reload"])?;
    }
    if ctx.json {
        return ctx.print_json(&serde_json::json!({ "removed": path }));
    }
    println!("removed {}; the home and its spaces are untouched", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debian_package_carries_the_system_unit_this_command_writes() {
        let text = unit_text(Mode::System, Path::new("/usr/bin/cobox"), Path::new(SYSTEM_HOME), &[]);
        let shipped = include_str!("../../debian/cobox.service");
        assert_eq!(text, shipped, "cli/debian/cobox.service is stale: write unit_text's output there");
    }

    #[test]
    fn words_are_quoted_for_exec_start() {
        assert_eq!(quote("--max-quota"), "--max-quota");
        assert_eq!(quote("/opt/my cobox/cobox"), "\"/opt/my cobox/cobox\"");
        assert_eq!(quote("50%"), "50%%");
        assert_eq!(quote("$HOME"), "$$HOME");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(quote(""), "\"\"");
        let user =
            unit_text(Mode::User, Path::new("/bin/cobox"), Path::new("/h/a b"), &["--seed-for".into(), "X".into()]);
        assert!(user.contains("Environment=\"COBOX_HOME=/h/a b\"\n"), "{user}");
        assert!(user.contains("ExecStart=/bin/cobox up --seed-for X\n"), "{user}");
        assert!(!user.contains("User="), "a user unit runs as its user: {user}");
    }
}
