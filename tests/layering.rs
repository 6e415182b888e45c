//! Keeps the layering of `src/` from eroding: each folder is a layer, and a file may use
//! (`crate::…`, `super::…`) only its own layer and the layers below it; no two files
//! import each other, directly or around a longer loop. The order is the one
//! `src/lib.rs` documents in its "Layout" section, which this test also checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top first: a layer may import the ones after it.
const LAYERS: [&str; 11] = [
    "app",
    "transport",
    "http",
    "stream",
    "observe",
    "policy",
    "broker",
    "hub",
    "config",
    "wire",
    "model",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, as paths relative to `src/`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path.strip_prefix(src()).expect("under src").to_path_buf());
        }
    }
}

/// The module path of a file: `hub/mod.rs` → `[hub]`, `hub/ring.rs` → `[hub, ring]`.
fn module_of(file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

/// The source without comments (doc links name modules without importing them).
fn code_of(source: &str) -> String {
    source
        .lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`, whitespace removed) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').expect("balanced braces")];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|item| !item.is_empty())
        .flat_map(|item| expand(&format!("{prefix}{item}")))
        .collect()
}

/// A `use` tree with its whitespace and its renames (`x as y`) removed.
fn without_renames(tree: &str) -> String {
    let mut out = String::new();
    let mut tokens = tree.split_whitespace();
    while let Some(token) = tokens.next() {
        if token == "as" {
            // Keep what follows the new name (closing braces, commas).
            if let Some(next) = tokens.next() {
                out.extend(
                    next.chars()
                        .skip_while(|c| c.is_alphanumeric() || *c == '_'),
                );
            }
        } else {
            out.push_str(token);
        }
    }
    out
}

/// The crate paths `code` refers to, each as its segments after `crate`, with `super`
/// resolved against `module`.
fn references(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    // `use` statements, whose braces group several paths.
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before_ok = at == 0
            || rest[..at]
                .chars()
                .last()
                .is_some_and(|c| !c.is_alphanumeric() && c != '_');
        let stmt_end = rest[at..].find(';').map_or(rest.len(), |e| at + e);
        if before_ok {
            paths.extend(expand(&without_renames(&rest[at + 4..stmt_end])));
        }
        rest = &rest[stmt_end.min(rest.len() - 1) + 1..];
        if rest.is_empty() {
            break;
        }
    }
    // Paths written inline (`crate::wire::chunked::chunk(…)`).
    for (i, _) in code.match_indices("crate::") {
        if code[..i]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let path: String = code[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(path);
    }
    let mut out = Vec::new();
    for path in paths {
        let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let resolved: Vec<String> = match segs.first() {
            Some(&"crate") => segs[1..].iter().map(|s| s.to_string()).collect(),
            Some(&"super") => {
                let mut base = module.to_vec();
                let mut i = 0;
                while segs.get(i) == Some(&"super") {
                    base.pop();
                    i += 1;
                }
                base.extend(segs[i..].iter().map(|s| s.to_string()));
                base
            }
            _ => continue,
        };
        if !resolved.is_empty() {
            out.push(resolved);
        }
    }
    out
}

/// The file a path's module lives in: the longest prefix that is a module file.
fn file_of(path: &[String], files: &BTreeSet<PathBuf>) -> Option<PathBuf> {
    for len in (1..=path.len()).rev() {
        let dir: PathBuf = path[..len].iter().collect();
        let as_file = dir.with_extension("rs");
        if files.contains(&as_file) {
            return Some(as_file);
        }
        let as_mod = dir.join("mod.rs");
        if files.contains(&as_mod) {
            return Some(as_mod);
        }
    }
    None
}

fn layer_of(module: &[String]) -> Option<usize> {
    let top = module.first()?;
    LAYERS.iter().position(|l| l == top)
}

/// Every file's imports of other files, with the layer rule checked on the way.
fn import_graph() -> (BTreeMap<PathBuf, BTreeSet<PathBuf>>, Vec<String>) {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let known: BTreeSet<PathBuf> = files.iter().cloned().collect();
    let mut graph = BTreeMap::new();
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(file);
        let source = std::fs::read_to_string(src().join(file)).expect("read source");
        let mut edges = BTreeSet::new();
        for path in references(&code_of(&source), &module) {
            if let (Some(own), Some(used)) = (layer_of(&module), layer_of(&path)) {
                if used < own {
                    violations.push(format!(
                        "{} ({}) uses {} ({}), a layer above it",
                        file.display(),
                        LAYERS[own],
                        path.join("::"),
                        LAYERS[used]
                    ));
                }
            }
            if let Some(target) = file_of(&path, &known) {
                if &target != file {
                    edges.insert(target);
                }
            }
        }
        graph.insert(file.clone(), edges);
    }
    (graph, violations)
}

#[test]
fn every_file_is_in_a_layer_folder() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let stray: Vec<_> = files
        .iter()
        .filter(|f| f.components().count() == 1)
        .filter(|f| !["lib.rs", "main.rs"].contains(&f.to_str().unwrap_or("")))
        .chain(
            files
                .iter()
                .filter(|f| f.components().count() > 1 && layer_of(&module_of(f)).is_none()),
        )
        .collect();
    assert!(
        stray.is_empty(),
        "files outside the layer folders {LAYERS:?}: {stray:?}"
    );
}

#[test]
fn imports_point_down_the_layers() {
    let (_, violations) = import_graph();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn no_import_cycle_between_files() {
    let (graph, _) = import_graph();
    // Depth-first search; a back edge to a file on the current path is a cycle.
    fn visit(
        file: &PathBuf,
        graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        path: &mut Vec<PathBuf>,
        done: &mut BTreeSet<PathBuf>,
        cycles: &mut Vec<String>,
    ) {
        if done.contains(file) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == file) {
            let names: Vec<_> = path[at..]
                .iter()
                .chain(std::iter::once(file))
                .map(|p| p.display().to_string())
                .collect();
            cycles.push(names.join(" -> "));
            return;
        }
        path.push(file.clone());
        for next in graph.get(file).into_iter().flatten() {
            visit(next, graph, path, done, cycles);
        }
        path.pop();
        done.insert(file.clone());
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for file in graph.keys() {
        visit(file, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn lib_rs_documents_the_layers_in_order() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let layout = lib
        .split("//! # Layout")
        .nth(1)
        .expect("lib.rs has a `# Layout` section");
    let mut last = 0;
    for layer in LAYERS {
        let at = layout
            .find(&format!("//! | `{layer}/` |"))
            .unwrap_or_else(|| panic!("the Layout section lacks `{layer}/`"));
        assert!(
            at >= last,
            "`{layer}/` is out of order in the Layout section"
        );
        last = at;
    }
}

#[test]
fn the_checker_sees_what_it_must() {
    // The parser on the forms the code uses, so a blind checker cannot pass.
    let module = vec!["hub".to_string(), "ring".to_string()];
    let code = "use crate::{model::event_id::EventId, wire::{chunked, sse as s}};\n\
                use super::history::HistoryBounds;\n\
                let x = crate::http::shared::Shared::new();\n\
                // use crate::app::gateway;\n";
    let found: Vec<String> = references(&code_of(code), &module)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        found,
        [
            "model::event_id::EventId",
            "wire::chunked",
            "wire::sse",
            "hub::history::HistoryBounds",
            "http::shared::Shared::new",
        ]
    );
    assert!(layer_of(&["http".to_string()]) < layer_of(&module));
}

#[test]
fn the_hub_uses_only_the_model_layer() {
    // No HTTP, no sockets, no config in the hub: it stores opaque bytes and takes its
    // history bounds as its own types.
    let (graph, _) = import_graph();
    let outside: Vec<String> = graph
        .iter()
        .filter(|(file, _)| file.starts_with("hub"))
        .flat_map(|(file, used)| {
            used.iter()
                .filter(|u| !u.starts_with("hub") && !u.starts_with("model"))
                .map(move |u| format!("{} uses {}", file.display(), u.display()))
        })
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
}
