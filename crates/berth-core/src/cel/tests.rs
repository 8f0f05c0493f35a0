//! Upstream's `compile_test.go` cases (k8s.io/dynamic-resource-allocation
//! v0.37.2, `cel/compile_test.go`), then Berth's own.
//!
//! kube-scheduler compiles selectors in the "stored expressions" environment
//! (its `cel.Cache` uses the default options), where every device field and
//! list-typed attributes exist whatever the feature gates. Upstream's cases that
//! only run in the "new expressions" environment with a feature disabled expect
//! a compile error there; Berth gives the stored environment's outcome, and says
//! so next to the case.

use std::sync::Arc;

use super::*;
use crate::model::Quantity;

#[derive(Debug)]
enum Expect {
    Match(bool),
    CompileError(&'static str),
    RuntimeError(&'static str),
}
use Expect::*;

struct Case {
    name: &'static str,
    expression: String,
    driver: &'static str,
    allow_multiple_allocations: bool,
    attributes: Vec<(String, AttributeValue)>,
    capacity: Vec<(String, Quantity)>,
    expect: Expect,
    /// Upstream's worst-case cost estimate. Upstream checks that the actual cost
    /// never exceeds it; Berth checks its own count against it the same way.
    upstream_max_cost: Option<u64>,
}

fn case(name: &'static str, expression: impl Into<String>, expect: Expect) -> Case {
    Case {
        name,
        expression: expression.into(),
        driver: "",
        allow_multiple_allocations: false,
        attributes: Vec::new(),
        capacity: Vec::new(),
        expect,
        upstream_max_cost: None,
    }
}

impl Case {
    fn driver(mut self, d: &'static str) -> Case {
        self.driver = d;
        self
    }
    fn attr(mut self, name: &str, v: AttributeValue) -> Case {
        self.attributes.push((name.to_string(), v));
        self
    }
    fn cap(mut self, name: &str, q: &str) -> Case {
        self.capacity.push((name.to_string(), Quantity::parse(q).expect("test quantity")));
        self
    }
    fn multi(mut self, b: bool) -> Case {
        self.allow_multiple_allocations = b;
        self
    }
    fn cost(mut self, c: u64) -> Case {
        self.upstream_max_cost = Some(c);
        self
    }

    fn run(&self) -> Result<(), String> {
        let device = DeviceInput::new(self.driver, self.allow_multiple_allocations, &self.attributes, &self.capacity);
        let selector = match (compile(&self.expression), &self.expect) {
            (Err(e), CompileError(want)) => {
                let got = e.to_string();
                return if got.contains(want) { Ok(()) } else { Err(format!("compile error {got:?} lacks {want:?}")) };
            }
            (Err(e), _) => return Err(format!("unexpected compile error: {e}")),
            (Ok(_), CompileError(want)) => return Err(format!("compiled, expected a compile error containing {want:?}")),
            (Ok(s), _) => s,
        };
        if let (Some(max), Ok(actual)) = (self.upstream_max_cost, selector.cost(&device)) {
            if actual > max {
                return Err(format!("Berth counted cost {actual}, above upstream's worst-case estimate {max}"));
            }
        }
        match (selector.evaluate(&device), &self.expect) {
            (Ok(got), Match(want)) if got == *want => Ok(()),
            (Ok(got), want) => Err(format!("evaluated to {got}, expected {want:?}")),
            (Err(e), RuntimeError(want)) => {
                let got = e.to_string();
                if got.contains(want) {
                    Ok(())
                } else {
                    Err(format!("runtime error {got:?} lacks {want:?}"))
                }
            }
            (Err(e), want) => Err(format!("runtime error {e}, expected {want:?}")),
        }
    }
}

fn run_all(cases: Vec<Case>) {
    let failures: Vec<String> = cases.iter().filter_map(|c| c.run().err().map(|e| format!("{}: {e}", c.name))).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

use AttributeValue::{Bool, BoolList, Int, IntList, StringList, Version, VersionList};
fn string(s: &str) -> AttributeValue {
    AttributeValue::String(s.to_string())
}

/// `max(DeviceAttributeMaxValueLength, ResourceSliceMaxAttributeValuesPerDevice)`.
const MAX_ELEMENTS: u64 = 64;

#[test]
fn upstream_compile_test_cases() {
    const D: &str = "dra.example.com";
    let includes = |name, expr: &str, attr: AttributeValue, want: bool, extra: u64| {
        case(name, expr.to_string(), Match(want)).driver(D).attr("name", attr).cost(4 + 64 + extra)
    };
    let long_list: Vec<String> = (0..48).map(|i| format!("value-{i}")).collect();
    let expensive_attrs: Vec<(String, AttributeValue)> =
        (0..32).map(|i| (format!("dra.example.com/{}-{i}", "x".repeat(64 - format!("-{i}").len())), string("abc"))).collect();
    let mut expensive = case(
        "expensive",
        "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].all(x, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].all(y, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].all(z, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].all(z2, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].all(z3, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].all(z4, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].all(z5, int('1'.find('[0-9]*')) < 100)))))))",
        RuntimeError("actual cost limit exceeded"),
    )
    .driver(D);
    expensive.attributes = expensive_attrs;

    run_all(vec![
        case("true", "true", Match(true)),
        case("false", "false", Match(false)),
        case("syntax-error", "?!", CompileError("Syntax error")),
        case("type-error", "1", CompileError("must evaluate to bool or the unknown type, not int")),
        case(
            "runtime-error-lookup-identifier",
            r#"device.attributes["no-such-domain"].noSuchAttr.isGreaterThan(quantity("0"))"#,
            RuntimeError("no such key: noSuchAttr"),
        )
        .cost(6),
        case(
            "runtime-error-lookup-map",
            r#"device.attributes["no-such-domain"]["noSuchAttr"].isGreaterThan(quantity("0"))"#,
            RuntimeError("no such key: noSuchAttr"),
        )
        .cost(6),
        case("domain-check-negative", r#""no-such-domain" in device.attributes"#, Match(false)).cost(3),
        case("domain-check-positive", r#""dra.example.com" in device.attributes"#, Match(true)).attr("dra.example.com/something", Bool(true)).cost(3),
        case("empty-driver-name", r#"device.driver == """#, Match(true)).cost(2),
        case("real-driver-name", r#"device.driver == "dra.example.com""#, Match(true)).driver(D).cost(4),
        case("driver-name-qualifier", r#"device.attributes["dra.example.com"].name"#, Match(true)).driver(D).attr("name", Bool(true)).cost(4),
        case("driver-name-qualifier-map-lookup", r#"device.attributes["dra.example.com"]["name"]"#, Match(true)).driver(D).attr("name", Bool(true)).cost(4),
        case("bind", r#"cel.bind(dra, device.attributes["dra.example.com"], dra.name)"#, Match(true)).driver(D).attr("name", Bool(true)).cost(15),
        case("qualified-attribute-name", r#"device.attributes["other.example.com"].name"#, Match(true))
            .driver(D)
            .attr("other.example.com/name", Bool(true))
            .cost(4),
        case("bool", r#"device.attributes["dra.example.com"].name"#, Match(true)).driver(D).attr("name", Bool(true)).cost(4),
        case("int", r#"device.attributes["dra.example.com"].name > 0"#, Match(true)).driver(D).attr("name", Int(1)).cost(5),
        case("string", r#"device.attributes["dra.example.com"].name == "fish""#, Match(true)).driver(D).attr("name", string("fish")).cost(5),
        // Upstream: a compile error, in the new-expressions environment with
        // list-type attributes disabled, where attribute values are not
        // iterable. kube-scheduler's stored-expressions environment compiles it;
        // the device has no `ids`, so Berth reports the missing key.
        case(
            "macro-compilation-error-new-expressions",
            r#"device.attributes["dra.example.com"].ids.exists(id, id == 1)"#,
            RuntimeError("no such key: ids"),
        )
        .driver(D),
        case("macro-exists-on-int", r#"device.attributes["dra.example.com"].name.exists(x, x > 0)"#, RuntimeError("got 'types.Int', expected iterable type"))
            .driver(D)
            .attr("name", Int(1))
            .cost(5 + 6 * MAX_ELEMENTS),
        case(
            "macro-exists-on-bool",
            r#"device.attributes["dra.example.com"].name.exists(x, x == true)"#,
            RuntimeError("got 'types.Bool', expected iterable type"),
        )
        .driver(D)
        .attr("name", Bool(true))
        .cost(5 + 6 * MAX_ELEMENTS),
        case(
            "macro-exists-on-string",
            r#"device.attributes["dra.example.com"].name.exists(x, x == "fish")"#,
            RuntimeError("got 'types.String', expected iterable type"),
        )
        .driver(D)
        .attr("name", string("fish"))
        .cost(5 + 6 * MAX_ELEMENTS),
        case(
            "list-result-type-causes-match-error",
            r#"device.attributes["dra.example.com"].names"#,
            RuntimeError("CEL result of type list could not be converted to bool"),
        )
        .driver(D)
        .attr("names", StringList(vec!["fish".into(), "bird".into()]))
        .cost(4),
        includes(
            "includes-function-can-evaluate",
            r#"device.attributes["dra.example.com"].name.includes("fish")"#,
            StringList(vec!["fish".into(), "bird".into()]),
            true,
            0,
        ),
        case("list-of-bool", r#"device.attributes["dra.example.com"].names.size() == 2"#, Match(true)).driver(D).attr("names", BoolList(vec![true, false])).cost(6),
        case("list-of-int", r#"device.attributes["dra.example.com"].names.size() == 2"#, Match(true)).driver(D).attr("names", IntList(vec![1, 2])).cost(6),
        case("list-of-string", r#"device.attributes["dra.example.com"].names.size() == 2"#, Match(true))
            .driver(D)
            .attr("names", StringList(vec!["fish".into(), "bird".into()]))
            .cost(6),
        case("list-of-semver", r#"device.attributes["dra.example.com"].names.size() == 2"#, Match(true))
            .driver(D)
            .attr("names", VersionList(vec!["1.0.0".into(), "2.0.0".into()]))
            .cost(6),
        case("macro-on-list-of-int", r#"device.attributes["dra.example.com"].names.exists(x, x > 0)"#, Match(true))
            .driver(D)
            .attr("names", IntList(vec![1, 2]))
            .cost(5 + 6 * MAX_ELEMENTS),
        case("macro-on-list-of-string", r#"device.attributes["dra.example.com"].names.all(x, x != "")"#, Match(true))
            .driver(D)
            .attr("names", StringList(vec!["fish".into(), "bird".into()]))
            .cost(5 + 4 * MAX_ELEMENTS),
        case("macro-on-list-of-semver", r#"device.attributes["dra.example.com"].names.all(x, x.isGreaterThan(semver("0.0.1")))"#, Match(true))
            .driver(D)
            .attr("names", VersionList(vec!["1.0.0".into(), "2.0.0".into()]))
            .cost(5 + 6 * MAX_ELEMENTS),
        // Upstream: "undeclared reference to 'includes'" in the new-expressions
        // environment with list-type attributes disabled. The stored-expressions
        // environment has `includes`; the device has no `attr`.
        case("includes-function-compilation-error", r#"device.attributes["dra.example.com"].attr.includes("fish")"#, RuntimeError("no such key: attr"))
            .driver(D),
        case("includes-function-compilation-and-eval-success", r#"device.attributes["dra.example.com"].attr.includes("fish")"#, Match(true))
            .driver(D)
            .attr("attr", string("fish"))
            .cost(4 + 64),
        includes("includes-function-on-bool-scalar-positive", r#"device.attributes["dra.example.com"].name.includes(true)"#, Bool(true), true, 0),
        includes("includes-function-on-bool-scalar-negative", r#"device.attributes["dra.example.com"].name.includes(true)"#, Bool(false), false, 0),
        includes("includes-function-on-bool-list-positive", r#"device.attributes["dra.example.com"].name.includes(true)"#, BoolList(vec![true, false]), true, 0),
        includes("includes-function-on-bool-list-negative", r#"device.attributes["dra.example.com"].name.includes(false)"#, BoolList(vec![true, true]), false, 0),
        includes("includes-function-on-int-scalar-positive", r#"device.attributes["dra.example.com"].name.includes(1)"#, Int(1), true, 0),
        includes("includes-function-on-int-scalar-negative", r#"device.attributes["dra.example.com"].name.includes(1)"#, Int(2), false, 0),
        includes("includes-function-on-int-list-positive", r#"device.attributes["dra.example.com"].name.includes(1)"#, IntList(vec![1, 2]), true, 0),
        includes("includes-function-on-int-list-negative", r#"device.attributes["dra.example.com"].name.includes(3)"#, IntList(vec![1, 2]), false, 0),
        includes("includes-function-on-string-scalar-positive", r#"device.attributes["dra.example.com"].name.includes("fish")"#, string("fish"), true, 0),
        includes("includes-function-on-string-scalar-negative", r#"device.attributes["dra.example.com"].name.includes("bird")"#, string("fish"), false, 0),
        includes(
            "includes-function-on-string-list-positive",
            r#"device.attributes["dra.example.com"].name.includes("fish")"#,
            StringList(vec!["fish".into(), "bird".into()]),
            true,
            0,
        ),
        includes(
            "includes-function-on-string-list-negative",
            r#"device.attributes["dra.example.com"].name.includes("cat")"#,
            StringList(vec!["fish".into(), "bird".into()]),
            false,
            0,
        ),
        includes(
            "includes-function-on-semver-scalar-positive",
            r#"device.attributes["dra.example.com"].name.includes(semver("1.0.0"))"#,
            Version("1.0.0".into()),
            true,
            1,
        ),
        includes(
            "includes-function-on-semver-scalar-negative",
            r#"device.attributes["dra.example.com"].name.includes(semver("2.0.0"))"#,
            Version("1.0.0".into()),
            false,
            1,
        ),
        includes(
            "includes-function-on-semver-list-positive",
            r#"device.attributes["dra.example.com"].name.includes(semver("1.0.0"))"#,
            VersionList(vec!["1.0.0".into(), "2.0.0".into()]),
            true,
            1,
        ),
        includes(
            "includes-function-on-semver-list-negative",
            r#"device.attributes["dra.example.com"].name.includes(semver("3.0.0"))"#,
            VersionList(vec!["1.0.0".into(), "2.0.0".into()]),
            false,
            1,
        ),
        // Upstream's name says "positive", its expectation is no match:
        // value-48 is one past the 48 values.
        includes(
            "includes-function-on-very-long-list-positive",
            r#"device.attributes["dra.example.com"].name.includes("value-48")"#,
            StringList(long_list),
            false,
            0,
        ),
        case("in-operator-on-list", r#"1 in device.attributes["dra.example.com"].names"#, Match(true)).driver(D).attr("names", IntList(vec![1, 2, 3])).cost(4 + 64),
        case("version", r#"device.attributes["dra.example.com"].name.isGreaterThan(semver("0.0.1"))"#, Match(true)).driver(D).attr("name", Version("1.0.0".into())).cost(6),
        case(
            "version_v",
            r#"device.attributes["dra.example.com"].name.isGreaterThan(semver("v0.0.1", true)) && isSemver("v1.0.0", true)"#,
            Match(true),
        )
        .driver(D)
        .attr("name", Version("1.0.0".into()))
        .cost(7),
        case(
            "macro-exists-on-version",
            r#"device.attributes["dra.example.com"].name.exists(x, x.isGreaterThan(semver("0.0.1")))"#,
            RuntimeError("got 'cel.Semver', expected iterable type"),
        )
        .driver(D)
        .attr("name", Version("1.0.0".into()))
        .cost(5 + 7 * MAX_ELEMENTS),
        case("quantity", r#"device.capacity["dra.example.com"].name.isGreaterThan(quantity("1Ki"))"#, Match(true)).driver(D).cap("name", "1Mi").cost(6),
        case(
            "check-positive",
            r#""name" in device.capacity["dra.example.com"] && device.capacity["dra.example.com"].name.isGreaterThan(quantity("1Ki"))"#,
            Match(true),
        )
        .driver(D)
        .cap("name", "1Mi")
        .cost(10),
        case(
            "check-negative",
            r#"!("name" in device.capacity["dra.example.com"]) || device.capacity["dra.example.com"].name.isGreaterThan(quantity("1Ki"))"#,
            Match(true),
        )
        .cost(11),
        case(
            "all",
            r#"
device.capacity["dra.example.com"].quantity.isGreaterThan(quantity("1Ki")) &&
device.attributes["dra.example.com"].bool &&
device.attributes["dra.example.com"].int > 0 &&
device.attributes["dra.example.com"].string == "fish" &&
device.attributes["dra.example.com"].version.isGreaterThan(semver("0.0.1")) &&
device.capacity["dra.example.com"]["quantity"].isGreaterThan(quantity("1Ki")) &&
device.attributes["dra.example.com"]["bool"] &&
device.attributes["dra.example.com"]["int"] > 0 &&
device.attributes["dra.example.com"]["string"] == "fish" &&
device.attributes["dra.example.com"]["version"].isGreaterThan(semver("0.0.1"))
"#,
            Match(true),
        )
        .driver(D)
        .attr("bool", Bool(true))
        .attr("int", Int(1))
        .attr("string", string("fish"))
        .attr("version", Version("1.0.0".into()))
        .cap("quantity", "1Mi")
        .cost(52),
        case(
            "many",
            r#"device.attributes["dra.example.com"].a && device.attributes["dra.example.com"].b && device.attributes["dra.example.com"].c"#,
            Match(true),
        )
        .driver(D)
        .attr("a", Bool(true))
        .attr("b", Bool(true))
        .attr("c", Bool(true))
        .cost(12),
        case("check_attribute_domains", r#"device.attributes.exists_one(x, x == "dra.example.com")"#, Match(true))
            .driver(D)
            .attr("services", string("some_example_value"))
            .cost(164),
        case("check_attribute_ids", r#"device.attributes["dra.example.com"].exists_one(x, x == "services")"#, Match(true))
            .driver(D)
            .attr("services", string("some_example_value"))
            .cost(133),
        case("split_attribute", r#"device.attributes["dra.example.com"].services.split("example").size() >= 2"#, Match(true))
            .driver(D)
            .attr("services", string("some_example_value"))
            .cost(19),
        case("regexp_attribute", r#"device.attributes["dra.example.com"].services.matches("[^a]?sym")"#, Match(true))
            .driver(D)
            .attr("services", string("asymetric"))
            .cost(18),
        case("check_capacity_domains", r#"device.capacity.exists_one(x, x == "dra.example.com")"#, Match(true)).driver(D).cap("memory", "1Mi").cost(164),
        case("check_capacity_ids", r#"device.capacity["dra.example.com"].exists_one(x, x == "memory")"#, Match(true)).driver(D).cap("memory", "1Mi").cost(133),
        expensive,
        case("allow_multiple_allocations", "device.allowMultipleAllocations == true", Match(true)).driver(D).multi(true).cost(3),
        case("allow_multiple_allocations_default", "device.allowMultipleAllocations == false", Match(true)).driver(D).cost(3),
        case("allow_multiple_allocations_false", "device.allowMultipleAllocations == false", Match(true)).driver(D).multi(false).cost(3),
        case("allow_multiple_allocations_new", "device.allowMultipleAllocations == false", Match(true)).driver(D).multi(false).cost(3),
        case("allow_multiple_allocations_enabled", "device.allowMultipleAllocations == false", Match(true)).driver(D).multi(false).cost(3),
        // Upstream: "undefined field 'allowMultipleAllocations'" in the
        // new-expressions environment with consumable capacity disabled. The
        // stored-expressions environment kube-scheduler uses has the field.
        case("allow_multiple_allocations_disabled", "device.allowMultipleAllocations == false", Match(true)).driver(D),
    ]);
}

/// errors_test.go: the hint for a missing key, and nothing for other errors.
#[test]
fn runtime_errors_carry_upstreams_no_such_key_hint() {
    let e = CelError::Runtime { message: "no such key: sharingStrategy".to_string() };
    assert_eq!(
        e.to_string(),
        "no such key: sharingStrategy. consider using CEL optional chaining (.? followed by orValue()) or guarding the check with has() for optional fields"
    );
    let e = CelError::Runtime { message: "some other error".to_string() };
    assert_eq!(e.to_string(), "some other error");
    let e = CelError::Runtime { message: "context: no such key: fieldY".to_string() };
    assert!(e.to_string().ends_with("fieldY. consider using CEL optional chaining (.? followed by orValue()) or guarding the check with has() for optional fields"));
}

/// cache_test.go's TestCacheSemantic, with a cache of two.
#[test]
fn cache_keeps_the_most_recent_successful_compilations() {
    let cache = SelectorCache::new(2);
    let t1 = cache.get_or_compile("true").unwrap();
    assert!(Arc::ptr_eq(&t1, &cache.get_or_compile("true").unwrap()), "`true` is cached");
    assert!(cache.get_or_compile("no-such-variable").is_err());
    assert!(cache.get_or_compile("no-such-variable").is_err(), "a failure is not cached, and fails again");
    let f1 = cache.get_or_compile("false").unwrap();
    assert!(Arc::ptr_eq(&f1, &cache.get_or_compile("false").unwrap()));
    assert!(Arc::ptr_eq(&t1, &cache.get_or_compile("true").unwrap()), "`true` is still cached");
    let o1 = cache.get_or_compile("false && true").unwrap();
    assert!(Arc::ptr_eq(&o1, &cache.get_or_compile("false && true").unwrap()));
    assert!(!Arc::ptr_eq(&f1, &cache.get_or_compile("false").unwrap()), "`false` was the least recently used: evicted");
}

/// cache_test.go's TestCacheConcurrency.
#[test]
fn cache_is_safe_to_share_between_threads() {
    let cache = SelectorCache::new(2);
    std::thread::scope(|s| {
        for i in 0..10 {
            let cache = &cache;
            s.spawn(move || {
                let sel = cache.get_or_compile(&format!("{i} == {i}")).expect("compiles");
                assert_eq!(sel.evaluate(&DeviceInput::new("", false, &[], &[])), Ok(true));
            });
        }
    });
    let a = cache.get_or_compile("1 == 1").unwrap();
    let b = compile("1 == 1").unwrap();
    assert_eq!(a.expression(), b.expression());
}

#[test]
fn the_shared_cache_returns_the_same_compilation() {
    let a = compile("device.driver == 'cache-test.example.com'").unwrap();
    let b = compile("device.driver == 'cache-test.example.com'").unwrap();
    // Other tests share the cache: retry once if they evicted it in between.
    let b = if Arc::ptr_eq(&a, &b) { b } else { compile("device.driver == 'cache-test.example.com'").unwrap() };
    let c = compile("device.driver == 'cache-test.example.com'").unwrap();
    assert!(Arc::ptr_eq(&b, &c));
}
