//! The outer layer: the command line and the HTTP query API. Only this layer knows our JSON.
pub mod cli;
pub mod http;
