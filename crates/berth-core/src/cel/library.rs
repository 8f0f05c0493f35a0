//! What Kubernetes' CEL environment has and the `cel` crate lacks: the
//! `kubernetes.lists` library, cel-go's `sets` extension, Kubernetes' regex
//! library (`find`, `findAll`) and `matches` over cached compiled patterns,
//! the optional library's `first`/`last`/`unwrap`, and the `cel.bind` macro.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use cel::common::ast::{ComprehensionExpr, Expr, ListExpr, LiteralValue};
use cel::common::types::{CelInt, CelList, CelOptional, CelString, Kind, DYN_TYPE, INT_TYPE, LIST_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::parser::Macro;
use cel::{DeclarationError, Env, ExecutionError};
use regex::Regex;

use super::cost::{self, charge};
use super::values::boolean;

fn no_overload(function: &str, args: &[CowVal<'_, '_>]) -> ExecutionError {
    ExecutionError::no_such_overload(function, args.iter().map(|a| a.get_type().name().to_owned()).collect())
}

fn list_arg<'a, 'v>(function: &str, args: &'a [CowVal<'_, 'v>], i: usize) -> Result<&'a [Box<dyn Val + 'v>], ExecutionError> {
    args.get(i).and_then(|a| a.downcast_ref::<CelList>()).map(|l| l.inner()).ok_or_else(|| no_overload(function, args))
}

fn string_arg<'a>(function: &str, args: &'a [CowVal<'_, '_>], i: usize) -> Result<&'a str, ExecutionError> {
    args.get(i).and_then(|a| a.downcast_ref::<CelString>()).map(|s| s.inner()).ok_or_else(|| no_overload(function, args))
}

fn owned<'b, 'v>(v: &(dyn Val + 'v)) -> CowVal<'b, 'v> {
    CowVal::Owned(v.clone_as_boxed())
}

// ---- kubernetes.lists ----

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let list = list_arg("isSorted", &args, 0)?;
    charge(list.len() as u64)?;
    for pair in list.windows(2) {
        let cmp = pair[0].as_comparer().ok_or_else(|| no_overload("isSorted", &args))?;
        if cmp.compare(pair[1].as_ref()).map_err(|_| no_overload("isSorted", &args))? == std::cmp::Ordering::Greater {
            return Ok(boolean(false));
        }
    }
    Ok(boolean(true))
}

fn summable(v: &dyn Val) -> bool {
    matches!(v.get_type().kind(), Kind::Int | Kind::UInt | Kind::Double)
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let list = list_arg("sum", &args, 0)?;
    charge(list.len() as u64)?;
    let Some((first, rest)) = list.split_first() else {
        return Ok(CowVal::owned(CelInt::from(0)));
    };
    if !summable(first.as_ref()) {
        return Err(no_overload("sum", &args));
    }
    let mut acc: Box<dyn Val + 'v> = first.clone_as_boxed();
    for next in rest {
        let adder = acc.as_adder().ok_or_else(|| no_overload("sum", &args))?;
        acc = adder.add(next.as_ref())?.into_owned();
    }
    Ok(CowVal::Owned(acc))
}

fn extreme<'b, 'v>(function: &str, args: Vec<CowVal<'b, 'v>>, keep: std::cmp::Ordering) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let list = list_arg(function, &args, 0)?;
    charge(list.len() as u64)?;
    let mut best: Option<&(dyn Val + 'v)> = None;
    for item in list {
        let item = item.as_ref();
        best = Some(match best {
            None => item,
            Some(b) => {
                let cmp = b.as_comparer().ok_or_else(|| no_overload(function, &args))?;
                if cmp.compare(item).map_err(|_| no_overload(function, &args))? == keep {
                    item
                } else {
                    b
                }
            }
        });
    }
    match best {
        Some(b) => Ok(owned(b)),
        None => Err(ExecutionError::function_error(function, format!("{function} called on empty list"))),
    }
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme("min", args, std::cmp::Ordering::Greater)
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme("max", args, std::cmp::Ordering::Less)
}

fn list_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let list = list_arg("indexOf", &args, 0)?;
    charge(list.len() as u64)?;
    let pos = list.iter().position(|v| v.equals(args[1].as_ref()));
    Ok(CowVal::owned(CelInt::from(pos.map_or(-1, |p| p as i64))))
}

fn list_last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let list = list_arg("lastIndexOf", &args, 0)?;
    charge(list.len() as u64)?;
    let pos = list.iter().rposition(|v| v.equals(args[1].as_ref()));
    Ok(CowVal::owned(CelInt::from(pos.map_or(-1, |p| p as i64))))
}

