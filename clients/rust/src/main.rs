//! `govledger`: the user CLI. Verifying commands exit 0 when valid, 1 when invalid or a check
//! failed (the reason on stderr, one line), 2 on usage or I/O errors.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use govledger_client::cli::{self, Outcome};

#[derive(Parser)]
#[command(
    name = "govledger",
    version,
    about = "Submit to and verify a govledger transparency log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an Ed25519 signer key (mode 0600) and print its note verifier key.
    Keygen {
        /// Key name: the log origin for a log key, a person's name for a personal key.
        #[arg(long)]
        name: String,
        /// Where to write the signer key (refuses to overwrite).
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify Merkle proofs offline (hashes as standard base64 or 64 hex characters).
    #[command(subcommand)]
    Proof(ProofCommand),
    /// Signed notes and checkpoints.
    #[command(subcommand)]
    Note(NoteCommand),
    /// Verify a receipt (C2SP tlog-proof text or a JSON receipt) offline against the log key.
    Verify {
        /// The receipt file, or - for standard input.
        receipt: PathBuf,
        /// The log's note verifier key (name+keyid+base64).
        #[arg(long)]
        log_key: String,
        /// Witness cosigner keys to check (type 0x04); repeat per witness.
        #[arg(long = "witness-key")]
        witness_keys: Vec<String>,
        /// How many of the given witnesses must have cosigned (default: none).
        #[arg(long, default_value_t = 0)]
        witnesses_required: usize,
        /// Leaf hash, for tlog-proofs that carry no leaf bytes in `extra`.
        #[arg(long)]
        leaf_hash: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProofCommand {
    /// Check that a leaf hash is at an index in a tree of a given size and root (RFC 9162 §2.1.3.2).
    VerifyInclusion {
        #[arg(long)]
        leaf_hash: String,
        #[arg(long)]
        index: u64,
        #[arg(long)]
        size: u64,
        #[arg(long)]
        root: String,
        /// One proof hash, leaf sibling first; repeat in proof order; absent for an empty proof.
        #[arg(long = "proof")]
        proof: Vec<String>,
    },
    /// Check that the old tree is a prefix of the new one (RFC 9162 §2.1.4.2). Old size 0 is invalid.
    VerifyConsistency {
        #[arg(long)]
        old_size: u64,
        #[arg(long)]
        new_size: u64,
        #[arg(long)]
        old_root: String,
        #[arg(long)]
        new_root: String,
        /// One proof hash; repeat in proof order; absent for an empty proof.
        #[arg(long = "proof")]
        proof: Vec<String>,
    },
}

#[derive(Subcommand)]
enum NoteCommand {
    /// Exit 0 if a signature by one of the keys verifies over the note (or checkpoint) in FILE.
    Verify {
        /// A note verifier key; repeat to accept several.
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        /// The signed note, or - for standard input.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen { name, out } => cli::keygen(&name, &out),
        Command::Proof(ProofCommand::VerifyInclusion {
            leaf_hash,
            index,
            size,
            root,
            proof,
        }) => cli::verify_inclusion(&leaf_hash, index, size, &root, &proof),
        Command::Proof(ProofCommand::VerifyConsistency {
            old_size,
            new_size,
            old_root,
            new_root,
            proof,
        }) => cli::verify_consistency(old_size, new_size, &old_root, &new_root, &proof),
        Command::Note(NoteCommand::Verify { keys, file }) => cli::note_verify(&keys, &file),
        Command::Verify {
            receipt,
            log_key,
            witness_keys,
            witnesses_required,
            leaf_hash,
        } => cli::verify_receipt(
            &receipt,
            &log_key,
            &witness_keys,
            witnesses_required,
            leaf_hash.as_deref(),
        ),
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
