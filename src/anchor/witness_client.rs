//! The log's side of c2sp.org/tlog-witness: `POST <url>/add-checkpoint` with the consistency
//! proof from the size the witness last cosigned. A 409 teaches that size (the body) and the
//! request is retried once; a 409 or 422 for the same size means the witness saw another root
//! (a fork) and is reported, never papered over.

use std::sync::Mutex;

use ledger_format::note::{NoteSignature, SigType, VerifierKey};
use ledger_format::witness::AddCheckpoint;

use crate::log::{Log, Published};

/// One configured witness.
pub struct WitnessClient {
    pub url: String,
    /// Its cosigner key (type 0x04).
    pub key: VerifierKey,
    http: reqwest::Client,
    /// The size this witness last cosigned, as far as we know.
    known: Mutex<u64>,
    /// The last error, for `GET /v1/anchors`.
    pub last_error: Mutex<Option<String>>,
    /// The size of the checkpoint it last cosigned in this process.
    pub last_cosigned: Mutex<Option<u64>>,
}

impl WitnessClient {
    /// `key` may be a cosigner key (0x04) or a plain Ed25519 key (re-derived as 0x04).
    pub fn new(url: &str, key: &VerifierKey) -> WitnessClient {
        let key = match key.sig_type() {
            SigType::Cosignature => key.clone(),
            _ => ledger_format::cosig::as_cosigner(key),
        };
        WitnessClient {
            url: url.trim_end_matches('/').to_owned(),
            key,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("a reqwest client"),
            known: Mutex::new(0),
            last_error: Mutex::new(None),
            last_cosigned: Mutex::new(None),
        }
    }

    async fn post(&self, log: &Log, old: u64, p: &Published) -> Result<(u16, String), String> {
        let proof = if old == 0 || old >= p.size {
            Vec::new()
        } else {
            let log2 = log;
            log2.consistency(old, p.size)
                .map_err(|e| e.to_string())?
                .path
        };
        let body = AddCheckpoint::encode(old, &proof, &p.checkpoint);
        let r = self
            .http
            .post(format!("{}/add-checkpoint", self.url))
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.url))?;
        let status = r.status().as_u16();
        Ok((status, r.text().await.unwrap_or_default()))
    }

    /// Sends `p` and returns the witness's cosignature line, verified against its key.
    pub async fn add_checkpoint(&self, log: &Log, p: &Published) -> Result<String, String> {
        let r = self.try_add(log, p).await;
        *self.last_error.lock().expect("lock poisoned") = r.as_ref().err().cloned();
        if r.is_ok() {
            *self.last_cosigned.lock().expect("lock poisoned") = Some(p.size);
        }
        r
    }

    async fn try_add(&self, log: &Log, p: &Published) -> Result<String, String> {
        let mut old = *self.known.lock().expect("lock poisoned");
        for attempt in 0..2 {
            let (status, body) = self.post(log, old, p).await?;
            match status {
                200 => {
                    *self.known.lock().expect("lock poisoned") = p.size;
                    return self.verified_line(p, &body);
                }
                409 if attempt == 0 => {
                    let size = ledger_format::checkpoint::parse_decimal(body.trim())
                        .ok_or_else(|| format!("409 with a malformed size {body:?}"))?;
                    if size > p.size {
                        return Err(format!(
                            "the witness has cosigned size {size}, beyond ours ({}): a rollback or another log",
                            p.size
                        ));
                    }
                    if size == old {
                        return Err(format!(
                            "the witness refuses size {} with this root (409): a fork",
                            p.size
                        ));
                    }
                    old = size;
                    *self.known.lock().expect("lock poisoned") = size;
                }
                s => return Err(format!("{} answered {s}: {}", self.url, body.trim())),
            }
        }
        Err(format!("{}: still 409 after learning its size", self.url))
    }

    fn verified_line(&self, p: &Published, body: &str) -> Result<String, String> {
        let text_end = p
            .checkpoint
            .find("\n\n")
            .ok_or("the checkpoint has no signatures")?;
        let text = &p.checkpoint[..text_end + 1];
        for line in body.lines() {
            let Ok(sig) = NoteSignature::parse_line(line) else {
                continue;
            };
            if sig.name == self.key.name()
                && sig.key_id == self.key.key_id()
                && ledger_format::cosig::verify_blob(&self.key, text, &sig.sig).is_some()
            {
                return Ok(format!("{line}\n"));
            }
        }
        Err(format!(
            "{} answered 200 without a valid cosignature by {}",
            self.url,
            self.key.name()
        ))
    }
}
