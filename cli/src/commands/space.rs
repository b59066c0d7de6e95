use crate::Ctx;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum SpaceCmd {
    /// Create a space over a folder (created if missing); prints the space id.
    Create {
        /// A local name for the space.
        name: String,
        /// The folder to keep.
        #[arg(long)]
        path: PathBuf,
    },
    /// List this device's spaces.
    List,
    /// Forget a space on this device (its keys, store and history here); the folder stays, and
    /// so does every other device's copy. Run `cobox member leave` first to tell the others.
    Remove {
        /// Space name or id.
        space: String,
    },
    /// Set how many verified copies (seeders) a space should have; `status` warns below it.
    Target {
        /// Space name or id.
        space: String,
        /// Verified copies wanted.
        copies: u32,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: SpaceCmd) -> Result<()> {
    // Listing reads files only; a target change goes through a running daemon if there is one.
    match &cmd {
        SpaceCmd::List => return list(ctx),
        SpaceCmd::Target { space, copies } => {
            if let Some(d) = crate::control::daemon(&ctx.home) {
                let path = format!("/api/spaces/{}/target", crate::control::segment(space));
                let set: cobox_engine::api::TargetSet =
                    d.post(&path, &cobox_engine::api::Target { copies: *copies })?;
                return target_said(ctx, &set.name, set.replicas_target);
            }
        }
        SpaceCmd::Remove { .. } if crate::control::daemon(&ctx.home).is_some() => {
            anyhow::bail!(
                "a daemon holds this device's spaces: stop it (cobox up, or the app) first, then remove the space"
            );
        }
        SpaceCmd::Remove { .. } => {}
        SpaceCmd::Create { name, path } => {
            if let Some(d) = crate::control::daemon(&ctx.home) {
                let abs = std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
                let body = cobox_engine::api::CreateSpace { name: name.clone(), path: abs };
                let made: cobox_engine::api::SpaceCreated = d
                    .post("/api/spaces", &body)
                    .with_context(|| format!("creating space {name:?} over {}", path.display()))?;
                return created(ctx, &made.id, name, &made.path, made.created_folder);
            }
        }
    }
    let home = ctx.open_home()?;
    match cmd {
        SpaceCmd::Create { name, path } => {
            let fresh = !path.exists();
            let info = home
                .create_space(&name, &path)
                .with_context(|| format!("creating space {name:?} over {}", path.display()))?;
            created(ctx, &info.id.to_string(), &info.name, &info.path, fresh)
        }
        SpaceCmd::Target { space, copies } => {
            let mut s = ctx.open_space(&home, &space)?;
            s.set_replicas_target(copies).context("saving the target")?;
            target_said(ctx, &s.info().name, copies)
        }
        SpaceCmd::List => list(ctx),
        SpaceCmd::Remove { space } => {
            let info = home.remove_space(&space).with_context(|| format!("removing space {space:?}"))?;
            eprintln!("removed space {:?} from this device; its folder {} stays", info.name, info.path.display());
            Ok(())
        }
    }
}

/// What `space create` says, with or without a daemon.
fn created(ctx: &Ctx, id: &str, name: &str, path: &std::path::Path, fresh: bool) -> Result<()> {
    if fresh {
        // A mistyped path makes a new empty folder: say so.
        eprintln!("created the folder {}, which did not exist", path.display());
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "id": id, "name": name, "path": path }))
    } else {
        println!("{id}");
        Ok(())
    }
}

fn target_said(ctx: &Ctx, name: &str, copies: u32) -> Result<()> {
    if ctx.json {
        return ctx.print_json(&serde_json::json!({ "replicas_target": copies }));
    }
    println!("space {name:?} should have {copies} verified copies");
    Ok(())
}

/// The spaces, from their files (works beside a running daemon).
fn list(ctx: &Ctx) -> Result<()> {
    let spaces = cobox_engine::Home::spaces_at(&ctx.home)?;
    if ctx.json {
        let list: Vec<_> = spaces
            .iter()
            .map(|s| serde_json::json!({ "id": s.id.to_string(), "name": s.name, "path": s.path }))
            .collect();
        return ctx.print_json(&list);
    }
    if spaces.is_empty() {
        println!("no spaces yet: `cobox space create NAME --path DIR` makes one");
    }
    for s in spaces {
        println!("{}  {:<20}  {}", s.id.short(), s.name, s.path.display());
    }
    Ok(())
}
