//! Route groups.

pub mod kserve;
pub mod native;
pub mod ops;
