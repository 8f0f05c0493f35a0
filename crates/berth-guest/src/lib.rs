//! Write a Berth scheduler plugin in Rust, build it for WebAssembly, and
//! the stock `berth` binary loads it from its configuration: no fork of
//! Berth, no rebuild.
//!
//! A plugin is a type with [`Plugin`] (its name and how it is made from its
//! args) and one trait per extension point it takes part in: [`PreFilter`],
//! [`Filter`], [`Score`], [`Reserve`], [`Permit`], [`PreBind`].
//! [`export!`] finds the traits the type implements and exports the
//! module's entry points for exactly those:
//!
//! ```
//! use berth_guest::{Filter, Node, Plugin, Pod, Status};
//!
//! struct OnlyLabelled;
//!
//! impl Plugin for OnlyLabelled {
//!     const NAME: &'static str = "OnlyLabelled";
//!     fn new(_args: &berth_guest::Args) -> Result<Self, String> {
//!         Ok(OnlyLabelled)
//!     }
//! }
//!
//! impl Filter for OnlyLabelled {
//!     fn filter(&self, _pod: &Pod, node: &Node) -> Status {
//!         match node.labels.contains_key("example.com/ok") {
//!             true => Status::success(),
//!             false => Status::unresolvable("node(s) are not labelled example.com/ok"),
//!         }
//!     }
//! }
//!
//! berth_guest::export!(OnlyLabelled);
//! ```
//!
//! Build with `cargo build --release --target wasm32-unknown-unknown` (a
//! `cdylib` crate), and name the `.wasm` in the configuration:
//!
//! ```yaml
//! pluginConfig:
//! - name: OnlyLabelled
//!   args: {wasm: {path: only_labelled.wasm}}
//! ```
//!
//! A panic fails the pod's attempt with an error that names the plugin
//! and carries the panic message; Berth goes on scheduling. The contract
//! with the host is `docs/wasm-abi.md` (version 1).

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Deserialize;

#[cfg(test)]
mod tests;

/// A pod, as a plugin sees it.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.priority` (resolved from its PriorityClass).
    pub priority: i32,
    /// `spec.schedulerName`.
    pub scheduler_name: String,
    /// `spec.nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
}

/// A node taint.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Taint {
    /// `key`.
    pub key: String,
    /// `value`; may be empty.
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

/// A node, as a plugin sees it (ABI version 1 has no pods or usage).
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Node {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// `status.allocatable`: `cpu` in millicores, `memory` and
    /// `ephemeral-storage` in bytes, the rest as counts.
    pub allocatable: BTreeMap<String, i64>,
}

/// What a plugin answers at a point, as Berth's (and kube-scheduler's) statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// Go on.
    Success = 0,
    /// Something went wrong: the pod's attempt fails and is retried.
    Error = 1,
    /// Rejected, but preemption may help.
    Unschedulable = 2,
    /// Rejected, and evicting pods would not help.
    UnschedulableAndUnresolvable = 3,
    /// Permit: hold the pod.
    Wait = 4,
    /// Nothing to do for this pod (PreFilter: its Filter does not run).
    Skip = 5,
    /// Waits for something outside the scheduler.
    Pending = 6,
}

/// A code and a message; the message goes into the pod's FailedScheduling
/// event, so write it for the person reading `kubectl describe pod`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// What happens next.
    pub code: Code,
    /// Why, in words.
    pub message: String,
}

impl Status {
    /// Success.
    pub fn success() -> Status {
        Status { code: Code::Success, message: String::new() }
    }
    /// Rejected; preemption may help.
    pub fn unschedulable(message: impl Into<String>) -> Status {
        Status { code: Code::Unschedulable, message: message.into() }
    }
    /// Rejected; evicting pods would not help (a missing label, a taint).
    pub fn unresolvable(message: impl Into<String>) -> Status {
        Status { code: Code::UnschedulableAndUnresolvable, message: message.into() }
    }
    /// Something went wrong; the attempt is retried with backoff.
    pub fn error(message: impl Into<String>) -> Status {
        Status { code: Code::Error, message: message.into() }
    }
    /// Nothing to do for this pod.
    pub fn skip() -> Status {
        Status { code: Code::Skip, message: String::new() }
    }
    /// Permit: hold the pod (with the wait returned next to it).
    pub fn wait() -> Status {
        Status { code: Code::Wait, message: String::new() }
    }
    /// Whether the code is Success.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }
    fn encode(&self, out: &mut Vec<u8>) {
        if !self.is_success() || !self.message.is_empty() {
            out.push(self.code as u8);
            out.extend_from_slice(self.message.as_bytes());
        }
    }
}

