//! ServiceNow (Table API, reqwest): a change request's `description` (which must name the
//! request: `super::binding`) and its approval records (`sysapproval_approver`), which become
//! approvals (`approved`) and rejections (`rejected`), decided at their `sys_updated_on`.
//!
//! Nothing goes into an encoded query (`sysparm_query`) unless it can only mean itself: the
//! change number and every `sys_id` the instance returns must pass
//! `ledger_format::schema::is_source_id` (`^`, `=`, spaces and the like would change the
//! query), also for requests logged before the schema refused unsafe change numbers. An
//! approval record whose `sys_id` or user name is not plain is skipped.

use serde_json::json;

pub use govledger_connectors::servicenow::to_rfc3339;
use govledger_connectors::servicenow::{Credentials, ServiceNow as Instance};

use super::{is_account, is_source_id, Decisions, Imported, Mapping, Skipped, SourceError};
use crate::config::ServiceNowConfig;

/// Records per page.
const PAGE: usize = 100;

/// The configured ServiceNow instance (`govledger_connectors::servicenow` makes the calls).
pub struct ServiceNow {
    instance: Instance,
}

impl ServiceNow {
    pub fn new(cfg: &ServiceNowConfig) -> anyhow::Result<ServiceNow> {
        let creds = Credentials {
            user: cfg.user.clone(),
            oauth_client_id: cfg.oauth_client_id.clone(),
            password_env: cfg.password_env.clone(),
            token_env: cfg.token_env.clone(),
            oauth_secret_env: cfg.oauth_secret_env.clone(),
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(ServiceNow {
            instance: Instance::new(&cfg.instance_url, creds, http),
        })
    }

    async fn table(
        &self,
        table: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<serde_json::Value>, SourceError> {
        Ok(self.instance.table(table, query).await?)
    }

    /// Reads the description and the approval records of change `number`; a number that is
    /// not plain ([`check_change`]) is refused (400) before any query.
    pub async fn decisions(&self, number: &str, who: &Mapping) -> Result<Decisions, SourceError> {
        check_change(number).map_err(|why| SourceError::new(400, why))?;
        let changes = self
            .table(
                "change_request",
                &[
                    ("sysparm_query", format!("number={number}")),
                    ("sysparm_limit", "1".into()),
                    ("sysparm_fields", "sys_id,number,description".into()),
                ],
            )
            .await?;
        let Some(change) = changes.first() else {
            return Err(SourceError::new(
                404,
                format!("servicenow: no change request {number}"),
            ));
        };
        let sys_id = change["sys_id"].as_str().unwrap_or_default().to_owned();
        if !is_source_id(&sys_id) {
            return Err(SourceError::new(
                502,
                format!(
                    "servicenow: the instance gave change {number} the sys_id {:?}, which is not a plain identifier; it is not queried",
                    sys_id.chars().take(80).collect::<String>()
                ),
            ));
        }
        let description = change["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut records = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .table(
                    "sysapproval_approver",
                    &[
                        (
                            "sysparm_query",
                            format!("sysapproval={sys_id}^ORDERBYsys_updated_on"),
                        ),
                        (
                            "sysparm_fields",
                            "sys_id,approver.user_name,state,sys_updated_on".into(),
                        ),
                        ("sysparm_limit", PAGE.to_string()),
                        ("sysparm_offset", offset.to_string()),
                    ],
                )
                .await?;
            let n = page.len();
            records.extend(page);
            if n < PAGE {
                break;
            }
            offset += PAGE;
        }
        let (mut out, mut skipped) = (Vec::new(), Vec::new());
        for r in records {
            let raw = r["sys_id"].as_str().unwrap_or_default();
            // What `skipped` shows of an id that cannot be logged: at most 64 characters.
            let id: String = raw.chars().take(64).collect();
            let user = r["approver.user_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let state = r["state"].as_str().unwrap_or_default().to_owned();
            let skip = |reason: String| Skipped {
                source: "servicenow",
                id: id.clone(),
                reason,
            };
            if !is_source_id(raw) {
                skipped.push(skip(format!(
                    "sys_id {:?} is not a plain identifier (1 to 64 letters, digits, '-', '_')",
                    id
                )));
                continue;
            }
            let decision = match state.as_str() {
                "approved" => "approve",
                "rejected" => "reject",
                other => {
                    skipped.push(skip(format!("state {other:?} is not a decision")));
                    continue;
                }
            };
            if !is_account(&user) {
                skipped.push(skip(format!(
                    "the approver's user name {user:?} is not plain"
                )));
                continue;
            }
            let Some(person) = who.servicenow_person(&user) else {
                skipped.push(skip(format!(
                    "{user:?} is not mapped to a registered approver"
                )));
                continue;
            };
            let updated = r["sys_updated_on"].as_str().unwrap_or_default().to_owned();
            let Some(at) = to_rfc3339(&updated).filter(|_| updated.len() <= 64) else {
                skipped.push(skip(format!("sys_updated_on {updated:?} is not a time")));
                continue;
            };
            out.push(Imported {
                source: "servicenow",
                id: id.clone(),
                approver: person.clone(),
                decision,
                decided_at: at,
                evidence: json!({"change": number, "sys_id": id, "approver": user, "state": state, "sys_updated_on": updated}),
            });
        }
        Ok(Decisions {
            description,
            imported: out,
            skipped,
        })
    }
}

/// Checks a request's change number before it goes into a query: `is_source_id` (what the
/// schema has required since 4ee4af9; requests logged before may hold anything).
pub fn check_change(number: &str) -> Result<(), String> {
    if is_source_id(number) {
        Ok(())
    } else {
        Err(format!(
            "servicenow: the request's change {:?} is not a plain change number (1 to 64 letters, digits, '-', '_'); it is not queried",
            number.chars().take(80).collect::<String>()
        ))
    }
}
