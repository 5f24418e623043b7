//! `govledger anchors verify`: reads every anchored checkpoint back from each backend (a local
//! anchor directory, S3, Kafka), verifies the log's signature on each, proves each consistent
//! with the log's current tree, checks that S3 versions carry COMPLIANCE retention until at
//! least a given date, and reports gaps against the checkpoints the server chose
//! (`GET /v1/checkpoints`). Object names, topics and headers: ledger-format SPEC.md §9.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::note::VerifierKey;
use ledger_format::proof::ConsistencyProof;
use ledger_format::{Hash, TreeSize};
use serde::Serialize;

use crate::cli::Outcome;

/// An S3 bucket to read anchors from.
#[derive(Clone, Debug)]
pub struct S3Source {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    /// Every anchored version must be retained in COMPLIANCE mode at least until this time
    /// (Unix seconds).
    pub retain_until: i64,
}

/// A Kafka topic to read anchors from.
pub struct KafkaSource {
    pub brokers: String,
    pub topic: String,
}

/// What to verify.
pub struct VerifyArgs {
    pub url: String,
    pub log_key: String,
    pub dir: Option<PathBuf>,
    pub s3: Option<S3Source>,
    pub kafka: Option<KafkaSource>,
    pub json: bool,
}

/// One backend's findings.
#[derive(Debug, Default, Serialize)]
pub struct BackendReport {
    pub backend: String,
    /// Anchored checkpoints read back and verified.
    pub verified: usize,
    /// Chosen sizes the backend confirmed but does not hold.
    pub gaps: Vec<u64>,
    /// Chosen sizes the server has not yet confirmed for this backend.
    pub pending: Vec<u64>,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

/// The whole report (`--json`).
#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub tree_size: u64,
    pub chosen: usize,
    pub backends: Vec<BackendReport>,
}

use crate::http::get_json;

/// An anchored checkpoint as read from a backend: where, the size its name claims (if any)
/// and its note bytes.
pub struct Anchored {
    pub place: String,
    pub named_size: Option<u64>,
    pub note: Vec<u8>,
    /// A problem found while reading it (an S3 version without the required lock).
    pub problem: Option<String>,
}

