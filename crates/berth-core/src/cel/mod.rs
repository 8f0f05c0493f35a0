//! CEL for DRA device selectors, as kube-scheduler 1.37 evaluates them.
//!
//! A `DeviceClass` or `ResourceClaim` selects devices with CEL expressions such
//! as `device.driver == "gpu.example.com" &&
//! device.attributes["gpu.example.com"].memory.isGreaterThan(quantity("16Gi"))`.
//! [`compile`] turns one into a [`Selector`] (cached, as upstream caches its
//! compilations), and [`Selector::evaluate`] runs it against a [`DeviceInput`],
//! the `device` variable built once per device.
//!
//! The environment is the one kube-scheduler compiles selectors in: apiserver's
//! base environment in its "stored expressions" flavour (every library of
//! every release, as a stored object may use any of them) plus the DRA
//! `device` variable with all its fields (`allowMultipleAllocations`
//! included) and list-valued attributes. Evaluation uses the `cel` crate
//! (cel-rust); `docs/research/dra-cel.md` says what it gives, what Berth
//! adds on top (this module), and what differs from cel-go.
//!
//! Errors keep upstream's texts where upstream has one, so that the messages a
//! user sees in events and `berth explain` match kube-scheduler's.

mod check;
mod cost;
mod device;
mod library;
mod semver;
mod values;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex};

use cel::common::ast::IdedExpr;
use cel::common::types::CelBool;
use cel::{Context, Env, ExecutionError, Value};

pub use device::{AttributeValue, DeviceInput};

/// `resourceapi.CELSelectorExpressionMaxCost`: the runtime cost one evaluation
/// of a selector may spend.
pub const SELECTOR_MAX_COST: u64 = 1_000_000;

/// How many compiled selectors the cache keeps, as kube-scheduler's
/// `cel.NewCache(10, ...)` in the DynamicResources plugin.
pub const CACHE_SIZE: usize = 10;

/// The hint upstream's `EnhanceRuntimeError` appends to a missing-key error.
const NO_SUCH_KEY_HINT: &str =
    ". consider using CEL optional chaining (.? followed by orValue()) or guarding the check with has() for optional fields";

/// Why a selector could not be compiled or evaluated.
///
/// The `Display` texts are upstream's where upstream has one. A runtime error
/// about a missing key already carries upstream's `EnhanceRuntimeError` hint:
/// callers add their own context (`claim X: selector #N on device D: CEL runtime
/// error: ...`) but not the hint again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CelError {
    /// The expression does not parse, or names something that does not exist.
    /// (cel-rust's parse messages differ from cel-go's in wording.)
    #[error("compilation failed: {message}")]
    Compile {
        /// What is wrong, cel-go's wording where Berth detects the same thing.
        message: String,
    },
    /// The expression certainly evaluates to something else than a bool
    /// (found without evaluating it, as cel-go's type checker would).
    #[error("must evaluate to bool or the unknown type, not {found}")]
    OutputType {
        /// The CEL type it evaluates to.
        found: String,
    },
    /// The expression calls a function of Kubernetes' CEL environment that
    /// Berth does not implement. Detected at compile time: such a selector
    /// never silently evaluates to false.
    #[error("compilation failed: Berth does not implement the CEL function '{function}'")]
    Unsupported {
        /// The function, qualified as written (`format.dns1123Label`, `url`).
        function: String,
    },
    /// An evaluation failed: a missing key, a function error, a type mismatch.
    #[error("{message}{}", if message.contains("no such key:") { NO_SUCH_KEY_HINT } else { "" })]
    Runtime {
        /// cel-go's wording of the failure.
        message: String,
    },
    /// The evaluation evaluated to something else than a bool.
    #[error("CEL result of type {found} could not be converted to bool")]
    NotBool {
        /// The CEL type of the result.
        found: String,
    },
    /// The evaluation spent more than [`SELECTOR_MAX_COST`].
    #[error("operation cancelled: actual cost limit exceeded")]
    CostLimitExceeded,
    /// An attribute of the device could not be turned into a CEL value (a
    /// version that is not semantic-version syntax). Every selector fails on
    /// such a device, as upstream's.
    #[error("attribute {name}: {message}")]
    InvalidAttribute {
        /// The attribute's name as the slice wrote it.
        name: String,
        /// `parse semantic version: ...`.
        message: String,
    },
}

/// A compiled selector expression: immutable, `Send + Sync`, shared through
/// the cache by every evaluation.
#[derive(Debug)]
pub struct Selector {
    expression: String,
    program: IdedExpr,
    static_cost: u64,
    depth: usize,
}

