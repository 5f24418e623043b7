//! `govledgerd`: the govledger log server. The durable server lands with the server issue; this
//! binary already answers `--version` and `--help`.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "govledgerd",
    version,
    about = "govledger transparency-log server"
)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    println!("govledgerd {}", env!("CARGO_PKG_VERSION"));
}
