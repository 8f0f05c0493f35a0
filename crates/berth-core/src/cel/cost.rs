//! The runtime cost budget of one evaluation.
//!
//! cel-go counts a cost as it evaluates (about one unit per variable, field
//! selection, index and function call, more for functions whose work grows with
//! their input) and cancels the evaluation once the count passes the limit.
//! The `cel` crate has no such hook, so Berth approximates it:
//!
//! - [`super::check`] computes, at compile time, the cost of every node the
//!   way cel-go prices it, and charges the nodes outside any comprehension once
//!   per evaluation;
//! - every comprehension iteration charges the cost of its loop condition and
//!   step, through a call to [`COST_FN`] that the compiler wraps around the
//!   part of the loop evaluated once per element;
//! - functions whose work grows with their input (`sets.*`, `indexOf`, `sum`,
//!   `matches`, `in` on a list...) and the ones that build strings or lists
//!   (`+`, `split`, `join`, `lists.range`...) charge by size, the latter
//!   through [`SIZED_FN`] around the call.
//!
//! The budget lives in a thread-local: the functions the interpreter calls are
//! plain `fn` pointers with no context argument, and one evaluation runs on one
//! thread from start to end.

use std::cell::Cell;

use cel::common::types::{CelBytes, CelInt, CelList, CelMap, CelString};
use cel::common::value::{CowVal, Val};
use cel::ExecutionError;

/// cel-go's text when the limit is passed.
pub(crate) const COST_EXCEEDED: &str = "operation cancelled: actual cost limit exceeded";

/// The interpreter-only function charging one comprehension iteration:
/// `@cost(units, value)` charges `units` and returns `value`. CEL source cannot
/// name it (`@` starts no identifier).
pub(crate) const COST_FN: &str = "@cost";

/// `@sized(value)` charges for the size of a value just built and returns it.
pub(crate) const SIZED_FN: &str = "@sized";

/// The `in` operator on a list, charged by the list's size.
pub(crate) const IN_FN: &str = "@berth_in";

/// cel-go's `StringTraversalCostFactor`: a tenth of a unit per byte.
const STRING_FACTOR: f64 = 0.1;

thread_local! {
    static REMAINING: Cell<u64> = const { Cell::new(0) };
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static EXCEEDED: Cell<bool> = const { Cell::new(false) };
}

/// Arms the budget for one evaluation on this thread; disarmed when dropped.
pub(crate) struct Budget {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Budget {
    /// Starts an evaluation allowed `limit` units, of which `already` are spent.
    pub(crate) fn start(limit: u64, already: u64) -> Budget {
        ACTIVE.with(|a| a.set(true));
        EXCEEDED.with(|e| e.set(already > limit));
        REMAINING.with(|r| r.set(limit.saturating_sub(already)));
        Budget { _not_send: std::marker::PhantomData }
    }

    /// Whether the evaluation passed its limit at any point, even where the
    /// error that reported it was later absorbed (`error || true` is `true`).
    pub(crate) fn exceeded(&self) -> bool {
        EXCEEDED.with(|e| e.get())
    }

    /// The units left.
    pub(crate) fn remaining(&self) -> u64 {
        REMAINING.with(|r| r.get())
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(false));
    }
}

fn exceeded_error() -> ExecutionError {
    ExecutionError::function_error(COST_FN, COST_EXCEEDED)
}

/// Spends `units`; fails once the budget is gone (and keeps failing).
/// Outside an evaluation (a function called directly) it charges nothing.
pub(crate) fn charge(units: u64) -> Result<(), ExecutionError> {
    if !ACTIVE.with(|a| a.get()) {
        return Ok(());
    }
    if EXCEEDED.with(|e| e.get()) {
        return Err(exceeded_error());
    }
    let left = REMAINING.with(|r| r.get());
    if units > left {
        EXCEEDED.with(|e| e.set(true));
        REMAINING.with(|r| r.set(0));
        return Err(exceeded_error());
    }
    REMAINING.with(|r| r.set(left - units));
    Ok(())
}

/// cel-go's size of a value: characters of a string, bytes, elements, entries.
pub(crate) fn size_of(v: &dyn Val) -> u64 {
    if let Some(s) = v.downcast_ref::<CelString>() {
        return s.inner().len() as u64;
    }
    if let Some(b) = v.downcast_ref::<CelBytes>() {
        return b.inner().len() as u64;
    }
    if let Some(l) = v.downcast_ref::<CelList>() {
        return l.inner().len() as u64;
    }
    if let Some(m) = v.downcast_ref::<CelMap>() {
        return m.inner().len() as u64;
    }
    v.as_sizer().map_or(1, |s| (*s.size().inner()).max(0) as u64)
}

/// The cost of walking a string or byte sequence of `len` bytes.
pub(crate) fn traversal(len: u64) -> u64 {
    (len as f64 * STRING_FACTOR).ceil() as u64
}

/// `@cost(units, value)`.
pub(crate) fn cost_fn<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args.pop().ok_or_else(ExecutionError::missing_argument_or_target)?;
    let units = args.first().and_then(|u| u.downcast_ref::<CelInt>()).map_or(1, |u| (*u.inner()).max(0) as u64);
    charge(units)?;
    Ok(value)
}

/// `@sized(value)`: strings and bytes cost a tenth of a unit per byte, lists
/// and maps one unit per element (cel-go charges list concatenation one unit:
/// Berth charges more, as its lists are copied, not shared).
pub(crate) fn sized_fn<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args.pop().ok_or_else(ExecutionError::missing_argument_or_target)?;
    let units = if value.downcast_ref::<CelString>().is_some() || value.downcast_ref::<CelBytes>().is_some() {
        traversal(size_of(value.as_ref()))
    } else {
        size_of(value.as_ref())
    };
    charge(units.max(1))?;
    Ok(value)
}

/// `@berth_in(x, container)`: `x in container`, charged by the size of a list
/// (cel-go's cost for `in` on a list; the one unit already counted for the call
/// at compile time is part of it).
pub(crate) fn in_fn<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [x, container] = <[CowVal<'b, 'v>; 2]>::try_from(args).map_err(|a| ExecutionError::invalid_argument_count(2, a.len()))?;
    let overload = || ExecutionError::no_such_overload("@in", vec![x.get_type().name().to_owned(), container.get_type().name().to_owned()]);
    if container.downcast_ref::<CelList>().is_some() {
        charge(size_of(container.as_ref()).saturating_sub(1))?;
    }
    let found = container.as_container().ok_or_else(overload)?.contains(x.as_ref()).map_err(|_| overload())?;
    Ok(super::values::boolean(found))
}
