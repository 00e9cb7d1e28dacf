//! A deployment's first start: its first API key and dashboard user, whose secrets go to a file
//! only the operator can read, never to the log.
//!
//! Logs are shipped, stored and read by more people and systems than should hold a key to the
//! API. Printing a secret "on the terminal instead" is no better: under `docker run -t`,
//! systemd or a CI runner the terminal is itself captured into the log. So the secrets are
//! appended to `KURZ_FIRST_START_FILE` (mode 0600), and the log says only where they are.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sqlx::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::accounts::{self, FIRST_ADMIN, FirstAdmin};

/// What a first start needs: the admin password to set (else one is generated), and where the
/// secrets go.
#[derive(Debug, Clone)]
pub struct FirstStart {
    pub admin_password: Option<String>,
    pub file: PathBuf,
}

impl FirstStart {
    /// Creates the first API key and the first dashboard user when there are none, and writes
    /// their secrets to the file. Several instances may start at once: only one creates each.
    pub(crate) async fn run(&self, pool: &PgPool) -> anyhow::Result<()> {
        let (need_key, need_admin): (bool, bool) = sqlx::query_as(
            "SELECT NOT EXISTS (SELECT 1 FROM api_keys), NOT EXISTS (SELECT 1 FROM admin_users)",
        )
        .fetch_one(pool)
        .await?;
        if !need_key && !need_admin {
            return Ok(());
        }
        // Opened before anything is made: a file that cannot be written stops the start here
        // (and is retried, and logged), before a secret exists that nobody could read.
        let path = std::path::absolute(&self.file).unwrap_or_else(|_| self.file.clone());
        let mut file = SecretFile::open(&path)
            .with_context(|| format!("cannot write KURZ_FIRST_START_FILE {}", path.display()))?;
        let now = OffsetDateTime::now_utc().format(&Rfc3339)?;
        if need_key && let Some(key) = crate::auth::create_first_key(pool).await? {
            // Written at once: were the admin to fail next, a retry would not make the key
            // again.
            file.append(
                &format!(
                    "# kurz first start, {now}. Shown only here: keep these secrets somewhere safe, then delete this file.\n\
                     # The API key 'initial' (more: origin create-api-key --name <what it is for>).\n\
                     KURZ_API_KEY={key}\n"
                ),
                "the API key 'initial'",
            );
            tracing::info!(file = %path.display(), "first start: created the API key 'initial', written to the first-start file");
        }
        if need_admin {
            match accounts::create_first_admin(pool, self.admin_password.as_deref()).await? {
                Some(FirstAdmin {
                    password: Some(password),
                }) => {
                    file.append(
                        &format!(
                            "# The dashboard user (a new password: origin create-admin --reset).\n\
                             KURZ_ADMIN_USER={FIRST_ADMIN}\n\
                             KURZ_ADMIN_PASSWORD={password}\n"
                        ),
                        "the dashboard password",
                    );
                    tracing::info!(file = %path.display(), user = FIRST_ADMIN, "first start: created the dashboard user, its generated password written to the first-start file");
                }
                Some(FirstAdmin { password: None }) => {
                    tracing::info!(
                        user = FIRST_ADMIN,
                        "first start: created the dashboard user with the password in KURZ_ADMIN_PASSWORD"
                    );
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// The first-start file, open for appending, readable by its owner only. It is never removed
/// (an instance that found the key and the user already made leaves it empty): on a shared
/// volume, another instance may be appending to it.
struct SecretFile {
    file: File,
    path: PathBuf,
}

impl SecretFile {
    fn open(path: &Path) -> std::io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        // The mode of a file this makes; one that exists keeps its own, checked below.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        // A file that was there before may be readable by others: make it ours alone, or
        // refuse it (fchmod fails when it belongs to someone else).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if file.metadata()?.permissions().mode() & 0o077 != 0 {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
        }
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// Appends `text`. A failure now cannot take the secret back: it is logged, without the
    /// secret, with the way to make a new one.
    fn append(&mut self, text: &str, what: &str) {
        let written = self
            .file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_all());
        if let Err(err) = written {
            tracing::error!(
                error = %err,
                file = %self.path.display(),
                "first start: cannot write {what} to the first-start file; make a new API key with \
                 `origin create-api-key`, and a new dashboard password with `origin create-admin --reset`"
            );
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn only_the_owner_reads_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("first-start.txt");

        SecretFile::open(&path)
            .expect("opens")
            .append("KURZ_API_KEY=one\n", "the key");
        assert_eq!(mode(&path), 0o600);

        // An existing file that others may read is made private before anything is added.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut file = SecretFile::open(&path).expect("opens");
        assert_eq!(mode(&path), 0o600);
        file.append("KURZ_API_KEY=two\n", "the key");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "KURZ_API_KEY=one\nKURZ_API_KEY=two\n"
        );

        assert!(SecretFile::open(&dir.path().join("missing/first-start.txt")).is_err());
    }
}
