//! One guest instance and the calls into it: the engine with its epoch
//! ticker, the store with its memory cap, the calling convention
//! (`berth_buffer`, `berth_call`) and what a failed call was.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use wasmtime::{Engine, InstancePre, Linker, Memory, Module, ResourceLimiter, Store, Trap, TypedFunc};

use crate::wire;

/// How often the engine's epoch advances: deadlines are counted in these.
const TICK: Duration = Duration::from_millis(5);
/// At most this many log lines per second from one guest; the rest are counted and dropped.
const LOG_LINES_PER_SECOND: u32 = 100;
/// How long a guest that failed to start is left alone before the next try.
const RESTART_COOLDOWN: Duration = Duration::from_secs(1);

/// The process's engine: Cranelift, with epoch interruption, and a thread
/// that advances the epoch every [`TICK`].
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).expect("a Cranelift engine for this machine");
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("berth-wasm-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                ticking.increment_epoch();
            })
            .expect("the epoch thread starts");
        engine
    })
}

/// Limits of one guest, from its `wasm` args.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest a single call may run.
    pub timeout: Duration,
    /// Most bytes of linear memory.
    pub memory: u64,
}

/// Refuses memory growth beyond the cap, and remembers that it did.
struct Limiter {
    max: u64,
    exceeded: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.max {
            self.exceeded = true;
            return Err(wasmtime::format_err!("memory limit reached"));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// What the host keeps per instance: the WASI shim's state, the log, the limiter.
pub struct HostState {
    /// `environ_get`'s strings.
    pub environ: Vec<String>,
    /// The monotonic clock's zero.
    pub started: Instant,
    /// `random_get`'s source.
    pub rng: Pcg64Mcg,
    /// Set by `proc_exit`.
    pub exited: Option<i32>,
    /// The last `panic: ...` the guest logged or printed.
    pub panic: Option<String>,
    plugin: &'static str,
    limiter: Limiter,
    partial: Vec<u8>,
    window: (Instant, u32, u64),
    tail: VecDeque<String>,
}

impl HostState {
    /// Bytes the guest wrote to standard output or error: logged by line.
    pub fn output(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.log(2, line);
        }
        if self.partial.len() > 64 * 1024 {
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
            self.log(2, line);
        }
    }

    /// One line of the guest's log, at `level` (0 error .. 3 debug).
    pub fn log(&mut self, level: i32, line: String) {
        if let Some(rest) = line.strip_prefix("panic: ") {
            if self.panic.is_none() {
                self.panic = Some(rest.to_string());
            }
        }
        self.tail.push_back(line.clone());
        if self.tail.len() > 8 {
            self.tail.pop_front();
        }
        let now = Instant::now();
        if now.duration_since(self.window.0) >= Duration::from_secs(1) {
            if self.window.2 > 0 {
                tracing::warn!(plugin = self.plugin, dropped = self.window.2, "wasm guest: log lines dropped (rate limit)");
            }
            self.window = (now, 0, 0);
        }
        if self.window.1 >= LOG_LINES_PER_SECOND {
            self.window.2 += 1;
            return;
        }
        self.window.1 += 1;
        let plugin = self.plugin;
        match level {
            0 => tracing::error!(plugin, "{line}"),
            1 => tracing::warn!(plugin, "{line}"),
            2 => tracing::info!(plugin, "{line}"),
            _ => tracing::debug!(plugin, "{line}"),
        }
    }
}

/// Why a call into a guest failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// It ran past its deadline.
    #[error("timed out after {}", wire::show_duration(*.0))]
    Timeout(Duration),
    /// It tried to grow its memory past the cap.
    #[error("exceeded its memory limit of {0} bytes")]
    Memory(u64),
    /// The guest's code panicked (its SDK logged the message before trapping).
    #[error("panicked: {0}")]
    Panicked(String),
    /// It called `proc_exit`.
    #[error("exited with code {0}{1}")]
    Exited(i32, String),
    /// Any other trap.
    #[error("trapped: {0}")]
    Trap(String),
    /// What it returned does not follow the ABI.
    #[error("returned a malformed result: {0}")]
    Malformed(String),
    /// The instance could not be made (again).
    #[error("is unavailable: {0}")]
    Unavailable(String),
}

/// A live instance.
pub struct Live {
    store: Store<HostState>,
    memory: Memory,
    buffer: TypedFunc<u32, u32>,
    call: TypedFunc<(u32, u32), u64>,
    /// The nodes the guest holds, by slot.
    pub slots: crate::plugin::Slots,
}