/// Expressions nested deeper than this are evaluated on a thread of their own,
/// with a stack sized for them: the interpreter recurses once per level, and
/// the caller's thread (a rayon worker, with 2 MiB) may have little to spare.
/// An optimised build spends under 3 KiB per level, an unoptimised one up to
/// 50 KiB; typical selectors nest 5 to 15 levels.
const INLINE_DEPTH: usize = if cfg!(debug_assertions) { 12 } else { 64 };
/// Stack reserved per nesting level for such an evaluation (twice the measured use).
const STACK_PER_LEVEL: usize = if cfg!(debug_assertions) { 100 << 10 } else { 8 << 10 };
/// The parser recurses deeply on nested brackets (up to 200 KiB per level in
/// an unoptimised build, and it stops at about 96 levels): compile on a thread
/// with this much stack, reserved rather than touched.
const COMPILE_STACK: usize = 64 << 20;

static ENV: LazyLock<Result<Arc<Env>, String>> = LazyLock::new(|| build_env().map(Arc::new).map_err(|e| e.to_string()));

/// The environment: cel-rust's standard library (no durations or timestamps),
/// its strings and lists extensions, and what Berth adds.
fn build_env() -> Result<Env, cel::DeclarationError> {
    let mut env = Env::stdlib();
    cel::extensions::strings(&mut env)?;
    cel::extensions::lists(&mut env)?;
    values::register(&mut env)?;
    library::register(&mut env)?;
    Ok(env)
}

fn env() -> Result<&'static Arc<Env>, CelError> {
    ENV.as_ref().map_err(|e| CelError::Compile { message: format!("internal error building the CEL environment: {e}") })
}

impl Selector {
    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Compiles without the cache.
    fn compile_uncached(expression: &str) -> Result<Selector, CelError> {
        let env = env()?;
        let source = expression.to_string();
        let work = move || -> Result<Selector, CelError> {
            let program = env.compile(&source).map_err(|e| CelError::Compile { message: e.to_string() })?;
            let (program, analysis) = check::prepare(program.expression().clone())?;
            Ok(Selector { expression: source, program, static_cost: analysis.static_cost, depth: analysis.depth })
        };
        std::thread::Builder::new()
            .name("berth-cel-compile".to_string())
            .stack_size(COMPILE_STACK)
            .spawn(work)
            .map_err(|e| CelError::Compile { message: format!("cannot start the compiler thread: {e}") })?
            .join()
            .unwrap_or_else(|_| Err(CelError::Compile { message: "the CEL parser failed on this expression".to_string() }))
    }

    /// Evaluates against a device: whether it matches, or why the selector
    /// could not tell.
    pub fn evaluate(&self, device: &DeviceInput) -> Result<bool, CelError> {
        if let Some(e) = device.invalid() {
            return Err(e.clone());
        }
        if self.depth <= INLINE_DEPTH {
            return self.run(device);
        }
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("berth-cel-eval".to_string())
                .stack_size(self.depth * STACK_PER_LEVEL + (1 << 20))
                .spawn_scoped(s, || self.run(device))
                .map_err(|e| CelError::Runtime { message: format!("cannot start an evaluation thread: {e}") })?
                .join()
                .unwrap_or_else(|_| Err(CelError::Runtime { message: "the CEL evaluation failed".to_string() }))
        })
    }

    fn run(&self, device: &DeviceInput) -> Result<bool, CelError> {
        let env = env()?;
        let budget = cost::Budget::start(SELECTOR_MAX_COST, self.static_cost);
        if budget.exceeded() {
            return Err(CelError::CostLimitExceeded);
        }
        let mut ctx = Context::with_env(Arc::clone(env));
        ctx.set_variable_resolver(device);
        let result = Value::resolve_val(&self.program, &ctx).map(|v| match v.downcast_ref::<CelBool>() {
            Some(b) => Ok(*b.inner()),
            None => Err(CelError::NotBool { found: v.get_type().name().to_string() }),
        });
        if budget.exceeded() {
            return Err(CelError::CostLimitExceeded);
        }
        result.map_err(runtime_error)?
    }

    /// The cost one evaluation against `device` spends, as Berth counts it
    /// (for tests and for comparing with cel-go's `ActualCost`).
    pub fn cost(&self, device: &DeviceInput) -> Result<u64, CelError> {
        let env = env()?;
        let budget = cost::Budget::start(SELECTOR_MAX_COST, self.static_cost);
        let mut ctx = Context::with_env(Arc::clone(env));
        ctx.set_variable_resolver(device);
        let _ = Value::resolve_val(&self.program, &ctx);
        if budget.exceeded() {
            return Err(CelError::CostLimitExceeded);
        }
        Ok(SELECTOR_MAX_COST - budget.remaining())
    }
}

