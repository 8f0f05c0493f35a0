//! The compile-time half of a selector: what cel-go's type checker and AST
//! validators would reject, the functions Berth does not implement, and the
//! rewrite that makes an evaluation pay for its work.
//!
//! The `cel` crate only parses: any mistake would surface at evaluation, device
//! by device. This walk catches, before any evaluation, what can be decided from
//! the expression alone: unknown identifiers and functions, unknown `device`
//! fields, invalid regular expression literals, mixed-type list and map
//! literals, and a result that is certainly not a bool.

use cel::common::ast::{operators, CallExpr, EntryExpr, Expr, IdedExpr, ListExpr, LiteralValue};

use super::cost::{COST_FN, IN_FN, SIZED_FN};
use super::library;
use super::CelError;

/// What the compiler learned about an expression.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Analysis {
    /// The cost of the nodes evaluated once per evaluation.
    pub(crate) static_cost: u64,
    /// The deepest nesting of the rewritten expression.
    pub(crate) depth: usize,
}

/// The fields of `device`.
const DEVICE_FIELDS: [&str; 4] = ["driver", "allowMultipleAllocations", "attributes", "capacity"];

/// Type names usable as values (`type(x) == int`).
const TYPE_NAMES: [&str; 12] =
    ["bool", "bytes", "double", "int", "list", "map", "null_type", "string", "type", "uint", "optional_type", "dyn"];

/// Global functions Berth evaluates.
const GLOBAL_FUNCTIONS: &[&str] = &[
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "dyn",
    "type",
    "matches",
    "quantity",
    "isQuantity",
    "sign",
    "semver",
    "isSemver",
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "optional.unwrap",
    "sets.contains",
    "sets.equivalent",
    "sets.intersects",
    "lists.range",
    "strings.quote",
];

/// Member functions Berth evaluates (`x.f(...)`).
const MEMBER_FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "hasValue",
    "value",
    "or",
    "orValue",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "format",
    "reverse",
    "slice",
    "flatten",
    "distinct",
    "sort",
    "@sortByAssociatedKeys",
    "isSorted",
    "sum",
    "min",
    "max",
    "includes",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
    "asApproximateFloat",
    "asInteger",
    "isInteger",
    "add",
    "sub",
    "major",
    "minor",
    "patch",
    "find",
    "findAll",
    "first",
    "last",
    "unwrapOpt",
];

/// Functions of Kubernetes' CEL environment that Berth does not implement:
/// durations and timestamps, the URL, IP, CIDR and format libraries, and the
/// authorizer library (unreachable from a selector, which has no authorizer).
const UNSUPPORTED_GLOBAL: &[&str] = &["duration", "timestamp", "url", "isURL", "ip", "isIP", "cidr", "isCIDR", "ip.isCanonical"];
const UNSUPPORTED_MEMBER: &[&str] = &[
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "containsIP",
    "containsCIDR",
    "masked",
    "prefixLength",
    "ip",
    "validate",
    "transformList",
    "transformMap",
    "transformMapEntry",
    "path",
    "group",
    "serviceAccount",
    "resource",
    "subresource",
    "namespace",
    "name",
    "check",
    "allowed",
    "reason",
    "errored",
    "error",
    "fieldSelector",
    "labelSelector",
];

/// The comprehension macros; called with three arguments they are cel-go's
/// two-variable comprehensions, which the `cel` crate cannot evaluate.
const TWO_VARIABLE_FORMS: [&str; 4] = ["all", "exists", "exists_one", "existsOne"];

/// The operators, which the parser turns into calls.
const OPERATORS: &[&str] = &[
    operators::CONDITIONAL,
    operators::LOGICAL_AND,
    operators::LOGICAL_OR,
    operators::LOGICAL_NOT,
    operators::SUBSTRACT,
    operators::ADD,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::GREATER_EQUALS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::LESS,
    operators::NEGATE,
    operators::INDEX,
    operators::OPT_INDEX,
    operators::OPT_SELECT,
    operators::NOT_STRICTLY_FALSE,
    operators::IN,
];

/// Namespaces of qualified functions (`sets.contains(...)`).
const NAMESPACES: [&str; 6] = ["optional", "sets", "lists", "strings", "format", "ip"];