/// A backend's name, what was read from it (or why not), and notes made while reading.
pub type Source = (&'static str, Result<Vec<Anchored>>, Vec<String>);

struct Log {
    url: String,
    key: VerifierKey,
    size: u64,
    root: Hash,
}

impl Log {
    /// Verifies one anchored checkpoint: signature, name, consistency with the current tree.
    fn check(&self, a: &Anchored) -> Result<u64, String> {
        if let Some(p) = &a.problem {
            return Err(format!("{}: {p}", a.place));
        }
        let (signed, _) = SignedCheckpoint::open(&a.note, &self.key, &[])
            .map_err(|e| format!("{}: {e}", a.place))?;
        let (size, root) = (signed.checkpoint.size.0, signed.checkpoint.root);
        if let Some(n) = a.named_size.filter(|n| *n != size) {
            return Err(format!(
                "{}: named for size {n}, holds size {size}",
                a.place
            ));
        }
        if size > self.size {
            return Err(format!(
                "{}: size {size} is beyond the log's current size {}",
                a.place, self.size
            ));
        }
        if size == self.size {
            return if root == self.root {
                Ok(size)
            } else {
                Err(format!(
                    "{}: same size as the log with another root: a fork",
                    a.place
                ))
            };
        }
        if size == 0 {
            return Ok(0);
        }
        let v = get_json(&format!(
            "{}/v1/proofs/consistency?old={size}&new={}",
            self.url, self.size
        ))
        .map_err(|e| format!("{}: {e:#}", a.place))?;
        let path = v["proof"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| Hash::from_base64(h.as_str().unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: consistency proof: {e}", a.place))?;
        ConsistencyProof {
            old: TreeSize(size),
            new: TreeSize(self.size),
            path,
        }
        .verify(&root, &self.root)
        .map_err(|e| {
            format!(
                "{}: not consistent with the log at size {}: {e}",
                a.place, self.size
            )
        })?;
        Ok(size)
    }
}

pub fn read_dir(dir: &std::path::Path) -> Result<Vec<Anchored>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(size) = ledger_format::anchor::size_of_name(&name) {
            out.push(Anchored {
                place: e.path().display().to_string(),
                named_size: Some(size),
                note: std::fs::read(e.path())?,
                problem: None,
            });
        }
    }
    Ok(out)
}

/// Runs the verification.
pub fn verify(a: &VerifyArgs) -> Result<Outcome> {
    let url = a.url.trim_end_matches('/').to_owned();
    let key = VerifierKey::parse(&a.log_key).context("--log-key")?;
    let cp = crate::http::blocking()
        .get(format!("{url}/checkpoint"))
        .send()
        .with_context(|| format!("reaching {url}"))?
        .text()?;
    let (latest, _) = SignedCheckpoint::open(cp.as_bytes(), &key, &[])
        .map_err(|e| anyhow!("the log's latest checkpoint does not verify: {e}"))?;
    let log = Log {
        url: url.clone(),
        key: key.clone(),
        size: latest.checkpoint.size.0,
        root: latest.checkpoint.root,
    };
    // Every checkpoint the server chose for anchoring, and what each backend confirmed.
    let mut chosen = BTreeSet::new();
    let mut from = 0;
    loop {
        let page = get_json(&format!("{url}/v1/checkpoints?from={from}&limit=1000"))?;
        for c in page["checkpoints"].as_array().into_iter().flatten() {
            chosen.insert(c["size"].as_u64().unwrap_or(0));
        }
        match page["next"].as_u64() {
            Some(n) => from = n,
            None => break,
        }
    }
    let status = get_json(&format!("{url}/v1/anchors"))?;
    let confirmed: BTreeMap<String, u64> = status["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["name"].as_str().unwrap_or_default().to_owned(),
                b["last_anchored_size"].as_u64().unwrap_or(0),
            )
        })
        .collect();

    let mut sources: Vec<Source> = Vec::new();
    if let Some(d) = &a.dir {
        sources.push(("dir", read_dir(d), Vec::new()));
    }
    if let Some(s) = &a.s3 {
        sources.push(s3_source(s, key.name()));
    }
    if let Some(k) = &a.kafka {
        sources.push(kafka_source(k, key.name()));
    }
    if sources.is_empty() {
        anyhow::bail!("nothing to verify: give --dir, --s3-bucket or --kafka-brokers");
    }
    let mut reports = Vec::new();
    for (name, read, notes) in sources {
        let mut r = BackendReport {
            backend: name.to_owned(),
            notes,
            ..Default::default()
        };
        let anchored = read.with_context(|| format!("reading the {name} anchors"))?;
        let mut have = BTreeSet::new();
        for x in &anchored {
            match log.check(x) {
                Ok(size) => {
                    r.verified += 1;
                    have.insert(size);
                }
                Err(e) => r.problems.push(e),
            }
        }
        let upto = confirmed.get(name).copied().unwrap_or(u64::MAX);
        for size in &chosen {
            if !have.contains(size) {
                if *size <= upto {
                    r.gaps.push(*size);
                } else {
                    r.pending.push(*size);
                }
            }
        }
        for size in have.difference(&chosen) {
            r.notes.push(format!(
                "size {size} is anchored but not listed by the server"
            ));
        }
        reports.push(r);
    }
    let ok = reports
        .iter()
        .all(|r| r.problems.is_empty() && r.gaps.is_empty());
    let report = Report {
        ok,
        tree_size: log.size,
        chosen: chosen.len(),
        backends: reports,
    };
    let text = if a.json {
        serde_json::to_string_pretty(&report)?
    } else {
        let mut t = format!(
            "log at size {}; {} checkpoints chosen for anchoring\n",
            report.tree_size, report.chosen
        );
        for r in &report.backends {
            t.push_str(&format!(
                "{}: {} verified and consistent, {} gaps, {} pending\n",
                r.backend,
                r.verified,
                r.gaps.len(),
                r.pending.len()
            ));
            if !r.gaps.is_empty() {
                t.push_str(&format!("  GAP: sizes {:?} are missing\n", r.gaps));
            }
            for p in &r.problems {
                t.push_str(&format!("  PROBLEM: {p}\n"));
            }
            for n in &r.notes {
                t.push_str(&format!("  note: {n}\n"));
            }
        }
        t.trim_end().to_owned()
    };
    if report.ok {
        Ok(Outcome::Valid(text))
    } else {
        println!("{text}");
        Ok(Outcome::Invalid(
            "anchors verify found gaps or invalid anchors".into(),
        ))
    }
}

#[cfg(not(feature = "s3"))]
pub fn s3_source(_: &S3Source, _: &str) -> Source {
    (
        "s3",
        Err(anyhow!("this govledger was built without the `s3` feature")),
        Vec::new(),
    )
}

#[cfg(feature = "s3")]
pub fn s3_source(s: &S3Source, origin: &str) -> Source {
    let mut notes = Vec::new();
    let r = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(read_s3(s, origin, &mut notes)));
    ("s3", r, notes)
}

