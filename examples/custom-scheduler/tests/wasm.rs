//! NodePool three ways: the native plugin of this crate, and the same
//! plugin as WebAssembly guests in Rust (examples/wasm/node-pool-rs) and Go
//! (examples/wasm/node-pool-go), loaded by the stock registry from the
//! configuration alone. Every pod must land on the same node with the same
//! message.

use std::path::PathBuf;
use std::process::Command;

use berth::framework::Registry;

/// Builds the example guests (Rust and Go), once for all tests, and
/// returns their directory.
fn guests() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new(root.join("scripts/build-wasm-guests.sh")).output().expect("running the guest build");
        assert!(out.status.success(), "building the guests: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

/// Pools, costs, pods with and without a pool, a pool no node is in, and
/// an empty pool name; more nodes than one Filter chunk.
fn cluster() -> String {
    let mut m = String::new();
    for i in 0..150 {
        let (pool, cost) = match i % 5 {
            0 => ("gold", format!("{}", i % 7)),
            1 => ("gold", "none".into()),
            2 => ("general", format!("{}", 100 - i % 13)),
            3 => ("general", "-4".into()),
            _ => ("", "2".into()),
        };
        let labels = if i % 5 == 4 { String::new() } else { format!("labels: {{example.berth.dev/pool: {pool}}}, ") };
        m += &format!(
            "---\napiVersion: v1\nkind: Node\nmetadata: {{name: node-{i:03}, {labels}annotations: {{example.berth.dev/cost: \"{cost}\"}}}}\nstatus: {{allocatable: {{cpu: \"2\", memory: 8Gi, pods: \"110\"}}}}\n"
        );
    }
    for i in 0..60 {
        let ann = match i % 4 {
            0 => "annotations: {example.berth.dev/pool: gold}, ",
            1 => "",
            2 => "annotations: {example.berth.dev/pool: silver}, ",
            _ => "annotations: {example.berth.dev/pool: \"\"}, ",
        };
        m += &format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: pod-{i:02}, {ann}creationTimestamp: \"2026-01-01T00:{:02}:{:02}Z\"}}\nspec: {{containers: [{{name: c, image: pause, resources: {{requests: {{cpu: 500m}}}}}}]}}\n",
            i / 60,
            i % 60
        );
    }
    m
}

fn config(args: &str) -> String {
    format!(
        "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- plugins:
    multiPoint:
      enabled: [{{name: NodePool, weight: 5}}]
  pluginConfig:
  - name: NodePool
    args: {args}
"
    )
}

#[test]
fn nodepool_as_rust_and_go_guests_places_as_the_native_plugin() {
    let dir = guests();
    let cluster = cluster();
    let native = berth::sim::run(&cluster, &config("{defaultPool: general}"), custom_scheduler::app().registry()).unwrap();
    let placed = |r: &berth::sim::SimResult| -> Vec<(String, Option<String>, String)> {
        let mut v: Vec<_> = r.pods.iter().map(|p| (p.name.clone(), p.node.clone(), p.message.clone())).collect();
        v.sort();
        v
    };
    let want = placed(&native);
    assert!(want.iter().filter(|p| p.1.is_some()).count() >= 30, "the scenario places pods: {want:?}");
    assert!(want.iter().any(|p| p.2.contains("node(s) are not in pool silver")), "and rejects some: {want:?}");
    for guest in ["node_pool_rs.wasm", "node_pool_go.wasm"] {
        let args = format!("{{defaultPool: general, wasm: {{path: \"{}\"}}}}", dir.join(guest).display());
        // The stock registry: the guest comes from the configuration alone.
        let r = berth::sim::run(&cluster, &config(&args), &Registry::builtin()).unwrap_or_else(|e| panic!("{guest}: {e:#}"));
        let got = placed(&r);
        let diff: Vec<_> = want.iter().zip(&got).filter(|(w, g)| w != g).collect();
        assert!(diff.is_empty(), "{guest}: {} differ: {diff:#?}", diff.len());
        assert_eq!(want.len(), got.len(), "{guest}");
    }
}

#[test]
fn a_guest_refuses_a_misspelt_arg_as_the_native_plugin_does() {
    let dir = guests();
    for guest in ["node_pool_rs.wasm", "node_pool_go.wasm"] {
        let args = format!("{{defaultPol: general, wasm: {{path: \"{}\"}}}}", dir.join(guest).display());
        let e = berth::sim::run(&cluster(), &config(&args), &Registry::builtin()).unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains("plugin \"NodePool\": decoding args for plugin NodePool: unknown field \"defaultPol\""), "{guest}: {text}");
    }
}
