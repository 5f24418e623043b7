"""Training sessions that record a model's lineage as the CLI does (`govledger lineage`), and the
check of a `metadata.json` against the files and the log (`govledger lineage verify`).

A session fingerprints each dataset when it is used, then hashes the artifact, submits the
lineage entry (ledger-format SPEC.md §3.2) and writes ``metadata.json`` beside the artifact
(SPEC.md §3.2.1), byte for byte in the CLI's format, so ``govledger request --metadata`` and
``govledger lineage verify`` read it::

    with client.training_session("ppo-42", model_name="ppo", created_by="trainer") as s:
        s.record_dataset("data/md.csv", "market_data_2024", "training")
        s.record_dataset(holdout_df, "holdout", "validation")      # a DataFrame: pandas-csv-v1
        record = s.complete(model_version="3", hyperparameters={"lr": np.float64(3e-4)},
                            validation_metrics={"sharpe": 1.9}, artifact="model/policy.pt")
    record.leaf_hash, record.metadata_path                         # model/metadata.json

The calls follow the module this replaces: ``start_training_session(model_name, created_by)``
is ``client.training_session(model_id, model_name=, created_by=)``,
``record_dataset_usage(model_id, dataset, dataset_name, dataset_type)`` is
``session.record_dataset(dataset, name, dataset_type)``, and ``complete_training_session(model_id,
model_version, hyperparameters, training_metrics, validation_metrics)`` is
``session.complete(model_version=, hyperparameters=, training_metrics=, validation_metrics=,
artifact=)``. Metrics and configurations pass through `govledger.values.to_json` (numpy and
pandas values are taken by value).

``verify(metadata_path, client or log_key=)`` recomputes every fingerprint and compares it with
metadata.json and with the logged entry, proven by its receipt.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .client import Client, ServerError
from .dataset import fingerprint_dataframe, fingerprint_dataset, hash_file
from .note import VerifierKey
from .receipt import ReceiptError, VerifiedReceipt, verify_receipt
from .values import to_json

PathLike = Union[str, "os.PathLike[str]"]

DATASET_TYPES = ("training", "validation", "test")
MAX_DATASETS = 64
# The body's optional objects, in the order the CLI inserts them (JSON files in the CLI).
OBJECTS = ("validation_metrics", "training_metrics", "training_config", "hyperparameters", "dependencies")
# The receipt fields the CLI writes into metadata.json (ledger_format::receipt::Receipt).
RECEIPT_FIELDS = ("index", "leaf_hash", "leaf", "tree_size", "root", "proof", "checkpoint")
DATAFRAME_METHOD = "pandas-csv-v1"


def dumps(metadata: Dict[str, Any]) -> str:
    """Returns metadata.json's text as the CLI writes it (serde_json's pretty form: members
    sorted, two-space indent, UTF-8 unescaped, a final newline)."""
    return json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def metadata_path_for(artifact: PathLike, given: Optional[PathLike] = None) -> str:
    """Returns where metadata.json goes: `given`, else beside the artifact."""
    if given is not None:
        return os.fspath(given)
    return os.path.join(os.path.dirname(os.fspath(artifact)), "metadata.json")


def _is_dataframe(value: Any) -> bool:
    return hasattr(value, "to_csv") and not isinstance(value, (str, bytes, os.PathLike))


def _fingerprint(dataset: Any) -> Tuple[Dict[str, Any], Optional[str]]:
    """Returns a dataset's fingerprint and the path recorded for it (None for a DataFrame)."""
    if _is_dataframe(dataset):
        return fingerprint_dataframe(dataset), None
    if isinstance(dataset, (str, os.PathLike)):
        path = os.fspath(dataset)
        return fingerprint_dataset(path), path
    raise TypeError(f"a dataset is a path (file or directory) or a pandas DataFrame, not a {type(dataset).__name__}")


