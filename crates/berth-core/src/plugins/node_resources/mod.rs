//! NodeResourcesFit (Filter + Score strategies) and
//! NodeResourcesBalancedAllocation, sharing the resource-allocation scorer.

pub mod balanced_allocation;
pub mod fit;
pub mod resource_allocation;

#[cfg(test)]
mod tests;
