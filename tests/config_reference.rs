//! Keeps the configuration reference in step with the code: every field of
//! `src/config/` has a doc comment, is listed in `docs/CONFIGURATION.md`, and is
//! spelled out in the shipped `gateway.yaml`; and the shipped file is the defaults.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;
use ssegate::config::{Config, TlsConfig};

fn root(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Dotted key paths of a YAML value; list items are walked as `name[]`.
fn paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let key = k.as_str().expect("string keys");
                let path = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                paths(v, &path, out);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// Every field the config can hold: the defaults plus the optional parts filled in.
fn every_field() -> BTreeSet<String> {
    let mut config = Config::default();
    config.listeners[0].tls = Some(TlsConfig::default());
    let mut out = BTreeSet::new();
    paths(&serde_yaml::to_value(&config).unwrap(), "", &mut out);
    out
}

#[test]
fn every_field_is_in_the_reference() {
    let doc = root("docs/CONFIGURATION.md");
    let missing: Vec<_> = every_field()
        .into_iter()
        .filter(|p| !doc.contains(&format!("`{p}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/CONFIGURATION.md lacks {missing:?}"
    );
}

#[test]
fn the_reference_lists_no_field_the_code_lacks() {
    let doc = root("docs/CONFIGURATION.md");
    let known = every_field();
    let mut stale = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let field = line.trim_start_matches("| `").split('`').next().unwrap();
        if !known.contains(field) {
            stale.push(field.to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "docs/CONFIGURATION.md documents unknown fields {stale:?}"
    );
}

#[test]
fn the_shipped_file_spells_out_every_field_and_is_the_defaults() {
    let text = root("gateway.yaml");
    let shipped: Value = serde_yaml::from_str(&text).unwrap();
    let mut in_file = BTreeSet::new();
    paths(&shipped, "", &mut in_file);
    let mut defaults = BTreeSet::new();
    paths(
        &serde_yaml::to_value(Config::default()).unwrap(),
        "",
        &mut defaults,
    );
    let missing: Vec<_> = defaults.difference(&in_file).collect();
    assert!(missing.is_empty(), "gateway.yaml lacks {missing:?}");
    assert_eq!(Config::from_yaml(&text).unwrap(), Config::default());
}

#[test]
fn every_config_field_has_a_doc_comment() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no config sources in {}", dir.display());
    let mut undocumented = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        undocumented.extend(undocumented_fields(&source));
    }
    assert!(
        undocumented.is_empty(),
        "fields without a doc comment: {undocumented:?}"
    );
}

/// The `pub` struct fields of `source` that have no `///` comment above them.
fn undocumented_fields(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut undocumented = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let is_field = t.starts_with("pub ")
            && t.ends_with(',')
            && t.contains(':')
            && !t.starts_with("pub fn")
            && !t.starts_with("pub const");
        if !is_field {
            continue;
        }
        let mut j = i;
        while j > 0 && lines[j - 1].trim_start().starts_with("#[") {
            j -= 1;
        }
        if j == 0 || !lines[j - 1].trim_start().starts_with("///") {
            undocumented.push(t.to_string());
        }
    }
    undocumented
}
