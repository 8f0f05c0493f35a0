//! Kubernetes' two CEL types, `kubernetes.Quantity` and `kubernetes.Semver`,
//! and the functions of apiserver's quantity and semver libraries.

use std::any::Any;
use std::cmp::Ordering;
use std::sync::LazyLock;

use cel::common::types::{CelBool, CelDouble, CelInt, CelString, Type, BOOL_TYPE, INT_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::semver::Version;
use crate::model::Quantity;

/// `kubernetes.Quantity`.
pub(crate) static QUANTITY_TYPE: LazyLock<Type> = LazyLock::new(|| Type::new_opaque_type("kubernetes.Quantity"));
/// `kubernetes.Semver`.
pub(crate) static SEMVER_TYPE: LazyLock<Type> = LazyLock::new(|| Type::new_opaque_type("kubernetes.Semver"));

/// A borrowed constant boolean: no allocation.
pub(crate) fn boolean<'b, 'v>(b: bool) -> CowVal<'b, 'v> {
    static TRUE: CelBool = CelBool::TRUE;
    static FALSE: CelBool = CelBool::FALSE;
    CowVal::Borrowed(if b { &TRUE } else { &FALSE })
}

fn int<'b, 'v>(i: i64) -> CowVal<'b, 'v> {
    CowVal::owned(CelInt::from(i))
}

fn ordering(o: Ordering) -> i64 {
    match o {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

/// A quantity value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuantityVal(pub(crate) Quantity);

impl Val for QuantityVal {
    fn get_type(&self) -> &Type {
        &QUANTITY_TYPE
    }
    fn cel_type() -> &'static Type {
        &QUANTITY_TYPE
    }
    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<QuantityVal>().is_some_and(|o| self.0.compare(&o.0) == Ordering::Equal)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(*self)
    }
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}
impl StaticVal for QuantityVal {}

/// A semantic version value.
#[derive(Debug, Clone)]
pub(crate) struct SemverVal(pub(crate) Version);

impl Val for SemverVal {
    fn get_type(&self) -> &Type {
        &SEMVER_TYPE
    }
    fn cel_type() -> &'static Type {
        &SEMVER_TYPE
    }
    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<SemverVal>().is_some_and(|o| self.0.compare(&o.0) == Ordering::Equal)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}
impl StaticVal for SemverVal {}

/// The overload error cel-go reports when an argument has the wrong type.
fn no_overload(function: &str, args: &[CowVal<'_, '_>]) -> ExecutionError {
    ExecutionError::no_such_overload(function, args.iter().map(|a| a.get_type().name().to_owned()).collect())
}

fn string_arg<'a>(function: &str, args: &'a [CowVal<'_, '_>], i: usize) -> Result<&'a str, ExecutionError> {
    args.get(i).and_then(|a| a.downcast_ref::<CelString>()).map(|s| s.inner()).ok_or_else(|| no_overload(function, args))
}

fn bool_arg(function: &str, args: &[CowVal<'_, '_>], i: usize) -> Result<bool, ExecutionError> {
    args.get(i).and_then(|a| a.downcast_ref::<CelBool>()).map(|b| *b.inner()).ok_or_else(|| no_overload(function, args))
}

fn quantity_arg(function: &str, args: &[CowVal<'_, '_>], i: usize) -> Result<Quantity, ExecutionError> {
    args.get(i).and_then(|a| a.downcast_ref::<QuantityVal>()).map(|q| q.0).ok_or_else(|| no_overload(function, args))
}

fn semver_arg<'a>(function: &str, args: &'a [CowVal<'_, '_>], i: usize) -> Result<&'a Version, ExecutionError> {
    args.get(i).and_then(|a| a.downcast_ref::<SemverVal>()).map(|v| &v.0).ok_or_else(|| no_overload(function, args))
}

/// Either a quantity, or an int taken as `NewQuantity(v, DecimalExponent)`.
fn quantity_or_int(function: &str, args: &[CowVal<'_, '_>], i: usize) -> Result<Quantity, ExecutionError> {
    if let Some(n) = args.get(i).and_then(|a| a.downcast_ref::<CelInt>()) {
        return Ok(Quantity::from_i64(*n.inner()));
    }
    quantity_arg(function, args, i)
}

fn quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = string_arg("quantity", &args, 0)?;
    let q = Quantity::parse_upstream(s).map_err(|e| ExecutionError::function_error("quantity", e.kind.message()))?;
    Ok(CowVal::owned(QuantityVal(q)))
}

fn is_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(boolean(Quantity::parse_upstream(string_arg("isQuantity", &args, 0)?).is_ok()))
}

fn quantity_sign<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(int(quantity_arg("sign", &args, 0)?.sign() as i64))
}

fn quantity_is_greater_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (quantity_arg("isGreaterThan", &args, 0)?, quantity_arg("isGreaterThan", &args, 1)?);
    Ok(boolean(a.compare(&b) == Ordering::Greater))
}

fn quantity_is_less_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (quantity_arg("isLessThan", &args, 0)?, quantity_arg("isLessThan", &args, 1)?);
    Ok(boolean(a.compare(&b) == Ordering::Less))
}

fn quantity_compare_to<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (quantity_arg("compareTo", &args, 0)?, quantity_arg("compareTo", &args, 1)?);
    Ok(int(ordering(a.compare(&b))))
}

fn quantity_as_float<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelDouble::from(quantity_arg("asApproximateFloat", &args, 0)?.as_approximate_f64())))
}

