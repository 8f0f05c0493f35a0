//! The example guests, built from source (`scripts/build-wasm-guests.sh`)
//! and run in the simulator: a guest that loops forever, allocates without
//! bound, panics or traps fails only the attempts of the pods that made it
//! misbehave; every other pod is scheduled.

use std::path::PathBuf;
use std::sync::OnceLock;

use berth_sim::{simulate, SimOptions};

/// The directory of the built guests (built once per test binary).
fn guests() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = std::process::Command::new(root.join("scripts/build-wasm-guests.sh")).output().expect("running the guest build");
        assert!(out.status.success(), "building the guests: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

const NODES: &str = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Node, metadata: {name: n1}, status: {allocatable: {cpu: "4", memory: 16Gi, pods: "110"}}}
- {apiVersion: v1, kind: Node, metadata: {name: n2}, status: {allocatable: {cpu: "4", memory: 16Gi, pods: "110"}}}
"#;

fn pod(name: &str, chaos: Option<&str>, second: u32) -> String {
    let ann = chaos.map(|c| format!("annotations: {{example.berth.dev/chaos: {c}}}, ")).unwrap_or_default();
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, {ann}creationTimestamp: \"2026-01-01T00:00:{second:02}Z\"}}\nspec: {{containers: [{{name: c, image: pause}}]}}\n"
    )
}

#[test]
fn a_misbehaving_guest_fails_only_the_pods_that_made_it_misbehave() {
    let mut manifests = NODES.to_string();
    let chaos = ["loop", "alloc", "panic", "trap"];
    for (i, c) in chaos.iter().enumerate() {
        // A well-behaved pod before and after each misbehaving one.
        manifests += &pod(&format!("ok-{i}"), None, 3 * i as u32 + 1);
        manifests += &pod(&format!("chaos-{c}"), Some(c), 3 * i as u32 + 2);
    }
    manifests += &pod("ok-last", None, 30);
    let config = serde_json::json!({
        "profiles": [{
            "plugins": {"multiPoint": {"enabled": [{"name": "Chaos"}]}},
            "pluginConfig": [{"name": "Chaos", "args": {"wasm": {
                "path": guests().join("chaos.wasm"), "timeout": "100ms", "memoryLimit": "32Mi"}}}],
        }],
    });
    let opts = SimOptions {
        config: berth_core::config::KubeSchedulerConfiguration::from_yaml_value(config).unwrap(),
        wasm: Some(berth_wasm::loader(PathBuf::new(), 7)),
        ..Default::default()
    };
    let cluster = berth_convert::manifests::load(&[("m".into(), manifests)]).unwrap();
    let r = simulate(cluster, &opts).unwrap();
    for p in &r.pods {
        if p.name.starts_with("ok-") {
            assert!(p.node.is_some(), "{} was not scheduled: {}", p.name, p.message);
        }
    }
    let message = |name: &str| r.pods.iter().find(|p| p.name == name).map(|p| (p.node.clone(), p.message.clone())).unwrap();
    let expect = [
        ("chaos-loop", "wasm plugin \"Chaos\" failed at Filter: timed out after 100ms"),
        ("chaos-alloc", "wasm plugin \"Chaos\" failed at Filter: exceeded its memory limit of 33554432 bytes"),
        ("chaos-panic", "wasm plugin \"Chaos\" failed at Filter: panicked: asked to panic by pod chaos-panic"),
        ("chaos-trap", "wasm plugin \"Chaos\" failed at Filter: trapped: "),
    ];
    for (name, want) in expect {
        let (node, msg) = message(name);
        assert_eq!(node, None, "{name} was placed");
        assert!(msg.contains(want), "{name}: {want:?} not in {msg:?}");
    }
}
