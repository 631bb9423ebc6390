//! Warnings of `shipctl check`: things a pipeline may do on purpose but that
//! usually lose data unseen. They never refuse a file; the daemon loads it
//! and counts and logs what they warn about.

use super::ast::Ident;
use super::diagnostics::Diagnostic;

/// A step can fail (a `!` call or an operation that may fail at run time),
/// has no `on_error` and the route block has no `dead_letter` rule: each
/// failure loses the event.
pub fn failable_without_dead_letter(step: &Ident) -> Diagnostic {
    Diagnostic::new(
        step.span,
        format!(
            "step `{}` can fail, and without a `dead_letter` route its failed events are lost",
            step.name
        ),
    )
    .hint("add `dead_letter => SINK` to the route block, or `on_error drop|keep|tag` to the step; lost events are counted per step and logged")
}
