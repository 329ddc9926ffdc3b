//! The one integration-test binary: each module tests one area end to end through the public
//! library API, the CLI binary or the HTTP API, against a mock Lever on 127.0.0.1 port 0.

mod util;

mod cli;
mod index;
mod mock_lever;
mod search;
mod store;
mod sync;
