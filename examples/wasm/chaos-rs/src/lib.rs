//! Chaos: a Filter guest that misbehaves when a pod asks it to, with the
//! annotation `example.berth.dev/chaos`: `loop` runs forever, `alloc`
//! allocates until it is stopped, `panic` panics, `trap` executes an
//! unreachable instruction. Any other pod passes. Berth must keep
//! scheduling the other pods whatever this guest does.
use berth_guest::{Args, Filter, Node, Plugin, Pod, Status};

pub struct Chaos;

impl Plugin for Chaos {
    const NAME: &'static str = "Chaos";
    fn new(_args: &Args) -> Result<Self, String> {
        Ok(Chaos)
    }
}

impl Filter for Chaos {
    fn filter(&self, pod: &Pod, _node: &Node) -> Status {
        match pod.annotations.get("example.berth.dev/chaos").map(String::as_str) {
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("alloc") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("panic") => panic!("asked to panic by pod {}", pod.name),
            #[cfg(target_arch = "wasm32")]
            Some("trap") => core::arch::wasm32::unreachable(),
            _ => Status::success(),
        }
    }
}

berth_guest::export!(Chaos);
