//! `shipctl` subcommands. Each returns the process exit code and writes its
//! report to the given output; the binary only parses arguments.
//! [`pipeline`] works on `.ship` files; [`tail`], [`status`] and [`agent`]
//! (reload, version) talk to a running agent over its control socket;
//! [`query`] reads OpenObserve's search API (SQL, or PromQL through
//! [`promql`]) and [`streams`] its stream list.

pub mod agent;
pub mod bench;
pub mod explain;
pub mod openobserve_search;
pub mod pipeline;
pub mod promql;
pub mod query;
pub mod status;
pub mod streams;
pub mod table;
pub mod tail;
