//! Dependencies run one way (DESIGN principle 8): reads every module under `src/`, collects
//! the strait paths it names (`use crate::…`, `use super::…`, and inline `crate::…`), and
//! fails when one points upwards or sideways. Test code (`#[cfg(test)] mod tests`, `tests.rs`)
//! is not checked: a test may reach for whatever it needs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, most specific prefix first, and what each may import besides itself
/// (`x::*`: every layer under `x`).
const LAYERS: &[(&str, &[&str])] = &[
    // Each protocol is a leaf of its own: not even the other protocols.
    ("protocol::kafka", &[]),
    ("protocol::kinesis", &[]),
    ("protocol::aws", &[]),
    ("protocol", &[]),
    ("clock", &[]),
    ("config", &["clock", "protocol::*"]),
    ("observe::metrics", &["clock", "config", "protocol::*"]),
    ("listener", &["observe::metrics", "clock", "config"]),
    (
        "observe",
        &["observe::metrics", "listener", "clock", "config"],
    ),
    // The traits and their error; each implementation below is its own layer.
    (
        "backend::memory",
        &[
            "backend",
            "protocol::*",
            "clock",
            "config",
            "observe::metrics",
        ],
    ),
    (
        "backend::embedded",
        &[
            "backend",
            "protocol::*",
            "clock",
            "config",
            "observe::metrics",
        ],
    ),
    (
        "backend::kafka",
        &[
            "backend",
            "protocol::*",
            "clock",
            "config",
            "observe::metrics",
            "listener",
        ],
    ),
    (
        "backend::kinesis",
        &[
            "backend",
            "protocol::*",
            "clock",
            "config",
            "observe::metrics",
        ],
    ),
    (
        "backend::metered",
        &["backend", "clock", "observe::metrics"],
    ),
    ("backend::prefixed", &["backend"]),
    (
        "backend",
        &["protocol::*", "clock", "config", "observe::metrics"],
    ),
    (
        "core",
        &[
            "backend",
            "protocol::*",
            "clock",
            "config",
            "observe::metrics",
        ],
    ),
    // The Kinesis pass-through's one reach into a backend: the upstream connection.
    (
        "kinesis::passthrough",
        &[
            "kinesis",
            "backend::kinesis::upstream",
            "protocol::*",
            "clock",
            "config",
            "observe::metrics",
            "listener",
        ],
    ),
    (
        "kinesis",
        &[
            "core",
            "protocol::*",
            "clock",
            "config",
            "observe::metrics",
            "listener",
        ],
    ),
    // Live migration: a Kinesis client (the backend's) reading the source, the core's log as
    // the target, the traits the front ends and the admin port ask it through, and (for
    // `strait migrate checkpoints`) the KCL lease-table calls.
    (
        "migrate",
        &[
            "core",
            "backend",
            "backend::kinesis::client",
            "backend::kinesis::kcl_leases",
            "backend::kinesis::fanout",
            "backend::kinesis::shards",
            "backend::kinesis::upstream",
            "kinesis::split",
            "observe::admin",
            "protocol::*",
            "clock",
            "config",
            "observe::metrics",
            "listener",
        ],
    ),
    // The one place a front end talks to a backend's connections (DESIGN principle 4).
    (
        "kafka::passthrough",
        &[
            "kafka",
            "backend::kafka::cluster",
            "backend::kafka::connect",
            "protocol::*",
            "clock",
            "config",
            "observe::metrics",
            "listener",
        ],
    ),
    (
        "kafka",
        &[
            "core",
            "protocol::*",
            "clock",
            "config",
            "observe::metrics",
            "listener",
        ],
    ),
];

fn layer_of(path: &str) -> Option<&'static str> {
    LAYERS
        .iter()
        .map(|(l, _)| *l)
        .find(|l| path == *l || path.starts_with(&format!("{l}::")))
}

/// `backend` as an import means the traits module itself, not an implementation: an import of
/// `backend::embedded::X` is checked against the embedded layer.
fn allowed(from: &str, to: &str) -> bool {
    let Some(from_layer) = layer_of(from) else {
        return true;
    };
    // Nothing outside the layers (the crate root's own items) is importable from a module.
    let Some(to_layer) = layer_of(to) else {
        return false;
    };
    if from_layer == to_layer {
        return true;
    }
    let may: &[&str] = LAYERS.iter().find(|(l, _)| *l == from_layer).unwrap().1;
    // An entry names a layer, every layer under a prefix (`protocol::*`), or (not being a
    // layer) one module inside another layer.
    may.iter().any(|m| {
        if let Some(prefix) = m.strip_suffix("::*") {
            return to_layer == prefix || to_layer.starts_with(&format!("{prefix}::"));
        }
        *m == to_layer
            || (layer_of(m) != Some(*m) && (to == *m || to.starts_with(&format!("{m}::"))))
    })
}

fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The file without comments and without its inline `#[cfg(test)] mod tests { … }` block
/// (a `mod tests;` declaration stays, and the code after either is still read).
fn strip_comments_and_tests(text: &str) -> String {
    let code = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let Some(start) = code.find("#[cfg(test)]\nmod tests {") else {
        return code;
    };
    let mut depth = 0;
    for (i, ch) in code[start..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    let end = start + i + 1;
                    return format!("{}{}", &code[..start], &code[end..]);
                }
            }
            _ => {}
        }
    }
    code[..start].to_string()
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(prefix: &str, body: &str, out: &mut Vec<String>) {
    let mut depth = 0;
    let mut start = 0;
    let bytes: Vec<char> = body.chars().collect();
    let mut parts = Vec::new();
    for (i, ch) in bytes.iter().enumerate() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(bytes[start..i].iter().collect::<String>());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(bytes[start..].iter().collect::<String>());
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        if let Some(open) = part.find('{') {
            let head = part[..open].trim_end_matches("::");
            let inner = &part[open + 1..part.rfind('}').unwrap_or(part.len())];
            let p = join(prefix, head);
            expand(&p, inner, out);
        } else {
            let name = part.split(" as ").next().unwrap().trim();
            out.push(join(prefix, name));
        }
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}::{b}"),
    }
}

/// Every strait module path a file names, resolved to a path from the crate root.
fn imports(me: &[String], code: &str) -> BTreeSet<String> {
    let mut raw = Vec::new();
    // `use` statements, braces and all.
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before_ok = i == 0 || !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let stmt_end = rest[i..].find(';').map(|j| i + j).unwrap_or(rest.len());
        if before_ok {
            let stmt = rest[i + 4..stmt_end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace(":: ", "::")
                .replace(" ::", "::");
            if stmt.starts_with("crate::") || stmt.starts_with("super::") {
                expand("", &stmt, &mut raw);
            }
        }
        rest = &rest[(i + 4).min(rest.len())..];
    }
    // Inline paths.
    for anchor in ["crate::", "super::"] {
        let mut at = 0;
        while let Some(i) = code[at..].find(anchor) {
            let start = at + i;
            let prev = code[..start].chars().last();
            if !prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                let path: String = code[start..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                // `super::{…}` is a use statement's group, expanded above.
                if !path.ends_with("::") {
                    raw.push(path);
                }
            }
            at = start + anchor.len();
        }
    }
    let mut out = BTreeSet::new();
    for path in raw {
        let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut base: Vec<String> = Vec::new();
        if segs.first() == Some(&"crate") {
            segs.remove(0);
        } else {
            base = me.to_vec();
            while segs.first() == Some(&"super") {
                segs.remove(0);
                base.pop();
            }
        }
        let full: Vec<String> = base
            .into_iter()
            .chain(segs.iter().map(|s| s.to_string()))
            .collect();
        if !full.is_empty() && full[0] != "self" {
            out.insert(full.join("::"));
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

fn violations() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let me = module_path(&src, &file);
        if me.is_empty() {
            continue; // lib.rs and main.rs wire everything together.
        }
        let code = strip_comments_and_tests(&std::fs::read_to_string(&file).unwrap());
        let from = me.join("::");
        for to in imports(&me, &code) {
            if !allowed(&from, &to) {
                bad.push(format!("{from} imports {to}"));
            }
        }
    }
    bad
}

#[test]
fn dependencies_run_one_way() {
    let bad = violations();
    assert!(
        bad.is_empty(),
        "imports upwards or sideways (DESIGN principle 8):\n  {}",
        bad.join("\n  ")
    );
}

/// The check itself catches what it must: a leaf importing the core, a backend importing a
/// front end, config importing the core, one backend importing another.
#[test]
fn the_check_catches_upward_imports() {
    assert!(!allowed("protocol::kafka::frame", "core::Core"));
    assert!(!allowed("backend::kafka::log", "kafka::handlers"));
    assert!(!allowed(
        "backend::kafka::log",
        "backend::embedded::EmbeddedLog"
    ));
    assert!(!allowed("config", "core::catalog::KeyHash"));
    assert!(!allowed("core::data", "backend::embedded::EmbeddedLog"));
    assert!(!allowed("kinesis::ops", "kafka::KafkaCtx"));
    assert!(!allowed("kafka::handlers", "backend::kafka::cluster"));
    assert!(allowed(
        "kafka::passthrough::rewrite",
        "backend::kafka::cluster::Cluster"
    ));
    assert!(allowed("core::data", "backend::Log"));
    assert!(allowed("backend::kafka::log", "backend::StorageError"));
    assert!(!allowed(
        "protocol::kinesis::codec",
        "protocol::kafka::frame"
    ));
    assert!(!allowed("core::data", "run"));
    let stripped = strip_comments_and_tests(
        "mod tests;\nuse crate::a::B; // crate::c\n#[cfg(test)]\nmod tests {\n    use crate::d;\n}\nuse crate::e;",
    );
    assert!(stripped.contains("crate::a::B") && stripped.contains("crate::e"));
    assert!(!stripped.contains("crate::c") && !stripped.contains("crate::d"));
    let me: Vec<String> = ["core", "groups", "lag"].map(String::from).to_vec();
    let found = imports(
        &me,
        "use super::{GroupCoordinator, x::{A, B as C}};\nuse crate::backend::Log;\nlet t = crate::clock::now_ms();",
    );
    let want: BTreeSet<String> = [
        "core::groups::GroupCoordinator",
        "core::groups::x::A",
        "core::groups::x::B",
        "backend::Log",
        "clock::now_ms",
    ]
    .map(String::from)
    .into();
    assert_eq!(found, want);
}
