//! `cobox logs`: what the daemon (`cobox up`, or the app) wrote to the home's log file.

use crate::Ctx;
use anyhow::{Context, Result};
use cobox_engine::logfile;
use std::io::{Read, Seek, SeekFrom};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// How many of the newest lines to show.
    #[arg(short = 'n', long, default_value_t = 50)]
    lines: usize,
    /// Keep printing lines as the daemon writes them (Ctrl-C stops).
    #[arg(short, long)]
    follow: bool,
    /// Only warnings (refusals and failures).
    #[arg(long)]
    warnings: bool,
}

fn show(ctx: &Ctx, l: &logfile::Line) {
    if ctx.json {
        // One object per line, as the file holds them, so a script can follow the stream too.
        if let Ok(s) = serde_json::to_string(l) {
            println!("{s}");
        }
    } else {
        println!("{} {:<4} {}", l.time, l.level, l.msg);
    }
}

pub(crate) fn run(ctx: &Ctx, a: Args) -> Result<()> {
    let keep = |l: &logfile::Line| !a.warnings || l.is_warning();
    let lines = logfile::tail(&ctx.home, if a.warnings { usize::MAX } else { a.lines })
        .context("reading the log (logs/ in the home)")?;
    let lines: Vec<_> = lines.into_iter().filter(|l| keep(l)).collect();
    let skip = lines.len().saturating_sub(a.lines);
    if lines.is_empty() && !a.follow && !ctx.json && a.lines > 0 {
        eprintln!("no log yet: `cobox up` (or the app) writes it while it runs");
    }
    for l in &lines[skip..] {
        show(ctx, l);
    }
    if !a.follow {
        return Ok(());
    }
    let mut path = logfile::live_file(&ctx.home);
    let mut at = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut partial = String::new();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        // A new day's file (or the first file) is read from its start.
        let newest = logfile::live_file(&ctx.home);
        if newest != path {
            (path, at) = (newest, 0);
            partial.clear();
        }
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < at {
            at = 0;
            partial.clear();
        }
        if len == at {
            continue;
        }
        let mut f = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        f.seek(SeekFrom::Start(at))?;
        let mut more = String::new();
        f.take(len - at).read_to_string(&mut more)?;
        at = len;
        partial.push_str(&more);
        while let Some(i) = partial.find('\n') {
            let line: String = partial.drain(..=i).collect();
            let l = logfile::parse(line.trim_end());
            if keep(&l) {
                show(ctx, &l);
            }
        }
    }
}
