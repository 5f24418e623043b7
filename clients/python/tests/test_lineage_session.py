"""Training sessions (govledger.lineage) against a real govledgerd, and their metadata.json against
the Rust CLI: `govledger lineage verify` and `govledger request --metadata` accept it, and it is
the file `govledger lineage` writes for the same inputs."""

import asyncio
import base64
import json
import os
import subprocess

import pytest

from govledger import Client, fingerprint_dataset, verify_receipt
from govledger.aio import AsyncClient
from govledger.lineage import dumps, verify

from .conftest import binary

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")


@pytest.fixture
def client(server):
    return Client(server["url"], log_key=server["log_key"])


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A training file, a validation directory and an artifact, named relative to the working
    directory (tmp_path), as a training script names them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "holdout" / "2024").mkdir(parents=True)
    (tmp_path / "data" / "md.csv").write_text("ts,px\n1,100\n2,101\n")
    (tmp_path / "data" / "holdout" / "a.csv").write_text("ts,px\n3,102\n")
    (tmp_path / "data" / "holdout" / "2024" / "b.csv").write_bytes(b"\x00binary")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "policy.pt").write_bytes(b"weights" * 100)
    return tmp_path


def frame():
    return pd.DataFrame({"px": [100.25, 1 / 3], "qty": [1, 2]})


