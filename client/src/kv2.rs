//! The KV version 2 secrets engine: [`Kv2`] and [`KvSecret`].

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;
use crate::client::{Answer, Body, Client};
use crate::wire::{
    Envelope, KvConfig, KvConfigWrite, KvData, KvMetadata, KvMetadataWrite, KvVersionMetadata,
    KvVersions,
};

/// One version of a secret as read.
///
/// `data` is `None` when the version is **deleted or destroyed**: the
/// server answers such a read with HTTP 404 *and* the version's metadata,
/// and [`Kv2::get`] returns that as `Ok` so the caller can tell "deleted"
/// (see [`KvSecret::is_deleted`], [`KvSecret::is_destroyed`]) from
/// "never existed" (an [`Error`] for which [`Error::is_not_found`] is true).
///
/// Serialises as the `data` of Vault's answer: `{"data": {...},
/// "metadata": {...}}`. `Debug` never shows the values.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KvSecret {
    /// The key/value pairs, or `None` for a deleted or destroyed version.
    pub data: Option<Map<String, Value>>,
    /// The version's metadata.
    pub metadata: KvVersionMetadata,
}

impl std::fmt::Debug for KvSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.data.as_ref().map(|d| d.keys().collect::<Vec<_>>());
        f.debug_struct("KvSecret")
            .field("data_keys", &keys)
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl KvSecret {
    /// True when the version is soft-deleted (it can be undeleted).
    pub fn is_deleted(&self) -> bool {
        !self.metadata.destroyed && !self.metadata.deletion_time.is_empty() && self.data.is_none()
    }

    /// True when the version is destroyed (gone for good).
    pub fn is_destroyed(&self) -> bool {
        self.metadata.destroyed
    }

    /// One value of the secret, if the version is live and has the key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.data.as_ref().and_then(|d| d.get(key))
    }

    /// The data decoded into `T` (`None` for a deleted or destroyed
    /// version).
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.data
            .as_ref()
            .map(|d| serde_json::from_value(Value::Object(d.clone())))
            .transpose()
    }
}

impl From<KvData> for KvSecret {
    fn from(d: KvData) -> Self {
        KvSecret {
            data: d.data,
            metadata: d.metadata,
        }
    }
}

/// A KV version 2 engine at one mount. Get one with [`Client::kv2`].
///
/// Paths are relative to the mount (`"app/db"`, not `"secret/data/app/db"`).
#[derive(Debug, Clone)]
pub struct Kv2 {
    client: Client,
    mount: String,
}

#[derive(Serialize)]
struct WriteBody {
    data: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<CasOption>,
}

#[derive(Serialize)]
struct CasOption {
    cas: u64,
}

impl Kv2 {
    pub(crate) fn new(client: Client, mount: &str) -> Self {
        Kv2 {
            client,
            mount: mount.trim_matches('/').to_owned(),
        }
    }

    /// The mount path, without slashes.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// `{mount}/{kind}/{path}` for an operation on one secret.
    fn secret_path(&self, kind: &str, path: &str) -> Result<String, Error> {
        if self.mount.is_empty() {
            return Err(Error::InvalidInput("the KV mount path is empty".into()));
        }
        let path = path.trim_start_matches('/');
        if path.is_empty() || path.ends_with('/') {
            return Err(Error::InvalidInput(format!(
                "{path:?} is not a secret path (it must name a key, like \"app/db\")"
            )));
        }
        Ok(format!("{}/{kind}/{path}", self.mount))
    }

    /// Writes a new version. `data` must serialise to a JSON object. Returns
    /// the new version's metadata.
    pub async fn put(&self, path: &str, data: impl Serialize) -> Result<KvVersionMetadata, Error> {
        self.write(path, data, None).await
    }

    /// Writes a new version only if the current version is `cas` (0: only
    /// if the key does not exist yet). A mismatch is a 400.
    pub async fn put_cas(
        &self,
        path: &str,
        data: impl Serialize,
        cas: u64,
    ) -> Result<KvVersionMetadata, Error> {
        self.write(path, data, Some(cas)).await
    }

    async fn write(
        &self,
        path: &str,
        data: impl Serialize,
        cas: Option<u64>,
    ) -> Result<KvVersionMetadata, Error> {
        let api_path = self.secret_path("data", path)?;
        let body = WriteBody {
            data: to_object(data)?,
            options: cas.map(|cas| CasOption { cas }),
        };
        self.client.write_data(Method::POST, &api_path, &body).await
    }

    /// Reads the latest version. See [`KvSecret`] for deleted versions.
    pub async fn get(&self, path: &str) -> Result<KvSecret, Error> {
        self.read(path, None).await
    }

