//! The source keeps the shape README.md and `src/lib.rs` describe: a request flows one way
//! through the modules, no module refers to one later in that flow, and no two files of the
//! crate refer to each other, directly or round a cycle.
//!
//! Read from the source files themselves: every `crate::` and `super::` path outside comments
//! and `#[cfg(test)]` code is resolved to the file that defines it. A module file that declares
//! and re-exports its children (`mod x; pub use x::Y;`) is how Rust modules are made, so the
//! edge from a parent to its own children is not counted; a child may use what its parent
//! defines (a trait and the combinators its provided methods return). Every other reference is
//! an edge, and the edges must form no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The stages in the order a request passes them; a file may refer to its own stage and earlier
/// ones only. The leaves are vocabulary every stage may use (they refer to leaves only).
const STAGES: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "client_addr",
            "identity",
            "logging",
            "outcome",
            "party",
            "realm",
            "secret",
        ],
    ),
    ("syntax", &["syntax"]),
    ("scheme", &["scheme"]),
    ("throttle", &["throttle"]),
    // Stores shared by several instances: implement the scheme's and the throttle's traits.
    ("shared", &["shared"]),
    ("validator", &["validator"]),
    // StaticUsers, htpasswd, htdigest and the external validators (store::squid_helper,
    // store::forward_auth), which wrap themselves in validator::Cached, an earlier stage.
    ("store", &["store"]),
    ("offer", &["offer"]),
    ("decide", &["decide"]),
    ("respond", &["respond"]),
    ("layer", &["layer"]),
    ("extract", &["extract"]),
];

fn stage_of(module: &[String]) -> Option<usize> {
    let top = module.first()?;
    STAGES
        .iter()
        .position(|(_, modules)| modules.contains(&top.as_str()))
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/scheme/basic/mod.rs` is `scheme::basic`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its `#[cfg(test)]` part.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" // ").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The paths after `crate::` or `super::` in `code`, expanded through `{a, b::c}` groups.
fn referenced_paths(code: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for anchor in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(anchor) {
            let before = rest[..i].chars().last();
            rest = &rest[i + anchor.len()..];
            // Part of a longer path (`x::crate`, `super::super::`): counted where it starts.
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut path = Vec::new();
            let mut s = rest;
            // `super::super::x`
            let mut supers = usize::from(anchor == "super::");
            while let Some(r) = s.strip_prefix("super::") {
                supers += 1;
                s = r;
            }
            loop {
                let end = s
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(s.len());
                if end == 0 {
                    break;
                }
                path.push(s[..end].to_owned());
                s = &s[end..];
                match s.strip_prefix("::") {
                    Some(r) if !r.starts_with('{') => s = r,
                    _ => break,
                }
            }
            let kind = if anchor == "crate::" {
                "crate".to_owned()
            } else {
                format!("super{supers}")
            };
            let group = if path.is_empty() {
                s.strip_prefix('{')
            } else {
                s.strip_prefix("::{")
            };
            if let Some(group) = group {
                // A group: each top-level item of it.
                let body = &group[..group.find('}').unwrap_or(group.len())];
                for item in body.split(',') {
                    let item = item.trim();
                    let first = item.split("::").next().unwrap_or("").trim();
                    if !first.is_empty() && first != "self" {
                        let mut p = path.clone();
                        p.push(first.to_owned());
                        out.push((kind.clone(), p));
                    }
                }
            }
            if !path.is_empty() {
                out.push((kind, path));
            }
        }
    }
    out
}

#[test]
fn modules_refer_only_to_earlier_stages_and_files_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let modules: BTreeMap<Vec<String>, PathBuf> = all
        .iter()
        .map(|f| (module_of(&src, f), f.clone()))
        .collect();
    // The file defining `path`: the longest prefix that is a module.
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| modules.contains_key(p))
    };

    let mut violations = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &modules {
        if module.is_empty() {
            continue; // lib.rs: declares and re-exports everything
        }
        let text = std::fs::read_to_string(file).expect("read");
        let Some(own_stage) = stage_of(module) else {
            violations.push(format!("{}: not in any stage", file.display()));
            continue;
        };
        for (kind, path) in referenced_paths(&code(&text)) {
            let absolute: Vec<String> = match kind.as_str() {
                "crate" => path,
                k => {
                    let ups: usize = k["super".len()..].parse().unwrap_or(1);
                    // `mod.rs` files are their directory's module: `super` leaves it.
                    let base = &module[..module.len().saturating_sub(ups)];
                    base.iter().cloned().chain(path).collect()
                }
            };
            let Some(target) = resolve(&absolute) else {
                continue; // a crate-root item (a re-export) or an external path
            };
            if target.is_empty() || &target == module {
                continue;
            }
            // A parent module file naming its children (`mod x; pub use x::Y`) is how Rust
            // modules are made, not a dependency of the child on the parent.
            if target.starts_with(module) {
                continue;
            }
            if let Some(stage) = stage_of(&target) {
                if stage > own_stage {
                    violations.push(format!(
                        "{} ({}) refers to {} ({}), a later stage",
                        module.join("::"),
                        STAGES[own_stage].0,
                        target.join("::"),
                        STAGES[stage].0
                    ));
                }
            }
            edges.entry(module.clone()).or_default().insert(target);
        }
    }

    // Cycles between files.
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                0 => visit(next, edges, state, stack, cycles),
                1 => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let cycle: Vec<String> = stack[start..].iter().map(|n| n.join("::")).collect();
                    cycles.push(format!(
                        "cycle: {} -> {}",
                        cycle.join(" -> "),
                        next.join("::")
                    ));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if state.get(node).copied().unwrap_or(0) == 0 {
            visit(node, &edges, &mut state, &mut Vec::new(), &mut violations);
        }
    }
    assert!(
        violations.is_empty(),
        "the module structure breaks the one-way flow:\n{}",
        violations.join("\n")
    );
    // The check sees the crate: a few edges that must be there.
    let has = |from: &str, to: &str| {
        let f: Vec<String> = from.split("::").map(str::to_owned).collect();
        let t: Vec<String> = to.split("::").map(str::to_owned).collect();
        edges.get(&f).is_some_and(|e| e.contains(&t))
    };
    assert!(has("layer", "decide"), "{edges:?}");
    assert!(has("offer", "throttle"), "{edges:?}");
    assert!(has("scheme::basic", "syntax"), "{edges:?}");
}

#[test]
fn the_reference_reader_sees_groups_and_supers() {
    let refs =
        referenced_paths("use crate::{a::B, c};\nuse super::super::d::E;\nx = crate::f::g();");
    let paths: Vec<String> = refs
        .iter()
        .map(|(k, p)| format!("{k}:{}", p.join("::")))
        .collect();
    assert!(paths.contains(&"crate:a".to_owned()), "{paths:?}");
    assert!(paths.contains(&"crate:c".to_owned()), "{paths:?}");
    assert!(paths.contains(&"super2:d::E".to_owned()), "{paths:?}");
    assert!(paths.contains(&"crate:f::g".to_owned()), "{paths:?}");
}
