//! ImageLocality: prefer nodes that already have the pod's images, weighted
//! by image size and by how widely the image is spread (to avoid piling
//! every pod onto the one node that happens to have it).

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::{normalize_image_name, NodeInfo, Snapshot};
use crate::framework::*;

pub const NAME: &str = "ImageLocality";
const STATE_KEY: &str = "PreScoreImageLocality";

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub struct ImageLocality;

pub fn new(_args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(ImageLocality))
}

#[derive(Clone)]
struct PreScore {
    /// The pod's images (containers, init containers, image volumes), normalized once per
    /// cycle; the threshold scales with their number.
    images: Vec<String>,
    /// Normalized image name -> number of nodes that have it.
    spread: HashMap<String, usize>,
    total_nodes: usize,
}

fn calculate_priority(sum: i64, num_images: usize) -> i64 {
    let max_threshold = MAX_CONTAINER_THRESHOLD * num_images as i64;
    let sum = if sum < MIN_THRESHOLD { MIN_THRESHOLD } else { sum.min(max_threshold) };
    if max_threshold <= MIN_THRESHOLD {
        return 0;
    }
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
}

#[crate::plugin]
impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _nodes: &[&NodeInfo], snap: &Snapshot) -> Status {
        let mut spread = HashMap::new();
        let mut images = Vec::new();
        // Containers, init containers and (since 1.36) image volumes: each is one image.
        let volumes = pod.pod.volumes.iter().filter_map(|v| match &v.source {
            crate::model::VolumeSource::Image { reference } => Some(reference),
            _ => None,
        });
        for image in pod.pod.init_containers.iter().chain(pod.pod.containers.iter()).map(|c| &c.image).chain(volumes) {
            let n = normalize_image_name(image);
            let count = snap.image_num_nodes(&n);
            spread.insert(n.clone(), count);
            images.push(n);
        }
        if spread.values().all(|c| *c == 0) {
            // No node has any of the images: every node would score 0.
            return Status::skip();
        }
        state.write(STATE_KEY, PreScore { images, spread, total_nodes: snap.num_nodes() });
        Status::success()
    }
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let Some(ps) = state.read::<PreScore>(STATE_KEY) else {
            return (0, Status::error("reading PreScore state of ImageLocality"));
        };
        if node.image_sizes.is_empty() || ps.total_nodes == 0 {
            return (calculate_priority(0, ps.images.len()), Status::success());
        }
        let mut sum = 0i64;
        for n in &ps.images {
            if let Some(&size) = node.image_sizes.get(n) {
                let spread = ps.spread.get(n).copied().unwrap_or(0) as f64 / ps.total_nodes as f64;
                sum += (size as f64 * spread) as i64;
            }
        }
        (calculate_priority(sum, ps.images.len()), Status::success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn score() {
        // Upstream-style case: two nodes, 40MB/300MB/2000MB images.
        let n1 = make_node("node1")
            .image("gcr.io/40:latest", 40 * MB)
            .image("gcr.io/300:latest", 300 * MB)
            .image("gcr.io/2000:latest", 2000 * MB)
            .obj();
        let n2 = make_node("node2").image("gcr.io/250:latest", 250 * MB).image("gcr.io/10:v1", 10 * MB).obj();
        let snap = Snapshot::from_node_infos(vec![NodeInfo::new(Arc::new(n1)), NodeInfo::new(Arc::new(n2))]);
        // (pod, expected [node1, node2])
        let table = vec![
            // 40MB on node1 only: spread 1/2 -> 20MB < 23MB threshold -> 0
            (make_pod("p").image("gcr.io/40").obj(), [0, 0]),
            // 300MB/2 = 150MB on node1, 250MB/2 = 125MB on node2: 100*(150-23)/(2000-23) = 6, 100*(125-23)/1977 = 5
            (make_pod("p").image("gcr.io/300").image("gcr.io/250").obj(), [6, 5]),
            // 2000MB spread 1/2 = 1000MB of a 2000MB maximum: 100*(1000-23)/1977 = 49
            (make_pod("p").image("gcr.io/2000").image("gcr.io/10:v1").obj(), [49, 0]),
        ];
        for (pod, want) in table {
            let pi = PodInfo::new(pod);
            let mut st = CycleState::new();
            ImageLocality.pre_score(&mut st, &pi, &snap.node_refs(), &snap);
            let got: Vec<i64> = snap.nodes().iter().map(|n| ImageLocality.score(&st, &pi, n).0).collect();
            assert_eq!(got, want, "{:?}", pi.pod.containers.iter().map(|c| &c.image).collect::<Vec<_>>());
        }
    }

    fn scores(snap: &Snapshot, pod: crate::model::Pod) -> (Status, Vec<i64>) {
        let pi = PodInfo::new(pod);
        let mut st = CycleState::new();
        let pre = ImageLocality.pre_score(&mut st, &pi, &snap.node_refs(), snap);
        if !pre.is_success() {
            return (pre, vec![]);
        }
        (pre, snap.nodes().iter().map(|n| ImageLocality.score(&st, &pi, n).0).collect())
    }

    // Upstream's three-node cases (one node without images), images the node
    // reports under several names, init containers, repeated images.
    #[test]
    fn score_with_a_node_without_images() {
        let mut n1 = make_node("node1").image("gcr.io/2000:latest", 2000 * MB).obj();
        n1.images.push(crate::model::ContainerImage { names: vec!["gcr.io/40:latest".into(), "gcr.io/40:v1".into()], size_bytes: 40 * MB });
        n1.images
            .push(crate::model::ContainerImage { names: vec!["gcr.io/300:latest".into(), "gcr.io/300:v1".into()], size_bytes: 300 * MB });
        let mut n2 = make_node("node2").image("gcr.io/250:latest", 250 * MB).obj();
        n2.images.push(crate::model::ContainerImage { names: vec!["gcr.io/10:latest".into(), "gcr.io/10:v1".into()], size_bytes: 10 * MB });
        let n3 = make_node("node3").obj();
        let snap = Snapshot::from_node_infos([n1, n2, n3].into_iter().map(|n| NodeInfo::new(Arc::new(n))).collect());
        let table = vec![
            // 2000MB on one node of three: 666MB of a 2000MB maximum -> 32; 10MB/3 is under the minimum.
            ("spread over three nodes", make_pod("p").image("gcr.io/2000").image("gcr.io/10").obj(), [32, 0, 0]),
            // Init containers count, and a tag the node reports as a second name matches.
            (
                "an init container's image",
                {
                    let mut p = make_pod("p").image("gcr.io/40").obj();
                    let mut init = p.containers[0].clone();
                    init.image = "gcr.io/300:v1".into();
                    p.init_containers.push(init);
                    p
                },
                [4, 0, 0],
            ),
            // Three containers raise the maximum to 3000MB.
            ("three containers", make_pod("p").image("gcr.io/2000").image("gcr.io/250").image("gcr.io/10:v1").obj(), [21, 2, 0]),
            // The same image in two containers counts twice.
            ("a repeated image", make_pod("p").image("gcr.io/2000").image("gcr.io/2000:latest").obj(), [66, 0, 0]),
        ];
        for (name, pod, want) in table {
            let (s, got) = scores(&snap, pod);
            assert!(s.is_success(), "{name}: {s}");
            assert_eq!(got, want, "{name}");
        }
        // An image volume (1.36+) is one more image: it scores as a container with that image.
        let mut with_volume = make_pod("p").image("gcr.io/2000").obj();
        with_volume.volumes.push(crate::model::Volume {
            name: "weights".into(),
            source: crate::model::VolumeSource::Image { reference: "gcr.io/250".into() },
        });
        let as_containers = scores(&snap, make_pod("p").image("gcr.io/2000").image("gcr.io/250").obj()).1;
        assert_eq!(scores(&snap, with_volume).1, as_containers);
        assert_ne!(as_containers, scores(&snap, make_pod("p").image("gcr.io/2000").obj()).1);
        // No node has the image (a digest is not given a tag): nothing to score.
        let (s, _) = scores(&snap, make_pod("p").image("gcr.io/40@sha256:0123").obj());
        assert!(s.is_skip(), "{s}");
    }
}