/// A plugin's args from `pluginConfig`, without the `wasm` entry.
pub struct Args {
    plugin: &'static str,
    value: serde_json::Value,
}

impl Args {
    /// Decodes the args strictly, as Berth's native plugins do: an unknown
    /// field is an error (`decoding args for plugin NodePool: unknown field
    /// "x"`); no args decode as `T::default()`.
    pub fn decode<T: DeserializeOwned + Default>(&self) -> Result<T, String> {
        if self.value.is_null() {
            return Ok(T::default());
        }
        let mut unknown = Vec::new();
        let t: T = serde_ignored::deserialize(self.value.clone(), |path| unknown.push(path.to_string()))
            .map_err(|e| format!("decoding args for plugin {}: {e}", self.plugin))?;
        match unknown.first() {
            Some(field) => Err(format!("decoding args for plugin {}: unknown field {field:?}", self.plugin)),
            None => Ok(t),
        }
    }
}

/// Which objects' changes may make a rejected pod schedulable (upstream's
/// `EventsToRegister`); `resource` is `Pod`, `AssignedPod`,
/// `UnscheduledPod`, `Node`, `Namespace` or `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterEvent {
    /// The kind of object.
    pub resource: &'static str,
    /// [`action`] bits, ORed.
    pub action: u32,
}

/// Action bits of a [`ClusterEvent`], as upstream's `ActionType`.
pub mod action {
    /// Created.
    pub const ADD: u32 = 1;
    /// Deleted.
    pub const DELETE: u32 = 1 << 1;
    /// A node's allocatable changed.
    pub const UPDATE_NODE_ALLOCATABLE: u32 = 1 << 2;
    /// A node's labels changed.
    pub const UPDATE_NODE_LABEL: u32 = 1 << 3;
    /// A node's taints changed.
    pub const UPDATE_NODE_TAINT: u32 = 1 << 4;
    /// A node's conditions changed.
    pub const UPDATE_NODE_CONDITION: u32 = 1 << 5;
    /// A node's annotations changed.
    pub const UPDATE_NODE_ANNOTATION: u32 = 1 << 6;
    /// A bound pod's labels changed.
    pub const UPDATE_POD_LABEL: u32 = 1 << 7;
    /// Any change.
    pub const ALL: u32 = u32::MAX;
}

/// A plugin: its name and how it is made. Implement the point traits
/// ([`Filter`], [`Score`], ...) for the points it takes part in, then
/// [`export!`] it.
pub trait Plugin: Sized + 'static {
    /// The name configurations use (`profiles[].plugins`, `pluginConfig[].name`).
    const NAME: &'static str;
    /// Makes the plugin from its args; an error fails the configuration with
    /// this message.
    fn new(args: &Args) -> Result<Self, String>;
    /// Cluster events that may make a pod this plugin rejected schedulable.
    /// Empty (the default): any event.
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        Vec::new()
    }
}

/// **PreFilter**: once per scheduling attempt, before Filter. `Skip` keeps
/// this plugin's Filter from running for the pod.
pub trait PreFilter: Plugin {
    /// See the trait.
    fn pre_filter(&self, pod: &Pod) -> Status;
}

/// **Filter**: whether the pod fits the node.
pub trait Filter: Plugin {
    /// See the trait.
    fn filter(&self, pod: &Pod, node: &Node) -> Status;
}

/// One node's score.
#[derive(Clone, Copy, Debug)]
pub struct NodeScore<'a> {
    /// The node.
    pub node: &'a Node,
    /// Its score: raw from [`Score::score`], then as `normalize_score` leaves it.
    pub score: i64,
}