/// `x.includes(y)`: membership for a list, equality for anything else (a
/// list-typed attribute may also hold a single value).
fn includes<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (target, item) = (&args[0], &args[1]);
    if let Some(list) = target.downcast_ref::<CelList>() {
        charge(list.inner().len() as u64)?;
        return Ok(boolean(list.inner().iter().any(|v| v.equals(item.as_ref()))));
    }
    charge(1)?;
    Ok(boolean(target.equals(item.as_ref())))
}

// ---- sets ----

fn contains_all(function: &str, args: &[CowVal<'_, '_>], a: usize, b: usize) -> Result<bool, ExecutionError> {
    let (la, lb) = (list_arg(function, args, a)?, list_arg(function, args, b)?);
    charge((la.len() as u64).saturating_mul(lb.len() as u64).max(1))?;
    Ok(lb.iter().all(|x| la.iter().any(|y| y.equals(x.as_ref()))))
}

fn sets_contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(boolean(contains_all("sets.contains", &args, 0, 1)?))
}

fn sets_equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(boolean(contains_all("sets.equivalent", &args, 0, 1)? && contains_all("sets.equivalent", &args, 1, 0)?))
}

fn sets_intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (la, lb) = (list_arg("sets.intersects", &args, 0)?, list_arg("sets.intersects", &args, 1)?);
    charge((la.len() as u64).saturating_mul(lb.len() as u64).max(1))?;
    Ok(boolean(lb.iter().any(|x| la.iter().any(|y| y.equals(x.as_ref())))))
}

// ---- regular expressions ----

/// Compiled patterns, shared by all selectors: a selector with `matches`
/// evaluated for thousands of devices compiles its pattern once.
static REGEX_CACHE: LazyLock<RwLock<HashMap<String, Arc<Regex>>>> = LazyLock::new(Default::default);
const REGEX_CACHE_MAX: usize = 512;

/// Compiles (or finds) `pattern`; the error says why it is not a valid RE2 pattern.
pub(crate) fn regex(pattern: &str) -> Result<Arc<Regex>, String> {
    if let Some(re) = REGEX_CACHE.read().ok().and_then(|c| c.get(pattern).cloned()) {
        return Ok(re);
    }
    let re = Arc::new(Regex::new(pattern).map_err(|e| format!("error parsing regexp: {e}"))?);
    if let Ok(mut cache) = REGEX_CACHE.write() {
        if cache.len() >= REGEX_CACHE_MAX {
            cache.clear();
        }
        cache.insert(pattern.to_string(), Arc::clone(&re));
    }
    Ok(re)
}

/// cel-go's cost of matching a string against a pattern.
fn regex_cost(s: &str, pattern: &str) -> u64 {
    let str_cost = cost::traversal(1 + s.len() as u64);
    let regex_cost = (pattern.len() as f64 * 0.25).ceil() as u64;
    str_cost.saturating_mul(regex_cost).max(1)
}

fn compiled(function: &str, s: &str, pattern: &str) -> Result<Arc<Regex>, ExecutionError> {
    charge(regex_cost(s, pattern))?;
    regex(pattern).map_err(|e| ExecutionError::function_error(function, e))
}

fn matches<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (s, p) = (string_arg("matches", &args, 0)?, string_arg("matches", &args, 1)?);
    Ok(boolean(compiled("matches", s, p)?.is_match(s)))
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (s, p) = (string_arg("find", &args, 0)?, string_arg("find", &args, 1)?);
    let found = compiled("find", s, p)?.find(s).map_or(String::new(), |m| m.as_str().to_string());
    Ok(CowVal::owned(CelString::from(found)))
}

fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (s, p) = (string_arg("findAll", &args, 0)?, string_arg("findAll", &args, 1)?);
    let limit = match args.get(2) {
        Some(n) => *n.downcast_ref::<CelInt>().ok_or_else(|| no_overload("findAll", &args))?.inner(),
        None => -1,
    };
    let re = compiled("findAll", s, p)?;
    let take = if limit < 0 { usize::MAX } else { limit as usize };
    let found: Vec<Box<dyn Val + 'v>> =
        re.find_iter(s).take(take).map(|m| Box::new(CelString::from(m.as_str().to_string())) as Box<dyn Val + 'v>).collect();
    Ok(CowVal::owned(CelList::from(found)))
}

// ---- optional library, version 2 ----

fn first<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let list = list_arg("first", &args, 0)?;
    Ok(CowVal::owned(list.first().map_or(CelOptional::none(), |v| CelOptional::of(v.clone_as_boxed()))))
}

