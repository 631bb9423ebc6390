//! `shipctl` subcommands. Each returns the process exit code and writes its
//! report to the given output; the binary only parses arguments.
//! [`pipeline`] works on `.ship` files; [`tail`], [`status`] and [`agent`]
//! (reload, version) talk to a running agent over its control socket.

pub mod agent;
pub mod pipeline;
pub mod status;
pub mod tail;