/// **Score**: how well the pod fits each node that passed Filter. Final
/// scores (after `normalize_score`) must be in `0..=100`.
pub trait Score: Plugin {
    /// The node's raw score.
    fn score(&self, pod: &Pod, node: &Node) -> (i64, Status);
    /// Rescales the raw scores into `0..=100`. The default keeps them.
    fn normalize_score(&self, pod: &Pod, scores: &mut [NodeScore<'_>]) -> Status {
        let _ = (pod, scores);
        Status::success()
    }
}

/// **Reserve**: the pod was assumed on `node`; `unreserve` undoes it.
pub trait Reserve: Plugin {
    /// See the trait.
    fn reserve(&self, pod: &Pod, node: &str) -> Status;
    /// Undo of `reserve`; must not fail.
    fn unreserve(&self, pod: &Pod, node: &str);
}

/// **Permit**: allow, reject, or hold the pod (`Wait`) for at most the duration returned.
pub trait Permit: Plugin {
    /// See the trait.
    fn permit(&self, pod: &Pod, node: &str) -> (Status, std::time::Duration);
}

/// **PreBind**: before the pod is bound to `node`.
pub trait PreBind: Plugin {
    /// See the trait.
    fn pre_bind(&self, pod: &Pod, node: &str) -> Status;
}

/// Writes a line to Berth's log (level 0 error, 1 warning, 2 info, 3 debug).
pub fn log(level: i32, line: &str) {
    host::log(level, line);
}

#[cfg(target_arch = "wasm32")]
mod host {
    #[link(wasm_import_module = "berth")]
    extern "C" {
        #[link_name = "log"]
        fn berth_log(level: i32, ptr: *const u8, len: usize);
    }
    pub fn log(level: i32, line: &str) {
        // SAFETY: the host reads `len` bytes at `ptr`, which `line` owns for the call.
        unsafe { berth_log(level, line.as_ptr(), line.len()) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod host {
    thread_local! {
        /// Lines logged outside WebAssembly (tests).
        pub static LINES: std::cell::RefCell<Vec<(i32, String)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    pub fn log(level: i32, line: &str) {
        LINES.with(|l| l.borrow_mut().push((level, line.to_string())));
    }
}

// What `export!` uses. Not part of the API.

#[doc(hidden)]
pub type FilterFn<T> = fn(&T, &Pod, &Node) -> Status;
#[doc(hidden)]
pub type PreFilterFn<T> = fn(&T, &Pod) -> Status;
#[doc(hidden)]
pub type ScoreFn<T> = fn(&T, &Pod, &[&Node], &mut Vec<i64>) -> Status;
#[doc(hidden)]
pub type AroundFn<T> = fn(&T, u32, &Pod, &str) -> Vec<u8>;

/// The points a plugin type takes part in, found by `export!`.
#[doc(hidden)]
pub struct Points<T> {
    pub pre_filter: Option<PreFilterFn<T>>,
    pub filter: Option<FilterFn<T>>,
    pub score: Option<ScoreFn<T>>,
    pub reserve: Option<AroundFn<T>>,
    pub permit: Option<AroundFn<T>>,
    pub pre_bind: Option<AroundFn<T>>,
}

/// Finds which point traits `T` implements (autoref specialization: the
/// impl on `Probe<T>` wins over the one on `&Probe<T>` when it applies).
#[doc(hidden)]
pub struct Probe<T>(pub PhantomData<T>);

macro_rules! probe {
    ($yes:ident, $no:ident, $method:ident, $bound:ident, $alias:ident, $f:expr) => {
        #[doc(hidden)]
        pub trait $yes {
            type Target;
            fn $method(&self) -> Option<$alias<Self::Target>>;
        }
        impl<T: $bound> $yes for Probe<T> {
            type Target = T;
            fn $method(&self) -> Option<$alias<T>> {
                Some($f)
            }
        }
        #[doc(hidden)]
        pub trait $no {
            type Target;
            fn $method(&self) -> Option<$alias<Self::Target>>;
        }
        impl<T> $no for &Probe<T> {
            type Target = T;
            fn $method(&self) -> Option<$alias<T>> {
                None
            }
        }
    };
}

probe!(HasPreFilter, NoPreFilter, pre_filter_fn, PreFilter, PreFilterFn, |p: &T, pod: &Pod| p.pre_filter(pod));
probe!(HasFilter, NoFilter, filter_fn, Filter, FilterFn, |p: &T, pod: &Pod, node: &Node| p.filter(pod, node));
probe!(HasScore, NoScore, score_fn, Score, ScoreFn, score_all::<T>);
probe!(HasReserve, NoReserve, reserve_fn, Reserve, AroundFn, |p: &T, op: u32, pod: &Pod, node: &str| {
    let mut out = Vec::new();
    match op {
        OP_RESERVE => p.reserve(pod, node).encode(&mut out),
        _ => p.unreserve(pod, node),
    }
    out
});
probe!(HasPermit, NoPermit, permit_fn, Permit, AroundFn, |p: &T, _op: u32, pod: &Pod, node: &str| {
    let (s, wait) = p.permit(pod, node);
    let mut out = Vec::new();
    if !s.is_success() || !s.message.is_empty() {
        out.extend_from_slice(&(wait.as_millis().min(u64::MAX as u128) as u64).to_le_bytes());
        s.encode(&mut out);
    }
    out
});
probe!(HasPreBind, NoPreBind, pre_bind_fn, PreBind, AroundFn, |p: &T, _op: u32, pod: &Pod, node: &str| {
    let mut out = Vec::new();
    p.pre_bind(pod, node).encode(&mut out);
    out
});

fn score_all<T: Score>(p: &T, pod: &Pod, nodes: &[&Node], out: &mut Vec<i64>) -> Status {
    let mut scores = Vec::with_capacity(nodes.len());
    for node in nodes {
        let (s, status) = p.score(pod, node);
        if !status.is_success() {
            return status;
        }
        scores.push(NodeScore { node, score: s });
    }
    let status = p.normalize_score(pod, &mut scores);
    out.extend(scores.iter().map(|s| s.score));
    status
}

/// The [`Points`] of a plugin type: the point traits it implements.
#[doc(hidden)]
#[macro_export]
macro_rules! __points {
    ($plugin:ty) => {{
        #[allow(unused_imports)]
        use $crate::{
            HasFilter, HasPermit, HasPreBind, HasPreFilter, HasReserve, HasScore, NoFilter, NoPermit, NoPreBind, NoPreFilter, NoReserve,
            NoScore,
        };
        let probe = $crate::Probe::<$plugin>(::core::marker::PhantomData);
        // The borrows pick the impl: `&probe` finds the point trait's method
        // when the type implements it, the fallback's otherwise.
        #[allow(clippy::needless_borrow)]
        let points = $crate::Points {
            pre_filter: (&probe).pre_filter_fn(),
            filter: (&probe).filter_fn(),
            score: (&probe).score_fn(),
            reserve: (&probe).reserve_fn(),
            permit: (&probe).permit_fn(),
            pre_bind: (&probe).pre_bind_fn(),
        };
        points
    }};
}

/// Exports the WebAssembly entry points of a plugin type: the points it
/// takes part in are the point traits it implements. Once per module.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        const _: () = {
            fn points() -> $crate::Points<$plugin> {
                $crate::__points!($plugin)
            }
            #[no_mangle]
            extern "C" fn berth_abi_version() -> u32 {
                $crate::ABI_VERSION
            }
            #[no_mangle]
            extern "C" fn berth_buffer(size: u32) -> u32 {
                $crate::__buffer(size)
            }
            #[no_mangle]
            extern "C" fn berth_call(op: u32, len: u32) -> u64 {
                $crate::__call::<$plugin>(points, op, len)
            }
        };
    };
}

/// The ABI version this SDK builds guests for.
pub const ABI_VERSION: u32 = 1;

const OP_INIT: u32 = 1;
const OP_SYNC: u32 = 2;
const OP_PRE_FILTER: u32 = 3;
const OP_FILTER: u32 = 4;
const OP_SCORE: u32 = 5;
const OP_RESERVE: u32 = 6;
const OP_UNRESERVE: u32 = 7;
const OP_PERMIT: u32 = 8;
const OP_PRE_BIND: u32 = 9;

/// How many attempts' pods a guest remembers.
const CYCLES: usize = 64;

/// The guest's state between calls.
#[doc(hidden)]
pub struct Runtime<T> {
    plugin: Option<T>,
    points: Points<T>,
    nodes: Vec<Option<Node>>,
    cycles: VecDeque<(u64, Pod)>,
}

impl<T: Plugin> Runtime<T> {
    /// A runtime before init.
    pub fn new(points: Points<T>) -> Runtime<T> {
        Runtime { plugin: None, points, nodes: Vec::new(), cycles: VecDeque::new() }
    }