fn last<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let list = list_arg("last", &args, 0)?;
    Ok(CowVal::owned(list.last().map_or(CelOptional::none(), |v| CelOptional::of(v.clone_as_boxed()))))
}

fn unwrap_opt<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let list = list_arg("optional.unwrap", &args, 0)?;
    charge(list.len() as u64)?;
    let mut out: Vec<Box<dyn Val + 'v>> = Vec::with_capacity(list.len());
    for item in list {
        let opt = item.downcast_ref::<CelOptional>().ok_or_else(|| no_overload("optional.unwrap", &args))?;
        if let Some(v) = opt.option() {
            out.push(v.clone_as_boxed());
        }
    }
    Ok(CowVal::owned(CelList::from(out)))
}

/// `cel.bind(var, init, result)`: `result` with `var` bound to `init`,
/// expanded as cel-go does into a comprehension over no elements whose
/// accumulator is `var`.
fn bind_macro() -> Macro {
    Macro::receiver("bind", 3, |helper, target, args| {
        if !matches!(target.as_ref().map(|t| &t.expr), Some(Expr::Ident(name)) if name == "cel") {
            return Ok(None);
        }
        let var = match &args[0].expr {
            Expr::Ident(name) => name.clone(),
            _ => return Err(helper.new_error(args[0].id, "cel.bind() variable names must be simple identifiers")),
        };
        target.take();
        let result = args.pop().unwrap_or_default();
        let init = args.pop().unwrap_or_default();
        args.clear();
        let iter_range = helper.next_expr(Expr::List(ListExpr::new(Vec::new())));
        let loop_cond = helper.next_expr(Expr::Literal(LiteralValue::Boolean(false.into())));
        let loop_step = helper.next_expr(Expr::Ident(var.clone()));
        Ok(Some(helper.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
            iter_range,
            iter_var: "#unused".to_string(),
            iter_var2: None,
            accu_var: var,
            accu_init: init,
            loop_cond,
            loop_step,
            result,
        })))))
    })
}

/// Registers everything above, and the interpreter-only cost functions.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload("isSorted", "list_is_sorted", LIST_TYPE, vec![], is_sorted)?;
    env.add_member_overload("sum", "list_sum", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list_min", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list_max", LIST_TYPE, vec![], max)?;
    env.add_member_overload("indexOf", "list_a_index_of_int", LIST_TYPE, vec![DYN_TYPE], list_index_of)?;
    env.add_member_overload("lastIndexOf", "list_a_last_index_of_int", LIST_TYPE, vec![DYN_TYPE], list_last_index_of)?;
    env.add_member_overload("includes", "list_includes_dyn_dyn", DYN_TYPE, vec![DYN_TYPE], includes)?;

    env.add_overload("sets.contains", "list_sets_contains_list", vec![LIST_TYPE, LIST_TYPE], sets_contains)?;
    env.add_overload("sets.equivalent", "list_sets_equivalent_list", vec![LIST_TYPE, LIST_TYPE], sets_equivalent)?;
    env.add_overload("sets.intersects", "list_sets_intersects_list", vec![LIST_TYPE, LIST_TYPE], sets_intersects)?;

    env.add_overload("matches", "matches", vec![STRING_TYPE, STRING_TYPE], matches)?;
    env.add_member_overload("matches", "matches_string", STRING_TYPE, vec![STRING_TYPE], matches)?;
    env.add_member_overload("find", "string_find_string", STRING_TYPE, vec![STRING_TYPE], find)?;
    env.add_member_overload("findAll", "string_find_all_string", STRING_TYPE, vec![STRING_TYPE], find_all)?;
    env.add_member_overload("findAll", "string_find_all_string_int", STRING_TYPE, vec![STRING_TYPE, INT_TYPE], find_all)?;

    env.add_member_overload("first", "list_first", LIST_TYPE, vec![], first)?;
    env.add_member_overload("last", "list_last", LIST_TYPE, vec![], last)?;
    env.add_overload("optional.unwrap", "optional_unwrap", vec![LIST_TYPE], unwrap_opt)?;
    env.add_member_overload("unwrapOpt", "optional_unwrapOpt", LIST_TYPE, vec![], unwrap_opt)?;

    env.add_macro(bind_macro())?;

    env.add_overload(cost::COST_FN, "berth_cost", vec![INT_TYPE, DYN_TYPE], cost::cost_fn)?;
    env.add_overload(cost::SIZED_FN, "berth_sized", vec![DYN_TYPE], cost::sized_fn)?;
    env.add_overload(cost::IN_FN, "berth_in", vec![DYN_TYPE, DYN_TYPE], cost::in_fn)?;
    Ok(())
}
