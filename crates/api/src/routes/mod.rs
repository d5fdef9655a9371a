//! Route groups.

pub mod audit;
pub mod datasets;
pub mod jobs;
pub mod kserve;
pub mod library;
pub mod native;
pub mod openai;
pub mod ops;
pub mod predict;
pub mod privacy;
pub mod uploads;
