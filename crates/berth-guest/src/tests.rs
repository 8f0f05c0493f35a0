//! The dispatcher driven directly, outside WebAssembly: the bytes of each
//! call as docs/wasm-abi.md lays them out.

use super::*;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PoolArgs {
    pool: Option<String>,
}

struct Pool {
    pool: String,
}

impl Plugin for Pool {
    const NAME: &'static str = "Pool";
    fn new(args: &Args) -> Result<Self, String> {
        Ok(Pool { pool: args.decode::<PoolArgs>()?.pool.unwrap_or_else(|| "a".into()) })
    }
}

impl Filter for Pool {
    fn filter(&self, pod: &Pod, node: &Node) -> Status {
        if pod.name == "boom" {
            panic!("boom");
        }
        match node.labels.get("pool") == Some(&self.pool) {
            true => Status::success(),
            false => Status::unresolvable(format!("node(s) are not in pool {}", self.pool)),
        }
    }
}

impl Score for Pool {
    fn score(&self, _pod: &Pod, node: &Node) -> (i64, Status) {
        (node.allocatable.get("cpu").copied().unwrap_or(0), Status::success())
    }
    fn normalize_score(&self, _pod: &Pod, scores: &mut [NodeScore<'_>]) -> Status {
        let max = scores.iter().map(|s| s.score).max().unwrap_or(1).max(1);
        for s in scores.iter_mut() {
            s.score = s.score * 100 / max;
        }
        Status::success()
    }
}

fn runtime() -> Runtime<Pool> {
    Runtime::new(crate::__points!(Pool))
}

fn head(cycle: u64, slots: &[u32]) -> Vec<u8> {
    let mut b = cycle.to_le_bytes().to_vec();
    b.extend_from_slice(&(slots.len() as u32).to_le_bytes());
    for s in slots {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

#[test]
fn init_reports_the_implemented_points_and_refuses_bad_args() {
    let mut rt = runtime();
    let meta: serde_json::Value = serde_json::from_slice(&rt.dispatch(OP_INIT, br#"{"abi":1,"name":"Pool","args":null}"#)).unwrap();
    assert_eq!(meta["points"], serde_json::json!(["filter", "score"]));
    let mut rt = runtime();
    let meta: serde_json::Value = serde_json::from_slice(&rt.dispatch(OP_INIT, br#"{"abi":1,"args":{"pol":"x"}}"#)).unwrap();
    assert_eq!(meta["error"], "decoding args for plugin Pool: unknown field \"pol\"");
    assert_eq!(runtime().dispatch(OP_FILTER, &head(1, &[])), b"\x01the guest was called before init");
}

#[test]
fn filter_and_score_lay_out_their_bytes() {
    let mut rt = runtime();
    rt.dispatch(OP_INIT, br#"{"args":{"pool":"gold"}}"#);
    let sync = br#"{"upsert":[{"slot":0,"node":{"name":"a","labels":{"pool":"gold"},"allocatable":{"cpu":2000}}},
        {"slot":2,"node":{"name":"b","allocatable":{"cpu":4000}}}],"remove":[]}"#;
    assert_eq!(rt.dispatch(OP_SYNC, sync), b"");
    let mut pf = 7u64.to_le_bytes().to_vec();
    pf.extend_from_slice(br#"{"name":"p","namespace":"default"}"#);
    assert_eq!(rt.dispatch(OP_PRE_FILTER, &pf), b"");
    let out = rt.dispatch(OP_FILTER, &head(7, &[0, 2, 2]));
    let mut want = vec![0u8, 3, 3];
    for i in [u32::MAX, 0, 0] {
        want.extend_from_slice(&i.to_le_bytes());
    }
    want.extend_from_slice(&1u32.to_le_bytes());
    let msg = b"node(s) are not in pool gold";
    want.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    want.extend_from_slice(msg);
    assert_eq!(out, want);
    // Every node passes: no bytes at all.
    assert_eq!(rt.dispatch(OP_FILTER, &head(7, &[0])), b"");
    // An unknown cycle and an unknown slot are errors.
    assert_eq!(rt.dispatch(OP_FILTER, &head(8, &[0]))[0], Code::Error as u8);
    assert!(String::from_utf8_lossy(&rt.dispatch(OP_FILTER, &head(7, &[1]))).contains("unknown node slot 1"));
    let mut sc = head(7, &[0, 2]);
    sc.extend_from_slice(br#"{"name":"p"}"#);
    let out = rt.dispatch(OP_SCORE, &sc);
    let mut want = 0u32.to_le_bytes().to_vec();
    want.extend_from_slice(&50i64.to_le_bytes());
    want.extend_from_slice(&100i64.to_le_bytes());
    assert_eq!(out, want);
    // Removed nodes are gone.
    rt.dispatch(OP_SYNC, br#"{"remove":[2]}"#);
    assert!(String::from_utf8_lossy(&rt.dispatch(OP_FILTER, &head(7, &[2]))).contains("unknown node slot 2"));
}

#[test]
fn a_panic_is_logged_for_the_host() {
    let mut rt = runtime();
    rt.dispatch(OP_INIT, b"{}");
    rt.dispatch(OP_SYNC, br#"{"upsert":[{"slot":0,"node":{"name":"a"}}]}"#);
    let mut pf = 1u64.to_le_bytes().to_vec();
    pf.extend_from_slice(br#"{"name":"boom"}"#);
    rt.dispatch(OP_PRE_FILTER, &pf);
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| __call_with(&mut rt, OP_FILTER, &head(1, &[0]))));
    assert!(out.is_err());
    let lines = host::LINES.with(|l| l.borrow().clone());
    assert!(lines.iter().any(|(level, l)| *level == 0 && l == "panic: boom"), "{lines:?}");
}

/// `__call`'s panic hook, then a dispatch (as `berth_call` does).
fn __call_with(rt: &mut Runtime<Pool>, op: u32, input: &[u8]) -> Vec<u8> {
    install_panic_hook();
    rt.dispatch(op, input)
}
