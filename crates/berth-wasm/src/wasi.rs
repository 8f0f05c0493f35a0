//! The part of WASI preview 1 a guest gets: what Go's `wasip1` runtime
//! needs to start and run, and nothing that reaches outside the sandbox.
//! No files (no preopened directories), no sockets, no arguments; the
//! environment holds only the Go GC's limits; standard output and error
//! go to Berth's log; random bytes come from a seeded generator.

use rand::RngCore;
use wasmtime::{Caller, Extern, Linker};

use crate::guest::HostState;

/// The WASI module name.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// The functions this shim defines (a guest importing another is refused).
pub const FUNCTIONS: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "clock_time_get",
    "clock_res_get",
    "fd_write",
    "fd_close",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "fd_read",
    "fd_seek",
    "random_get",
    "poll_oneoff",
    "sched_yield",
    "proc_exit",
];

const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ESPIPE: i32 = 70;

/// The guest's memory, or `None` when it exports none.
fn memory<'a>(caller: &'a mut Caller<'_, HostState>) -> Option<(&'a mut [u8], &'a mut HostState)> {
    let Some(Extern::Memory(m)) = caller.get_export("memory") else {
        return None;
    };
    Some(m.data_and_store_mut(caller))
}

fn slice(mem: &[u8], ptr: i32, len: u64) -> Option<&[u8]> {
    let start = ptr as u32 as usize;
    mem.get(start..start.checked_add(usize::try_from(len).ok()?)?)
}

fn put(mem: &mut [u8], ptr: i32, bytes: &[u8]) -> Result<(), i32> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(bytes.len()).ok_or(EFAULT)?;
    mem.get_mut(start..end).ok_or(EFAULT)?.copy_from_slice(bytes);
    Ok(())
}

fn errno(r: Result<(), i32>) -> i32 {
    match r {
        Ok(()) => SUCCESS,
        Err(e) => e,
    }
}

