//! The pipeline language: `.ship` files declaring sources, steps, sinks,
//! routes and tests. Its stages are its files: [`lex`] → [`parse`] (syntax
//! tree in [`ast`]) → [`compile`] (names, types, fallibility; lowering to
//! [`eval`] trees) → [`program`] (a runnable agent configuration). Every
//! error carries a span; [`diagnostics`] renders them with file, line,
//! column, caret and hint. No loops but [`iterate`]'s walks over the
//! elements of a value, no I/O at event time.

pub mod ast;
pub mod check_warnings;
pub mod compile;
pub mod components;
pub mod connection_options;
pub mod diagnostics;
pub mod emit;
pub mod environment;
pub mod eval;
pub mod flow;
pub mod fmt;
pub mod functions;
pub mod iterate;
pub mod lex;
pub mod locals;
pub mod metric_expect;
pub mod multiline_options;
pub mod option_range;
pub mod parse;
pub mod program;
pub mod reference;
pub mod sink_options;
pub mod test_input;
pub mod testing;
pub mod types;

pub use diagnostics::{render, render_warnings, Diagnostic};
pub use environment::Environment;
pub use program::{load, load_file, load_in, load_named, Program};
