//! The pipeline language: `.ship` files declaring sources, steps, sinks,
//! routes and tests. Its stages are its files: [`lex`] → [`parse`] (syntax
//! tree in [`ast`]) → [`compile`] (names, types, fallibility; lowering to
//! [`eval`] trees) → [`program`] (a runnable agent configuration). Every
//! error carries a span; [`diagnostics`] renders them with file, line,
//! column, caret and hint. No loops, no I/O at event time.

pub mod ast;
pub mod compile;
pub mod components;
pub mod connection_options;
pub mod diagnostics;
pub mod eval;
pub mod fmt;
pub mod functions;
pub mod lex;
pub mod multiline_options;
pub mod option_range;
pub mod parse;
pub mod program;
pub mod sink_options;
pub mod testing;
pub mod types;

pub use diagnostics::{render, Diagnostic};
pub use program::{load, Program};
