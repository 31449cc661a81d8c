//! The layering ARCHITECTURE.md draws, checked on the source: no module imports one above it.
//!
//! ground types and contracts → compute, detectors and decoders → stages → pipeline → entry points

use crate::root;
use std::path::Path;

/// The layer of a module by its path under `src/` (the longest matching prefix wins).
const LAYERS: &[(&str, usize, &str)] = &[
    ("ack", 0, "ground"),
    ("config", 0, "ground"),
    ("contract", 0, "ground"),
    ("manifest", 0, "ground"),
    ("record", 0, "ground"),
    ("telemetry", 0, "ground"),
    ("time", 0, "ground"),
    ("alert", 1, "compute"),
    ("decode", 1, "compute"),
    ("detectors", 1, "compute"),
    ("iforest", 1, "compute"),
    ("onnx", 1, "compute"),
    ("kafka", 2, "stages"),
    ("sinks", 2, "stages"),
    ("sources", 2, "stages"),
    ("telemetry/http", 2, "stages"),
    ("pipeline", 3, "pipeline"),
    ("compare", 4, "entry points"),
    ("eval", 4, "entry points"),
    ("produce", 4, "entry points"),
    ("replay", 4, "entry points"),
    ("run", 4, "entry points"),
    ("score", 4, "entry points"),
    ("simulate", 4, "entry points"),
    ("train", 4, "entry points"),
];

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .filter(|(prefix, ..)| module == *prefix || module.starts_with(&format!("{prefix}/")))
        .max_by_key(|(prefix, ..)| prefix.len())
        .map(|&(_, layer, name)| (layer, name))
}

/// Every `crate::a::b` path in the code of `text` (comments, docs included, are not imports), as
/// `a/b` (so `telemetry::http` is seen as itself).
fn crate_paths(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let mut parts = rest.split("::").map(|p| {
            p.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("")
        });
        let first = parts.next().unwrap_or("");
        if first.is_empty() {
            continue;
        }
        match parts.next().filter(|s| !s.is_empty()) {
            Some(second) => out.push(format!("{first}/{second}")),
            None => out.push(first.to_string()),
        }
    }
    out
}

/// `(module path, file, source)` of every file under `dir`.
fn modules(dir: &Path, base: &Path, out: &mut Vec<(String, String, String)>) {
    for entry in std::fs::read_dir(dir).expect("src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            modules(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(base).expect("under src");
            let module = rel
                .with_extension("")
                .display()
                .to_string()
                .trim_end_matches("/mod")
                .to_string();
            let file = rel.display().to_string();
            out.push((
                module,
                file,
                std::fs::read_to_string(&path).expect("source"),
            ));
        }
    }
}

#[test]
fn no_module_imports_one_above_it() {
    let src = root().join("src");
    let mut all = Vec::new();
    modules(&src, &src, &mut all);
    assert!(all.len() > 30, "found only {} modules", all.len());
    let mut wrong = Vec::new();
    for (module, file, text) in &all {
        if matches!(module.as_str(), "lib" | "main" | "cli") {
            continue;
        }
        let Some((mine, my_name)) = layer_of(module) else {
            panic!("src/{file} is in no layer: add it to LAYERS and ARCHITECTURE.md");
        };
        for path in crate_paths(text) {
            let target = layer_of(&path).or_else(|| layer_of(path.split('/').next().unwrap_or("")));
            if let Some((theirs, their_name)) = target {
                if theirs > mine {
                    wrong.push(format!(
                        "src/{file} ({my_name}) uses crate::{} ({their_name})",
                        path.replace('/', "::")
                    ));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    assert_eq!(
        crate_paths(
            "use crate::pipeline::shard::Shard;\n/// [`x`](crate::run::Run)\nlet x = crate::time::now();"
        ),
        ["pipeline/shard", "time/now"]
    );
    assert_eq!(layer_of("telemetry/http"), Some((2, "stages")));
    assert_eq!(layer_of("telemetry/report"), Some((0, "ground")));
}