/// cel-go's Go type name for a CEL type, as its "expected iterable type"
/// message prints it.
fn go_type(cel_type: &str) -> String {
    match cel_type {
        "int" => "types.Int",
        "uint" => "types.Uint",
        "double" => "types.Double",
        "bool" => "types.Bool",
        "string" => "types.String",
        "bytes" => "types.Bytes",
        "null_type" => "types.Null",
        "kubernetes.Semver" => "cel.Semver",
        "kubernetes.Quantity" => "cel.Quantity",
        "optional_type" => "*types.Optional",
        "type" => "*types.Type",
        other => other,
    }
    .to_string()
}

/// Words an interpreter error as cel-go would.
fn runtime_error(e: ExecutionError) -> CelError {
    let message = match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::FunctionError { function, .. } if function == cost::COST_FN => return CelError::CostLimitExceeded,
        ExecutionError::FunctionError { message, .. } => message,
        ExecutionError::UnexpectedType { got, want } if want == "iterable" => format!("got '{}', expected iterable type", go_type(&got)),
        ExecutionError::UnexpectedType { got, want } => format!("no such overload: got '{got}', want '{want}'"),
        ExecutionError::NoSuchOverload(o) => {
            let types = o.argument_types();
            if o.is_member_function() && !types.is_empty() {
                format!("no such overload: {}.{}({})", types[0], o.function(), types[1..].join(", "))
            } else {
                format!("no such overload: {}({})", o.function(), types.join(", "))
            }
        }
        ExecutionError::UnsupportedBinaryOperator(op, l, r) => format!("no such overload: {op}({l:?}, {r:?})"),
        ExecutionError::ValuesNotComparable(l, r) => format!("no such overload: cannot compare {l:?} and {r:?}"),
        ExecutionError::DivisionByZero(_) => "division by zero".to_string(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".to_string(),
        ExecutionError::Overflow(..) => "integer overflow".to_string(),
        ExecutionError::IndexOutOfBounds(i) => format!("index out of range: {i:?}"),
        ExecutionError::UndeclaredReference(name) => format!("no such attribute: {name}"),
        other => other.to_string(),
    };
    CelError::Runtime { message }
}

/// A thread-safe cache of compiled selectors: the `capacity` most recently
/// used successful compilations, as upstream's `cel.Cache`. Failures are not
/// cached (the next call compiles again and fails again).
#[derive(Debug)]
pub struct SelectorCache {
    capacity: usize,
    /// Most recently used first.
    entries: Mutex<VecDeque<Arc<Selector>>>,
}

impl SelectorCache {
    /// An empty cache keeping at most `capacity` compilations.
    pub fn new(capacity: usize) -> SelectorCache {
        SelectorCache { capacity, entries: Mutex::new(VecDeque::with_capacity(capacity)) }
    }

    fn hit(entries: &mut VecDeque<Arc<Selector>>, expression: &str) -> Option<Arc<Selector>> {
        let pos = entries.iter().position(|s| s.expression == expression)?;
        let hit = entries.remove(pos)?;
        entries.push_front(Arc::clone(&hit));
        Some(hit)
    }

    /// The cached compilation of `expression`, or a new one (then cached).
    pub fn get_or_compile(&self, expression: &str) -> Result<Arc<Selector>, CelError> {
        if let Some(hit) = self.entries.lock().ok().and_then(|mut e| Self::hit(&mut e, expression)) {
            return Ok(hit);
        }
        // Compiled without the lock held: compiling takes a while, lookups don't.
        let compiled = Arc::new(Selector::compile_uncached(expression)?);
        let Ok(mut entries) = self.entries.lock() else { return Ok(compiled) };
        // Another thread may have compiled the same expression meanwhile: keep one.
        if let Some(hit) = Self::hit(&mut entries, expression) {
            return Ok(hit);
        }
        if self.capacity > 0 {
            entries.push_front(Arc::clone(&compiled));
            entries.truncate(self.capacity);
        }
        Ok(compiled)
    }
}

static CACHE: LazyLock<SelectorCache> = LazyLock::new(|| SelectorCache::new(CACHE_SIZE));

/// Compiles `expression`, or returns its cached compilation from the shared
/// cache of [`CACHE_SIZE`] entries (kube-scheduler's cache size).
pub fn compile(expression: &str) -> Result<Arc<Selector>, CelError> {
    CACHE.get_or_compile(expression)
}
