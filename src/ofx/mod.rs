//! Placeholder: filled in by the ofx work.
