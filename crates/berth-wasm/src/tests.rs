//! Loading: what the loader refuses and how it says so, on small modules
//! written in the text format. The example guests (NodePool in Rust and
//! Go, Chaos) are run in `tests/guests.rs`.

use super::*;
use berth_core::framework::PluginHost;

/// A minimal guest: init answers `meta`; every other call answers nothing
/// (Success). Its input buffer is at 1024, its output at 0.
fn guest(version: u32, meta: &str, extra: &str) -> String {
    let escaped: String = meta.bytes().map(|b| format!("\\{b:02x}")).collect();
    format!(
        r#"(module
  {extra}
  (memory (export "memory") 1)
  (data (i32.const 0) "{escaped}")
  (func (export "berth_abi_version") (result i32) (i32.const {version}))
  (func (export "berth_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "berth_call") (param $op i32) (param $len i32) (result i64)
    (if (result i64) (i32.eq (local.get $op) (i32.const 1))
      (then (i64.const {len}))
      (else (i64.const 0))))
)"#,
        len = meta.len()
    )
}

fn load_wat(wat: &str, args: serde_json::Value) -> Result<Arc<dyn Plugin>, PluginError> {
    let dir = std::env::temp_dir().join(format!("berth-wasm-test-{}-{}", std::process::id(), rand_name()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("g.wasm"), wat::parse_str(wat).expect("valid WAT")).unwrap();
    let mut all = serde_json::json!({"wasm": {"path": "g.wasm"}});
    if let (Some(a), Some(extra)) = (all.as_object_mut(), args.as_object()) {
        for (k, v) in extra {
            if k == "wasm" {
                a["wasm"].as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
            } else {
                a.insert(k.clone(), v.clone());
            }
        }
    }
    let r = (loader(dir.clone(), 1).0)("G", &all, &PluginHost::default().handle("default-scheduler"));
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn rand_name() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn err(r: Result<Arc<dyn Plugin>, PluginError>) -> String {
    match r {
        Ok(p) => panic!("{} loaded", p.name()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_guest_declares_its_points() {
    let p = load_wat(&guest(1, r#"{"points":["filter","score"]}"#, ""), serde_json::json!({})).unwrap();
    let points: Vec<_> = p.extension_points().iter().map(|e| e.label()).collect();
    assert_eq!(points, ["PreFilter", "Filter", "PreScore", "Score"]);
    assert!(p.has_prepare_filter() && p.has_normalize_score());
    // A guest reads labels and annotations, which verdict reuse does not compare.
    assert!(!p.filter_is_node_local());
    assert_eq!(p.name(), "G");
}

#[test]
fn modules_that_break_the_contract_are_refused_by_name() {
    let cases = [
        (guest(1, "{}", r#"(import "k8s.io/scheduler" "get_config" (func))"#), "kube-scheduler-wasm-extension"),
        (guest(1, "{}", r#"(import "env" "now" (func))"#), "it imports env.now, which Berth does not provide"),
        (guest(1, "{}", r#"(import "wasi_snapshot_preview1" "path_open" (func))"#), "wasi_snapshot_preview1.path_open"),
        (guest(1, "{}", r#"(func (export "_start"))"#), "command module (_start)"),
        ("(module (memory (export \"memory\") 1))".to_string(), "does not export berth_abi_version"),
        (guest(2, "{}", ""), "built for Berth's WebAssembly ABI version 2"),
        (guest(1, r#"{"points":["bind"]}"#, ""), "extension point \"bind\""),
        (guest(1, r#"{"events":[{"resource":"Lease","action":1}]}"#, ""), "events of \"Lease\""),
        (guest(1, "not json", ""), "not its metadata"),
        ("(module (func))".replace("(func)", "(func) (memory 1)"), "does not export memory"),
    ];
    for (wat, want) in cases {
        let e = err(load_wat(&wat, serde_json::json!({})));
        assert!(e.contains(want), "{want:?} not in {e:?}");
    }
}

#[test]
fn the_guests_refusal_of_its_args_is_an_args_error() {
    let e = load_wat(&guest(1, r#"{"error":"decoding args for plugin G: unknown field \"x\""}"#, ""), serde_json::json!({"x": 1}));
    assert_eq!(e.err().expect("refused"), PluginError::InvalidArgs("decoding args for plugin G: unknown field \"x\"".into()));
}

#[test]
fn bad_wasm_args_name_the_field() {
    let g = guest(1, "{}", "");
    let cases = [
        (serde_json::json!({"wasm": {"paht": "x"}}), "args.wasm: unknown field `paht`"),
        (serde_json::json!({"wasm": {"timeout": "soon"}}), "args.wasm: timeout:"),
        (serde_json::json!({"wasm": {"timeout": "0s"}}), "args.wasm: timeout: must be more than 0"),
        (serde_json::json!({"wasm": {"memoryLimit": "1Ki"}}), "memoryLimit: 1Ki is less than one 64Ki WebAssembly page"),
        (serde_json::json!({"wasm": {"memoryLimit": "lots"}}), "args.wasm: memoryLimit:"),
    ];
    for (args, want) in cases {
        let e = err(load_wat(&g, args));
        assert!(e.contains(want), "{want:?} not in {e:?}");
    }
    let missing = (loader(std::env::temp_dir(), 1).0)(
        "G",
        &serde_json::json!({"wasm": {"path": "no-such-guest.wasm"}}),
        &PluginHost::default().handle("p"),
    );
    assert!(err(missing).starts_with("args.wasm.path: reading "), "names the field and the file");
}

#[test]
fn a_guest_that_outgrows_its_memory_at_start_is_refused() {
    // Two pages at start, a cap of one.
    let wat = guest(1, "{}", "").replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 2)");
    let e = err(load_wat(&wat, serde_json::json!({"wasm": {"memoryLimit": "64Ki"}})));
    assert!(e.contains("exceeded its memory limit of 65536 bytes"), "{e}");
}

#[test]
fn a_guest_stuck_at_init_times_out() {
    let wat = guest(1, "{}", r#"(func (export "_initialize") (loop (br 0)))"#);
    let e = err(load_wat(&wat, serde_json::json!({"wasm": {"timeout": "50ms"}})));
    assert!(e.contains("timed out after 50ms"), "{e}");
}

#[test]
fn an_output_outside_memory_is_malformed() {
    // init answers a pointer past the single page.
    let wat = r#"(module
  (memory (export "memory") 1)
  (func (export "berth_abi_version") (result i32) (i32.const 1))
  (func (export "berth_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "berth_call") (param i32 i32) (result i64) (i64.const 0x0010000000000010)))"#;
    let e = err(load_wat(wat, serde_json::json!({})));
    assert!(e.contains("malformed result: an output of 16 bytes at 0x100000, outside its memory"), "{e}");
}
