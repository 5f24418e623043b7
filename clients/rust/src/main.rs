//! `govledger`: the user CLI. Verifying commands exit 0 when valid, 1 when invalid or a check
//! failed (the reason on stderr, one line), 2 on usage or I/O errors. Each command is one
//! function in the module that owns it; this file only dispatches.

#![deny(clippy::unwrap_used)]

use clap::Parser;
use std::process::ExitCode;

use govledger_client::args::{Cli, Command};
use govledger_client::cli::Outcome;
use govledger_client::{
    anchors, audit, cli, dataset, gate, keyfile, lineage, loadgen, monitor, statements, submit,
    witness,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = govledger_client::http::configure(&cli.tls) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Keygen(c) => keyfile::keygen_command(c),
        Command::Proof(c) => cli::proof_command(c),
        Command::Note(c) => cli::note_command(c),
        Command::Verify(c) => cli::verify_command(c),
        Command::Submit(c) => submit::submit_command(c),
        Command::Request(c) => statements::request_command(c),
        Command::Approve(c) => statements::approve_command(c),
        Command::DeployRecord(c) => statements::deploy_record_command(c),
        Command::Lineage(c) => lineage::command(c),
        Command::Monitor(c) => monitor::command(c),
        Command::Audit(c) => audit::command(c),
        Command::Anchors(c) => anchors::command(c),
        Command::Github(c) => submit::sync_command(c, "github"),
        Command::Servicenow(c) => submit::sync_command(c, "servicenow"),
        Command::Witness(c) => witness::command(c),
        Command::Gate(c) => gate::command(c),
        Command::HashDataset(c) => dataset::command(c),
        Command::Loadgen(c) => loadgen::command(c),
    };
    match result {
        Ok(Outcome::Valid(msg)) => {
            if !msg.is_empty() {
                println!("{msg}");
            }
            ExitCode::SUCCESS
        }
        Ok(Outcome::Invalid(why)) => {
            eprintln!("invalid: {why}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
