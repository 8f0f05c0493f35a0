//! The `device` variable: built once per device, borrowed by every evaluation.

use std::any::Any;
use std::collections::HashMap;
use std::sync::LazyLock;

use cel::common::traits::{Container, Indexer, Iterable, Iterator as CelIterator, Sizer, Zeroer};
use cel::common::types::{CelBool, CelInt, CelList, CelMap, CelMapKey, CelString, Type, MAP_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::context::VariableResolver;
use cel::ExecutionError;

use super::semver::Version;
use super::values::{QuantityVal, SemverVal};
use super::CelError;
use crate::model::Quantity;

/// One value of a device attribute (`resource.k8s.io/v1` `DeviceAttribute`:
/// exactly one of int, bool, string, version, or, with list-type attributes
/// (`DRAListTypeAttributes`), a list of one of those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// `int`.
    Int(i64),
    /// `bool`.
    Bool(bool),
    /// `string`.
    String(String),
    /// `version`: a semantic version, checked when a selector is evaluated.
    Version(String),
    /// `ints`.
    IntList(Vec<i64>),
    /// `bools`.
    BoolList(Vec<bool>),
    /// `strings`.
    StringList(Vec<String>),
    /// `versions`.
    VersionList(Vec<String>),
}

/// `kubernetes.DRADevice`, the type of `device`.
static DEVICE_TYPE: LazyLock<Type> = LazyLock::new(|| Type::new_opaque_type("kubernetes.DRADevice"));

/// The map a missing domain yields, as upstream's `newStringInterfaceMapWithDefault`.
static EMPTY_MAP: LazyLock<CelMap<'static>> = LazyLock::new(|| CelMap::from(HashMap::new()));

/// The `device` variable for one device, built once per device and reused for
/// every evaluation: the allocator evaluates selectors thousands of times per
/// pod, so all CEL values are made here, and an evaluation only borrows them.
#[derive(Debug)]
pub struct DeviceInput {
    value: DeviceVal,
    /// Upstream converts every attribute before evaluating, so a malformed
    /// version fails every selector on this device, used or not.
    invalid: Option<CelError>,
}

impl DeviceInput {
    /// Builds the variable.
    ///
    /// `driver` is the device's driver: the domain of every attribute or
    /// capacity name written without one (as upstream's `parseQualifiedName`),
    /// and `device.driver`. `attributes` and `capacity` carry the slice's
    /// qualified names as written (`model`, `dra.example.com/model`). When a
    /// name appears twice (`model` and `<driver>/model`), the later one wins.
    ///
    /// A version attribute that is not a valid semantic version does not fail
    /// here: as upstream, evaluating any selector against this device fails
    /// with `attribute NAME: parse semantic version: ...`.
    pub fn new(
        driver: &str,
        allow_multiple_allocations: bool,
        attributes: &[(String, AttributeValue)],
        capacity: &[(String, Quantity)],
    ) -> DeviceInput {
        let mut invalid = None;
        let mut attrs: HashMap<String, HashMap<CelMapKey<'static>, Box<dyn Val>>> = HashMap::new();
        for (name, value) in attributes {
            let converted = match convert(value) {
                Ok(v) => v,
                Err(e) => {
                    invalid
                        .get_or_insert(CelError::InvalidAttribute { name: name.clone(), message: format!("parse semantic version: {e}") });
                    continue;
                }
            };
            let (domain, id) = split_name(name, driver);
            attrs.entry(domain.to_string()).or_default().insert(CelMapKey::from(id.to_string()), converted);
        }
        let mut caps: HashMap<String, HashMap<CelMapKey<'static>, Box<dyn Val>>> = HashMap::new();
        for (name, q) in capacity {
            let (domain, id) = split_name(name, driver);
            caps.entry(domain.to_string()).or_default().insert(CelMapKey::from(id.to_string()), Box::new(QuantityVal(*q)));
        }
        DeviceInput {
            value: DeviceVal {
                driver: CelString::from(driver.to_string()),
                allow_multiple_allocations: CelBool::from(allow_multiple_allocations),
                attributes: DomainMap::new(attrs),
                capacity: DomainMap::new(caps),
            },
            invalid,
        }
    }

    /// The error every evaluation against this device fails with, if any.
    pub(crate) fn invalid(&self) -> Option<&CelError> {
        self.invalid.as_ref()
    }
}

impl VariableResolver for DeviceInput {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        (variable == "device").then(|| CowVal::Borrowed(&self.value as &dyn Val))
    }
}

