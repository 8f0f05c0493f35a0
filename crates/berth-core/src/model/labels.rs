//! Labels, label selectors (pods) and node selector terms (node affinity).

use std::collections::BTreeMap;

/// A label set. Kept sorted so iteration order is stable in output.
pub type Labels = BTreeMap<String, String>;

/// A requirement's operator, in label selectors and node selectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectorOp {
    /// The label is present and its value is one of `values`.
    In,
    /// The label is absent, or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// Node selectors only: the label's value, as an integer, is greater than `values[0]`.
    /// A value that is not an integer never matches.
    Gt,
    /// Node selectors only: the label's value, as an integer, is less than `values[0]`.
    Lt,
}

impl SelectorOp {
    /// Parses the API spelling (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`); `None` for
    /// anything else.
    pub fn parse(s: &str) -> Option<SelectorOp> {
        Some(match s {
            "In" => SelectorOp::In,
            "NotIn" => SelectorOp::NotIn,
            "Exists" => SelectorOp::Exists,
            "DoesNotExist" => SelectorOp::DoesNotExist,
            "Gt" => SelectorOp::Gt,
            "Lt" => SelectorOp::Lt,
            _ => return None,
        })
    }
}

/// One requirement of a selector: a `matchExpressions` entry, or a `matchLabels` pair as `In`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The label key (for a node selector's `matchFields`, the field: `metadata.name`).
    pub key: String,
    /// The operator.
    pub op: SelectorOp,
    /// The values: empty for `Exists` and `DoesNotExist`, one integer for `Gt` and `Lt`.
    pub values: Vec<String>,
}

impl Requirement {
    /// A requirement from its parts.
    pub fn new(key: &str, op: SelectorOp, values: &[&str]) -> Requirement {
        Requirement { key: key.to_string(), op, values: values.iter().map(|s| s.to_string()).collect() }
    }

    /// Matches against a value looked up by key (`None`: label absent).
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        match self.op {
            SelectorOp::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            SelectorOp::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            SelectorOp::Exists => value.is_some(),
            SelectorOp::DoesNotExist => value.is_none(),
            SelectorOp::Gt | SelectorOp::Lt => {
                let (Some(v), Some(want)) = (value, self.values.first()) else { return false };
                let (Ok(have), Ok(want)) = (v.parse::<i64>(), want.parse::<i64>()) else { return false };
                if self.op == SelectorOp::Gt {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }

    /// Whether `labels` satisfy it.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.key).map(|s| s.as_str()))
    }
}

/// A `metav1.LabelSelector`, compiled. `None`-ness is explicit: upstream turns a
/// nil selector into "matches nothing" and an empty one into "matches everything".
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// Requirements, all of which must hold.
    pub requirements: Vec<Requirement>,
    /// The selector was nil (or invalid): it selects nothing.
    pub nothing: bool,
}

impl LabelSelector {
    /// The selector that matches nothing, as a nil selector.
    pub fn nothing() -> LabelSelector {
        LabelSelector { requirements: vec![], nothing: true }
    }

    /// The selector that matches every label set, as an empty one.
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// A selector from `matchLabels` only.
    pub fn from_match_labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> LabelSelector {
        LabelSelector { requirements: pairs.into_iter().map(|(k, v)| Requirement::new(k, SelectorOp::In, &[v])).collect(), nothing: false }
    }

    /// Whether `labels` satisfy every requirement; always false for [`LabelSelector::nothing`].
    pub fn matches(&self, labels: &Labels) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether it matches everything: not nil, and no requirements.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }
}

/// One `NodeSelectorTerm`: all expressions and fields must hold.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeSelectorTerm {
    /// `matchExpressions`, on the node's labels.
    pub match_expressions: Vec<Requirement>,
    /// Only `metadata.name` is supported upstream.
    pub match_fields: Vec<Requirement>,
}

impl NodeSelectorTerm {
    /// An empty term matches no objects (upstream semantics).
    pub fn matches(&self, node_name: &str, labels: &Labels) -> bool {
        if self.match_expressions.is_empty() && self.match_fields.is_empty() {
            return false;
        }
        self.match_expressions.iter().all(|r| r.matches(labels))
            && self.match_fields.iter().all(|r| r.key == "metadata.name" && r.matches_value(Some(node_name)))
    }
}

/// A `NodeSelector`: terms are ORed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeSelector {
    /// `nodeSelectorTerms`: a node must match one of them.
    pub terms: Vec<NodeSelectorTerm>,
}

impl NodeSelector {
    /// Whether some term matches the node; false when there are no terms.
    pub fn matches(&self, node_name: &str, labels: &Labels) -> bool {
        self.terms.iter().any(|t| t.matches(node_name, labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn requirement_ops() {
        let l = labels(&[("zone", "a"), ("gen", "5")]);
        let table: &[(Requirement, bool)] = &[
            (Requirement::new("zone", SelectorOp::In, &["a", "b"]), true),
            (Requirement::new("zone", SelectorOp::In, &["b"]), false),
            (Requirement::new("zone", SelectorOp::NotIn, &["b"]), true),
            (Requirement::new("missing", SelectorOp::NotIn, &["b"]), true),
            (Requirement::new("zone", SelectorOp::Exists, &[]), true),
            (Requirement::new("zone", SelectorOp::DoesNotExist, &[]), false),
            (Requirement::new("gen", SelectorOp::Gt, &["4"]), true),
            (Requirement::new("gen", SelectorOp::Gt, &["5"]), false),
            (Requirement::new("gen", SelectorOp::Lt, &["6"]), true),
            (Requirement::new("zone", SelectorOp::Gt, &["1"]), false),
            (Requirement::new("gen", SelectorOp::Gt, &["x"]), false),
            (Requirement::new("missing", SelectorOp::Lt, &["1"]), false),
        ];
        for (r, want) in table {
            assert_eq!(r.matches(&l), *want, "{r:?}");
        }
    }

    #[test]
    fn selectors_nil_vs_empty() {
        let l = labels(&[("app", "web")]);
        assert!(!LabelSelector::nothing().matches(&l));
        assert!(LabelSelector::everything().matches(&l));
        assert!(LabelSelector::from_match_labels([("app", "web")]).matches(&l));
        assert!(!LabelSelector::from_match_labels([("app", "db")]).matches(&l));
    }

    #[test]
    fn node_selector_terms() {
        let l = labels(&[("zone", "a")]);
        let empty = NodeSelectorTerm::default();
        assert!(!empty.matches("n1", &l));
        let by_name =
            NodeSelectorTerm { match_expressions: vec![], match_fields: vec![Requirement::new("metadata.name", SelectorOp::In, &["n1"])] };
        assert!(by_name.matches("n1", &l));
        assert!(!by_name.matches("n2", &l));
        let sel = NodeSelector {
            terms: vec![
                by_name,
                NodeSelectorTerm { match_expressions: vec![Requirement::new("zone", SelectorOp::In, &["a"])], match_fields: vec![] },
            ],
        };
        assert!(sel.matches("n2", &l));
    }
}
