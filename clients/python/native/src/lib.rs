//! `govledger._native`: the deploy gate for Python, evaluated by the same code as
//! `govledger gate` (`govledger_client::gate::run` over `ledger_format::approval`), so the
//! Python gate and the CLI cannot disagree. The Python side (`govledger.gate`) turns the
//! report into a `Verdict`.

use std::path::PathBuf;

use govledger_client::gate::{run, BundleInput, GateArgs, Sources};
use govledger_client::github::App;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _native,
    GateError,
    PyException,
    "The gate could not decide (a usage or I/O error: `govledger gate` exits 2)."
);

/// Runs the gate and returns its report as `govledger gate --json` prints it. `bundle` is the
/// bundle's bytes, `bundle_path` a saved bundle; with neither, the bundle is fetched from
/// `url`. The GIL is released while the gate runs (it may fetch from the server and from
/// GitHub or ServiceNow).
#[pyfunction]
#[pyo3(signature = (policy, request, now_ms, bundle=None, bundle_path=None, url=None,
    artifact=None, recheck_sources=false, github_api=None, github_app_id=None,
    github_app_key=None, github_app_installation=None, servicenow_url=None))]
#[allow(clippy::too_many_arguments)]
fn gate(
    py: Python<'_>,
    policy: PathBuf,
    request: String,
    now_ms: u64,
    bundle: Option<Vec<u8>>,
    bundle_path: Option<PathBuf>,
    url: Option<String>,
    artifact: Option<PathBuf>,
    recheck_sources: bool,
    github_api: Option<String>,
    github_app_id: Option<u64>,
    github_app_key: Option<PathBuf>,
    github_app_installation: Option<u64>,
    servicenow_url: Option<String>,
) -> PyResult<String> {
    let input = match (&bundle, &bundle_path) {
        (Some(bytes), _) => Some(BundleInput::Bytes(bytes)),
        (None, Some(path)) => Some(BundleInput::File(path)),
        (None, None) => None,
    };
    let sources = Sources {
        github_api: github_api.unwrap_or_else(|| "https://api.github.com".into()),
        github_app: github_app_id.zip(github_app_key).map(|(id, key)| App {
            id,
            key,
            installation: github_app_installation,
        }),
        servicenow_url,
    };
    let args = GateArgs {
        policy: &policy,
        bundle: input,
        url: url.as_deref(),
        request: &request,
        artifact: artifact.as_deref(),
        now_ms,
        recheck: recheck_sources,
        sources,
        github_status: false,
    };
    let report = py
        .detach(|| run(&args))
        .map_err(|e| GateError::new_err(format!("{e:#}")))?;
    serde_json::to_string(&report).map_err(|e| GateError::new_err(e.to_string()))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gate, m)?)?;
    m.add("GateError", m.py().get_type::<GateError>())?;
    Ok(())
}
