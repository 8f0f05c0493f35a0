//! CEL for DRA device selectors. PLACEHOLDER until the evaluator lands:
//! only the literals `true` and `false` are understood; anything else is
//! refused as unsupported, so a pod that needs it stays pending.

use std::sync::Arc;

/// One value of a device attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum AttributeValue {
    /// `int`.
    Int(i64),
    /// `bool`.
    Bool(bool),
    /// `string`.
    String(String),
    /// `version` (semver).
    Version(String),
}

/// The `device` variable of one device.
#[derive(Clone, Debug, Default)]
pub struct DeviceInput;

impl DeviceInput {
    /// Builds the input of one device.
    pub fn new(
        _driver: &str,
        _allow_multiple_allocations: bool,
        _attributes: &[(String, AttributeValue)],
        _capacity: &[(String, crate::model::Quantity)],
    ) -> DeviceInput {
        DeviceInput
    }
}

/// Why an expression could not be compiled or evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CelError {
    /// Uses what Berth does not implement.
    #[error("CEL function {function:?} is not supported by Berth")]
    Unsupported {
        /// The function.
        function: String,
    },
}

/// A compiled selector.
#[derive(Debug)]
pub struct Selector {
    expression: String,
    value: bool,
}

impl Selector {
    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }
    /// Evaluates against a device.
    pub fn evaluate(&self, _device: &DeviceInput) -> Result<bool, CelError> {
        Ok(self.value)
    }
}

/// Compiles `expression`.
pub fn compile(expression: &str) -> Result<Arc<Selector>, CelError> {
    match expression.trim() {
        "true" => Ok(Arc::new(Selector { expression: expression.into(), value: true })),
        "false" => Ok(Arc::new(Selector { expression: expression.into(), value: false })),
        _ => Err(CelError::Unsupported { function: expression.into() }),
    }
}
