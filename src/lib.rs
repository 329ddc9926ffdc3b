//! rediscover: find the right past candidates in a Lever talent pool for a new posting, locally.
//!
//! Data flows one way: Lever (REST) -> [`lever`] -> [`sync`] -> [`store`] -> [`index`] ->
//! [`search`] -> [`api`]. Candidate data never leaves the machine and is never logged.
//! See ARCHITECTURE.md for the module map and its invariants.
#![warn(missing_docs)]

pub mod api;
pub mod domain;
pub mod engine;
pub mod error;
pub mod eval;
pub mod extract;
pub mod index;
pub mod lever;
pub mod mock_lever;
pub mod pipeline;
pub mod search;
pub mod store;
pub mod sync;

pub use error::{Error, Result};
