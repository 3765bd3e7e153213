//! econet: networks for edge containers, in one small static binary.

mod addr;
mod config;

fn main() {
    println!("econet");
}