fn quantity_as_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let q = quantity_arg("asInteger", &args, 0)?;
    q.as_i64().map(int).ok_or_else(|| ExecutionError::function_error("asInteger", "cannot convert value to integer"))
}

fn quantity_is_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(boolean(quantity_arg("isInteger", &args, 0)?.as_i64().is_some()))
}

/// What Berth says where upstream's arbitrary-precision sum has more digits than Berth keeps.
const PRECISION_EXCEEDED: &str = "quantity arithmetic needs more than the 38 significant digits Berth keeps";

fn quantity_add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (quantity_arg("add", &args, 0)?, quantity_or_int("add", &args, 1)?);
    let sum = a.checked_add(&b).ok_or_else(|| ExecutionError::function_error("add", PRECISION_EXCEEDED))?;
    Ok(CowVal::owned(QuantityVal(sum)))
}

fn quantity_sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (quantity_arg("sub", &args, 0)?, quantity_or_int("sub", &args, 1)?);
    let diff = a.checked_sub(&b).ok_or_else(|| ExecutionError::function_error("sub", PRECISION_EXCEEDED))?;
    Ok(CowVal::owned(QuantityVal(diff)))
}

fn parse_semver(function: &str, args: &[CowVal<'_, '_>]) -> Result<Result<Version, String>, ExecutionError> {
    let s = string_arg(function, args, 0)?;
    let normalize = if args.len() > 1 { bool_arg(function, args, 1)? } else { false };
    Ok(if normalize { Version::parse_normalized(s) } else { Version::parse(s) })
}

fn semver<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = parse_semver("semver", &args)?.map_err(|e| ExecutionError::function_error("semver", e))?;
    Ok(CowVal::owned(SemverVal(v)))
}

fn is_semver<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(boolean(parse_semver("isSemver", &args)?.is_ok()))
}

fn semver_is_greater_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let ord = semver_arg("isGreaterThan", &args, 0)?.compare(semver_arg("isGreaterThan", &args, 1)?);
    Ok(boolean(ord == Ordering::Greater))
}

fn semver_is_less_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let ord = semver_arg("isLessThan", &args, 0)?.compare(semver_arg("isLessThan", &args, 1)?);
    Ok(boolean(ord == Ordering::Less))
}

fn semver_compare_to<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let ord = semver_arg("compareTo", &args, 0)?.compare(semver_arg("compareTo", &args, 1)?);
    Ok(int(ordering(ord)))
}

// Upstream converts the uint64 components with a plain int64 conversion.
fn semver_major<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(int(semver_arg("major", &args, 0)?.major as i64))
}

fn semver_minor<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(int(semver_arg("minor", &args, 0)?.minor as i64))
}

fn semver_patch<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(int(semver_arg("patch", &args, 0)?.patch as i64))
}

/// Registers apiserver's quantity library and semver library (version 1, with
/// the `normalize` argument).
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let q = || QUANTITY_TYPE.to_owned();
    let s = || SEMVER_TYPE.to_owned();
    env.add_type(q())?;
    env.add_type(s())?;

    env.add_overload("quantity", "string_to_quantity", vec![STRING_TYPE], quantity)?;
    env.add_overload("isQuantity", "is_quantity_string", vec![STRING_TYPE], is_quantity)?;
    env.add_overload("sign", "quantity_sign", vec![q()], quantity_sign)?;
    env.add_member_overload("isGreaterThan", "quantity_is_greater_than", q(), vec![q()], quantity_is_greater_than)?;
    env.add_member_overload("isLessThan", "quantity_is_less_than", q(), vec![q()], quantity_is_less_than)?;
    env.add_member_overload("compareTo", "quantity_compare_to", q(), vec![q()], quantity_compare_to)?;
    env.add_member_overload("asApproximateFloat", "quantity_get_float", q(), vec![], quantity_as_float)?;
    env.add_member_overload("asInteger", "quantity_get_int", q(), vec![], quantity_as_integer)?;
    env.add_member_overload("isInteger", "quantity_is_integer", q(), vec![], quantity_is_integer)?;
    env.add_member_overload("add", "quantity_add", q(), vec![q()], quantity_add)?;
    env.add_member_overload("add", "quantity_add_int", q(), vec![INT_TYPE], quantity_add)?;
    env.add_member_overload("sub", "quantity_sub", q(), vec![q()], quantity_sub)?;
    env.add_member_overload("sub", "quantity_sub_int", q(), vec![INT_TYPE], quantity_sub)?;

    env.add_overload("semver", "string_to_semver", vec![STRING_TYPE], semver)?;
    env.add_overload("semver", "string_bool_to_semver", vec![STRING_TYPE, BOOL_TYPE], semver)?;
    env.add_overload("isSemver", "is_semver_string", vec![STRING_TYPE], is_semver)?;
    env.add_overload("isSemver", "is_semver_string_bool", vec![STRING_TYPE, BOOL_TYPE], is_semver)?;
    env.add_member_overload("isGreaterThan", "semver_is_greater_than", s(), vec![s()], semver_is_greater_than)?;
    env.add_member_overload("isLessThan", "semver_is_less_than", s(), vec![s()], semver_is_less_than)?;
    env.add_member_overload("compareTo", "semver_compare_to", s(), vec![s()], semver_compare_to)?;
    env.add_member_overload("major", "semver_major", s(), vec![], semver_major)?;
    env.add_member_overload("minor", "semver_minor", s(), vec![], semver_minor)?;
    env.add_member_overload("patch", "semver_patch", s(), vec![], semver_patch)?;
    Ok(())
}
