//! Plugin results, as upstream's `framework.Status`.

use std::borrow::Cow;
use std::fmt;

use smallvec::{smallvec, SmallVec};

/// Status codes, in upstream's order and meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    Success,
    /// An internal error: the pod is retried with backoff; not a node verdict.
    Error,
    /// The node does not fit now, but preemption might make it fit.
    Unschedulable,
    /// The node does not fit and preemption cannot help.
    UnschedulableAndUnresolvable,
    /// Permit: hold the pod until allowed, rejected, or timed out.
    Wait,
    /// The plugin has nothing to do for this pod (PreFilter/PreScore/Bind).
    Skip,
    /// The pod waits for something outside the scheduler (e.g. PreEnqueue gates).
    Pending,
}

impl Code {
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

pub type Reason = Cow<'static, str>;

/// A status' reasons. Almost always one (say, `Insufficient cpu`), kept
/// inline: a pod that fits nowhere gets a status for every node, and an
/// allocation per node was a sixth of a failed cycle.
pub type Reasons = SmallVec<[Reason; 1]>;

#[derive(Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
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
    pub const fn success() -> Status {
        Status { code: Code::Success, reasons: SmallVec::new_const(), plugin: "" }
    }

    pub fn new(code: Code, reason: impl Into<Reason>) -> Status {
        Status { code, reasons: smallvec![reason.into()], plugin: "" }
    }

    pub fn with_reasons(code: Code, reasons: impl Into<Reasons>) -> Status {
        Status { code, reasons: reasons.into(), plugin: "" }
    }

    pub fn unschedulable(reason: impl Into<Reason>) -> Status {
        Status::new(Code::Unschedulable, reason)
    }

    pub fn unresolvable(reason: impl Into<Reason>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    pub fn error(reason: impl Into<Reason>) -> Status {
        Status::new(Code::Error, reason)
    }

    pub fn skip() -> Status {
        Status { code: Code::Skip, reasons: Reasons::new(), plugin: "" }
    }

    pub fn code_only(code: Code) -> Status {
        Status { code, reasons: Reasons::new(), plugin: "" }
    }

    pub fn with_plugin(mut self, plugin: &'static str) -> Status {
        self.plugin = plugin;
        self
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }

    /// Unschedulable or UnschedulableAndUnresolvable.
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
