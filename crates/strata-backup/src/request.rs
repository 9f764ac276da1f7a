//! What a frontend asks of a backup, resolved into [`BackupOptions`].
//!
//! Owns turning paths, prefixes and identities as given into the options every
//! backup operation takes: the repository is created when writing (the default
//! fingerprint key lives inside it), the schema and the keys are read (the fingerprint
//! key created on first use), and the options a commit records are digested with the
//! layout version. A frontend only fills a [`BackupRequest`] and calls
//! [`BackupRequest::resolve`].

use std::path::PathBuf;

use strata_schema::Schema;

use crate::options::{BackupOptions, Identity, OnStage};
use crate::secrets::{read_key, read_or_create_key, Secrets};
use crate::{Error, LAYOUT_VERSION};

/// Who writes a backup's commits, and where they are pushed.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    pub author: Identity,
    /// The committer, when not the author.
    pub committer: Option<Identity>,
    /// A remote (name or URL) to push to after each commit.
    pub push: Option<String>,
}

/// A backup as asked for: which repository, which keys, which secrets, and (for a
/// command that commits) who writes.
#[derive(Clone, Debug, Default)]
pub struct BackupRequest {
    pub repo: PathBuf,
    /// Key prefixes to back up (empty: every key).
    pub prefixes: Vec<String>,
    /// The schema whose secret fields are fingerprinted or encrypted.
    pub schema: Option<PathBuf>,
    /// The key file that encrypts secrets (instead of fingerprinting them).
    pub encrypt_key: Option<PathBuf>,
    /// The fingerprint key file (default: inside the repository's Git folder).
    pub fingerprint_key: Option<PathBuf>,
    /// The store's URL; commit messages name it without credentials.
    pub store_url: String,
    /// `Some` for a command that commits: the repository is created if need be.
    pub writer: Option<Writer>,
    pub progress: OnStage,
}

impl Identity {
    /// Parses `Name <email>`.
    pub fn parse(text: &str) -> Result<Identity, Error> {
        let bad = || {
            Error::Refused(format!(
                "{text:?} is not an identity; write \"Name <email>\""
            ))
        };
        let (name, rest) = text.split_once('<').ok_or_else(bad)?;
        let email = rest.strip_suffix('>').ok_or_else(bad)?;
        Ok(Identity {
            name: name.trim().to_owned(),
            email: email.trim().to_owned(),
        })
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    let mut d = strata_ops::transfer::Digest::default();
    d.add(b"", bytes);
    d.hex()
}

impl BackupRequest {
    /// The options every backup operation takes; creates the repository first when
    /// writing.
    pub fn resolve(self) -> Result<BackupOptions, Error> {
        let repo = self.repo;
        if self.writer.is_some() {
            crate::repo::Repo::open(&repo, true, false)?;
        }
        let schema_text = match &self.schema {
            Some(p) => std::fs::read_to_string(p).map_err(|e| Error::Io {
                path: format!("the schema {}", p.display()),
                source: e,
            })?,
            None => String::new(),
        };
        let schema = match &self.schema {
            Some(p) => Some(
                Schema::parse(&schema_text, &p.display().to_string())
                    .map_err(|e| Error::Refused(e.to_string()))?,
            ),
            None => None,
        };
        let encrypt = self.encrypt_key.as_deref().map(read_key).transpose()?;
        let fp_path = self
            .fingerprint_key
            .unwrap_or_else(|| crate::default_fingerprint_key(&repo));
        let fingerprint = read_or_create_key(&fp_path)?;
        let mut prefixes: Vec<Vec<u8>> = self
            .prefixes
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        prefixes.sort();
        // What shapes the files: a change of any of it forces a full backup.
        let options_id = format!(
            "layout={LAYOUT_VERSION}\nprefixes={:?}\nschema={}\nencrypt={}\nfingerprint={}",
            self.prefixes,
            hex_digest(schema_text.as_bytes()),
            encrypt.as_deref().map(hex_digest).unwrap_or_default(),
            hex_digest(&fingerprint)
        );
        let writer = self.writer.unwrap_or_default();
        Ok(BackupOptions {
            repo,
            prefixes,
            secrets: Secrets::new(schema, fingerprint, encrypt),
            options_id,
            store_label: strata_core::redact::redact_url(&self.store_url),
            committer: writer.committer.unwrap_or_else(|| writer.author.clone()),
            author: writer.author,
            push: writer.push,
            progress: self.progress,
        })
    }
}