/// Returns the bucket of `s` with the objects of the log `origin` (reads only: no retention).
#[cfg(feature = "s3")]
pub fn s3_bucket(s: &S3Source, origin: &str) -> Result<govledger_connectors::s3::S3Bucket> {
    let conn = govledger_connectors::s3::Connection {
        endpoint: s.endpoint.clone(),
        region: s.region.clone(),
        path_style: s.path_style,
    };
    govledger_connectors::s3::S3Bucket::new(&conn, &s.bucket, &s.prefix, origin, 0)
}

#[cfg(feature = "s3")]
async fn read_s3(s: &S3Source, origin: &str, notes: &mut Vec<String>) -> Result<Vec<Anchored>> {
    let bucket = s3_bucket(s, origin)?;
    // Every version of every object directly under the log's prefix (the anchored
    // checkpoints, not the WORM mirror's tiles below `tile/`): the oldest version of a key is
    // the anchored one.
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in bucket
        .versions_under(&bucket.log_prefix)
        .await
        .map_err(|e| anyhow!(e))?
    {
        versions.entry(v.key).or_default().push(v.id);
    }
    let mut out = Vec::new();
    for (key, vs) in versions {
        let Some(size) = ledger_format::anchor::size_of_name(&key) else {
            continue;
        };
        // S3 lists a key's versions newest first: the last listed is the oldest, the anchored
        // one. (Last-modified times have a resolution of one second in listings, too coarse to
        // order an overwrite made within the second of the anchoring.)
        let Some(first) = vs.last() else {
            continue;
        };
        if vs.len() > 1 {
            notes.push(format!(
                "{key}: {} later version(s) written over the anchored one, which is intact and is the one verified",
                vs.len() - 1
            ));
        }
        let place = format!("s3://{}/{key}?versionId={first}", s.bucket);
        let note = bucket
            .get(&key, Some(first))
            .await
            .map_err(|e| anyhow!("{place}: {e}"))?;
        let problem = match bucket.retention(&key, first).await {
            Ok(Some(r)) if !r.compliance => Some("retention mode is not COMPLIANCE".to_owned()),
            Ok(Some(r)) => match r.until_s {
                Some(d) if d >= s.retain_until => None,
                d => Some(format!(
                    "retained until {d:?} (Unix seconds), before the required {}",
                    s.retain_until
                )),
            },
            Ok(None) => Some("no retention".into()),
            Err(e) => Some(e),
        };
        // An anchor without its lock is not an anchor: reported as a problem.
        out.push(Anchored {
            place,
            named_size: Some(size),
            note,
            problem,
        });
    }
    Ok(out)
}

#[cfg(not(feature = "kafka"))]
pub fn kafka_source(_: &KafkaSource, _: &str) -> Source {
    (
        "kafka",
        Err(anyhow!(
            "this govledger was built without the `kafka` feature"
        )),
        Vec::new(),
    )
}

#[cfg(feature = "kafka")]
pub fn kafka_source(k: &KafkaSource, origin: &str) -> Source {
    ("kafka", read_kafka(k, origin), Vec::new())
}

/// Reads the checkpoints topic from the beginning to its end (every partition).
#[cfg(feature = "kafka")]
fn read_kafka(k: &KafkaSource, origin: &str) -> Result<Vec<Anchored>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message;
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    use rdkafka::types::RDKafkaErrorCode;
    use std::time::Duration;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .set("group.id", "govledger-anchors-verify")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .context("creating the Kafka consumer")?;
    let md = consumer
        .fetch_metadata(Some(&k.topic), Duration::from_secs(10))
        .with_context(|| format!("topic {}", k.topic))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(
        !partitions.is_empty(),
        "topic {} has no partitions",
        k.topic
    );
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(&k.topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut at_end = BTreeSet::new();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions.len() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "topic {}: timed out reading",
            k.topic
        );
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) => {}
            Some(Err(e)) => return Err(anyhow!("topic {}: {e}", k.topic)),
            Some(Ok(m)) => {
                if m.key() != Some(origin.as_bytes()) {
                    continue;
                }
                out.push(Anchored {
                    place: format!("kafka {}[{}]@{}", k.topic, m.partition(), m.offset()),
                    named_size: None,
                    note: m.payload().unwrap_or_default().to_vec(),
                    problem: None,
                });
            }
        }
    }
    Ok(out)
}

/// `govledger anchors verify`.
pub fn command(c: crate::args::AnchorsCommand) -> Result<Outcome> {
    let crate::args::AnchorsCommand::Verify(a) = c;
    let (s3, kafka) = a.remote.sources()?;
    verify(&VerifyArgs {
        url: a.url,
        log_key: a.log_key,
        dir: a.dir,
        s3,
        kafka,
        json: a.json,
    })
}
