//! The load generator for ssegate and its peers.
//!
//! Not built yet: its issue (measure ssegate side by side with nchan, Pushpin and Node)
//! comes after the single-node gateway. This stub exists so the workspace has its
//! member and `cargo build --workspace` covers it.

fn main() {
    eprintln!("loadtest: not implemented yet; see the issue 'loadtest/ and benches/'");
    std::process::exit(2);
}
