//! Apply layer (work in progress).