/// Defines the shim's functions in `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "args_sizes_get", |mut c: Caller<'_, HostState>, argc: i32, size: i32| -> i32 {
        let Some((mem, _)) = memory(&mut c) else { return EFAULT };
        errno(put(mem, argc, &0u32.to_le_bytes()).and_then(|_| put(mem, size, &0u32.to_le_bytes())))
    })?;
    linker.func_wrap(MODULE, "args_get", |_: Caller<'_, HostState>, _argv: i32, _buf: i32| -> i32 { SUCCESS })?;
    linker.func_wrap(MODULE, "environ_sizes_get", |mut c: Caller<'_, HostState>, count: i32, size: i32| -> i32 {
        let Some((mem, st)) = memory(&mut c) else { return EFAULT };
        let total: usize = st.environ.iter().map(|e| e.len() + 1).sum();
        let n = st.environ.len() as u32;
        errno(put(mem, count, &n.to_le_bytes()).and_then(|_| put(mem, size, &(total as u32).to_le_bytes())))
    })?;
    linker.func_wrap(MODULE, "environ_get", |mut c: Caller<'_, HostState>, ptrs: i32, buf: i32| -> i32 {
        let Some((mem, st)) = memory(&mut c) else { return EFAULT };
        let mut at = buf as u32;
        for (i, e) in st.environ.iter().enumerate() {
            let mut bytes = e.as_bytes().to_vec();
            bytes.push(0);
            if let Err(e) = put(mem, ptrs.wrapping_add(4 * i as i32), &at.to_le_bytes()).and_then(|_| put(mem, at as i32, &bytes)) {
                return e;
            }
            at = at.wrapping_add(bytes.len() as u32);
        }
        SUCCESS
    })?;
    linker.func_wrap(MODULE, "clock_time_get", |mut c: Caller<'_, HostState>, id: i32, _precision: i64, out: i32| -> i32 {
        let Some((mem, st)) = memory(&mut c) else { return EFAULT };
        let ns = match id {
            0 => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0),
            1..=3 => st.started.elapsed().as_nanos() as u64 + 1,
            _ => return EINVAL,
        };
        errno(put(mem, out, &ns.to_le_bytes()))
    })?;
    linker.func_wrap(MODULE, "clock_res_get", |mut c: Caller<'_, HostState>, _id: i32, out: i32| -> i32 {
        let Some((mem, _)) = memory(&mut c) else { return EFAULT };
        errno(put(mem, out, &1000u64.to_le_bytes()))
    })?;
    linker.func_wrap(MODULE, "fd_write", |mut c: Caller<'_, HostState>, fd: i32, iovs: i32, n: i32, written: i32| -> i32 {
        let Some((mem, st)) = memory(&mut c) else { return EFAULT };
        if fd != 1 && fd != 2 {
            return EBADF;
        }
        let mut total = 0u32;
        for i in 0..n.max(0) {
            let Some(iov) = slice(mem, iovs.wrapping_add(8 * i), 8) else { return EFAULT };
            let (ptr, len) = (i32::from_le_bytes(iov[..4].try_into().unwrap()), u32::from_le_bytes(iov[4..].try_into().unwrap()));
            let Some(bytes) = slice(mem, ptr, len as u64) else { return EFAULT };
            st.output(bytes);
            total = total.wrapping_add(len);
        }
        errno(put(mem, written, &total.to_le_bytes()))
    })?;
    linker.func_wrap(MODULE, "fd_close", |_: Caller<'_, HostState>, fd: i32| -> i32 {
        if (0..=2).contains(&fd) {
            SUCCESS
        } else {
            EBADF
        }
    })?;
    linker.func_wrap(MODULE, "fd_fdstat_get", |mut c: Caller<'_, HostState>, fd: i32, out: i32| -> i32 {
        if !(0..=2).contains(&fd) {
            return EBADF;
        }
        let Some((mem, _)) = memory(&mut c) else { return EFAULT };
        // A character device with every right: filetype, flags, rights, inherited rights.
        let mut stat = [0u8; 24];
        stat[0] = 2;
        stat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        errno(put(mem, out, &stat))
    })?;
    linker.func_wrap(MODULE, "fd_fdstat_set_flags", |_: Caller<'_, HostState>, fd: i32, _flags: i32| -> i32 {
        if (0..=2).contains(&fd) {
            SUCCESS
        } else {
            EBADF
        }
    })?;
    // No preopened directories: the first probe (fd 3) ends Go's search.
    linker.func_wrap(MODULE, "fd_prestat_get", |_: Caller<'_, HostState>, _fd: i32, _out: i32| -> i32 { EBADF })?;
    linker.func_wrap(MODULE, "fd_prestat_dir_name", |_: Caller<'_, HostState>, _fd: i32, _p: i32, _l: i32| -> i32 { EBADF })?;
    linker.func_wrap(MODULE, "fd_read", |mut c: Caller<'_, HostState>, fd: i32, _iovs: i32, _n: i32, read: i32| -> i32 {
        if fd != 0 {
            return EBADF;
        }
        let Some((mem, _)) = memory(&mut c) else { return EFAULT };
        errno(put(mem, read, &0u32.to_le_bytes()))
    })?;
    linker.func_wrap(MODULE, "fd_seek", |_: Caller<'_, HostState>, fd: i32, _off: i64, _whence: i32, _out: i32| -> i32 {
        if (0..=2).contains(&fd) {
            ESPIPE
        } else {
            EBADF
        }
    })?;
    linker.func_wrap(MODULE, "random_get", |mut c: Caller<'_, HostState>, buf: i32, len: i32| -> i32 {
        let Some((mem, st)) = memory(&mut c) else { return EFAULT };
        let start = buf as u32 as usize;
        let Some(out) = start.checked_add(len as u32 as usize).and_then(|end| mem.get_mut(start..end)) else { return EFAULT };
        st.rng.fill_bytes(out);
        SUCCESS
    })?;
    // A guest cannot sleep: every subscription is answered at once, as if
    // its timer had fired (a loop that waits burns its deadline).
    linker.func_wrap(MODULE, "poll_oneoff", |mut c: Caller<'_, HostState>, subs: i32, events: i32, n: i32, out: i32| -> i32 {
        let Some((mem, _)) = memory(&mut c) else { return EFAULT };
        for i in 0..n.max(0) {
            let Some(sub) = slice(mem, subs.wrapping_add(48 * i), 48) else { return EFAULT };
            let mut ev = [0u8; 32];
            ev[..8].copy_from_slice(&sub[..8]);
            ev[10] = sub[8];
            if let Err(e) = put(mem, events.wrapping_add(32 * i), &ev) {
                return e;
            }
        }
        errno(put(mem, out, &(n.max(0) as u32).to_le_bytes()))
    })?;
    linker.func_wrap(MODULE, "sched_yield", |_: Caller<'_, HostState>| -> i32 { SUCCESS })?;
    linker.func_wrap(MODULE, "proc_exit", |mut c: Caller<'_, HostState>, code: i32| -> wasmtime::Result<()> {
        c.data_mut().exited = Some(code);
        Err(wasmtime::format_err!("the guest exited with code {code}"))
    })?;
    Ok(())
}