@dataclass(frozen=True)
class LineageRecord:
    """What `complete` logged: the receipt, the body submitted and metadata.json as written."""

    receipt: Dict[str, Any]
    body: Dict[str, Any]
    metadata: Dict[str, Any]
    metadata_path: str

    @property
    def leaf_hash(self) -> str:
        return self.receipt["leaf_hash"]

    @property
    def index(self) -> int:
        return int(self.receipt["index"])

    @property
    def artifact_sha256(self) -> str:
        return self.metadata["artifact"]["sha256"]

    @property
    def dataset_sha256(self) -> List[str]:
        """The datasets' digests in order, as `request_approval` (and `govledger request
        --metadata`) take them."""
        return [d["sha256"] for d in self.metadata["datasets"]]


class _Session:
    """The part of a training session that does no network I/O: the datasets recorded so far,
    the lineage body and metadata.json. `TrainingSession` and `AsyncTrainingSession` add the
    submission."""

    def __init__(self, model_id: str, model_name: Optional[str], model_type: Optional[str],
                 created_by: Optional[str]):
        self.model_id = model_id
        self.model_name = model_name
        self.model_type = model_type
        # The CLI's default: $USER, else "unknown".
        self.created_by = created_by or os.environ.get("USER") or "unknown"
        self.datasets: List[Dict[str, Any]] = []
        self.record: Optional[LineageRecord] = None

    def record_dataset(self, dataset: Any, name: str, dataset_type: str = "training",
                       transformations: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """Fingerprints `dataset` now (a file or directory path, or a pandas DataFrame, whose
        later changes then do not count) and returns what metadata.json will hold for it. The
        hashing runs in the calling thread: on an event loop, wrap a large dataset's call in
        `asyncio.to_thread`."""
        if self.record is not None:
            raise RuntimeError(f"the training session of {self.model_id} is complete")
        if dataset_type not in DATASET_TYPES:
            raise ValueError(f"dataset {name}: the type is training, validation or test, not {dataset_type!r}")
        if not name:
            raise ValueError("a dataset needs a name")
        if any(d["name"] == name for d in self.datasets):
            raise ValueError(f"dataset {name} is recorded already: verification finds datasets by name")
        if len(self.datasets) >= MAX_DATASETS:
            raise ValueError(f"a lineage entry holds at most {MAX_DATASETS} datasets")
        fp, path = _fingerprint(dataset)
        item = {"name": name, "type": dataset_type, "path": path, "sha256": fp["sha256"],
                "size_bytes": fp["size_bytes"], "files": fp["files"], "method": fp["method"]}
        if transformations:
            item["transformations"] = list(transformations)
        self.datasets.append(item)
        return item

    def _build(self, model_version: str, artifact: PathLike, objects: Dict[str, Any],
               code: Optional[Tuple[str, str]], parent: Optional[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """Returns the lineage body and metadata.json without its `lineage` member, field for
        field as the CLI builds them (clients/rust/src/lineage.rs `build`)."""
        if self.record is not None:
            raise RuntimeError(f"the training session of {self.model_id} is complete")
        if not self.datasets:
            raise ValueError(f"the training session of {self.model_id} recorded no dataset (a lineage needs one)")
        converted = {}
        for name in OBJECTS:
            value = objects.get(name)
            if value is None:
                continue
            value = to_json(value, name)
            if not isinstance(value, dict):
                raise ValueError(f"{name}: must be an object (name to value), not {type(value).__name__}")
            converted[name] = value
        art_hex, art_size = hash_file(os.fspath(artifact))
        art = {"path": os.path.basename(os.fspath(artifact)), "sha256": f"sha256:{art_hex}", "size_bytes": art_size}
        body: Dict[str, Any] = {"model_id": self.model_id, "model_version": model_version}
        if self.model_name is not None:
            body["model_name"] = self.model_name
        if self.model_type is not None:
            body["model_type"] = self.model_type
        body["created_by"] = self.created_by
        body.update(converted)
        body["datasets"] = [{k: d[k] for k in ("name", "type", "sha256", "size_bytes", "files", "method",
                                                "transformations") if k in d} for d in self.datasets]
        body["artifact"] = dict(art)
        if code is not None:
            repo, commit = code
            body["code"] = {"repo": repo, "commit": commit}
        if parent is not None:
            body["parent"] = parent
        meta = {"model_id": self.model_id, "model_version": model_version, "artifact": art,
                "datasets": [{k: d[k] for k in ("name", "type", "path", "sha256", "size_bytes", "files", "method")}
                             for d in self.datasets]}
        return body, meta

    def _finish(self, receipt: Dict[str, Any], body: Dict[str, Any], meta: Dict[str, Any], artifact: PathLike,
                metadata_path: Optional[PathLike]) -> LineageRecord:
        """Writes metadata.json with the receipt and returns the record."""
        meta["lineage"] = {"leaf_hash": receipt["leaf_hash"], "index": receipt["index"],
                           "receipt": {k: receipt[k] for k in RECEIPT_FIELDS}}
        path = metadata_path_for(artifact, metadata_path)
        _write_atomically(path, dumps(meta))
        self.record = LineageRecord(receipt, body, meta, path)
        return self.record

    def _check_completed(self, exc_type: Any) -> None:
        """On leaving a `with` block: leaving it normally without `complete` is an error (the
        lineage was never logged); an exception in the block is left as it is."""
        if exc_type is None and self.record is None:
            raise RuntimeError(f"the training session of {self.model_id} ended without complete(): nothing was logged")


def _write_atomically(path: str, text: str) -> None:
    # A crash leaves the old metadata.json or the new one, never half of one: the entry is
    # logged either way, and its receipt can be fetched again by leaf hash.
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".metadata.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class TrainingSession(_Session):
    """A model's training session on a `govledger.Client` (`client.training_session(...)`)."""

    def __init__(self, client: Any, model_id: str, model_name: Optional[str] = None,
                 model_type: Optional[str] = None, created_by: Optional[str] = None):
        super().__init__(model_id, model_name, model_type, created_by)
        self.client = client

    def __enter__(self) -> "TrainingSession":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._check_completed(exc_type)

    def complete(self, *, model_version: str, artifact: PathLike, hyperparameters: Optional[Mapping[str, Any]] = None,
                 training_metrics: Optional[Mapping[str, Any]] = None,
                 validation_metrics: Optional[Mapping[str, Any]] = None,
                 training_config: Optional[Mapping[str, Any]] = None, dependencies: Optional[Mapping[str, str]] = None,
                 code: Optional[Tuple[str, str]] = None, parent: Optional[str] = None,
                 entry_id: Optional[str] = None, metadata_path: Optional[PathLike] = None) -> LineageRecord:
        """Hashes the artifact, submits the lineage entry (its receipt verified when the client
        pins the log key) and writes metadata.json (default: beside the artifact). `code` is
        `(repo, commit)`; `parent` the leaf hash of the lineage this model derives from."""
        objects = {"validation_metrics": validation_metrics, "training_metrics": training_metrics,
                   "training_config": training_config, "hyperparameters": hyperparameters,
                   "dependencies": dependencies}
        body, meta = self._build(model_version, artifact, objects, code, parent)
        receipt = self.client.submit_lineage(body, entry_id)
        return self._finish(receipt, body, meta, artifact, metadata_path)


class AsyncTrainingSession(_Session):
    """A model's training session on a `govledger.aio.AsyncClient`: `record_dataset` as in
    `TrainingSession`, `await complete(...)` (the artifact hashed in a worker thread), and
    `async with` in place of `with`."""

    def __init__(self, client: Any, model_id: str, model_name: Optional[str] = None,
                 model_type: Optional[str] = None, created_by: Optional[str] = None):
        super().__init__(model_id, model_name, model_type, created_by)
        self.client = client

    async def __aenter__(self) -> "AsyncTrainingSession":
        return self

    async def __aexit__(self, exc_type: Any, *exc: Any) -> None:
        self._check_completed(exc_type)

    async def complete(self, *, model_version: str, artifact: PathLike,
                       hyperparameters: Optional[Mapping[str, Any]] = None,
                       training_metrics: Optional[Mapping[str, Any]] = None,
                       validation_metrics: Optional[Mapping[str, Any]] = None,
                       training_config: Optional[Mapping[str, Any]] = None,
                       dependencies: Optional[Mapping[str, str]] = None, code: Optional[Tuple[str, str]] = None,
                       parent: Optional[str] = None, entry_id: Optional[str] = None,
                       metadata_path: Optional[PathLike] = None) -> LineageRecord:
        """`TrainingSession.complete`, awaited."""
        objects = {"validation_metrics": validation_metrics, "training_metrics": training_metrics,
                   "training_config": training_config, "hyperparameters": hyperparameters,
                   "dependencies": dependencies}
        body, meta = await asyncio.to_thread(self._build, model_version, artifact, objects, code, parent)
        receipt = await self.client.submit_lineage(body, entry_id)
        return self._finish(receipt, body, meta, artifact, metadata_path)


# -- verification ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One comparison: `name` is `receipt`, `dataset <name>` or `artifact`."""

    ok: bool
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'MISMATCH'} {self.name}: {self.detail}"


@dataclass(frozen=True)
class LineageVerification:
    """Every check `verify` made. `proven` says whether the logged entry was compared too (its
    receipt verified against the log key); without it, only metadata.json was."""

    metadata_path: str
    leaf_hash: str
    proven: bool
    checks: List[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> List[Check]:
        return [c for c in self.checks if not c.ok]

    def __str__(self) -> str:
        lines = [str(c) for c in self.checks]
        if not self.proven:
            lines.append("(compared with metadata.json only: give a client or log_key to compare with the log)")
        return "\n".join(lines)


Datasets = Optional[Mapping[str, Any]]


def _load(metadata_path: PathLike) -> Dict[str, Any]:
    with open(metadata_path, "rb") as f:
        meta = json.loads(f.read())
    for member in ("model_id", "artifact", "datasets", "lineage"):
        if member not in meta:
            raise ValueError(f"{os.fspath(metadata_path)}: not a metadata.json of govledger lineage (no {member})")
    return meta


def _logged_body(v: VerifiedReceipt, meta: Dict[str, Any], source: str) -> Tuple[Check, Optional[Dict[str, Any]]]:
    """The receipt check, and the logged lineage body when the entry is the model's lineage."""
    want = meta["lineage"]["leaf_hash"]
    if v.leaf_hash.hex() != want:
        return Check(False, "receipt", f"{source} proves {v.leaf_hash.hex()}, metadata.json names {want}"), None
    if v.leaf is None or v.leaf.kind_name != "lineage":
        return Check(False, "receipt", f"entry {want} is not a lineage entry"), None
    body = v.leaf.json()
    if body.get("model_id") != meta["model_id"]:
        return Check(False, "receipt", f"entry {want} is a lineage of model {body.get('model_id')!r}, "
                                       f"not of {meta['model_id']!r}"), None
    return Check(True, "receipt", f"lineage {want} (index {v.index}, model {meta['model_id']} version "
                                  f"{body.get('model_version', '?')}) proven in the tree of size "
                                  f"{v.checkpoint.size} ({source})"), body


def _side(label: str, sha: str, method: Optional[str], computed: str) -> Tuple[bool, str]:
    same = sha == computed
    return same, f"{label} {sha} ({method or 'unknown'}){'' if same else ' DIFFERS'}"


def _dataset_check(name: str, recorded: Optional[Dict[str, Any]], logged: Optional[Dict[str, Any]],
                   given: Any) -> Check:
    """Compares one dataset, from `given` (a path or a DataFrame) or its recorded path, with
    what metadata.json (`recorded`) and the log (`logged`) hold."""
    label = f"dataset {name}"
    ref = recorded or logged or {}
    method = ref.get("method", "unknown")
    if recorded is None and given is None:
        return Check(False, label, "logged but missing from metadata.json")
    if given is None:
        given = recorded.get("path") or None
    if given is None:
        hint = (f"a DataFrame fingerprint: pass the same DataFrame as datasets={{{name!r}: df}}"
                if method == DATAFRAME_METHOD else f"pass datasets={{{name!r}: path}}")
        return Check(False, label, f"no path is recorded for it (recorded as {method}); {hint}")
    where = "the DataFrame given" if _is_dataframe(given) else os.fspath(given)
    try:
        fp, _ = _fingerprint(given)
    except (OSError, ValueError, TypeError) as e:
        return Check(False, label, f"{where}: {e}")
    sides = []
    if recorded is not None:
        sides.append(_side("metadata.json", recorded.get("sha256", ""), recorded.get("method"), fp["sha256"]))
    if logged is not None:
        sides.append(_side("logged", logged.get("sha256", ""), logged.get("method"), fp["sha256"]))
    ok = all(same for same, _ in sides) and bool(sides)
    text = f"{where}: computed {fp['sha256']} ({fp['method']})"
    if not ok:
        text += "; " + "; ".join(s for _, s in sides)
    return Check(ok, label, text)


def _file_checks(meta: Dict[str, Any], metadata_path: str, logged: Optional[Dict[str, Any]],
                 datasets: Datasets, artifact: Optional[PathLike]) -> List[Check]:
    """The dataset and artifact checks. Recorded dataset paths are read as the CLI reads them,
    relative to the current directory; the artifact, unless given, is the file metadata.json
    names beside it."""
    given = dict(datasets or {})
    logged_sets = {d.get("name"): d for d in (logged or {}).get("datasets", [])}
    checks = []
    names = [d["name"] for d in meta["datasets"]]
    for d in meta["datasets"]:
        in_log = logged_sets.get(d["name"])
        if logged is not None and in_log is None:
            checks.append(Check(False, f"dataset {d['name']}", "in metadata.json but not in the logged lineage"))
            continue
        checks.append(_dataset_check(d["name"], d, in_log, given.pop(d["name"], None)))
    for name in logged_sets:
        if name not in names:
            checks.append(_dataset_check(name, None, logged_sets[name], given.pop(name, None)))
    for name in given:
        checks.append(Check(False, f"dataset {name}", "given, but neither metadata.json nor the log records it"))
    art = os.fspath(artifact) if artifact is not None else os.path.join(os.path.dirname(metadata_path),
                                                                        meta["artifact"]["path"])
    try:
        hexd, _ = hash_file(art)
    except OSError as e:
        checks.append(Check(False, "artifact", f"{art}: {e}"))
        return checks
    have = f"sha256:{hexd}"
    sides = [_side("metadata.json", meta["artifact"].get("sha256", ""), "file", have)]
    if logged is not None:
        sides.append(_side("logged", logged.get("artifact", {}).get("sha256", ""), "file", have))
    ok = all(same for same, _ in sides)
    checks.append(Check(ok, "artifact", f"{art}: computed {have} (file)" + ("" if ok else "; " + "; ".join(
        s for _, s in sides))))
    return checks


def _offline_proof(meta: Dict[str, Any], log_key: Union[str, VerifierKey]) -> Tuple[Check, Optional[Dict[str, Any]]]:
    try:
        v = verify_receipt(meta["lineage"]["receipt"], log_key)
    except ReceiptError as e:
        return Check(False, "receipt", f"metadata.json's receipt does not verify: {e}"), None
    return _logged_body(v, meta, "metadata.json's receipt")


def _not_found(e: ServerError, meta: Dict[str, Any]) -> Check:
    """A 404 for the entry is the check's answer (the log does not hold it); other refusals raise."""
    if e.status != 404:
        raise e
    return Check(False, "receipt", f"the log holds no entry {meta['lineage']['leaf_hash']}: {e.message or e}")


def _fetch(receipt_of: Any, meta: Dict[str, Any]) -> Union[Dict[str, Any], Check]:
    try:
        return receipt_of(meta["lineage"]["leaf_hash"])
    except ServerError as e:
        return _not_found(e, meta)


def verify(metadata_path: PathLike, client: Any = None, *, log_key: Optional[Union[str, VerifierKey]] = None,
           datasets: Datasets = None, artifact: Optional[PathLike] = None) -> LineageVerification:
    """Recomputes the fingerprint of every dataset and of the artifact metadata.json lists and
    compares each with metadata.json and, given a `client` (a `govledger.Client` or a URL) or a
    `log_key`, with the logged lineage entry, proven by its receipt: with a client, the server's
    receipt for metadata.json's leaf hash, verified against the client's pinned key (or, as the
    CLI does, the key the server announces; `log_key` overrides); with `log_key` alone, offline,
    the receipt metadata.json holds.

    `datasets` maps a dataset's name to the path or DataFrame to use in place of the recorded
    path: a DataFrame has no path, so it must be given. Returns every check; raises only when
    metadata.json cannot be read, or the server cannot be reached."""
    path = os.fspath(metadata_path)
    meta = _load(path)
    proof: Optional[Check] = None
    logged = None
    if client is not None:
        c = Client(client) if isinstance(client, str) else client
        try:
            receipt = _fetch(c.receipt, meta)
            if isinstance(receipt, Check):
                proof = receipt
            else:
                try:
                    if log_key is not None:
                        v = verify_receipt(receipt, log_key)
                    elif c.log_key is not None:
                        v = c._verify(receipt)
                    else:
                        v = verify_receipt(receipt, c.log_info()["verifier_key"])
                    proof, logged = _logged_body(v, meta, "the server's receipt")
                except ReceiptError as e:
                    proof = Check(False, "receipt", f"the server's receipt does not verify: {e}")
        finally:
            if c is not client:
                c.session.close()
    elif log_key is not None:
        proof, logged = _offline_proof(meta, log_key)
    return _result(path, meta, proof, logged, datasets, artifact)


async def averify(metadata_path: PathLike, client: Any = None, *, log_key: Optional[Union[str, VerifierKey]] = None,
                  datasets: Datasets = None, artifact: Optional[PathLike] = None) -> LineageVerification:
    """`verify` with a `govledger.aio.AsyncClient` (the hashing runs in a worker thread)."""
    path = os.fspath(metadata_path)
    meta = await asyncio.to_thread(_load, path)
    proof: Optional[Check] = None
    logged = None
    if client is not None:
        try:
            receipt = await client.receipt(meta["lineage"]["leaf_hash"])
        except ServerError as e:
            proof = _not_found(e, meta)
        else:
            try:
                if log_key is not None:
                    v = verify_receipt(receipt, log_key)
                elif client.log_key is not None:
                    v = await client._verify(receipt)
                else:
                    v = verify_receipt(receipt, (await client.log_info())["verifier_key"])
                proof, logged = _logged_body(v, meta, "the server's receipt")
            except ReceiptError as e:
                proof = Check(False, "receipt", f"the server's receipt does not verify: {e}")
    elif log_key is not None:
        proof, logged = _offline_proof(meta, log_key)
    return await asyncio.to_thread(_result, path, meta, proof, logged, datasets, artifact)


def _result(path: str, meta: Dict[str, Any], proof: Optional[Check], logged: Optional[Dict[str, Any]],
            datasets: Datasets, artifact: Optional[PathLike]) -> LineageVerification:
    checks = [proof] if proof is not None else []
    checks += _file_checks(meta, path, logged, datasets, artifact)
    return LineageVerification(path, meta["lineage"]["leaf_hash"], logged is not None, checks)
