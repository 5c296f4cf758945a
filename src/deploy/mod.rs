//! Paste Deploy semantics: from ini sections to a spec tree, and from the tree to an app.
