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
        case("domain-check-positive", r#""dra.example.com" in device.attributes"#, Match(true))
            .attr("dra.example.com/something", Bool(true))
            .cost(3),
        case("empty-driver-name", r#"device.driver == """#, Match(true)).cost(2),
        case("real-driver-name", r#"device.driver == "dra.example.com""#, Match(true)).driver(D).cost(4),
        case("driver-name-qualifier", r#"device.attributes["dra.example.com"].name"#, Match(true))
            .driver(D)
            .attr("name", Bool(true))
            .cost(4),
        case("driver-name-qualifier-map-lookup", r#"device.attributes["dra.example.com"]["name"]"#, Match(true))
            .driver(D)
            .attr("name", Bool(true))
            .cost(4),
        case("bind", r#"cel.bind(dra, device.attributes["dra.example.com"], dra.name)"#, Match(true))
            .driver(D)
            .attr("name", Bool(true))
            .cost(15),
        case("qualified-attribute-name", r#"device.attributes["other.example.com"].name"#, Match(true))
            .driver(D)
            .attr("other.example.com/name", Bool(true))
            .cost(4),
        case("bool", r#"device.attributes["dra.example.com"].name"#, Match(true)).driver(D).attr("name", Bool(true)).cost(4),
        case("int", r#"device.attributes["dra.example.com"].name > 0"#, Match(true)).driver(D).attr("name", Int(1)).cost(5),
        case("string", r#"device.attributes["dra.example.com"].name == "fish""#, Match(true))
            .driver(D)
            .attr("name", string("fish"))
            .cost(5),
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
        case(
            "macro-exists-on-int",
            r#"device.attributes["dra.example.com"].name.exists(x, x > 0)"#,
            RuntimeError("got 'types.Int', expected iterable type"),
        )
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
        case("list-of-bool", r#"device.attributes["dra.example.com"].names.size() == 2"#, Match(true))
            .driver(D)
            .attr("names", BoolList(vec![true, false]))
            .cost(6),
        case("list-of-int", r#"device.attributes["dra.example.com"].names.size() == 2"#, Match(true))
            .driver(D)
            .attr("names", IntList(vec![1, 2]))
            .cost(6),
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
        case(
            "macro-on-list-of-semver",
            r#"device.attributes["dra.example.com"].names.all(x, x.isGreaterThan(semver("0.0.1")))"#,
            Match(true),
        )
        .driver(D)
        .attr("names", VersionList(vec!["1.0.0".into(), "2.0.0".into()]))
        .cost(5 + 6 * MAX_ELEMENTS),
        // Upstream: "undeclared reference to 'includes'" in the new-expressions
        // environment with list-type attributes disabled. The stored-expressions
        // environment has `includes`; the device has no `attr`.
        case(
            "includes-function-compilation-error",
            r#"device.attributes["dra.example.com"].attr.includes("fish")"#,
            RuntimeError("no such key: attr"),
        )
        .driver(D),
        case(
            "includes-function-compilation-and-eval-success",
            r#"device.attributes["dra.example.com"].attr.includes("fish")"#,
            Match(true),
        )
        .driver(D)
        .attr("attr", string("fish"))
        .cost(4 + 64),
        includes(
            "includes-function-on-bool-scalar-positive",
            r#"device.attributes["dra.example.com"].name.includes(true)"#,
            Bool(true),
            true,
            0,
        ),
        includes(
            "includes-function-on-bool-scalar-negative",
            r#"device.attributes["dra.example.com"].name.includes(true)"#,
            Bool(false),
            false,
            0,
        ),
        includes(
            "includes-function-on-bool-list-positive",
            r#"device.attributes["dra.example.com"].name.includes(true)"#,
            BoolList(vec![true, false]),
            true,
            0,
        ),
        includes(
            "includes-function-on-bool-list-negative",
            r#"device.attributes["dra.example.com"].name.includes(false)"#,
            BoolList(vec![true, true]),
            false,
            0,
        ),
        includes("includes-function-on-int-scalar-positive", r#"device.attributes["dra.example.com"].name.includes(1)"#, Int(1), true, 0),
        includes("includes-function-on-int-scalar-negative", r#"device.attributes["dra.example.com"].name.includes(1)"#, Int(2), false, 0),
        includes(
            "includes-function-on-int-list-positive",
            r#"device.attributes["dra.example.com"].name.includes(1)"#,
            IntList(vec![1, 2]),
            true,
            0,
        ),
        includes(
            "includes-function-on-int-list-negative",
            r#"device.attributes["dra.example.com"].name.includes(3)"#,
            IntList(vec![1, 2]),
            false,
            0,
        ),
        includes(
            "includes-function-on-string-scalar-positive",
            r#"device.attributes["dra.example.com"].name.includes("fish")"#,
            string("fish"),
            true,
            0,
        ),
        includes(
            "includes-function-on-string-scalar-negative",
            r#"device.attributes["dra.example.com"].name.includes("bird")"#,
            string("fish"),
            false,
            0,
        ),
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
        case("in-operator-on-list", r#"1 in device.attributes["dra.example.com"].names"#, Match(true))
            .driver(D)
            .attr("names", IntList(vec![1, 2, 3]))
            .cost(4 + 64),
        case("version", r#"device.attributes["dra.example.com"].name.isGreaterThan(semver("0.0.1"))"#, Match(true))
            .driver(D)
            .attr("name", Version("1.0.0".into()))
            .cost(6),
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
        case("quantity", r#"device.capacity["dra.example.com"].name.isGreaterThan(quantity("1Ki"))"#, Match(true))
            .driver(D)
            .cap("name", "1Mi")
            .cost(6),
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
        case("check_capacity_domains", r#"device.capacity.exists_one(x, x == "dra.example.com")"#, Match(true))
            .driver(D)
            .cap("memory", "1Mi")
            .cost(164),
        case("check_capacity_ids", r#"device.capacity["dra.example.com"].exists_one(x, x == "memory")"#, Match(true))
            .driver(D)
            .cap("memory", "1Mi")
            .cost(133),
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
    assert!(e.to_string().ends_with(
        "fieldY. consider using CEL optional chaining (.? followed by orValue()) or guarding the check with has() for optional fields"
    ));
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

/// apiserver's `library/quantity_test.go` cases, as selectors.
#[test]
fn quantity_library() {
    run_all(vec![
        case("parse", r#"quantity("12Mi") == quantity("12Mi")"#, Match(true)),
        case("parseInvalidSuffix", r#"quantity("10Mo").isInteger()"#, RuntimeError("quantities must match the regular expression")),
        case("parseInvalidSuffixPassesRegex", r#"quantity("10Mm").isInteger()"#, RuntimeError("unable to parse quantity's suffix")),
        case("isQuantity", r#"isQuantity("20") && isQuantity("20M") && isQuantity("20Mi")"#, Match(true)),
        case("isQuantity_invalidSuffix", r#"isQuantity("20Mo") || isQuantity("10Mm")"#, Match(false)),
        // Upstream rejects this at compile time (no overload for a list);
        // Berth, without a type checker, fails when evaluating it.
        case("isQuantity_noOverload", "isQuantity([1, 2, 3])", RuntimeError("no such overload")),
        case("equality_symmetry", r#"quantity("200M") == quantity("0.2G") && quantity("0.2G") == quantity("200M")"#, Match(true)),
        case(
            "equality_transitivity",
            r#"quantity("2M") == quantity("0.002G") && quantity("2000k") == quantity("2M") && quantity("0.002G") == quantity("2000k")"#,
            Match(true),
        ),
        case("inequality", r#"quantity("200M") == quantity("0.3G")"#, Match(false)),
        case("quantity_less", r#"quantity("50M").isLessThan(quantity("50Mi"))"#, Match(true)),
        case("quantity_less_false", r#"quantity("100M").isLessThan(quantity("50M"))"#, Match(false)),
        case("quantity_greater", r#"quantity("50Mi").isGreaterThan(quantity("50M"))"#, Match(true)),
        case("quantity_greater_false", r#"quantity("50M").isGreaterThan(quantity("100M"))"#, Match(false)),
        case(
            "compare",
            r#"quantity("200M").compareTo(quantity("0.2G")) == 0 && quantity("50M").compareTo(quantity("50Mi")) == -1 && quantity("50Mi").compareTo(quantity("50M")) == 1"#,
            Match(true),
        ),
        case("add_quantity", r#"quantity("50k").add(quantity("20")) == quantity("50.02k")"#, Match(true)),
        case("add_int", r#"quantity("50k").add(20).isLessThan(quantity("50020"))"#, Match(false)),
        case("sub_quantity", r#"quantity("50k").sub(quantity("20")) == quantity("49.98k")"#, Match(true)),
        case("sub_int", r#"quantity("50k").sub(20) == quantity("49980")"#, Match(true)),
        case("arith_chain_1", r#"quantity("50k").add(20).sub(quantity("100k")).asInteger() == -49980"#, Match(true)),
        case("arith_chain", r#"quantity("50k").add(20).sub(quantity("100k")).sub(-50000).asInteger() == 20"#, Match(true)),
        case("as_integer", r#"quantity("50k").asInteger() == 50000"#, Match(true)),
        case(
            "as_integer_error",
            r#"quantity("9999999999999999999999999999999999999G").asInteger() == 0"#,
            RuntimeError("cannot convert value to integer"),
        ),
        case("is_integer", r#"quantity("9999999999999999999999999999999999999G").isInteger()"#, Match(false)),
        case(
            "is_integer_small",
            r#"quantity("50").isInteger() && !quantity("1.0").isInteger() && !quantity("1000m").isInteger()"#,
            Match(true),
        ),
        case("as_float", r#"quantity("50.703k").asApproximateFloat() == 50703.0"#, Match(true)),
        case(
            "add_does_not_mutate_receiver",
            r#"[quantity("9999999999999999999999999999999999999")].all(x, x.add(quantity("1")).compareTo(x.add(quantity("2"))) == -1)"#,
            Match(true),
        ),
        case("sign", r#"sign(quantity("-1")) == -1 && sign(quantity("0")) == 0 && sign(quantity("1n")) == 1"#, Match(true)),
        case("capacity_vs_literal", r#"device.capacity["dra.example.com"].memory.compareTo(quantity("16Gi")) == 0"#, Match(true))
            .driver("dra.example.com")
            .cap("memory", "16384Mi"),
        case("precision", r#"quantity("1e30").add(quantity("1n")).isInteger()"#, RuntimeError("38 significant digits")),
    ]);
}

#[test]
fn semver_library() {
    const D: &str = "dra.example.com";
    run_all(vec![
        case("components", r#"semver("1.2.3").major() == 1 && semver("1.2.3").minor() == 2 && semver("1.2.3").patch() == 3"#, Match(true)),
        case("strict", r#"isSemver("1.2.3") && !isSemver("1.2") && !isSemver("v1.2.3") && !isSemver("01.2.3")"#, Match(true)),
        case("normalize", r#"isSemver("v1.2", true) && semver("v01.02", true) == semver("1.2.0")"#, Match(true)),
        case("invalid", r#"semver("v1.2.3").major() == 1"#, RuntimeError(r#"Invalid character(s) found in major number "v1""#)),
        case(
            "short with prerelease",
            r#"semver("1.2-rc", true).major() == 1"#,
            RuntimeError("short version cannot contain PreRelease/Build meta data"),
        ),
        case(
            "ordering",
            r#"semver("1.0.0-alpha").isLessThan(semver("1.0.0")) && semver("1.0.0-2").compareTo(semver("1.0.0-10")) == -1 && semver("2.0.0").isGreaterThan(semver("1.99.99"))"#,
            Match(true),
        ),
        case("build metadata", r#"semver("1.0.0+a") == semver("1.0.0+b")"#, Match(true)),
        case("attribute", r#"device.attributes["dra.example.com"].driverVersion.isGreaterThan(semver("1.2.0"))"#, Match(true))
            .driver(D)
            .attr("driverVersion", Version("1.10.0".into())),
        // Upstream converts every attribute first: an invalid version fails
        // every selector on the device, even one that does not use it.
        case(
            "invalid attribute",
            "true",
            RuntimeError(r#"attribute driverVersion: parse semantic version: Invalid character(s) found in major number "v1""#),
        )
        .driver(D)
        .attr("driverVersion", Version("v1.0.0".into())),
    ]);
}

#[test]
fn lists_sets_strings_and_regex() {
    run_all(vec![
        case("isSorted", "[1, 2, 3].isSorted() && !([3, 1].isSorted()) && ['a', 'b'].isSorted()", Match(true)),
        case("sum", "[1, 2, 3].sum() == 6 && [1.5, 2.5].sum() == 4.0 && [].sum() == 0", Match(true)),
        case("min max", "[3, 1, 2].min() == 1 && [3, 1, 2].max() == 3 && ['b', 'a'].min() == 'a'", Match(true)),
        case("min of empty", "[].min() == 0", RuntimeError("min called on empty list")),
        case("indexOf", "[1, 2, 1].indexOf(1) == 0 && [1, 2, 1].lastIndexOf(1) == 2 && [1].indexOf(5) == -1", Match(true)),
        case("string indexOf", "'abcabc'.indexOf('c') == 2 && 'abcabc'.lastIndexOf('c') == 5", Match(true)),
        case("sets", "sets.contains([1, 2, 3], [1, 2]) && sets.equivalent([1, 2], [2, 1, 1]) && !sets.intersects([1], [2])", Match(true)),
        case("sets negative", "sets.contains([1], [1, 2])", Match(false)),
        case(
            "strings ext",
            r#""a,b".split(",").size() == 2 && "ABC".lowerAscii() == "abc" && " x ".trim() == "x" && "hello".charAt(1) == "e" && "hello".substring(1, 3) == "el" && ["a", "b"].join("-") == "a-b" && "abc".replace("b", "x") == "axc" && "a%sb".format(["x"]) == "axb" && strings.quote("a") == "\"a\"" && "abc".upperAscii() == "ABC""#,
            Match(true),
        ),
        case(
            "lists ext",
            "[3, 1, 2].sort() == [1, 2, 3] && [[1], [2]].flatten() == [1, 2] && [1, 1, 2].distinct() == [1, 2] && lists.range(3) == [0, 1, 2] && [1, 2, 3].reverse() == [3, 2, 1] && [1, 2, 3].slice(1, 2) == [2] && [3, 1].sortBy(x, x) == [1, 3]",
            Match(true),
        ),
        case("regex", r#""abc123".find("[0-9]+") == "123" && "a1b2".findAll("[0-9]") == ["1", "2"] && "a1b2c3".findAll("[0-9]", 2) == ["1", "2"] && matches("abc", "^a") && "abc".matches("c$")"#, Match(true)),
        case("regex no match", r#""abc".find("[0-9]") == """#, Match(true)),
        case("macros", "[1, 2, 3].map(x, x * 2) == [2, 4, 6] && [1, 2, 3].filter(x, x > 1).size() == 2 && [1, 2, 3].exists_one(x, x == 2) && [1, 2, 3].map(x, x > 1, x) == [2, 3]", Match(true)),
        case("exists short-circuits errors", "[0, 1].exists(x, 1 / x == 1)", Match(true)),
    ]);
}

#[test]
fn optional_types_and_presence() {
    const D: &str = "dra.example.com";
    run_all(vec![
        case("select missing", r#"device.attributes["dra.example.com"].?missing.orValue(5) == 5"#, Match(true)).driver(D),
        case("select present", r#"device.attributes["dra.example.com"].?name.orValue(5) == 1"#, Match(true)).driver(D).attr("name", Int(1)),
        case("index present", r#"device.attributes["dra.example.com"][?"name"].hasValue()"#, Match(true)).driver(D).attr("name", Int(1)),
        case("index missing", r#"device.attributes["dra.example.com"][?"other"].hasValue()"#, Match(false)).driver(D).attr("name", Int(1)),
        case(
            "of none",
            "optional.of(1).value() == 1 && optional.none().orValue(2) == 2 && !optional.ofNonZeroValue(0).hasValue()",
            Match(true),
        ),
        case("or", "optional.none().or(optional.of(3)).value() == 3", Match(true)),
        case("first last", "[1, 2].first().value() == 1 && [1, 2].last().value() == 2 && ![].last().hasValue()", Match(true)),
        case("unwrap", "optional.unwrap([optional.of(1), optional.none()]) == [1] && [optional.of(2)].unwrapOpt() == [2]", Match(true)),
        case("optMap", "optional.of(2).optMap(x, x * 2).value() == 4 && !optional.none().optMap(x, x * 2).hasValue()", Match(true)),
        case("has present", r#"has(device.attributes["dra.example.com"].name)"#, Match(true)).driver(D).attr("name", Int(1)),
        case("has absent", r#"has(device.attributes["dra.example.com"].other)"#, Match(false)).driver(D).attr("name", Int(1)),
        // Upstream's attribute map answers every domain (with an empty map), so
        // has() of a domain is true even where `in` says it is absent.
        case("has domain", r#"has(device.attributes.absent) && !("absent" in device.attributes)"#, Match(true)).driver(D),
        case("bind", r#"cel.bind(dra, device.attributes["dra.example.com"], dra.a && dra.b)"#, Match(true))
            .driver(D)
            .attr("a", Bool(true))
            .attr("b", Bool(true)),
        case("bind nested", "cel.bind(x, 2, cel.bind(y, x * 3, y == 6))", Match(true)),
        case("capacity default domain", r#"device.capacity["dra.example.com"].memory.isGreaterThan(quantity("1Gi"))"#, Match(true))
            .driver(D)
            .cap("memory", "2Gi"),
        case(
            "driver domain",
            r#"device.attributes["other.example.com"].model == "x" && !("model" in device.attributes["dra.example.com"])"#,
            Match(true),
        )
        .driver(D)
        .attr("other.example.com/model", string("x")),
    ]);
}

#[test]
fn compile_time_checks() {
    run_all(vec![
        case("undeclared identifier", "foo == 1", CompileError("undeclared reference to 'foo' (in container '')")),
        case("undeclared function", "noSuchFunction(1)", CompileError("undeclared reference to 'noSuchFunction'")),
        case("undeclared member function", "device.driver.noSuchMethod()", CompileError("undeclared reference to 'noSuchMethod'")),
        case("undefined device field", "device.foo == 1", CompileError("undefined field 'foo'")),
        case("invalid regex literal", r#"device.driver.matches("[")"#, CompileError("invalid matches argument")),
        case("mixed list literal", "[1, 'a'].size() == 2", CompileError("expected type 'int' but found 'string'")),
        case("string result", "device.driver", CompileError("must evaluate to bool or the unknown type, not string")),
        case(
            "map result",
            "device.attributes",
            CompileError("must evaluate to bool or the unknown type, not map(string, map(string, dyn))"),
        ),
        case("not a bool at runtime", r#"device.attributes["d"].x"#, RuntimeError("CEL result of type int could not be converted to bool"))
            .attr("d/x", Int(1)),
        case("type mismatch at runtime", r#"device.attributes["d"].x + "a" == "b""#, RuntimeError("no such overload")).attr("d/x", Int(1)),
        case("shadowed device", "[{'foo': 1}].all(device, device.foo == 1)", Match(true)),
    ]);
}

#[test]
fn unsupported_functions_are_refused_at_compile_time() {
    for (expression, function) in [
        (r#"duration("1s") > duration("0s")"#, "duration"),
        (r#"url("https://example.com").getHost() == "example.com""#, "url"),
        (r#"ip("10.0.0.1").family() == 4"#, "ip"),
        (r#"cidr("10.0.0.0/8").containsIP("10.1.2.3")"#, "cidr"),
        (r#"format.dns1123Label().validate("x").hasValue()"#, "format.dns1123Label"),
        ("[1].all(i, v, v > 0)", "all (two-variable comprehension)"),
        ("[1].transformList(i, v, v) == [1]", "transformList"),
        (r#"device.attributes["d"].t.getHours() == 1"#, "getHours"),
    ] {
        match compile(expression) {
            Err(CelError::Unsupported { function: f }) => {
                assert_eq!(f, function, "{expression}");
                let message = CelError::Unsupported { function: f }.to_string();
                assert!(message.contains(&format!("'{function}'")), "{message}");
            }
            other => panic!("{expression}: expected Unsupported({function}), got {other:?}"),
        }
    }
}

#[test]
fn cost_limit() {
    let device = DeviceInput::new("", false, &[], &[]);
    // A million iterations of a loop that costs a few units each.
    let over = compile("lists.range(1000).all(x, lists.range(1000).all(y, x + y >= 0))").unwrap();
    assert_eq!(over.evaluate(&device), Err(CelError::CostLimitExceeded));
    assert_eq!(CelError::CostLimitExceeded.to_string(), "operation cancelled: actual cost limit exceeded");
    // A large list built and mapped.
    let mapped = compile("lists.range(100000).map(x, x * 2).size() > 0").unwrap();
    assert_eq!(mapped.evaluate(&device), Err(CelError::CostLimitExceeded));
    // Within the budget.
    let under = compile("lists.range(1000).all(x, x >= 0)").unwrap();
    assert_eq!(under.evaluate(&device), Ok(true));
    let spent = under.cost(&device).unwrap();
    assert!((1000..SELECTOR_MAX_COST).contains(&spent), "{spent}");
    // `|| true` would absorb an ordinary error: not this one.
    let absorbed = compile("lists.range(300000).exists(x, x < 0) || true").unwrap();
    assert_eq!(absorbed.evaluate(&device), Err(CelError::CostLimitExceeded));
    // Strings doubling through bindings are charged by size, long before
    // they could exhaust memory.
    let mut doubling = "cel.bind(s0, 'xxxxxxxxxx', ".to_string();
    for i in 1..=9 {
        doubling.push_str(&format!("cel.bind(s{i}, {}, ", vec![format!("s{}", i - 1); 10].join(" + ")));
    }
    doubling.push_str("size(s9) > 0");
    doubling.push_str(&")".repeat(10));
    assert_eq!(compile(&doubling).unwrap().evaluate(&device), Err(CelError::CostLimitExceeded));
}

#[test]
fn deep_expressions_neither_crash_nor_fail_where_upstream_succeeds() {
    let device = DeviceInput::new("", false, &[], &[]);
    // A long sum is a deep tree: evaluated on a thread with room for it.
    let sum = vec!["1"; 400].join(" + ") + " == 400";
    assert_eq!(compile(&sum).unwrap().evaluate(&device), Ok(true));
    // Too deep for Berth: refused, not overflowed.
    let deeper = vec!["1"; 3000].join(" + ") + " == 3000";
    assert!(matches!(compile(&deeper), Err(CelError::Compile { .. })));
    // Nested brackets: the parser itself recurses; it fails cleanly or parses.
    for n in [20, 60, 200] {
        let nested = format!("{}1{} == 1", "(".repeat(n), ")".repeat(n));
        let lists = format!("size({}1{}) == 1", "[".repeat(n), "]".repeat(n));
        for e in [nested, lists] {
            if let Ok(s) = compile(&e) {
                assert_eq!(s.evaluate(&device), Ok(true), "{n}");
            }
        }
    }
    assert!(compile(&format!("{}1{} == 1", "(".repeat(20), ")".repeat(20))).is_ok(), "20 levels of parentheses compile");
}

#[test]
fn selectors_and_devices_are_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Selector>();
    send_sync::<DeviceInput>();
    send_sync::<CelError>();
    let selector = compile(r#"device.attributes["dra.example.com"].index % 2 == 0"#).unwrap();
    let devices: Vec<DeviceInput> =
        (0..8).map(|i| DeviceInput::new("dra.example.com", false, &[("index".to_string(), Int(i))], &[])).collect();
    let matches = std::thread::scope(|s| {
        let handles: Vec<_> = devices.iter().map(|d| s.spawn(|| selector.evaluate(d))).collect();
        handles.into_iter().map(|h| h.join().expect("thread").expect("evaluates")).filter(|m| *m).count()
    });
    assert_eq!(matches, 4);
}

/// Expressions up to `INLINE_DEPTH` are evaluated on the caller's thread: one
/// at that depth must fit a rayon worker's 2 MiB stack, even in an unoptimised build.
#[test]
fn inline_evaluation_fits_a_small_stack() {
    // Each `+` is wrapped in a cost charge: two levels per term.
    let terms = INLINE_DEPTH / 2 - 2;
    let expression = vec!["1"; terms].join(" + ") + &format!(" == {terms}");
    let selector = compile(&expression).unwrap();
    assert!(selector.depth <= INLINE_DEPTH, "depth {}", selector.depth);
    let device = DeviceInput::new("", false, &[], &[]);
    let result = std::thread::Builder::new().stack_size(2 << 20).spawn(move || selector.evaluate(&device)).unwrap().join().unwrap();
    assert_eq!(result, Ok(true));
}
