//! The policy rules, pure: they take facts and the config and return a decision with a reason a
//! person can read. No I/O; the reconciler gathers the facts.

pub mod promotion;
pub mod retention;
