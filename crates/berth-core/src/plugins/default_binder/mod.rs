//! DefaultBinder: writes the binding through the caller's `Binder` (the
//! `pods/binding` subresource live, the in-memory cluster in the simulator).

use std::sync::Arc;

use crate::framework::*;

pub const NAME: &str = "DefaultBinder";

pub struct DefaultBinder;

pub fn new(_args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(DefaultBinder))
}

#[crate::plugin]
impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        NAME
    }
    fn bind(&self, _state: &mut CycleState, pod: &PodInfo, node: &str, binder: &dyn Binder) -> Status {
        match binder.bind(&pod.pod, node) {
            Ok(()) => Status::success(),
            Err(e) => Status::error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Pod;
    use crate::testing::make_pod;
    use std::sync::Mutex;

    struct Recorder(Mutex<Vec<(String, String)>>, bool);
    impl Binder for Recorder {
        fn bind(&self, pod: &Pod, node: &str) -> Result<(), String> {
            self.0.lock().unwrap().push((pod.key(), node.to_string()));
            if self.1 {
                Err("conflict".into())
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn binds_through_binder() {
        let ok = Recorder(Mutex::new(vec![]), false);
        let pod = make_pod("p").info();
        assert!(DefaultBinder.bind(&mut CycleState::new(), &pod, "n1", &ok).is_success());
        assert_eq!(ok.0.lock().unwrap().as_slice(), [("default/p".to_string(), "n1".to_string())]);
        let bad = Recorder(Mutex::new(vec![]), true);
        let s = DefaultBinder.bind(&mut CycleState::new(), &pod, "n1", &bad);
        assert_eq!((s.code, s.message()), (Code::Error, "conflict".to_string()));
    }
}
