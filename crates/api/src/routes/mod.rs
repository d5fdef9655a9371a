//! Route groups.

pub mod kserve;
pub mod library;
pub mod native;
pub mod openai;
pub mod ops;
