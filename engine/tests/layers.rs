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
    ("the health record", &["health"]),
    ("ledger", &["ledger"]),
    ("what replicas share: blobs checked and served, the ledger", &["replica"]),
    ("replicas: a member's space, a seeder's copy", &["space", "seed"]),
    ("home, folder watching, space work on blocking threads", &["home", "seeder_admin", "watch", "handle"]),
    ("agreements, members and recovery services", &["agreement_service", "members", "recovery"]),
    ("network", &["sync"]),
    ("operations as asked for, and the daemon that schedules them", &["ops", "daemon", "api", "overview"]),
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

/// The top-level modules a file's code (not its tests) names through `crate::`: the file is
/// parsed, items under `#[cfg(test)]` are left out wherever they are (a fault seam in the middle
/// of a file no longer hides everything after it), and macro bodies are read token by token.
fn uses(text: &str) -> Vec<String> {
    use syn::visit::Visit;
    struct Uses(Vec<String>);
    /// `crate::NAME` and what follows it: a module when more path follows and NAME is not a
    /// type (`crate::Error::Io`); the crate root's own item otherwise (`crate::now_ms`).
    fn named(name: &str, more: bool) -> String {
        let module = (more || layer_of(name).is_some()) && !name.starts_with(char::is_uppercase);
        if module { name.to_owned() } else { "lib".to_owned() }
    }
    fn test_only(attrs: &[syn::Attribute]) -> bool {
        attrs.iter().any(|a| a.path().is_ident("cfg") && a.parse_args::<syn::Path>().is_ok_and(|p| p.is_ident("test")))
    }
    fn attrs(item: &syn::Item) -> &[syn::Attribute] {
        use syn::Item::*;
        match item {
            Const(i) => &i.attrs,
            Enum(i) => &i.attrs,
            Fn(i) => &i.attrs,
            Impl(i) => &i.attrs,
            Mod(i) => &i.attrs,
            Static(i) => &i.attrs,
            Struct(i) => &i.attrs,
            Trait(i) => &i.attrs,
            Type(i) => &i.attrs,
            Use(i) => &i.attrs,
            Macro(i) => &i.attrs,
            _ => &[],
        }
    }
    impl<'a> Visit<'a> for Uses {
        fn visit_item(&mut self, i: &'a syn::Item) {
            if !test_only(attrs(i)) {
                syn::visit::visit_item(self, i);
            }
        }
        fn visit_impl_item_fn(&mut self, f: &'a syn::ImplItemFn) {
            if !test_only(&f.attrs) {
                syn::visit::visit_impl_item_fn(self, f);
            }
        }
        fn visit_path(&mut self, p: &'a syn::Path) {
            let mut segs = p.segments.iter();
            if segs.next().is_some_and(|s| s.ident == "crate")
                && let Some(second) = segs.next()
            {
                self.0.push(named(&second.ident.to_string(), p.segments.len() > 2));
            }
            syn::visit::visit_path(self, p);
        }
        fn visit_use_tree(&mut self, t: &'a syn::UseTree) {
            fn under_crate(t: &syn::UseTree, out: &mut Vec<String>) {
                match t {
                    syn::UseTree::Path(p) => out.push(named(&p.ident.to_string(), true)),
                    syn::UseTree::Name(n) => out.push(named(&n.ident.to_string(), false)),
                    syn::UseTree::Rename(r) => out.push(named(&r.ident.to_string(), false)),
                    syn::UseTree::Group(g) => g.items.iter().for_each(|t| under_crate(t, out)),
                    syn::UseTree::Glob(_) => out.push("lib".to_owned()),
                }
            }
            if let syn::UseTree::Path(p) = t
                && p.ident == "crate"
            {
                under_crate(&p.tree, &mut self.0);
                return;
            }
            syn::visit::visit_use_tree(self, t);
        }
        fn visit_macro(&mut self, m: &'a syn::Macro) {
            // `format!("{}", crate::util::short(..))`: paths inside a macro are tokens to syn.
            fn scan(tokens: proc_macro2::TokenStream, out: &mut Vec<String>) {
                use proc_macro2::TokenTree as T;
                let all: Vec<T> = tokens.into_iter().collect();
                for (k, t) in all.iter().enumerate() {
                    match t {
                        T::Group(g) => scan(g.stream(), out),
                        T::Ident(i) if *i == "crate" => {
                            let colons = |at: usize| matches!((all.get(at), all.get(at + 1)), (Some(T::Punct(a)), Some(T::Punct(b))) if a.as_char() == ':' && b.as_char() == ':');
                            if colons(k + 1)
                                && let Some(T::Ident(name)) = all.get(k + 3)
                            {
                                out.push(named(&name.to_string(), colons(k + 4)));
                            }
                        }
                        _ => {}
                    }
                }
            }
            scan(m.tokens.clone(), &mut self.0);
            syn::visit::visit_macro(self, m);
        }
    }
    let file = syn::parse_file(text).expect("an engine source file parses");
    let mut v = Uses(Vec::new());
    v.visit_file(&file);
    v.0
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
        // A test-only item in the middle of a file hides nothing after it; a path in a macro
        // and one in an expression count.
        (
            "util".to_owned(),
            "#[cfg(test)]\nfn seam() {}\nfn g() -> String { format!(\"{}\", crate::home::x()) }".to_owned(),
        ),
        ("error".to_owned(), "fn h() { let _ = crate::members::remove; }".to_owned()),
    ];
    let bad = violations(&files);
    assert_eq!(bad.len(), 4, "{bad:?}");
    assert!(bad[0].starts_with("error (errors, file and time utilities, the log file) uses members"), "{bad:?}");
    assert!(bad[1].starts_with("module newcomer has no layer"), "{bad:?}");
    assert!(bad[2].starts_with("store (store) uses space"), "{bad:?}");
    assert!(bad[3].starts_with("util (errors, file and time utilities, the log file) uses home"), "{bad:?}");
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