def run_cli(*args, check=True):
    out = subprocess.run([binary("govledger"), *args], capture_output=True, text=True)
    if check and out.returncode != 0:
        pytest.fail(f"govledger {' '.join(args)}: exit {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


def signer_key_file(path, key):
    """Writes `key` as `govledger keygen` does: PRIVATE+KEY+name+key id+base64(0x01 || seed)."""
    encoded = base64.b64encode(bytes([1]) + key.seed).decode()
    text = f"PRIVATE+KEY+{key.name}+{key.verifier().key_id:08x}+{encoded}\n"
    path.write_text(text)
    os.chmod(path, 0o600)
    return str(path)


def three_kinds(client, model_id, **complete):
    with client.training_session(model_id, model_name="ppo", model_type="rl", created_by="trainer") as s:
        s.record_dataset("data/md.csv", "market_data_2024", "training")
        s.record_dataset("data/holdout", "holdout", "validation")
        s.record_dataset(frame(), "features", "test")
        record = s.complete(model_version="3", artifact="model/policy.pt",
                            hyperparameters={"lr": np.float64(3e-4), "layers": np.int64(4)},
                            training_metrics={"loss": np.float32(0.5)},
                            validation_metrics={"sharpe": 1.9, "n": 3}, **complete)
    return record


def test_a_session_records_a_file_a_directory_and_a_dataframe(client, server, files):
    record = three_kinds(client, "py-session-1")
    v = verify_receipt(record.receipt, server["log_key"])
    body = v.leaf.json()
    assert v.leaf.kind_name == "lineage" and body == record.body
    assert [(d["name"], d["type"], d["method"], d["files"]) for d in body["datasets"]] == [
        ("market_data_2024", "training", "file", 1), ("holdout", "validation", "directory", 2),
        ("features", "test", "pandas-csv-v1", 1)]
    assert body["hyperparameters"] == {"lr": 3e-4, "layers": 4} and body["training_metrics"] == {"loss": 0.5}
    assert body["artifact"]["path"] == "policy.pt" and body["created_by"] == "trainer"
    assert record.metadata_path == os.path.join("model", "metadata.json")
    text = (files / "model" / "metadata.json").read_text()
    meta = json.loads(text)
    assert text == dumps(meta) and meta == record.metadata
    assert [d["path"] for d in meta["datasets"]] == ["data/md.csv", "data/holdout", None]
    assert meta["lineage"]["leaf_hash"] == record.leaf_hash and meta["lineage"]["index"] == record.index
    assert record.dataset_sha256 == [d["sha256"] for d in body["datasets"]]

    # A DataFrame has no path: verification says so, and takes the DataFrame.
    result = verify(record.metadata_path, client)
    assert not result.ok and result.proven
    (fail,) = result.failures
    assert fail.name == "dataset features"
    assert "no path is recorded for it (recorded as pandas-csv-v1)" in fail.detail
    assert "datasets={'features': df}" in fail.detail
    result = verify(record.metadata_path, client, datasets={"features": frame()})
    assert result.ok, str(result)
    assert [c.name for c in result.checks] == ["receipt", "dataset market_data_2024", "dataset holdout",
                                               "dataset features", "artifact"]
    # Offline, from the receipt metadata.json holds; and from a URL with the announced key.
    assert verify(record.metadata_path, log_key=server["log_key"], datasets={"features": frame()}).ok
    assert verify(record.metadata_path, server["url"], datasets={"features": frame()}).ok
    unproven = verify(record.metadata_path, datasets={"features": frame()})
    assert unproven.ok and not unproven.proven and "receipt" not in [c.name for c in unproven.checks]


def test_the_cli_accepts_the_python_metadata(client, server, people, files):
    record = three_kinds(client, "py-session-cli")
    common = ["--url", server["url"], "--model-id", "py-session-cli", "--log-key", server["log_key"]]
    # Datasets from metadata.json: the file and the directory verify; the DataFrame is named.
    out = run_cli("lineage", "verify", *common, "--metadata", record.metadata_path, "--artifact", "model/policy.pt",
                  check=False)
    assert out.returncode == 1, out
    assert "ok   dataset market_data_2024 (data/md.csv)" in out.stdout
    assert "ok   dataset holdout (data/holdout)" in out.stdout
    assert "ok   artifact (model/policy.pt)" in out.stdout
    assert "dataset features: no path is recorded for it (logged as pandas-csv-v1" in out.stdout + out.stderr
    assert "1 mismatch" in out.stdout + out.stderr
    # The datasets with a path, named: every comparison holds.
    run_cli("lineage", "verify", *common, "--lineage", record.leaf_hash, "--metadata", record.metadata_path,
            "--dataset", "market_data_2024=data/md.csv", "--dataset", "holdout=data/holdout",
            "--artifact", "model/policy.pt")

    # `govledger request --metadata` takes the model, artifact, datasets and lineage from it.
    key = signer_key_file(files / "alice.key", people["alice"])
    out = run_cli("request", "--url", server["url"], "--key", key, "--metadata", record.metadata_path)
    receipt = json.loads(out.stdout)
    statement = verify_receipt(receipt, server["log_key"]).leaf.json()["statement"]
    assert statement["model_id"] == "py-session-cli" and statement["requested_by"] == "alice"
    assert statement["lineage"] == record.leaf_hash
    assert statement["artifact_sha256"] == record.artifact_sha256
    assert statement["dataset_sha256"] == record.dataset_sha256
    assert client.approval_status(receipt["leaf_hash"])["status"] == "pending"


def test_python_metadata_equals_the_clis_for_the_same_files(client, server, files):
    (files / "val.json").write_text(json.dumps({"sharpe": 1.9, "hit_rate": 0.5, "n": 3}))
    (files / "train.json").write_text(json.dumps({"loss": 0.25}))
    (files / "hp.json").write_text(json.dumps({"lr": 0.0003, "gamma": 0.99, "layers": [64, 64]}))
    (files / "config.json").write_text(json.dumps({"seed": 7, "épisodes": "1000"}))
    (files / "deps.json").write_text(json.dumps({"torch": "2.4.0"}))
    (files / "cli").mkdir()
    commit = "a" * 40
    run_cli("lineage", "--url", server["url"], "--model-id", "diff-model", "--model-version", "7",
            "--model-name", "ppo", "--model-type", "rl", "--created-by", "trainer",
            "--dataset", "training:market_data_2024=data/md.csv", "--dataset", "validation:holdout=data/holdout/",
            "--artifact", "model/policy.pt", "--metrics", "val.json", "--training-metrics", "train.json",
            "--hyperparameters", "hp.json", "--training-config", "config.json", "--dependencies", "deps.json",
            "--code-repo", "acme/models", "--code-commit", commit, "--metadata", "cli/metadata.json")
    parent = json.loads((files / "cli" / "metadata.json").read_text())["lineage"]["leaf_hash"]
    run_cli("lineage", "--url", server["url"], "--model-id", "diff-model", "--model-version", "8",
            "--created-by", "trainer", "--dataset", "training:market_data_2024=data/md.csv",
            "--artifact", "model/policy.pt", "--parent", parent, "--metadata", "cli/child.json")

    with client.training_session("diff-model", model_name="ppo", model_type="rl", created_by="trainer") as s:
        s.record_dataset("data/md.csv", "market_data_2024", "training")
        s.record_dataset("data/holdout/", "holdout", "validation")
        s.complete(model_version="7", artifact="model/policy.pt",
                   validation_metrics={"sharpe": 1.9, "hit_rate": np.float64(0.5), "n": np.int64(3)},
                   training_metrics={"loss": 0.25}, hyperparameters={"lr": 0.0003, "gamma": 0.99, "layers": (64, 64)},
                   training_config={"seed": 7, "épisodes": "1000"}, dependencies={"torch": "2.4.0"},
                   code=("acme/models", commit))
    with client.training_session("diff-model", created_by="trainer") as s:
        s.record_dataset("data/md.csv", "market_data_2024", "training")
        s.complete(model_version="8", artifact="model/policy.pt", parent=parent, metadata_path="model/child.json")

    for cli_name, py_name in (("cli/metadata.json", "model/metadata.json"), ("cli/child.json", "model/child.json")):
        cli_text, py_text = (files / cli_name).read_text(), (files / py_name).read_text()
        cli, py = json.loads(cli_text), json.loads(py_text)
        # The same text layout: each is exactly `dumps` of its content.
        assert cli_text == dumps(cli) and py_text == dumps(py)
        # Field for field, but for the receipt (another entry, logged at another time).
        cli_lineage, py_lineage = cli.pop("lineage"), py.pop("lineage")
        assert py == cli
        assert sorted(py_lineage) == sorted(cli_lineage) == ["index", "leaf_hash", "receipt"]
        assert sorted(py_lineage["receipt"]) == sorted(cli_lineage["receipt"])
        cli_leaf = verify_receipt(cli_lineage["receipt"], server["log_key"]).leaf
        py_leaf = verify_receipt(py_lineage["receipt"], server["log_key"]).leaf
        assert py_leaf.kind == cli_leaf.kind
        assert py_leaf.json() == cli_leaf.json()


def test_verify_names_the_path_and_methods_of_a_mismatch(client, server, files):
    with client.training_session("py-mismatch", created_by="trainer") as s:
        s.record_dataset("data/md.csv", "md", "training")
        s.record_dataset("data/holdout", "holdout", "validation")
        s.record_dataset(frame(), "features", "test")
        record = s.complete(model_version="1", artifact="model/policy.pt")
    (files / "data" / "md.csv").write_text("ts,px\n1,100\n2,999\n")
    (files / "data" / "holdout" / "2024" / "c.csv").write_text("new\n")
    changed = frame()
    changed.loc[0, "px"] = 100.5
    result = verify(record.metadata_path, client, datasets={"features": changed})
    assert not result.ok
    fails = {c.name: c.detail for c in result.failures}
    assert sorted(fails) == ["dataset features", "dataset holdout", "dataset md"]
    md = fails["dataset md"]
    assert md.startswith("data/md.csv: computed sha256:") and "(file)" in md
    assert "metadata.json sha256:" in md and "logged sha256:" in md and "DIFFERS" in md
    assert "data/holdout: computed" in fails["dataset holdout"] and "(directory)" in fails["dataset holdout"]
    assert "the DataFrame given: computed" in fails["dataset features"]
    assert "(pandas-csv-v1) DIFFERS" in fails["dataset features"]
    # The CLI sees the same files the same way.
    out = run_cli("lineage", "verify", "--url", server["url"], "--model-id", "py-mismatch", "--lineage",
                  record.leaf_hash, "--dataset", "md=data/md.csv", check=False)
    assert out.returncode == 1 and "dataset md (data/md.csv): logged sha256:" in out.stdout + out.stderr
    assert "(file), computed sha256:" in out.stdout + out.stderr

    # metadata.json edited to match the new file: the logged entry still disagrees.
    meta = json.loads((files / "model" / "metadata.json").read_text())
    now = fingerprint_dataset("data/md.csv")["sha256"]
    meta["datasets"][0]["sha256"] = now
    (files / "model" / "metadata.json").write_text(dumps(meta))
    offline = verify(record.metadata_path, log_key=server["log_key"], datasets={"features": frame()})
    md = {c.name: c for c in offline.checks}["dataset md"]
    assert not md.ok and "logged sha256:" in md.detail and md.detail.endswith("DIFFERS")
    assert f"computed {now} (file); metadata.json {now} (file); logged sha256:" in md.detail

    # A changed artifact, and metadata.json's receipt swapped for another entry's.
    (files / "model" / "policy.pt").write_bytes(b"other weights")
    art = {c.name: c for c in verify(record.metadata_path, client).checks}["artifact"]
    assert not art.ok and art.detail.startswith(os.path.join("model", "policy.pt") + ": computed")
    other = client.submit_audit("X", "c", "a", {}, ["SOX"])
    meta["lineage"]["receipt"] = other
    (files / "model" / "metadata.json").write_text(dumps(meta))
    receipt = verify(record.metadata_path, log_key=server["log_key"]).checks[0]
    assert receipt.name == "receipt" and not receipt.ok and "metadata.json names" in receipt.detail
    # An entry the log does not hold.
    meta["lineage"]["leaf_hash"] = "0" * 64
    (files / "model" / "metadata.json").write_text(dumps(meta))
    receipt = verify(record.metadata_path, client).checks[0]
    assert not receipt.ok and receipt.detail.startswith("the log holds no entry " + "0" * 64)


def test_async_session(server, files):
    async def main():
        async with AsyncClient(server["url"], log_key=server["log_key"]) as c:
            async with c.training_session("py-async", created_by="trainer") as s:
                s.record_dataset("data/holdout", "holdout", "validation")
                s.record_dataset(frame(), "features", "training")
                record = await s.complete(model_version="2", artifact="model/policy.pt",
                                          validation_metrics={"sharpe": np.float64(1.5)})
            from govledger.lineage import averify
            return record, await averify(record.metadata_path, c, datasets={"features": frame()})

    record, result = asyncio.run(main())
    assert result.ok and result.proven, str(result)
    assert verify_receipt(record.receipt, server["log_key"]).leaf.json()["validation_metrics"] == {"sharpe": 1.5}
    assert verify(record.metadata_path, server["url"], datasets={"features": frame()}).ok


def test_session_misuse_is_refused_before_anything_is_logged(client, files):
    s = client.training_session("py-misuse")
    with pytest.raises(ValueError, match="recorded no dataset"):
        s.complete(model_version="1", artifact="model/policy.pt")
    with pytest.raises(ValueError, match="training, validation or test"):
        s.record_dataset("data/md.csv", "md", "train")
    s.record_dataset("data/md.csv", "md")
    with pytest.raises(ValueError, match="recorded already"):
        s.record_dataset("data/holdout", "md")
    with pytest.raises(TypeError, match="a path .* or a pandas DataFrame"):
        s.record_dataset(42, "n")
    with pytest.raises(ValueError, match=r"validation_metrics.sharpe: nan"):
        s.complete(model_version="1", artifact="model/policy.pt", validation_metrics={"sharpe": float("nan")})
    with pytest.raises(ValueError, match="hyperparameters: must be an object"):
        s.complete(model_version="1", artifact="model/policy.pt", hyperparameters=[1, 2])
    with pytest.raises(FileNotFoundError):
        s.complete(model_version="1", artifact="model/missing.pt")
    assert not os.path.exists("model/metadata.json")
    with pytest.raises(RuntimeError, match="ended without complete"):
        with client.training_session("py-misuse") as s2:
            s2.record_dataset("data/md.csv", "md")
    record = s.complete(model_version="1", artifact="model/policy.pt")
    with pytest.raises(RuntimeError, match="complete"):
        s.record_dataset("data/holdout", "holdout")
    with pytest.raises(RuntimeError, match="complete"):
        s.complete(model_version="1", artifact="model/policy.pt")
    assert os.path.exists(record.metadata_path)
