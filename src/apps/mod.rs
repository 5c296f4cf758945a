//! Built-in apps and composites.
