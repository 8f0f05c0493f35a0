//! TeamQuota: a team runs at most `spec.maxPods` pods. Teams are custom
//! resources (`example.berth.dev/v1` `Team`, cluster-scoped, see
//! `deploy/team-crd.yaml`); a pod names its team with the label
//! `example.berth.dev/team`. PreFilter refuses a pod whose team is full;
//! PreBind records an `Admitted` event and stamps the pod with the
//! annotation `example.berth.dev/admitted` (live, through the API client).

use berth::live::k8s_openapi::api::core::v1::Pod as ApiPod;
use berth::live::kube::api::{Api, Patch, PatchParams};
use berth::prelude::*;

pub const NAME: &str = "TeamQuota";
pub const TEAM_LABEL: &str = "example.berth.dev/team";
pub const ADMITTED: &str = "example.berth.dev/admitted";
pub const TEAM: ObjectKind = ObjectKind::cluster("example.berth.dev", "v1", "Team", "teams");

/// The fields of a Team we read.
#[derive(serde::Deserialize)]
pub struct Team {
    pub spec: TeamSpec,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamSpec {
    pub max_pods: usize,
}

pub struct TeamQuota {
    teams: Store<Team>,
    handle: Handle,
}

impl TeamQuota {
    pub fn new(_args: &PluginArgs, handle: &Handle) -> Result<TeamQuota, PluginError> {
        // Declaring the kind here is what makes `run` watch it and
        // `simulate` read it from the manifests.
        Ok(TeamQuota { teams: handle.objects(TEAM), handle: handle.clone() })
    }
}

/// What PreFilter found, for PreBind.
#[derive(Clone)]
struct Admission {
    team: String,
    running: usize,
    max: usize,
}

const STATE_KEY: &str = "TeamQuota";

#[berth::plugin]
impl Plugin for TeamQuota {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            // A team created or raised, or one of its pods gone, may admit a pod.
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::Object(TEAM), action::ADD | action::UPDATE, "TeamChange")),
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::AssignedPod, action::DELETE, "AssignedPodDelete")),
        ]
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        let Some(team) = pod.pod.labels.get(TEAM_LABEL) else { return (None, Status::skip()) };
        let Some(t) = self.teams.get("", team) else {
            return (None, Status::unresolvable(format!("team {team} does not exist")));
        };
        // Pods on nodes, assumed ones (bound a moment ago) included.
        let running = snapshot.nodes().iter().flat_map(|n| n.pods.iter()).filter(|p| p.pod.labels.get(TEAM_LABEL) == Some(team)).count();
        if running >= t.spec.max_pods {
            return (None, Status::unresolvable(format!("team {team} is at its quota of {} pod(s)", t.spec.max_pods)));
        }
        state.write(STATE_KEY, Admission { team: team.clone(), running, max: t.spec.max_pods });
        (None, Status::success())
    }

    fn pre_bind(&self, state: &mut CycleState, pod: &PodInfo, _node: &str) -> Status {
        let Some(a) = state.read::<Admission>(STATE_KEY) else { return Status::skip() };
        let note = format!("team {}: pod {} of {}", a.team, a.running + 1, a.max);
        self.handle.record_event(&*pod.pod, EventType::Normal, "Admitted", "Binding", note.clone());
        // Live only: the simulator has no API server to write to.
        let Some(client) = berth::live::client(&self.handle) else { return Status::success() };
        let pods: Api<ApiPod> = Api::namespaced(client, &pod.pod.namespace);
        let patch = serde_json::json!({ "metadata": { "annotations": { ADMITTED: note } } });
        match berth::live::block_on(&self.handle, pods.patch(&pod.pod.name, &PatchParams::default(), &Patch::Merge(&patch))) {
            Some(Ok(_)) | None => Status::success(),
            Some(Err(e)) => Status::error(format!("stamping the pod: {e}")),
        }
    }
}
