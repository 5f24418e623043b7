//! The audit report as one self-contained HTML page: inline CSS, an inline SVG chart, tables;
//! no scripts, no external assets.

use serde_json::Value;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => esc(s),
        Value::Null => "—".into(),
        other => esc(&other.to_string()),
    }
}

const KINDS: [(&str, &str); 6] = [
    ("audit", "#4e79a7"),
    ("lineage", "#59a14f"),
    ("approval_request", "#f28e2b"),
    ("approval", "#e15759"),
    ("deployment", "#76b7b2"),
    ("key_event", "#b07aa1"),
];

/// Entries per day, stacked by kind, as an SVG bar chart.
fn chart(by_day: &serde_json::Map<String, Value>) -> String {
    let (w, h, pad) = (760.0, 260.0, 40.0);
    let days: Vec<(&String, &Value)> = by_day.iter().collect();
    let total = |d: &Value| {
        KINDS
            .iter()
            .map(|(k, _)| d[*k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let max = days.iter().map(|(_, d)| total(d)).max().unwrap_or(0).max(1) as f64;
    let n = days.len().max(1) as f64;
    let bw = ((w - 2.0 * pad) / n).min(60.0);
    let mut svg = format!(
        r#"<svg id="entries-chart" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="Entries per day by kind">"#
    );
    svg.push_str(&format!(
        r##"<line x1="{pad}" y1="{y}" x2="{x2}" y2="{y}" stroke="#888"/><text x="4" y="{t}" font-size="11">{max}</text><text x="4" y="{y}" font-size="11">0</text>"##,
        y = h - pad,
        x2 = w - pad,
        t = pad + 4.0
    ));
    for (i, (day, d)) in days.iter().enumerate() {
        let x = pad + i as f64 * bw + 2.0;
        let mut y = h - pad;
        for (kind, color) in KINDS {
            let c = d[kind].as_u64().unwrap_or(0);
            if c == 0 {
                continue;
            }
            let bh = (c as f64 / max) * (h - 2.0 * pad);
            y -= bh;
            svg.push_str(&format!(
                r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{color}"><title>{} {kind}: {c}</title></rect>"#,
                (bw - 4.0).max(1.0),
                esc(day)
            ));
        }
        if days.len() <= 31 {
            svg.push_str(&format!(
                r#"<text x="{x:.1}" y="{:.1}" font-size="9">{}</text>"#,
                h - pad + 14.0,
                esc(&day[5..])
            ));
        }
    }
    let mut lx = pad;
    for (kind, color) in KINDS {
        svg.push_str(&format!(
            r#"<rect x="{lx}" y="6" width="10" height="10" fill="{color}"/><text x="{}" y="15" font-size="11">{kind}</text>"#,
            lx + 14.0
        ));
        lx += 16.0 + kind.len() as f64 * 6.5;
    }
    svg.push_str("</svg>");
    svg
}

fn table(id: &str, headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = format!(r#"<table id="{id}">"#);
    if headers.iter().any(|h| !h.is_empty()) {
        t.push_str("<thead><tr>");
        for h in headers {
            t.push_str(&format!("<th>{}</th>", esc(h)));
        }
        t.push_str("</tr></thead>");
    }
    t.push_str("<tbody>");
    if rows.is_empty() {
        t.push_str(&format!(
            r#"<tr><td colspan="{}">none</td></tr>"#,
            headers.len()
        ));
    }
    for r in rows {
        t.push_str("<tr>");
        for c in r {
            t.push_str(&format!("<td>{c}</td>"));
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// The page's start: doctype, title and the inline style sheet.
const HEAD: &str = r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>govledger audit report</title><style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}code{font-size:.85em;word-break:break-all}.ok{color:#1a7f37}.bad{color:#c62828;font-weight:bold}
</style></head><body>"#;

/// Rows of (name, count) for a JSON object of counts.
fn count_rows(counts: &Value) -> Vec<Vec<String>> {
    counts
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| vec![esc(k), text(v)])
        .collect()
}

/// The verdict line: no anomalies, or how many.
fn verdict(anomalies: &[Value]) -> String {
    if anomalies.is_empty() {
        r#"<p id="verdict" class="ok">No anomalies.</p>"#.to_owned()
    } else {
        format!(
            r#"<p id="verdict" class="bad">{} anomalies (listed below).</p>"#,
            anomalies.len()
        )
    }
}

/// The summary table: log, tree, range, generation time and replay.
fn summary(r: &Value) -> String {
    table(
        "summary",
        &["", ""],
        vec![
            vec!["log".into(), text(&r["origin"])],
            vec!["tree size".into(), text(&r["tree_size"])],
            vec!["root".into(), format!("<code>{}</code>", text(&r["root"]))],
            vec![
                "range".into(),
                format!(
                    "{} to {}",
                    text(&r["range"]["from"]),
                    text(&r["range"]["to"])
                ),
            ],
            vec!["generated".into(), text(&r["generated_at"])],
            vec![
                "replay".into(),
                format!(
                    "{} entries in {:.2} s; {} checkpoint roots recomputed",
                    text(&r["replay"]["entries"]),
                    r["replay"]["seconds"].as_f64().unwrap_or(0.0),
                    text(&r["replay"]["checkpoints_checked"])
                ),
            ],
        ],
    )
}

/// The section "Entries per day, by kind": the chart and the table of entries per kind.
fn entries_section(r: &Value) -> String {
    let empty = serde_json::Map::new();
    let by_day = r["entries"]["by_day"].as_object().unwrap_or(&empty);
    let mut h = String::from("<h2>Entries per day, by kind</h2>");
    h.push_str(&chart(by_day));
    h.push_str(&table(
        "entries-by-kind",
        &["kind", "entries"],
        count_rows(&r["entries"]["by_kind"]),
    ));
    h
}

/// The section "Audit events by compliance tag".
fn tags_section(r: &Value) -> String {
    let mut h = String::from("<h2>Audit events by compliance tag</h2>");
    h.push_str(&table(
        "tags",
        &["tag", "events"],
        count_rows(&r["audit_events_by_tag"]),
    ));
    h
}

/// One row of the models table: model, version, entry, time, datasets and artifact.
fn model_row(m: &Value) -> Vec<String> {
    let ds: Vec<String> = m["datasets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            format!(
                "{} ({}): <code>{}</code>",
                text(&d["name"]),
                text(&d["type"]),
                text(&d["sha256"])
            )
        })
        .collect();
    vec![
        text(&m["model_id"]),
        text(&m["model_version"]),
        text(&m["index"]),
        text(&m["logged_at"]),
        ds.join("<br>"),
        format!("<code>{}</code>", text(&m["artifact_sha256"])),
    ]
}

/// The section "Models trained".
fn models_section(r: &Value) -> String {
    let mut h = String::from("<h2>Models trained</h2>");
    h.push_str(&table(
        "models",
        &[
            "model",
            "version",
            "entry",
            "logged",
            "datasets (SHA-256)",
            "artifact",
        ],
        r["models"]
            .as_array()
            .into_iter()
            .flatten()
            .map(model_row)
            .collect(),
    ));
    h
}

/// The section "Approvals": the counts per status and one row per request.
fn approvals_section(r: &Value) -> String {
    let ap = &r["approvals"];
    let mut h = String::from("<h2>Approvals</h2>");
    h.push_str(&format!(
        r#"<p id="approval-counts">policy {}: {} pending, {} approved, {} rejected</p>"#,
        text(&ap["policy"]),
        text(&ap["pending"]),
        text(&ap["approved"]),
        text(&ap["rejected"])
    ));
    h.push_str(&table(
        "requests",
        &[
            "request",
            "entry",
            "model",
            "requested by",
            "status",
            "approvers",
        ],
        ap["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|q| {
                vec![
                    format!("<code>{}</code>", text(&q["request"])),
                    text(&q["index"]),
                    text(&q["model_id"]),
                    text(&q["requested_by"]),
                    text(&q["status"]),
                    text(&q["approvers"]),
                ]
            })
            .collect(),
    ));
    h
}

/// One row of the deployments table, with its quorum marked yes, no or not checked.
fn deployment_row(d: &Value) -> Vec<String> {
    let q = match d["valid_quorum"].as_bool() {
        Some(true) => r#"<span class="ok">yes</span>"#.to_owned(),
        Some(false) => r#"<span class="bad">no</span>"#.to_owned(),
        None => "not checked".to_owned(),
    };
    vec![
        text(&d["index"]),
        text(&d["model_id"]),
        text(&d["status"]),
        text(&d["environment"]),
        text(&d["logged_at"]),
        q,
        text(&d.get("why").cloned().unwrap_or(Value::Null)),
    ]
}

/// The section "Deployments": the quorum counts and one row per deployment.
fn deployments_section(r: &Value) -> String {
    let dep = &r["deployments"];
    let mut h = String::from("<h2>Deployments</h2>");
    h.push_str(&format!(
        r#"<p id="deployment-counts">{} with a valid quorum, {} without</p>"#,
        text(&dep["with_quorum"]),
        text(&dep["without_quorum"])
    ));
    h.push_str(&table(
        "deployments",
        &[
            "entry",
            "model",
            "status",
            "environment",
            "logged",
            "valid quorum",
            "why not",
        ],
        dep["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(deployment_row)
            .collect(),
    ));
    h
}

/// The section "Anchors": verified anchors per backend, stored checkpoints anchored, and the
/// newest anchored checkpoint's size, coverage and age.
fn anchors_section(r: &Value) -> String {
    let an = &r["anchors"];
    let mut h = String::from("<h2>Anchors</h2>");
    let mut rows: Vec<Vec<String>> = an["verified_by_backend"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| vec![format!("{} anchored checkpoints verified", esc(k)), text(v)])
        .collect();
    rows.push(vec![
        "stored checkpoints anchored".into(),
        format!(
            "{} of {}",
            text(&an["stored_checkpoints_anchored"]),
            text(&an["stored_checkpoints"])
        ),
    ]);
    rows.push(vec![
        "newest anchored size".into(),
        text(&an["newest_anchored_size"]),
    ]);
    rows.push(vec![
        "newest anchored checkpoint covers entries until".into(),
        text(&an["newest_anchored_covers_until"]),
    ]);
    rows.push(vec![
        "its age (s)".into(),
        text(&an["newest_anchored_age_seconds"]),
    ]);
    h.push_str(&table("anchors", &["", ""], rows));
    h
}

/// The section "Anomalies": kind, entry and message of each.
fn anomalies_section(anomalies: &[Value]) -> String {
    let mut h = String::from("<h2>Anomalies</h2>");
    h.push_str(&table(
        "anomalies",
        &["kind", "entry", "what"],
        anomalies
            .iter()
            .map(|a| {
                vec![
                    text(&a["kind"]),
                    text(&a.get("index").cloned().unwrap_or(Value::Null)),
                    text(&a["message"]),
                ]
            })
            .collect(),
    ));
    h
}

/// The closing paragraph (the tree covered) and the end of the page.
fn footer(r: &Value) -> String {
    format!(
        r#"<p>This report covers the tree of size {} with root <code>{}</code>; <code>report.json</code> holds the same data.</p></body></html>"#,
        text(&r["tree_size"]),
        text(&r["root"])
    )
}

/// Renders the report.
pub fn render(r: &Value) -> String {
    let anomalies = r["anomalies"].as_array().cloned().unwrap_or_default();
    let mut h = String::from(HEAD);
    h.push_str("<h1>govledger audit report</h1>");
    h.push_str(&verdict(&anomalies));
    h.push_str(&summary(r));
    h.push_str(&entries_section(r));
    h.push_str(&tags_section(r));
    h.push_str(&models_section(r));
    h.push_str(&approvals_section(r));
    h.push_str(&deployments_section(r));
    h.push_str(&anchors_section(r));
    h.push_str(&anomalies_section(&anomalies));
    h.push_str(&footer(r));
    h
}
