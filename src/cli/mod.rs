//! `shipctl` subcommands. Each returns the process exit code and writes its
//! report to the given output; the binary only parses arguments.

pub mod bench;
pub mod pipeline;
