//! LISP for mesh networks, as sans-I/O cores over [`crate::wire::lisp`].
pub mod cache;
pub mod crypto;
