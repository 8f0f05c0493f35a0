//! Criterion benches of the hot paths: quantity parsing, request
//! computation, DRA selector evaluation, the filter pass, and a whole
//! scheduling cycle.
//! Run: `cargo bench -p berth-core --bench hot_paths`.

use std::sync::Arc;

use berth_core::cache::{Cache, Snapshot};
use berth_core::config::KubeSchedulerConfiguration;
use berth_core::framework::{CycleState, NoNominations, PodInfo};
use berth_core::model::Quantity;
use berth_core::scheduler::CycleRunner;
use berth_core::testing::{make_node, make_pod};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

fn cluster(nodes: usize) -> Snapshot {
    let mut cache = Cache::new();
    for i in 0..nodes {
        cache.add_node(
            make_node(&format!("node-{i}"))
                .capacity(4000, 32 << 30, 110)
                .label("topology.kubernetes.io/zone", &format!("zone-{}", i % 3))
                .obj(),
        );
    }
    for i in 0..nodes {
        let p = make_pod(&format!("init-{i}")).req(100, 500 << 20).node(&format!("node-{i}")).obj();
        cache.add_pod(Arc::new(p)).unwrap();
    }
    let mut snap = Snapshot::default();
    cache.update_snapshot(&mut snap);
    snap
}

fn benches(c: &mut Criterion) {
    c.bench_function("quantity/parse 500Mi", |b| b.iter(|| Quantity::parse(std::hint::black_box("500Mi")).unwrap().value()));
    c.bench_function("quantity/parse 1.5", |b| b.iter(|| Quantity::parse(std::hint::black_box("1.5")).unwrap().milli_value()));

    // A DRA selector evaluated against one device: the allocator does this for
    // every candidate device of every request.
    let device = berth_core::cel::DeviceInput::new(
        "gpu.example.com",
        false,
        &[
            ("model".to_string(), berth_core::cel::AttributeValue::String("a100".to_string())),
            ("driverVersion".to_string(), berth_core::cel::AttributeValue::Version("1.10.0".to_string())),
        ],
        &[("memory".to_string(), Quantity::parse("40Gi").unwrap())],
    );
    let selector = berth_core::cel::compile(
        r#"device.driver == "gpu.example.com" && device.attributes["gpu.example.com"].model == "a100" && device.capacity["gpu.example.com"].memory.isGreaterThan(quantity("16Gi")) && device.attributes["gpu.example.com"].driverVersion.isGreaterThan(semver("1.2.0"))"#,
    )
    .unwrap();
    c.bench_function("cel/evaluate gpu selector", |b| b.iter(|| selector.evaluate(std::hint::black_box(&device))));

    let pod = make_pod("p").req(100, 500 << 20).sidecar_req(&[("cpu", "50m")]).init_req(&[("cpu", "1")]).obj();
    c.bench_function("pod/requests", |b| b.iter(|| std::hint::black_box(&pod).requests()));

    let cfg = KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({})).unwrap();
    let fwk = cfg.build_frameworks().unwrap().remove(0);
    for nodes in [1000usize, 5000] {
        let snap = cluster(nodes);
        let pi = Arc::new(PodInfo::new(make_pod("incoming").req(100, 500 << 20).obj()));
        c.bench_function(&format!("filter/one node of {nodes}"), |b| {
            let mut state = CycleState::new();
            let _ = fwk.run_pre_filter(&mut state, &pi, &snap);
            let node = snap.nodes()[nodes / 2].clone();
            b.iter(|| fwk.run_filter(&state, &pi, &node))
        });
        c.bench_function(&format!("cycle/schedule_pod on {nodes} nodes"), |b| {
            let mut runner = CycleRunner::new(0, 1);
            b.iter_batched(
                CycleState::new,
                |mut state| runner.schedule_pod(&fwk, &mut state, &pi, &snap, &NoNominations).unwrap().node,
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
