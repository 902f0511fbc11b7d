//! Placeholder: filled in by the plugin work.
