//! The server's settings: a [`Config`] validated and parsed once into the types the server is
//! wired from. Client names, token digests, entry kinds, certificate subjects, witness keys,
//! people's keys and source accounts are parsed here, the policy file is read here, and
//! nothing is parsed again while the server is wired (`crate::server`).

use std::collections::HashMap;

use anyhow::{Context, Result};
use ledger_format::entry::EntryKind;
use ledger_format::note::VerifierKey;
use ledger_format::policy::{People, Person, Policy};
use ledger_format::Hash;

use crate::config::Config;
use crate::http::limits::Limit;
use crate::http::Client;
use crate::integrations::Mapping;
use crate::tls::Subject;

/// A validated configuration.
pub struct Settings {
    /// The values that need no parsing (paths, addresses, numbers, sections passed on whole).
    pub config: Config,
    /// The release policy (the file, or the defaults) with the people of the policy and of
    /// `config.people` (each person once, accounts included).
    pub policy: Policy,
    /// Bearer-token clients by the hex SHA-256 of their token.
    pub tokens: HashMap<String, Client>,
    /// Certificate clients by subject.
    pub certificates: HashMap<Subject, Client>,
    /// The limit of loopback clients when no client is configured (the defaults).
    pub anonymous_limit: Option<Limit>,
    /// Reads per client (`[reads]`).
    pub read_limit: Option<Limit>,
    /// Witnesses: URL and cosigner key.
    pub witnesses: Vec<(String, VerifierKey)>,
    /// GitHub logins and ServiceNow users to people.
    pub accounts: Mapping,
}

impl Settings {
    /// Returns the settings of `config`, or an error naming the first setting that cannot
    /// work.
    pub fn new(config: Config) -> Result<Settings> {
        config.check_values()?;
        let default_limit = (config.rate_per_s, config.burst, config.quota_per_day);
        let tokens = config
            .tokens
            .iter()
            .map(|t| {
                let digest = Hash::from_hex(&t.sha256).with_context(|| {
                    format!("token {}: sha256 must be 64 hex characters", t.name)
                })?;
                let limit = (t.rate_per_s, t.burst, t.quota_per_day);
                let c = client("token", &t.name, &t.kinds, limit, default_limit)?;
                Ok((digest.to_hex(), c))
            })
            .collect::<Result<_>>()?;
        let certificates = config
            .certificates
            .iter()
            .map(|c| {
                let subject = Subject::parse(&c.subject)
                    .with_context(|| format!("certificate client {}: subject", c.name))?;
                let limit = (c.rate_per_s, c.burst, c.quota_per_day);
                let client = client(
                    "certificate client",
                    &c.name,
                    &c.kinds,
                    limit,
                    default_limit,
                )?;
                Ok((subject, client))
            })
            .collect::<Result<_>>()?;
        let witnesses = config
            .witnesses
            .iter()
            .map(|w| {
                let key = VerifierKey::parse(&w.key)
                    .with_context(|| format!("witness {}: key", w.url))?;
                Ok((w.url.clone(), key))
            })
            .collect::<Result<_>>()?;
        let policy = policy(&config)?;
        // One GitHub login, one person; one ServiceNow user, one person: across the policy's
        // people and the config's.
        let accounts = Mapping::from_people(policy.people.all())?;
        Ok(Settings {
            policy,
            accounts,
            anonymous_limit: limit(default_limit),
            read_limit: limit((config.reads.rate_per_s, config.reads.burst, 0)),
            tokens,
            certificates,
            witnesses,
            config,
        })
    }
}

/// `(rate_per_s, burst, quota_per_day)`.
type Limits = (f64, f64, u64);

fn limit((rate_per_s, burst, quota_per_day): Limits) -> Option<Limit> {
    (rate_per_s > 0.0 || quota_per_day > 0).then_some(Limit {
        rate_per_s,
        burst,
        quota_per_day,
    })
}