/// Functions whose result grows with their input: their result is charged by
/// size through `@sized`.
const GROWING: &[&str] =
    &["_+_", "split", "join", "replace", "flatten", "sort", "distinct", "reverse", "format", "@sortByAssociatedKeys", "slice"];
const GROWING_QUALIFIED: &[&str] = &["lists.range", "strings.quote"];

/// The deepest expression Berth evaluates; deeper ones are refused at compile
/// time rather than risk the evaluator's stack.
pub(crate) const MAX_DEPTH: usize = 1000;

fn undeclared(name: &str) -> CelError {
    CelError::Compile { message: format!("undeclared reference to '{name}' (in container '')") }
}

/// Validates `expr`, then rewrites it for cost accounting.
pub(crate) fn prepare(mut expr: IdedExpr) -> Result<(IdedExpr, Analysis), CelError> {
    let mut scope = Vec::new();
    validate(&expr, &mut scope)?;
    if let Some(t) = static_type(&expr) {
        if t != "bool" {
            return Err(CelError::OutputType { found: t });
        }
    }
    let static_cost = rewrite(&mut expr);
    let depth = depth(&expr);
    if depth > MAX_DEPTH {
        return Err(CelError::Compile { message: format!("expression nesting of {depth} exceeds Berth's limit of {MAX_DEPTH}") });
    }
    Ok((expr, Analysis { static_cost, depth }))
}

/// The name a call resolves to: `ns.f` for a call on a namespace identifier.
fn qualified_name(call: &CallExpr, scope: &[String]) -> Option<String> {
    match call.target.as_deref().map(|t| &t.expr) {
        Some(Expr::Ident(ns)) if NAMESPACES.contains(&ns.as_str()) && !scope.iter().any(|v| v == ns) => {
            Some(format!("{ns}.{}", call.func_name))
        }
        _ => None,
    }
}

fn validate(e: &IdedExpr, scope: &mut Vec<String>) -> Result<(), CelError> {
    match &e.expr {
        Expr::Unspecified => Err(CelError::Compile { message: "empty expression".to_string() }),
        Expr::Literal(_) => Ok(()),
        Expr::Ident(name) => {
            if name == "device" || scope.iter().any(|v| v == name) || TYPE_NAMES.contains(&name.as_str()) {
                Ok(())
            } else {
                Err(undeclared(name))
            }
        }
        Expr::Select(sel) => {
            if let Expr::Ident(name) = &sel.operand.expr {
                if name == "device" && !scope.iter().any(|v| v == name) && !DEVICE_FIELDS.contains(&sel.field.as_str()) {
                    return Err(CelError::Compile { message: format!("undefined field '{}'", sel.field) });
                }
            }
            validate(&sel.operand, scope)
        }
        Expr::Call(call) => {
            // Comprehension forms take variable names as arguments: judge the
            // call before its arguments. Otherwise operands first, so that the
            // first problem in source order is the one reported.
            let binds =
                call.target.is_some() && (TWO_VARIABLE_FORMS.contains(&call.func_name.as_str()) || call.func_name.starts_with("transform"));
            if binds {
                check_function(call, scope)?;
            }
            if qualified_name(call, scope).is_none() {
                if let Some(t) = &call.target {
                    validate(t, scope)?;
                }
            }
            call.args.iter().try_for_each(|a| validate(a, scope))?;
            check_function(call, scope)?;
            check_regex_literal(call)
        }
        Expr::List(list) => {
            homogeneous(list.elements.iter().enumerate().filter(|(i, _)| !list.optional_indices.contains(i)).map(|(_, e)| e))?;
            list.elements.iter().try_for_each(|a| validate(a, scope))
        }
        Expr::Map(map) => {
            let mut keys = Vec::new();
            let mut values = Vec::new();
            for entry in &map.entries {
                if let EntryExpr::MapEntry(m) = &entry.expr {
                    validate(&m.key, scope)?;
                    validate(&m.value, scope)?;
                    keys.push(&m.key);
                    if !m.optional {
                        values.push(&m.value);
                    }
                }
            }
            homogeneous(keys.into_iter())?;
            homogeneous(values.into_iter())
        }
        Expr::Struct(s) => Err(undeclared(&s.type_name)),
        Expr::Comprehension(c) => {
            validate(&c.iter_range, scope)?;
            validate(&c.accu_init, scope)?;
            let depth = scope.len();
            scope.push(c.iter_var.clone());
            if let Some(v2) = &c.iter_var2 {
                scope.push(v2.clone());
            }
            scope.push(c.accu_var.clone());
            let r = validate(&c.loop_cond, scope).and_then(|_| validate(&c.loop_step, scope)).and_then(|_| validate(&c.result, scope));
            scope.truncate(depth);
            r
        }
    }
}