    /// One call: `op` on `input`; the output bytes.
    pub fn dispatch(&mut self, op: u32, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if op == OP_INIT {
            return self.init(input);
        }
        let Some(plugin) = self.plugin.as_ref() else {
            Status::error("the guest was called before init").encode(&mut out);
            return out;
        };
        match op {
            OP_SYNC => {
                if let Err(e) = self.sync(input) {
                    Status::error(e).encode(&mut out);
                }
            }
            OP_PRE_FILTER if input.len() >= 8 => {
                let cycle = u64::from_le_bytes(input[..8].try_into().unwrap());
                match serde_json::from_slice::<Pod>(&input[8..]) {
                    Ok(pod) => {
                        if let Some(f) = self.points.pre_filter {
                            f(plugin, &pod).encode(&mut out);
                        }
                        if self.cycles.len() == CYCLES {
                            self.cycles.pop_front();
                        }
                        self.cycles.push_back((cycle, pod));
                    }
                    Err(e) => Status::error(format!("decoding the pod: {e}")).encode(&mut out),
                }
            }
            OP_FILTER => self.filter(plugin, input, &mut out),
            OP_SCORE => self.score(plugin, input, &mut out),
            OP_RESERVE | OP_UNRESERVE | OP_PERMIT | OP_PRE_BIND => {
                let f = match op {
                    OP_PERMIT => self.points.permit,
                    OP_PRE_BIND => self.points.pre_bind,
                    _ => self.points.reserve,
                };
                #[derive(Deserialize)]
                struct Around {
                    pod: Pod,
                    node: String,
                }
                match (f, serde_json::from_slice::<Around>(input)) {
                    (Some(f), Ok(a)) => out = f(plugin, op, &a.pod, &a.node),
                    (None, _) => Status::error(format!("the guest has no entry for call {op}")).encode(&mut out),
                    (_, Err(e)) => Status::error(format!("decoding the call: {e}")).encode(&mut out),
                }
            }
            other => Status::error(format!("unknown call {other}")).encode(&mut out),
        }
        out
    }