/// Splits `domain/id`, taking the driver as the domain when there is no `/`.
fn split_name<'a>(name: &'a str, driver: &'a str) -> (&'a str, &'a str) {
    match name.split_once('/') {
        Some((domain, id)) => (domain, id),
        None => (driver, name),
    }
}

fn version(s: &str) -> Result<Box<dyn Val>, String> {
    Version::parse(s).map(|v| Box::new(SemverVal(v)) as Box<dyn Val>)
}

fn list<T>(items: &[T], f: impl Fn(&T) -> Result<Box<dyn Val>, String>) -> Result<Box<dyn Val>, String> {
    let values = items.iter().map(f).collect::<Result<Vec<_>, _>>()?;
    Ok(Box::new(CelList::from(values)))
}

fn convert(value: &AttributeValue) -> Result<Box<dyn Val>, String> {
    Ok(match value {
        AttributeValue::Int(i) => Box::new(CelInt::from(*i)),
        AttributeValue::Bool(b) => Box::new(CelBool::from(*b)),
        AttributeValue::String(s) => Box::new(CelString::from(s.clone())),
        AttributeValue::Version(v) => version(v)?,
        AttributeValue::IntList(v) => list(v, |i| Ok(Box::new(CelInt::from(*i))))?,
        AttributeValue::BoolList(v) => list(v, |b| Ok(Box::new(CelBool::from(*b))))?,
        AttributeValue::StringList(v) => list(v, |s| Ok(Box::new(CelString::from(s.clone()))))?,
        AttributeValue::VersionList(v) => list(v, |s| version(s))?,
    })
}

/// `device` itself: a record of four fields.
#[derive(Debug, Clone)]
struct DeviceVal {
    driver: CelString<'static>,
    allow_multiple_allocations: CelBool,
    attributes: DomainMap,
    capacity: DomainMap,
}

impl Val for DeviceVal {
    fn get_type(&self) -> &Type {
        &DEVICE_TYPE
    }
    fn cel_type() -> &'static Type {
        &DEVICE_TYPE
    }
    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}
impl StaticVal for DeviceVal {}

impl Indexer for DeviceVal {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let key = idx.downcast_ref::<CelString>().map(|s| s.inner()).unwrap_or_default();
        Ok(match key {
            "driver" => CowVal::Borrowed(&self.driver),
            "allowMultipleAllocations" => CowVal::Borrowed(&self.allow_multiple_allocations),
            "attributes" => CowVal::Borrowed(&self.attributes),
            "capacity" => CowVal::Borrowed(&self.capacity),
            other => return Err(ExecutionError::no_such_key(other)),
        })
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

/// `device.attributes` or `device.capacity`: domain → (id → value). Looking up
/// a domain the device has none of yields an empty map, so
/// `device.attributes["x"].y` fails with `no such key: y`; `"x" in
/// device.attributes` still tells the truth.
#[derive(Debug, Clone)]
struct DomainMap(CelMap<'static>);

impl DomainMap {
    fn new(domains: HashMap<String, HashMap<CelMapKey<'static>, Box<dyn Val>>>) -> DomainMap {
        let outer: HashMap<CelMapKey<'static>, Box<dyn Val>> =
            domains.into_iter().map(|(d, ids)| (CelMapKey::from(d), Box::new(CelMap::from(ids)) as Box<dyn Val>)).collect();
        DomainMap(CelMap::from(outer))
    }
}

impl Val for DomainMap {
    fn get_type(&self) -> &Type {
        &MAP_TYPE
    }
    fn cel_type() -> &'static Type {
        &MAP_TYPE
    }
    fn as_container(&self) -> Option<&dyn Container> {
        Some(&self.0)
    }
    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(&self.0)
    }
    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        Some(&self.0)
    }
    fn equals(&self, other: &dyn Val) -> bool {
        match other.downcast_ref::<DomainMap>() {
            Some(o) => self.0.equals(&o.0),
            None => self.0.equals(other),
        }
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}
impl StaticVal for DomainMap {}

impl Indexer for DomainMap {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        match self.0.get(idx) {
            Ok(v) => Ok(v),
            Err(_) if idx.downcast_ref::<CelString>().is_some() => Ok(CowVal::Borrowed(&*EMPTY_MAP)),
            Err(e) => Err(e),
        }
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Iterable for DomainMap {
    fn iter<'b, 'v>(&'b self) -> Box<dyn CelIterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        self.0.iter()
    }
}
