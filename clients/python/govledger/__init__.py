"""govledger: the Python client for the govledger transparency log.

Submit audit events, lineage, approval requests and approvals; verify receipts and consistency
offline against a pinned log key; fingerprint datasets exactly as the Rust CLI does.
"""

from .client import Client, ServerError, canonical_json, sign_statement
from .dataset import DatasetError, fingerprint_dataframe, fingerprint_dataset
from .keys import KeyEvent, KeyEventError, parse_key_event
from .merkle import ProofError, leaf_hash, node_hash, verify_consistency, verify_inclusion
from .note import Checkpoint, NoteError, SignerKey, VerifierKey, open_checkpoint
from .receipt import Leaf, ReceiptError, VerifiedReceipt, batch_receipts, verify_batch, verify_receipt
from .spool import AuditSpool, SpoolClosed, SpoolError, SpoolFull, SpoolStats
from .tiles import TileFetchError, TileReader, TileVerification, verify_receipt_with_tiles
from .values import to_json
from . import logging  # govledger.logging.LedgerHandler

__all__ = [
    "AuditSpool", "Checkpoint", "Client", "DatasetError", "KeyEvent", "KeyEventError", "Leaf", "NoteError", "ProofError", "ReceiptError", "ServerError",
    "SignerKey", "SpoolClosed", "SpoolError", "SpoolFull", "SpoolStats", "TileFetchError", "TileReader", "TileVerification", "VerifiedReceipt", "VerifierKey", "batch_receipts", "canonical_json", "fingerprint_dataframe",
    "fingerprint_dataset", "leaf_hash", "node_hash", "open_checkpoint", "parse_key_event", "sign_statement", "to_json",
    "verify_batch", "verify_consistency", "verify_inclusion", "verify_receipt", "verify_receipt_with_tiles",
]