    fn init(&mut self, input: &[u8]) -> Vec<u8> {
        #[derive(Deserialize)]
        struct Init {
            #[serde(default)]
            args: serde_json::Value,
        }
        let answer = match serde_json::from_slice::<Init>(input) {
            Err(e) => serde_json::json!({"error": format!("decoding init: {e}")}),
            Ok(init) => match T::new(&Args { plugin: T::NAME, value: init.args }) {
                Err(e) => serde_json::json!({"error": e}),
                Ok(p) => {
                    let p2 = &self.points;
                    let mut points = Vec::new();
                    for (name, has) in [
                        ("preFilter", p2.pre_filter.is_some()),
                        ("filter", p2.filter.is_some()),
                        ("score", p2.score.is_some()),
                        ("reserve", p2.reserve.is_some()),
                        ("permit", p2.permit.is_some()),
                        ("preBind", p2.pre_bind.is_some()),
                    ] {
                        if has {
                            points.push(name);
                        }
                    }
                    let events: Vec<serde_json::Value> =
                        p.events_to_register().iter().map(|e| serde_json::json!({"resource": e.resource, "action": e.action})).collect();
                    let meta = serde_json::json!({
                        "points": points, "events": events,
                        "sdk": concat!("berth-guest ", env!("CARGO_PKG_VERSION")),
                    });
                    self.plugin = Some(p);
                    meta
                }
            },
        };
        serde_json::to_vec(&answer).unwrap_or_default()
    }

    fn sync(&mut self, input: &[u8]) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Upsert {
            slot: u32,
            node: Node,
        }
        #[derive(Deserialize)]
        struct Sync {
            #[serde(default)]
            upsert: Vec<Upsert>,
            #[serde(default)]
            remove: Vec<u32>,
        }
        let s: Sync = serde_json::from_slice(input).map_err(|e| format!("decoding sync: {e}"))?;
        for r in s.remove {
            if let Some(n) = self.nodes.get_mut(r as usize) {
                *n = None;
            }
        }
        for u in s.upsert {
            let i = u.slot as usize;
            if self.nodes.len() <= i {
                self.nodes.resize(i + 1, None);
            }
            self.nodes[i] = Some(u.node);
        }
        Ok(())
    }

    /// The cycle and the slots at the head of filter's and score's input.
    fn slots<'a>(&'a self, input: &'a [u8]) -> Result<(u64, Vec<&'a Node>, &'a [u8]), String> {
        if input.len() < 12 {
            return Err(format!("an input of {} bytes is too short", input.len()));
        }
        let cycle = u64::from_le_bytes(input[..8].try_into().unwrap());
        let n = u32::from_le_bytes(input[8..12].try_into().unwrap()) as usize;
        let end = n.checked_mul(4).and_then(|b| b.checked_add(12)).filter(|e| *e <= input.len()).ok_or("too few slots")?;
        let mut nodes = Vec::with_capacity(n);
        for c in input[12..end].chunks_exact(4) {
            let slot = u32::from_le_bytes(c.try_into().unwrap());
            match self.nodes.get(slot as usize) {
                Some(Some(node)) => nodes.push(node),
                _ => return Err(format!("unknown node slot {slot}")),
            }
        }
        Ok((cycle, nodes, &input[end..]))
    }