fn check_function(call: &CallExpr, scope: &[String]) -> Result<(), CelError> {
    let name = call.func_name.as_str();
    if OPERATORS.contains(&name) {
        return Ok(());
    }
    if let Some(q) = qualified_name(call, scope) {
        if GLOBAL_FUNCTIONS.contains(&q.as_str()) {
            return Ok(());
        }
        if UNSUPPORTED_GLOBAL.contains(&q.as_str()) || q.starts_with("format.") {
            return Err(CelError::Unsupported { function: q });
        }
        return Err(undeclared(&q));
    }
    if call.target.is_some() && call.args.len() == 3 && TWO_VARIABLE_FORMS.contains(&name) {
        return Err(CelError::Unsupported { function: format!("{name} (two-variable comprehension)") });
    }
    let (supported, unsupported) =
        if call.target.is_some() { (MEMBER_FUNCTIONS, UNSUPPORTED_MEMBER) } else { (GLOBAL_FUNCTIONS, UNSUPPORTED_GLOBAL) };
    if supported.contains(&name) {
        Ok(())
    } else if unsupported.contains(&name) {
        Err(CelError::Unsupported { function: name.to_string() })
    } else {
        Err(undeclared(name))
    }
}

/// cel-go's `ValidateRegexLiterals`: a constant pattern must compile.
fn check_regex_literal(call: &CallExpr) -> Result<(), CelError> {
    let pattern = match (call.func_name.as_str(), call.target.is_some()) {
        ("matches" | "find" | "findAll", true) => call.args.first(),
        ("matches", false) => call.args.get(1),
        _ => None,
    };
    if let Some(IdedExpr { expr: Expr::Literal(LiteralValue::String(p)), .. }) = pattern {
        library::regex(p.inner()).map_err(|e| CelError::Compile { message: format!("invalid {} argument: {e}", call.func_name) })?;
    }
    Ok(())
}

/// cel-go's `ValidateHomogeneousAggregateLiterals`, for the elements whose type
/// is known without type inference.
fn homogeneous<'a>(items: impl Iterator<Item = &'a IdedExpr>) -> Result<(), CelError> {
    let mut first: Option<String> = None;
    for item in items {
        let Some(t) = static_type(item) else { continue };
        match &first {
            None => first = Some(t),
            Some(f) if *f != t => {
                return Err(CelError::Compile { message: format!("expected type '{f}' but found '{t}'") });
            }
            _ => {}
        }
    }
    Ok(())
}

/// The type cel-go's checker would give `e`, where it is plain without type
/// inference; `None` where it would take the checker (or is `dyn`).
fn static_type(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Literal(l) => Some(
            match l {
                LiteralValue::Boolean(_) => "bool",
                LiteralValue::Bytes(_) => "bytes",
                LiteralValue::Double(_) => "double",
                LiteralValue::Int(_) => "int",
                LiteralValue::Null => "null_type",
                LiteralValue::String(_) => "string",
                LiteralValue::UInt(_) => "uint",
            }
            .to_string(),
        ),
        Expr::List(l) if !l.elements.is_empty() && l.optional_indices.is_empty() => {
            let types: Option<Vec<String>> = l.elements.iter().map(static_type).collect();
            let types = types?;
            types.windows(2).all(|w| w[0] == w[1]).then(|| format!("list({})", types[0]))
        }
        Expr::Select(sel) if !sel.test => match (&sel.operand.expr, sel.field.as_str()) {
            (Expr::Ident(d), "driver") if d == "device" => Some("string".to_string()),
            (Expr::Ident(d), "allowMultipleAllocations") if d == "device" => Some("bool".to_string()),
            (Expr::Ident(d), "attributes") if d == "device" => Some("map(string, map(string, dyn))".to_string()),
            (Expr::Ident(d), "capacity") if d == "device" => Some("map(string, map(string, kubernetes.Quantity))".to_string()),
            _ => None,
        },
        Expr::Select(_) => Some("bool".to_string()),
        Expr::Call(c) => match (c.func_name.as_str(), c.target.is_some()) {
            (
                operators::EQUALS
                | operators::NOT_EQUALS
                | operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS
                | operators::LOGICAL_AND
                | operators::LOGICAL_OR
                | operators::LOGICAL_NOT
                | operators::IN,
                false,
            ) => Some("bool".to_string()),
            ("quantity", false) => Some("kubernetes.Quantity".to_string()),
            ("semver", false) => Some("kubernetes.Semver".to_string()),
            ("size" | "int", _) => Some("int".to_string()),
            ("string", false) => Some("string".to_string()),
            ("double", false) => Some("double".to_string()),
            ("uint", false) => Some("uint".to_string()),
            _ => None,
        },
        _ => None,
    }
}

