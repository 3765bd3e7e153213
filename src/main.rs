//! The `econet` command; everything lives in the library.

fn main() {
    std::process::exit(econet::cli::main());
}
