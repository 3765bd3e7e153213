//! `econet demo` (written below).
pub fn main(_o: &crate::cli::Opts) -> i32 {
    0
}
