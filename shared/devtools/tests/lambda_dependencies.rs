//! No Lambda function links this crate, and the validate and fetch functions
//! link no polars, nor the load function the indicators (README: the crates
//! are split by dependency weight). Checked
//! on the workspace's resolved dependency graph for this platform from `cargo
//! metadata --offline`: the normal (not dev, not build) dependencies of each
//! function, followed transitively.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Each function and the packages its closure must not contain (`polars`
/// stands for every `polars-*` package too).
const FORBIDDEN: [(&str, &[&str]); 5] = [
    ("validate", &["mdp-devtools", "polars"]),
    ("fetch", &["mdp-devtools", "polars"]),
    ("transform", &["mdp-devtools"]),
    // The load function reads Parquet through mdp-lake; the indicators
    // (mdp-transform) and the chart client are not its business.
    ("load", &["mdp-devtools", "mdp-transform", "mdp-chart"]),
    // The report function reads the lake (mdp-lake) and draws (plotters):
    // no indicators, chart client, warehouse, nor font loading.
    (
        "report",
        &[
            "mdp-devtools",
            "mdp-transform",
            "mdp-chart",
            "mdp-warehouse",
            "sqlx",
            "font-kit",
            "ab_glyph",
        ],
    ),
];

struct Graph {
    /// Package id → name.
    names: HashMap<String, String>,
    /// Package id → ids of its normal dependencies.
    normal: HashMap<String, Vec<String>>,
    /// Names of the workspace members → their ids.
    members: HashMap<String, String>,
}

/// The triple rustc builds for by default (`host:` of `rustc -vV`).
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output().expect("rustc runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

fn workspace_graph() -> Graph {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    // Offline, for this platform only: every package it needs is already
    // downloaded (this test was built), those of other platforms may not be.
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host_triple()])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo metadata failed (`cargo fetch` downloads what it misses):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
    let str_of = |v: &Value| v.as_str().expect("a string").to_string();

    let names: HashMap<String, String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (str_of(&p["id"]), str_of(&p["name"])))
        .collect();
    let members = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .map(|id| (names[&str_of(id)].clone(), str_of(id)))
        .collect();
    let normal = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .map(|node| {
            let deps = node["deps"]
                .as_array()
                .expect("deps")
                .iter()
                .filter(|dep| {
                    dep["dep_kinds"]
                        .as_array()
                        .expect("dep_kinds")
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|dep| str_of(&dep["pkg"]))
                .collect();
            (str_of(&node["id"]), deps)
        })
        .collect();
    Graph {
        names,
        normal,
        members,
    }
}

impl Graph {
    /// Names of every package `member` links, itself included.
    fn normal_closure(&self, member: &str) -> BTreeSet<String> {
        let root = self
            .members
            .get(member)
            .unwrap_or_else(|| panic!("{member} is a workspace member"));
        let mut seen = BTreeSet::from([root.clone()]);
        let mut stack = vec![root.clone()];
        while let Some(id) = stack.pop() {
            for dep in &self.normal[&id] {
                if seen.insert(dep.clone()) {
                    stack.push(dep.clone());
                }
            }
        }
        seen.iter().map(|id| self.names[id].clone()).collect()
    }
}

#[test]
fn no_lambda_function_links_the_devtools_and_validate_and_fetch_link_no_polars() {
    let graph = workspace_graph();
    for (function, forbidden) in FORBIDDEN {
        let linked = graph.normal_closure(function);
        assert!(
            linked.contains("mdp-core") && linked.contains("lambda_runtime"),
            "{function}: the closure is computed ({linked:?})"
        );
        for name in forbidden {
            let offending: Vec<&String> = linked
                .iter()
                .filter(|l| *l == name || l.starts_with(&format!("{name}-")))
                .collect();
            assert!(
                offending.is_empty(),
                "the {function} function links {offending:?}"
            );
        }
    }
    // The check itself sees a link where there is one.
    assert!(graph.normal_closure("mdp").contains("mdp-devtools"));
    assert!(graph.normal_closure("transform").contains("polars"));
    assert!(graph.normal_closure("transform").contains("mdp-transform"));
    assert!(graph.normal_closure("load").contains("mdp-lake"));
}
