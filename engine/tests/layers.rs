//! Keeps the engine's shape: each top-level module sits in a layer and may use only its own
//! layer and those below (docs/architecture.md draws them). A `crate::` path that points up a
//! layer, a module missing from the table, or an I/O crate in `cobox-core` fails here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The engine's layers, lowest first. The pure core (`cobox-core`: ids, codes, chunk, crypto,
/// entry, manifest, ignores, units, sync's protocol and session) and `agreements` are
/// re-exported at the crate root and sit below all of them.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "core re-exports",
        &[
            "admin",
            "ids",
            "codes",
            "chunk",
            "crypto",
            "entry",
            "epoch",
            "manifest",
            "ignores",
            "roster",
            "units",
            "agreements",
        ],
    ),
    (
        "the crate root (clock, randomness, progress), O_DIRECT writes, paths beneath a folder",
        &["lib", "direct", "beneath", "priority"],
    ),
    ("store", &["store"]),
    ("errors, file and time utilities, the log file", &["error", "util", "logfile"]),
    ("ledger", &["ledger"]),
    ("what replicas share: blobs checked and served, the ledger", &["replica"]),
    ("replicas: a member's space, a seeder's copy", &["space", "seed"]),
    ("home, folder watching, space work on blocking threads", &["home", "seeder_admin", "watch", "handle"]),
    ("agreements and members services", &["agreement_service", "members"]),
    ("network", &["sync"]),
    ("daemon", &["daemon"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// The top-level module a source file belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules a file's code (not its tests) names through `crate::`.
fn uses(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() {
                        out.push(name);
                    }
                }
                continue;
            }
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            // `crate::now_ms` and friends are the crate root's own items; a capitalised name
            // is a type re-exported there (`crate::Error::Io`).
            let is_module = rest[name.len()..].starts_with("::") && !name.starts_with(char::is_uppercase);
            out.push(if is_module { name } else { "lib".to_owned() });
        }
    }
    out
}

/// Every edge that points up a layer, and every module with no layer.
fn violations(files: &[(String, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (module, text) in files {
        let Some(mine) = layer_of(module) else {
            bad.push(format!("module {module} has no layer: add it to LAYERS and docs/architecture.md"));
            continue;
        };
        for used in uses(text) {
            match layer_of(&used) {
                Some(l) if l <= mine => {}
                Some(l) => {
                    bad.push(format!("{module} ({}) uses {used} ({}), a layer above it", LAYERS[mine].0, LAYERS[l].0))
                }
                None => bad.push(format!("{module} uses {used}, which has no layer")),
            }
        }
    }
    bad.sort();
    bad.dedup();
    bad
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read the engine's sources") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_module_uses_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let files: Vec<(String, String)> =
        paths.iter().map(|p| (module_of(&src, p), std::fs::read_to_string(p).expect("read a source file"))).collect();
    assert!(files.len() > 20, "found only {} source files", files.len());
    let bad = violations(&files);
    assert!(bad.is_empty(), "the engine's layers are broken:\n{}", bad.join("\n"));
}

#[test]
fn the_check_finds_an_upward_edge_and_an_unplaced_module() {
    let files = vec![
        ("store".to_owned(), "use crate::space::Space;\nuse crate::{direct, ids::BlobId};".to_owned()),
        ("space".to_owned(), "use crate::store::BlobStore; // crate::daemon in a comment".to_owned()),
        ("newcomer".to_owned(), String::new()),
        (
            "ledger".to_owned(),
            "fn f() { crate::now_ms(); }\n#[cfg(test)]\nmod tests { use crate::daemon::Daemon; }".to_owned(),
        ),
    ];
    let bad = violations(&files);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].starts_with("module newcomer has no layer"), "{bad:?}");
    assert!(bad[1].starts_with("store (store) uses space"), "{bad:?}");
}

#[test]
fn the_core_crate_has_no_io_dependency() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("core/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read cobox-core's Cargo.toml");
    let deps: BTreeMap<&str, ()> = text
        .split("[dependencies]")
        .nth(1)
        .and_then(|d| d.split("\n[").next())
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.split(['=', '.']).next().map(str::trim))
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .map(|n| (n, ()))
        .collect();
    assert!(deps.contains_key("automerge"), "the dependency list was not read: {deps:?}");
    for io in ["tokio", "iroh", "redb", "walkdir", "getrandom", "notify-debouncer-mini", "libc", "chrono"] {
        assert!(
            !deps.contains_key(io),
            "cobox-core depends on {io}: keep clocks, files, threads and sockets in the engine"
        );
    }
}
