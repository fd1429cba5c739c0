//! The database secrets engine: dynamic credentials under a lease, and
//! static roles' current passwords.

use reqwest::Method;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::Error;
use crate::client::{Body, Client};
use crate::wire::Envelope;

/// The database engine mounted at `mount`. Get one with [`Client::database`].
#[derive(Debug, Clone)]
pub struct Database {
    client: Client,
    mount: String,
}

/// A dynamic user: valid until its lease ends (renew it with
/// [`crate::LeaseApi::renew`], give it back with [`crate::LeaseApi::revoke`]).
/// `Debug` never shows the password.
#[derive(Clone, Default)]
pub struct DatabaseCredentials {
    pub username: String,
    pub password: Zeroizing<String>,
    pub lease_id: String,
    /// Seconds until the lease ends.
    pub lease_duration: u64,
    pub renewable: bool,
}

/// A static role's current password, and when it changes next.
#[derive(Clone, Default)]
pub struct StaticCredentials {
    pub username: String,
    pub password: Zeroizing<String>,
    /// Seconds until the next rotation: read again then.
    pub ttl: u64,
    pub rotation_period: u64,
    /// RFC 3339.
    pub last_vault_rotation: String,
}

macro_rules! redacted_debug {
    ($t:ty, $($field:ident),*) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($field), &self.$field))*
                    .field("password", &"<redacted>")
                    .finish()
            }
        }
    };
}
redacted_debug!(
    DatabaseCredentials,
    username,
    lease_id,
    lease_duration,
    renewable
);
redacted_debug!(
    StaticCredentials,
    username,
    ttl,
    rotation_period,
    last_vault_rotation
);

#[derive(Deserialize)]
struct UserPassword {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct StaticData {
    username: String,
    password: String,
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    rotation_period: u64,
    #[serde(default)]
    last_vault_rotation: String,
}

impl Client {
    /// The database engine mounted at `mount` (usually `database`).
    pub fn database(&self, mount: &str) -> Database {
        Database {
            client: self.clone(),
            mount: mount.trim_matches('/').to_owned(),
        }
    }
}

impl Database {
    /// `GET <mount>/creds/<role>`: a new user under a new lease.
    pub async fn creds(&self, role: &str) -> Result<DatabaseCredentials, Error> {
        let path = format!("{}/creds/{role}", self.mount);
        let envelope: Envelope<UserPassword> = self
            .client
            .send(Method::GET, &path, &[], Body::Empty)
            .await?
            .success()?
            .envelope(&path)?;
        let data = envelope
            .data
            .ok_or_else(|| crate::client::missing(&path, "data"))?;
        Ok(DatabaseCredentials {
            username: data.username,
            password: Zeroizing::new(data.password),
            lease_id: envelope.lease_id,
            lease_duration: envelope.lease_duration,
            renewable: envelope.renewable,
        })
    }

    /// `GET <mount>/static-creds/<role>`: the current password of a static
    /// role.
    pub async fn static_creds(&self, role: &str) -> Result<StaticCredentials, Error> {
        let path = format!("{}/static-creds/{role}", self.mount);
        let data: StaticData = self.client.get_data(&path, &[]).await?;
        Ok(StaticCredentials {
            username: data.username,
            password: Zeroizing::new(data.password),
            ttl: data.ttl,
            rotation_period: data.rotation_period,
            last_vault_rotation: data.last_vault_rotation,
        })
    }
}