    /// Reads version `version` (0 means the latest). See [`KvSecret`] for
    /// deleted and destroyed versions.
    pub async fn get_version(&self, path: &str, version: u64) -> Result<KvSecret, Error> {
        self.read(path, Some(version)).await
    }

    async fn read(&self, path: &str, version: Option<u64>) -> Result<KvSecret, Error> {
        let api_path = self.secret_path("data", path)?;
        let query: Vec<(&str, String)> = version
            .map(|v| ("version", v.to_string()))
            .into_iter()
            .collect();
        let answer = self
            .client
            .send(Method::GET, &api_path, &query, Body::Empty)
            .await?;
        secret_from_answer(&api_path, answer)
    }

    /// Merges `data` into the latest version with a real HTTP PATCH (JSON
    /// merge patch: a `null` value removes a key), creating a new version.
    /// The key must exist and its latest version be live (404 otherwise).
    pub async fn patch(
        &self,
        path: &str,
        data: impl Serialize,
    ) -> Result<KvVersionMetadata, Error> {
        self.patch_with(path, data, None).await
    }

    /// Like [`Kv2::patch`], only if the current version is `cas`.
    pub async fn patch_cas(
        &self,
        path: &str,
        data: impl Serialize,
        cas: u64,
    ) -> Result<KvVersionMetadata, Error> {
        self.patch_with(path, data, Some(cas)).await
    }

    async fn patch_with(
        &self,
        path: &str,
        data: impl Serialize,
        cas: Option<u64>,
    ) -> Result<KvVersionMetadata, Error> {
        let api_path = self.secret_path("data", path)?;
        let body = WriteBody {
            data: to_object(data)?,
            options: cas.map(|cas| CasOption { cas }),
        };
        self.client
            .send(Method::PATCH, &api_path, &[], Body::merge_patch(&body)?)
            .await?
            .success()?
            .envelope_data(&api_path)
    }

    /// The keys directly under `dir` (`""` for the mount's root); folders
    /// end with `/`. An empty or missing folder gives an empty list.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>, Error> {
        if self.mount.is_empty() {
            return Err(Error::InvalidInput("the KV mount path is empty".into()));
        }
        let dir = dir.trim_matches('/');
        let api_path = if dir.is_empty() {
            format!("{}/metadata/", self.mount)
        } else {
            format!("{}/metadata/{dir}/", self.mount)
        };
        self.client.list_keys(&api_path).await
    }

    /// Soft-deletes the latest version (it can be undeleted).
    pub async fn delete(&self, path: &str) -> Result<(), Error> {
        let api_path = self.secret_path("data", path)?;
        self.client
            .call(Method::DELETE, &api_path, Body::Empty)
            .await
    }

    /// Soft-deletes the given versions.
    pub async fn delete_versions(&self, path: &str, versions: &[u64]) -> Result<(), Error> {
        self.versions_call(Method::POST, "delete", path, versions)
            .await
    }

    /// Restores soft-deleted versions.
    pub async fn undelete(&self, path: &str, versions: &[u64]) -> Result<(), Error> {
        self.versions_call(Method::POST, "undelete", path, versions)
            .await
    }

    /// Destroys versions for good (their data can never be read again).
    pub async fn destroy(&self, path: &str, versions: &[u64]) -> Result<(), Error> {
        self.versions_call(Method::PUT, "destroy", path, versions)
            .await
    }

    async fn versions_call(
        &self,
        method: Method,
        kind: &str,
        path: &str,
        versions: &[u64],
    ) -> Result<(), Error> {
        if versions.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{kind} needs at least one version number"
            )));
        }
        let api_path = self.secret_path(kind, path)?;
        let body = KvVersions {
            versions: versions.to_vec(),
        };
        self.client
            .call(method, &api_path, Body::json(&body)?)
            .await
    }

    /// The key's metadata: versions, settings, custom metadata.
    pub async fn metadata(&self, path: &str) -> Result<KvMetadata, Error> {
        let api_path = self.secret_path("metadata", path)?;
        self.client.get_data(&api_path, &[]).await
    }

    /// Changes the key's settings or custom metadata (absent fields are
    /// left as they are). Creates no new version.
    pub async fn put_metadata(&self, path: &str, metadata: &KvMetadataWrite) -> Result<(), Error> {
        let api_path = self.secret_path("metadata", path)?;
        self.client
            .call(Method::POST, &api_path, Body::json(metadata)?)
            .await
    }

    /// Deletes the key: every version and its metadata.
    pub async fn delete_metadata(&self, path: &str) -> Result<(), Error> {
        let api_path = self.secret_path("metadata", path)?;
        self.client
            .call(Method::DELETE, &api_path, Body::Empty)
            .await
    }

    /// The engine's settings (`{mount}/config`).
    pub async fn read_config(&self) -> Result<KvConfig, Error> {
        self.client
            .get_data(&format!("{}/config", self.mount), &[])
            .await
    }

    /// Changes the engine's settings (absent fields are left as they are).
    pub async fn write_config(&self, config: &KvConfigWrite) -> Result<(), Error> {
        self.client
            .call(
                Method::POST,
                &format!("{}/config", self.mount),
                Body::json(config)?,
            )
            .await
    }
}