/// A guest: its compiled module, linked, and the instance when there is one.
pub struct Guest {
    pre: InstancePre<HostState>,
    limits: Limits,
    plugin: &'static str,
    seed: u64,
    init: Vec<u8>,
    live: Option<Live>,
    failed_at: Option<(Instant, String)>,
}

/// The linker every guest is instantiated with: the WASI subset and `berth.log`.
pub fn linker() -> Result<Linker<HostState>, String> {
    let mut linker = Linker::new(engine());
    crate::wasi::add_to_linker(&mut linker).map_err(|e| e.to_string())?;
    linker
        .func_wrap("berth", "log", |mut c: wasmtime::Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            let Some(wasmtime::Extern::Memory(m)) = c.get_export("memory") else { return };
            let (mem, st) = m.data_and_store_mut(&mut c);
            let start = ptr as u32 as usize;
            if let Some(bytes) = start.checked_add(len as u32 as usize).and_then(|end| mem.get(start..end)) {
                let line = String::from_utf8_lossy(bytes).into_owned();
                st.log(level, line);
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(linker)
}

impl Guest {
    /// A guest of `module` for `plugin`, not started yet. `init` is the
    /// input of its init call.
    pub fn new(module: &Module, plugin: &'static str, limits: Limits, seed: u64, init: Vec<u8>) -> Result<Guest, String> {
        let pre = linker()?.instantiate_pre(module).map_err(|e| e.to_string())?;
        Ok(Guest { pre, limits, plugin, seed, init, live: None, failed_at: None })
    }

    /// Starts an instance: instantiate, `_initialize`, the ABI version, init.
    /// Returns init's output.
    fn start(&mut self) -> Result<(Live, Vec<u8>), CallError> {
        let mem = self.limits.memory;
        let state = HostState {
            environ: vec!["GOGC=100".into(), format!("GOMEMLIMIT={}", mem / 10 * 8)],
            started: Instant::now(),
            rng: Pcg64Mcg::seed_from_u64(self.seed),
            exited: None,
            panic: None,
            plugin: self.plugin,
            limiter: Limiter { max: mem, exceeded: false },
            partial: Vec::new(),
            window: (Instant::now(), 0, 0),
            tail: VecDeque::new(),
        };
        let mut store = Store::new(engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.ticks());
        let instance = self.pre.instantiate(&mut store).map_err(|e| classify(&mut store, &self.limits, e))?;
        if let Ok(f) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            f.call(&mut store, ()).map_err(|e| classify(&mut store, &self.limits, e))?;
        }
        let version =
            instance.get_typed_func::<(), u32>(&mut store, "berth_abi_version").map_err(|e| CallError::Unavailable(e.to_string()))?;
        store.set_epoch_deadline(self.ticks());
        let v = version.call(&mut store, ()).map_err(|e| classify(&mut store, &self.limits, e))?;
        if v != 1 {
            return Err(CallError::Unavailable(format!(
                "it was built for Berth's WebAssembly ABI version {v}, and this Berth loads version 1"
            )));
        }
        let unavailable = |e: wasmtime::Error| CallError::Unavailable(e.to_string());
        let memory = instance.get_memory(&mut store, "memory").ok_or_else(|| CallError::Unavailable("it exports no memory".into()))?;
        let buffer = instance.get_typed_func::<u32, u32>(&mut store, "berth_buffer").map_err(unavailable)?;
        let call = instance.get_typed_func::<(u32, u32), u64>(&mut store, "berth_call").map_err(unavailable)?;
        let mut live = Live { store, memory, buffer, call, slots: Default::default() };
        let init = self.init.clone();
        let out = call_live(&mut live, &self.limits, crate::wire::op::INIT, &init)?;
        Ok((live, out))
    }

    fn ticks(&self) -> u64 {
        ticks(&self.limits)
    }

    /// Starts the first instance, for the loader: init's output.
    pub fn first_start(&mut self) -> Result<Vec<u8>, CallError> {
        let (live, out) = self.start()?;
        self.live = Some(live);
        Ok(out)
    }

    /// Runs `f` with the live instance, starting one if there is none (at
    /// most once per [`RESTART_COOLDOWN`] after a failed start). Any error
    /// drops the instance: the next call starts afresh.
    pub fn with<R>(&mut self, f: impl FnOnce(&mut Live, &Limits) -> Result<R, CallError>) -> Result<R, CallError> {
        if self.live.is_none() {
            if let Some((at, why)) = &self.failed_at {
                if at.elapsed() < RESTART_COOLDOWN {
                    return Err(CallError::Unavailable(why.clone()));
                }
            }
            match self.start() {
                Ok((live, _)) => {
                    self.live = Some(live);
                    self.failed_at = None;
                }
                Err(e) => {
                    self.failed_at = Some((Instant::now(), e.to_string()));
                    return Err(e);
                }
            }
        }
        let live = self.live.as_mut().expect("started above");
        let r = f(live, &self.limits);
        if r.is_err() {
            self.live = None;
        }
        r
    }
}

/// Epoch ticks for one call's deadline.
fn ticks(limits: &Limits) -> u64 {
    (limits.timeout.as_nanos() / TICK.as_nanos()) as u64 + 1
}

/// One call: input into the guest's buffer, `berth_call`, output copied out.
pub fn call_live(live: &mut Live, limits: &Limits, op: u32, input: &[u8]) -> Result<Vec<u8>, CallError> {
    let ticks = ticks(limits);
    let len = u32::try_from(input.len()).map_err(|_| CallError::Malformed("an input over 4 GiB".into()))?;
    live.store.set_epoch_deadline(ticks);
    let ptr = live.buffer.call(&mut live.store, len).map_err(|e| classify(&mut live.store, limits, e))?;
    let start = ptr as usize;
    match live.memory.data_mut(&mut live.store).get_mut(start..start + input.len()) {
        Some(dst) => dst.copy_from_slice(input),
        None => return Err(CallError::Malformed(format!("berth_buffer({len}) gave {ptr:#x}, outside its memory"))),
    }
    let r = live.call.call(&mut live.store, (op, len)).map_err(|e| classify(&mut live.store, limits, e))?;
    if r == 0 {
        return Ok(Vec::new());
    }
    let (ptr, n) = ((r >> 32) as usize, (r & 0xffff_ffff) as usize);
    match live.memory.data(&live.store).get(ptr..ptr + n) {
        Some(out) => Ok(out.to_vec()),
        None => Err(CallError::Malformed(format!("an output of {n} bytes at {ptr:#x}, outside its memory"))),
    }
}

/// What a wasmtime error from a call means.
fn classify(store: &mut Store<HostState>, limits: &Limits, e: wasmtime::Error) -> CallError {
    let st = store.data_mut();
    if st.limiter.exceeded {
        return CallError::Memory(limits.memory);
    }
    if let Some(p) = st.panic.take() {
        return CallError::Panicked(p);
    }
    if let Some(code) = st.exited {
        let last = st.tail.back().map(|l| format!(" ({l})")).unwrap_or_default();
        return CallError::Exited(code, last);
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout(limits.timeout),
        Some(t) => CallError::Trap(t.to_string()),
        None => CallError::Trap(e.to_string().lines().next().unwrap_or_default().to_string()),
    }
}

/// Compiles `bytes`, and refuses a module that does not follow the ABI,
/// saying what is wrong.
pub fn compile(bytes: &[u8]) -> Result<Arc<Module>, String> {
    let module = Module::new(engine(), bytes).map_err(|e| format!("not a WebAssembly module Berth can compile: {e}"))?;
    for import in module.imports() {
        let (m, n) = (import.module(), import.name());
        let known = (m == crate::wasi::MODULE && crate::wasi::FUNCTIONS.contains(&n)) || (m == "berth" && n == "log");
        if m.starts_with("k8s.io/") {
            return Err(format!(
                "it imports {m}.{n}: it was built for kube-scheduler-wasm-extension, whose ABI Berth does not load (see docs/wasm-abi.md)"
            ));
        }
        if !known {
            return Err(format!("it imports {m}.{n}, which Berth does not provide to WebAssembly plugins"));
        }
    }
    let has = |name: &str| module.get_export(name).is_some();
    if has("_start") && !has("_initialize") {
        return Err("it is a command module (_start): build a reactor, e.g. Go's -buildmode=c-shared".into());
    }
    for needed in ["memory", "berth_abi_version", "berth_buffer", "berth_call"] {
        if !has(needed) {
            return Err(format!("it does not export {needed}: build it with Berth's guest SDK (docs/wasm-abi.md)"));
        }
    }
    Ok(Arc::new(module))
}
