//! `flotilla-cloudsim`: under construction.
fn main() {}