/// A KV data answer: 200 with the secret; 404 with the envelope for a
/// deleted or destroyed version; any other 404 or error is an error.
fn secret_from_answer(api_path: &str, answer: Answer) -> Result<KvSecret, Error> {
    if answer.status == 404
        && let Ok(Envelope {
            data: Some(data), ..
        }) = serde_json::from_slice::<Envelope<KvData>>(&answer.body)
    {
        return Ok(KvSecret {
            data: None,
            metadata: data.metadata,
        });
    }
    let data: KvData = answer.success()?.envelope_data(api_path)?;
    Ok(data.into())
}

/// KV data must be a JSON object.
fn to_object(data: impl Serialize) -> Result<Map<String, Value>, Error> {
    match serde_json::to_value(data) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::InvalidInput(format!(
            "KV data must be a JSON object (key/value pairs), not {}",
            json_kind(&other)
        ))),
        Err(e) => Err(Error::InvalidInput(format!("cannot encode KV data: {e}"))),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_deleted_version_is_ok_with_no_data() {
        let body = r#"{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
            "data":{"data":null,"metadata":{"created_time":"2026-01-01T00:00:00Z",
            "custom_metadata":null,"deletion_time":"2026-01-02T00:00:00Z","destroyed":false,"version":3}},
            "wrap_info":null,"warnings":null,"auth":null}"#;
        let secret = secret_from_answer("secret/data/x", answer(404, body)).unwrap();
        assert!(secret.data.is_none());
        assert!(secret.is_deleted());
        assert!(!secret.is_destroyed());
        assert_eq!(secret.metadata.version, 3);
    }

    #[test]
    fn a_destroyed_version_is_ok_with_no_data() {
        let body = r#"{"data":{"data":null,"metadata":{"created_time":"2026-01-01T00:00:00Z",
            "deletion_time":"","destroyed":true,"version":1}}}"#;
        let secret = secret_from_answer("secret/data/x", answer(404, body)).unwrap();
        assert!(secret.is_destroyed());
        assert!(!secret.is_deleted());
    }

    #[test]
    fn a_missing_key_is_not_found() {
        let err = secret_from_answer("secret/data/x", answer(404, r#"{"errors":[]}"#)).unwrap_err();
        assert!(err.is_not_found());
        let err = secret_from_answer("secret/data/x", answer(404, "")).unwrap_err();
        assert!(err.is_not_found());
    }

    #[test]
    fn a_live_version_has_data() {
        let body = r#"{"data":{"data":{"password":"x","n":1},"metadata":{"created_time":"t",
            "deletion_time":"","destroyed":false,"version":2}}}"#;
        let secret = secret_from_answer("secret/data/x", answer(200, body)).unwrap();
        assert_eq!(secret.get("password"), Some(&Value::from("x")));
        assert!(!secret.is_deleted());
        #[derive(Deserialize)]
        struct Db {
            password: String,
            n: u32,
        }
        let db: Db = secret.data_as().unwrap().unwrap();
        assert_eq!((db.password.as_str(), db.n), ("x", 1));
        let shown = format!("{secret:?}");
        assert!(!shown.contains("\"x\""), "{shown}");
    }

    #[test]
    fn other_errors_pass_through() {
        let err = secret_from_answer(
            "secret/data/x",
            answer(403, r#"{"errors":["permission denied"]}"#),
        )
        .unwrap_err();
        assert!(err.is_permission_denied());
    }

    #[test]
    fn data_must_be_an_object() {
        assert!(to_object(serde_json::json!({"a": "b"})).is_ok());
        for bad in [serde_json::json!("s"), serde_json::json!([1]), Value::Null] {
            assert!(matches!(to_object(bad), Err(Error::InvalidInput(_))));
        }
    }

    #[test]
    fn secret_paths_are_checked() {
        let client = Client::builder().address("http://h:1").build().unwrap();
        let kv = client.kv2("/secret/");
        assert_eq!(kv.mount(), "secret");
        assert_eq!(
            kv.secret_path("data", "/app/db").unwrap(),
            "secret/data/app/db"
        );
        assert!(kv.secret_path("data", "").is_err());
        assert!(kv.secret_path("data", "app/").is_err());
        assert!(client.kv2("").secret_path("data", "x").is_err());
    }
}
