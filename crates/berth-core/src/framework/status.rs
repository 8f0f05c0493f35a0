//! Plugin results, as upstream's `framework.Status`.

use std::borrow::Cow;
use std::fmt;

use smallvec::{smallvec, SmallVec};

/// Status codes, in upstream's order and meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// The plugin passed the pod (or node): the framework goes on.
    Success,
    /// An internal error: the pod is retried with backoff; not a node verdict.
    Error,
    /// The node does not fit now, but preemption might make it fit.
    Unschedulable,
    /// The node does not fit and preemption cannot help.
    UnschedulableAndUnresolvable,
    /// Permit: hold the pod until allowed, rejected, or timed out.
    Wait,
    /// The plugin has nothing to do for this pod (PreFilter, PreScore, PreBind, Bind).
    Skip,
    /// The pod waits for something outside the scheduler (e.g. PreEnqueue gates).
    Pending,
}

impl Code {
    /// The code's name as upstream spells it, e.g. `UnschedulableAndUnresolvable`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Code::Success => "Success",
            Code::Error => "Error",
            Code::Unschedulable => "Unschedulable",
            Code::UnschedulableAndUnresolvable => "UnschedulableAndUnresolvable",
            Code::Wait => "Wait",
            Code::Skip => "Skip",
            Code::Pending => "Pending",
        }
    }
}

/// One reason of a status, e.g. `Insufficient cpu`. Use a `&'static str` when the text is
/// fixed: statuses are made for every rejected node, and a borrowed reason does not allocate.
pub type Reason = Cow<'static, str>;

/// A status' reasons. Almost always one (say, `Insufficient cpu`), kept
/// inline: a pod that fits nowhere gets a status for every node, and an
/// allocation per node was a sixth of a failed cycle.
pub type Reasons = SmallVec<[Reason; 1]>;

/// A plugin's verdict: a [`Code`] and the reasons behind it (upstream `framework.Status`).
/// The reasons of rejected nodes are counted into the pod's FailedScheduling message
/// (`0/3 nodes are available: 3 Insufficient cpu.`), so write them for the cluster's users.
#[derive(Debug, PartialEq, Eq)]
pub struct Status {
    /// What the framework does next; see [`Code`].
    pub code: Code,
    /// Why, in words; usually one, empty on most successes.
    pub reasons: Reasons,
    /// The plugin that produced a failure; empty on success.
    pub plugin: &'static str,
}

/// By hand, for the common shapes: statuses kept across cycles are copied
/// once per node per cycle, and SmallVec's general clone was a twentieth of
/// a cycle.
impl Clone for Status {
    fn clone(&self) -> Self {
        let reasons = match &self.reasons[..] {
            [] => Reasons::new(),
            [Cow::Borrowed(r)] => smallvec::smallvec![Cow::Borrowed(*r)],
            _ => self.reasons.clone(),
        };
        Status { code: self.code, reasons, plugin: self.plugin }
    }
}

impl Default for Status {
    fn default() -> Self {
        Status::success()
    }
}

impl Status {
    /// Success, with no reasons.
    pub const fn success() -> Status {
        Status { code: Code::Success, reasons: SmallVec::new_const(), plugin: "" }
    }

    /// A status with `code` and one reason.
    pub fn new(code: Code, reason: impl Into<Reason>) -> Status {
        Status { code, reasons: smallvec![reason.into()], plugin: "" }
    }

    /// A status with several reasons (NodeResourcesFit gives one per insufficient resource).
    pub fn with_reasons(code: Code, reasons: impl Into<Reasons>) -> Status {
        Status { code, reasons: reasons.into(), plugin: "" }
    }

    /// `Unschedulable`: rejected now, but preemption may make room.
    pub fn unschedulable(reason: impl Into<Reason>) -> Status {
        Status::new(Code::Unschedulable, reason)
    }

    /// `UnschedulableAndUnresolvable`: rejected, and evicting pods would not help
    /// (say, a missing label or an untolerated taint).
    pub fn unresolvable(reason: impl Into<Reason>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    /// `Error`: something went wrong, not a verdict. The attempt fails and the pod is retried
    /// with backoff.
    pub fn error(reason: impl Into<Reason>) -> Status {
        Status::new(Code::Error, reason)
    }

    /// `Skip`: the plugin has nothing to do for this pod (PreFilter, PreScore, PreBind, Bind).
    pub fn skip() -> Status {
        Status { code: Code::Skip, reasons: Reasons::new(), plugin: "" }
    }

    /// A status with `code` and no reasons, e.g. `Wait` from Permit.
    pub fn code_only(code: Code) -> Status {
        Status { code, reasons: Reasons::new(), plugin: "" }
    }

    /// Names the plugin that produced this status. The framework sets it on the failures it
    /// reports, so plugins need not.
    pub fn with_plugin(mut self, plugin: &'static str) -> Status {
        self.plugin = plugin;
        self
    }

    /// Whether the code is `Success`.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Whether the code is `Skip`.
    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }

    /// `Unschedulable`, `UnschedulableAndUnresolvable` or `Pending`: a verdict on the pod
    /// (or node), as opposed to success, `Skip`, `Wait` or an internal `Error`.
    pub fn is_rejected(&self) -> bool {
        matches!(self.code, Code::Unschedulable | Code::UnschedulableAndUnresolvable | Code::Pending)
    }

    /// Reasons joined as upstream's `Status.Message()`.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reasons.is_empty() {
            write!(f, "{}", self.code.as_str())
        } else {
            write!(f, "{}", self.message())
        }
    }
}
