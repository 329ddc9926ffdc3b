//! The outer layer: the command line and the HTTP query API, and the JSON of queries and
//! answers.
pub mod cli;
pub mod http;