fn synthetic(expr: Expr) -> IdedExpr {
    IdedExpr { id: 0, expr }
}

fn call(name: &str, args: Vec<IdedExpr>) -> IdedExpr {
    synthetic(Expr::Call(CallExpr { func_name: name.to_string(), target: None, args }))
}

/// Wraps `e` as `@cost(units, e)`.
fn charged(units: u64, e: &mut IdedExpr) {
    let inner = std::mem::take(e);
    let units = synthetic(Expr::Literal(LiteralValue::Int((units.min(i64::MAX as u64) as i64).into())));
    *e = call(COST_FN, vec![units, inner]);
}

fn is_ident(e: &IdedExpr, name: &str) -> bool {
    matches!(&e.expr, Expr::Ident(n) if n == name)
}

/// `accu + [x]`: the items list, if `e` is that.
fn append_items<'a>(e: &'a mut IdedExpr, accu: &str) -> Option<&'a mut ListExpr> {
    match &mut e.expr {
        Expr::Call(c) if c.func_name == operators::ADD && c.target.is_none() && c.args.len() == 2 && is_ident(&c.args[0], accu) => {
            match &mut c.args[1].expr {
                Expr::List(l) => Some(l),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Rewrites `e` for cost accounting, in place, and returns the cost of the
/// nodes it evaluates once (comprehension bodies charge per iteration).
///
/// Costs follow cel-go's: identifiers, field selections, indexes and calls one
/// unit, constants nothing, `&&`/`||`/`?:` nothing of their own, list literals
/// ten, map literals thirty.
fn rewrite(e: &mut IdedExpr) -> u64 {
    match &mut e.expr {
        Expr::Unspecified | Expr::Literal(_) => 0,
        Expr::Ident(_) => 1,
        Expr::Select(sel) => 1 + rewrite(&mut sel.operand),
        Expr::List(l) => 10 + l.elements.iter_mut().map(rewrite).sum::<u64>(),
        Expr::Map(m) => {
            30 + m
                .entries
                .iter_mut()
                .map(|entry| match &mut entry.expr {
                    EntryExpr::MapEntry(me) => rewrite(&mut me.key) + rewrite(&mut me.value),
                    EntryExpr::StructField(f) => rewrite(&mut f.value),
                })
                .sum::<u64>()
        }
        Expr::Struct(s) => {
            40 + s
                .entries
                .iter_mut()
                .map(|entry| match &mut entry.expr {
                    EntryExpr::MapEntry(me) => rewrite(&mut me.key) + rewrite(&mut me.value),
                    EntryExpr::StructField(f) => rewrite(&mut f.value),
                })
                .sum::<u64>()
        }
        Expr::Call(c) => {
            let mut cost = c.args.iter_mut().map(rewrite).sum::<u64>();
            let namespaced = matches!(c.target.as_deref().map(|t| &t.expr), Some(Expr::Ident(ns)) if NAMESPACES.contains(&ns.as_str()));
            if let Some(t) = c.target.as_deref_mut() {
                if !namespaced {
                    cost += rewrite(t);
                }
            }
            // cel-go charges equality by the size of the smaller operand, a
            // tenth of a unit per byte: Berth, which cannot see the operands
            // here, charges nothing rather than too much.
            let own = match c.func_name.as_str() {
                operators::LOGICAL_AND | operators::LOGICAL_OR | operators::CONDITIONAL | operators::EQUALS | operators::NOT_EQUALS => 0,
                _ => 1,
            };
            let qualified = match c.target.as_deref().map(|t| &t.expr) {
                Some(Expr::Ident(ns)) if namespaced => format!("{ns}.{}", c.func_name),
                _ => String::new(),
            };
            let grows = GROWING.contains(&c.func_name.as_str()) || GROWING_QUALIFIED.contains(&qualified.as_str());
            if c.func_name == operators::IN && c.target.is_none() {
                c.func_name = IN_FN.to_string();
            }
            if grows {
                let inner = std::mem::take(e);
                *e = call(SIZED_FN, vec![inner]);
            }
            cost + own
        }
        Expr::Comprehension(c) => {
            let once = rewrite(&mut c.iter_range) + rewrite(&mut c.accu_init) + rewrite(&mut c.result);
            let never_iterates = matches!(&c.iter_range.expr, Expr::List(l) if l.elements.is_empty());
            let accu = c.accu_var.clone();
            let append_shape = is_ident(&c.result, &accu) && matches!(c.loop_cond.expr, Expr::Literal(_));
            // map/filter: `accu + [x]`, or `guard ? accu + [x] : accu`. The
            // interpreter recognises that shape to append in place; keep it,
            // and charge inside it.
            if append_shape {
                if let Some(items) = append_items(&mut c.loop_step, &accu) {
                    let per_item = 11 + items.elements.iter_mut().map(rewrite).sum::<u64>();
                    if let Some(first) = items.elements.first_mut() {
                        charged(per_item, first);
                    }
                    return once;
                }
                if let Expr::Call(cond) = &mut c.loop_step.expr {
                    if cond.func_name == operators::CONDITIONAL && cond.args.len() == 3 && is_ident(&cond.args[2], &accu) {
                        if let [guard, step, _] = &mut cond.args[..] {
                            if let Some(items) = append_items(step, &accu) {
                                let per_item = 11 + items.elements.iter_mut().map(rewrite).sum::<u64>() + rewrite(guard);
                                charged(per_item, guard);
                                return once;
                            }
                        }
                    }
                }
            }
            let per_iteration = rewrite(&mut c.loop_cond) + rewrite(&mut c.loop_step);
            if !never_iterates && per_iteration > 0 {
                charged(per_iteration, &mut c.loop_cond);
            }
            once
        }
    }
}

/// The deepest nesting of `e`.
fn depth(e: &IdedExpr) -> usize {
    1 + match &e.expr {
        Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => 0,
        Expr::Select(s) => depth(&s.operand),
        Expr::Call(c) => c.args.iter().chain(c.target.as_deref()).map(depth).max().unwrap_or(0),
        Expr::List(l) => l.elements.iter().map(depth).max().unwrap_or(0),
        Expr::Map(m) => m
            .entries
            .iter()
            .map(|entry| match &entry.expr {
                EntryExpr::MapEntry(me) => depth(&me.key).max(depth(&me.value)),
                EntryExpr::StructField(f) => depth(&f.value),
            })
            .max()
            .unwrap_or(0),
        Expr::Struct(_) => 0,
        // A comprehension evaluates its parts a few frames below itself.
        Expr::Comprehension(c) => {
            2 + [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result].into_iter().map(depth).max().unwrap_or(0)
        }
    }
}

/// Every function name `e` calls, for tests.
#[cfg(test)]
#[allow(dead_code)]
pub(crate) fn called_functions(e: &IdedExpr) -> std::collections::HashSet<String> {
    use std::collections::HashSet;
    let mut out = HashSet::new();
    fn walk(e: &IdedExpr, out: &mut HashSet<String>) {
        match &e.expr {
            Expr::Call(c) => {
                out.insert(c.func_name.clone());
                c.args.iter().chain(c.target.as_deref()).for_each(|a| walk(a, out));
            }
            Expr::Select(s) => walk(&s.operand, out),
            Expr::List(l) => l.elements.iter().for_each(|a| walk(a, out)),
            Expr::Comprehension(c) => {
                [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result].into_iter().for_each(|a| walk(a, out))
            }
            _ => {}
        }
    }
    walk(e, &mut out);
    out
}