    fn filter(&self, plugin: &T, input: &[u8], out: &mut Vec<u8>) {
        let (cycle, nodes) = match self.slots(input) {
            Ok((c, n, _)) => (c, n),
            Err(e) => return verdicts_all(out, 0, Code::Error, &e),
        };
        let n = nodes.len();
        let Some(pod) = self.cycles.iter().rev().find(|(c, _)| *c == cycle).map(|(_, p)| p) else {
            return verdicts_all(out, n, Code::Error, &format!("unknown cycle {cycle}"));
        };
        let Some(f) = self.points.filter else {
            return verdicts_all(out, n, Code::Error, "the guest has no Filter");
        };
        let mut codes = Vec::with_capacity(n);
        let mut indexes = Vec::with_capacity(n);
        let mut messages: Vec<String> = Vec::new();
        let mut any = false;
        for node in nodes {
            let s = f(plugin, pod, node);
            any |= !s.is_success() || !s.message.is_empty();
            codes.push(s.code as u8);
            if s.message.is_empty() {
                indexes.push(u32::MAX);
            } else {
                let i = match messages.iter().position(|m| *m == s.message) {
                    Some(i) => i,
                    None => {
                        messages.push(s.message);
                        messages.len() - 1
                    }
                };
                indexes.push(i as u32);
            }
        }
        if any {
            out.extend_from_slice(&codes);
            for i in indexes {
                out.extend_from_slice(&i.to_le_bytes());
            }
            out.extend_from_slice(&(messages.len() as u32).to_le_bytes());
            for m in messages {
                out.extend_from_slice(&(m.len() as u32).to_le_bytes());
                out.extend_from_slice(m.as_bytes());
            }
        }
    }

    fn score(&self, plugin: &T, input: &[u8], out: &mut Vec<u8>) {
        let mut status = Vec::new();
        let mut scores = Vec::new();
        match (self.slots(input), self.points.score) {
            (Err(e), _) => Status::error(e).encode(&mut status),
            (_, None) => Status::error("the guest has no Score").encode(&mut status),
            (Ok((_, nodes, rest)), Some(f)) => match serde_json::from_slice::<Pod>(rest) {
                Err(e) => Status::error(format!("decoding the pod: {e}")).encode(&mut status),
                Ok(pod) => f(plugin, &pod, &nodes, &mut scores).encode(&mut status),
            },
        }
        out.extend_from_slice(&(status.len() as u32).to_le_bytes());
        out.extend_from_slice(&status);
        if status.is_empty() {
            for s in scores {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
    }
}

fn verdicts_all(out: &mut Vec<u8>, n: usize, code: Code, msg: &str) {
    out.extend(std::iter::repeat_n(code as u8, n));
    for _ in 0..n {
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    out.extend_from_slice(msg.as_bytes());
}

thread_local! {
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static RUNTIME: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
}

#[doc(hidden)]
pub fn __buffer(size: u32) -> u32 {
    INPUT.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        b.resize(size as usize, 0);
        b.as_mut_ptr() as usize as u32
    })
}

/// Logs a panic's message as `panic: ...` at level 0, where the host
/// finds it when the call traps.
fn install_panic_hook() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = match (info.payload().downcast_ref::<&str>(), info.payload().downcast_ref::<String>()) {
                (Some(s), _) => s.to_string(),
                (_, Some(s)) => s.clone(),
                _ => "a panic".to_string(),
            };
            log(0, &format!("panic: {msg}"));
            if cfg!(not(target_arch = "wasm32")) {
                previous(info);
            }
        }))
    });
}

#[doc(hidden)]
pub fn __call<T: Plugin>(points: fn() -> Points<T>, op: u32, len: u32) -> u64 {
    install_panic_hook();
    let input = INPUT.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let len = (len as usize).min(input.len());
    let out = RUNTIME.with(|r| {
        let mut r = r.borrow_mut();
        let rt = r.get_or_insert_with(|| Box::new(Runtime::<T>::new(points())));
        let rt = rt.downcast_mut::<Runtime<T>>().expect("one plugin type per module");
        rt.dispatch(op, &input[..len])
    });
    INPUT.with(|b| *b.borrow_mut() = input);
    if out.is_empty() {
        return 0;
    }
    OUTPUT.with(|o| {
        let mut o = o.borrow_mut();
        *o = out;
        ((o.as_ptr() as usize as u64) << 32) | o.len() as u64
    })
}
