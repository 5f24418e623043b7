//! The environment variables the connectors read credentials from, one name each, for the
//! server and the CLI alike. (The server's config may name others per deployment: `token_env`,
//! `password_env`, `oauth_secret_env`.)

/// A GitHub token (personal, fine-grained or Actions).
pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
/// A GitHub App's id (the CLI; the server's config has `github.app_id`).
pub const GITHUB_APP_ID: &str = "GITHUB_APP_ID";
/// The GitHub App's private key file (the CLI; the server's config has `github.app_key`).
pub const GITHUB_APP_KEY: &str = "GITHUB_APP_KEY";
/// The App's installation (the CLI; the server's config has `github.installation_id`).
pub const GITHUB_APP_INSTALLATION_ID: &str = "GITHUB_APP_INSTALLATION_ID";
/// A ServiceNow OAuth client's id (the CLI; the server's config has
/// `servicenow.oauth_client_id`).
pub const SERVICENOW_CLIENT_ID: &str = "SERVICENOW_CLIENT_ID";
/// That OAuth client's secret.
pub const SERVICENOW_CLIENT_SECRET: &str = "SERVICENOW_CLIENT_SECRET";
/// A ServiceNow OAuth bearer token.
pub const SERVICENOW_TOKEN: &str = "SERVICENOW_TOKEN";
/// A ServiceNow user (the CLI; the server's config has `servicenow.user`).
pub const SERVICENOW_USER: &str = "SERVICENOW_USER";
/// That user's password.
pub const SERVICENOW_PASSWORD: &str = "SERVICENOW_PASSWORD";
/// The log's signer key as a `PRIVATE+KEY+...` string, instead of the key file.
pub const GOVLEDGER_LOG_KEY: &str = "GOVLEDGER_LOG_KEY";

/// Returns the non-empty value of the variable `name`.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