/// Returns a configured client; its own limits override the defaults.
fn client(
    what: &'static str,
    name: &str,
    kinds: &[String],
    (rate, burst, quota): (Option<f64>, Option<f64>, Option<u64>),
    (default_rate, default_burst, default_quota): Limits,
) -> Result<Client> {
    let field = if what == "token" {
        "token name"
    } else {
        "certificate client name"
    };
    ledger_format::leaf::check_ascii_field(field, name, 1)?;
    let kinds = kinds
        .iter()
        .map(|k| {
            EntryKind::from_name(k).with_context(|| format!("{what} {name}: unknown kind {k:?}"))
        })
        .collect::<Result<_>>()?;
    Ok(Client {
        name: name.to_owned(),
        kinds,
        limit: limit((
            rate.unwrap_or(default_rate),
            burst.unwrap_or(default_burst),
            quota.unwrap_or(default_quota),
        )),
    })
}

/// Returns the release policy (the file, or the defaults) with the people of both the policy
/// and the config, refusing bad keys and a key under two names.
fn policy(cfg: &Config) -> Result<Policy> {
    let mut policy = match &cfg.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the policy {}", path.display()))?;
            Policy::parse(&text).with_context(|| format!("{}", path.display()))?
        }
        None => Policy::default(),
    };
    let mut people: Vec<_> = policy.people.all().cloned().collect();
    for p in &cfg.people {
        people.push(Person {
            name: p.name.clone(),
            roles: p.roles.clone(),
            key: VerifierKey::parse(&p.key).with_context(|| format!("person {}: key", p.name))?,
            retired: Vec::new(),
            github: p.github.iter().cloned().collect(),
            servicenow: p.servicenow.iter().cloned().collect(),
        });
    }
    policy.people = People::new(people).map_err(|e| anyhow::anyhow!("people: {e}"))?;
    // Witnesses cosign once per anchoring round: a freshness bound at or below the round
    // would refuse every bundle between two rounds.
    if let Some(age) = policy.max_checkpoint_age_ms {
        anyhow::ensure!(
            age > cfg.anchors.interval_ms,
            "policy: freshness.max_checkpoint_age ({age} ms) must exceed anchors.interval_ms ({} ms), the time between witness cosignatures",
            cfg.anchors.interval_ms
        );
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::Settings;
    use crate::config::{Config, PersonConfig};

    fn key(name: &str, seed: u8) -> String {
        ledger_format::note::SignerKey::from_seed(name, [seed; 32])
            .unwrap()
            .verifier()
            .to_string()
    }

    /// People are registered in one place or the other, or both: the policy file's accounts
    /// map too, and one account is one person across both.
    #[test]
    fn accounts_from_the_policy_and_the_config_are_one_registry() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(
            &policy,
            format!(
                "[[people]]\nname = \"alice\"\nkey = \"{}\"\ngithub = \"alice-gh\"\nservicenow = \"alice.s\"\n",
                key("alice", 1)
            ),
        )
        .unwrap();
        let config = |people: Vec<PersonConfig>| Config {
            policy: Some(policy.clone()),
            people,
            ..Config::default()
        };
        let s = Settings::new(config(vec![])).unwrap();
        assert_eq!(
            s.accounts.github_person("ALICE-GH").map(String::as_str),
            Some("alice")
        );
        assert_eq!(
            s.accounts.servicenow_person("alice.s").map(String::as_str),
            Some("alice")
        );
        // Bob in the config claims alice's login: refused, naming both.
        let bob = PersonConfig {
            name: "bob".into(),
            key: key("bob", 2),
            github: Some("Alice-GH".into()),
            ..PersonConfig::default()
        };
        let e = format!("{:#}", Settings::new(config(vec![bob])).err().unwrap());
        assert!(e.contains("alice") && e.contains("bob"), "{e}");
        // Alice in the config too, with another login: both are hers.
        let alice = PersonConfig {
            name: "alice".into(),
            key: key("alice", 1),
            github: Some("alice-work".into()),
            ..PersonConfig::default()
        };
        let s = Settings::new(config(vec![alice])).unwrap();
        for login in ["alice-gh", "alice-work"] {
            assert_eq!(
                s.accounts.github_person(login).map(String::as_str),
                Some("alice")
            );
        }
    }
}
