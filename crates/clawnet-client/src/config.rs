//! Where the CLI finds the hub URL and the token.
//!
//! Each setting is resolved on its own, first match wins: the explicit value
//! (a command-line flag), then the environment (`CLAWNET_URL`,
//! `CLAWNET_TOKEN`), then the config file
//! (`<config dir>/clawnet/config.toml`, keys `url` and `token`), then the
//! default (`http://127.0.0.1:3000` for the URL; none for the token).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The hub URL when nothing else names one.
pub const DEFAULT_URL: &str = "http://127.0.0.1:3000";
/// Environment variable naming the hub URL.
pub const ENV_URL: &str = "CLAWNET_URL";
/// Environment variable holding the token.
pub const ENV_TOKEN: &str = "CLAWNET_TOKEN";

/// Failure to read or write the config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or its directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The platform has no per-user config directory.
    #[error("no per-user config directory on this platform")]
    NoConfigDir,
}

/// The contents of the config file; both keys optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ConfigFile {
    /// Hub URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Agent token.
    #[serde(default)]
    pub token: Option<String>,
}

/// Where the settings are, once resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Hub base URL.
    pub url: String,
    /// Agent token, if any source had one.
    pub token: Option<String>,
}

// Hand-written so the token never ends up in a log line.
impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The default config file: `<config dir>/clawnet/config.toml`.
pub fn config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("clawnet").join("config.toml"))
}

/// Read a config file; a missing file reads as empty.
pub fn load_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Resolve URL and token from the explicit values, the process environment
/// and the default config file.
pub fn resolve(url: Option<String>, token: Option<String>) -> Result<Resolved, ConfigError> {
    resolve_with(
        url,
        token,
        |name| std::env::var(name).ok(),
        config_path().as_deref(),
    )
}

/// [`resolve`] with the environment lookup and the config file supplied, so
/// the order can be tested (and a `--config` flag honoured). The file is read
/// only if a setting is still missing after the flags and the environment.
pub fn resolve_with(
    url: Option<String>,
    token: Option<String>,
    env: impl Fn(&str) -> Option<String>,
    file: Option<&Path>,
) -> Result<Resolved, ConfigError> {
    // An empty value (`CLAWNET_TOKEN=`) means unset, not "the empty token".
    let present = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let mut url = present(url).or_else(|| present(env(ENV_URL)));
    let mut token = present(token).or_else(|| present(env(ENV_TOKEN)));
    if url.is_none() || token.is_none() {
        if let Some(path) = file {
            let from_file = load_file(path)?;
            url = url.or_else(|| present(from_file.url));
            token = token.or_else(|| present(from_file.token));
        }
    }
    Ok(Resolved {
        url: url.unwrap_or_else(|| DEFAULT_URL.to_owned()),
        token,
    })
}

/// Store URL and token in the default config file (mode 0600), returning its
/// path.
pub fn save_login(url: &str, token: &str) -> Result<PathBuf, ConfigError> {
    let path = config_path().ok_or(ConfigError::NoConfigDir)?;
    save_login_to(&path, url, token)?;
    Ok(path)
}

/// Store URL and token in the config file at `path`, keeping any other keys
/// it has. The directory is created if needed; on Unix the file is made
/// owner-only (0600) before the token is written into it.
pub fn save_login_to(path: &Path, url: &str, token: &str) -> Result<(), ConfigError> {
    let io_err = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let mut table = match fs::read_to_string(path) {
        Ok(text) => text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => return Err(io_err(e)),
    };
    table.insert("url".into(), toml::Value::String(url.to_owned()));
    table.insert("token".into(), toml::Value::String(token.to_owned()));
    let text = toml::to_string(&table).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;

    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|source| ConfigError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    let mut file = open_private(path).map_err(io_err)?;
    file.write_all(text.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

/// Open `path` for writing, truncated, readable by the owner only.
#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // The mode applies only when the file is created; an existing file may be
    // more open, so tighten it before truncating and writing the secret.
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.set_len(0)?;
    Ok(file)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn write_config(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config.toml");
        fs::write(&path, text).expect("write config");
        path
    }

    #[test]
    fn explicit_beats_env_beats_file_beats_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write_config(
            dir.path(),
            "url = \"http://file\"\ntoken = \"file-token\"\n",
        );
        let env = env_of(&[(ENV_URL, "http://env"), (ENV_TOKEN, "env-token")]);

        let r = resolve_with(
            Some("http://flag".into()),
            Some("flag-token".into()),
            &env,
            Some(&file),
        )
        .expect("resolve");
        assert_eq!(r.url, "http://flag");
        assert_eq!(r.token.as_deref(), Some("flag-token"));

        let r = resolve_with(None, None, &env, Some(&file)).expect("resolve");
        assert_eq!(r.url, "http://env");
        assert_eq!(r.token.as_deref(), Some("env-token"));

        let r = resolve_with(None, None, env_of(&[]), Some(&file)).expect("resolve");
        assert_eq!(r.url, "http://file");
        assert_eq!(r.token.as_deref(), Some("file-token"));

        let missing = dir.path().join("nope.toml");
        let r = resolve_with(None, None, env_of(&[]), Some(&missing)).expect("resolve");
        assert_eq!(r.url, DEFAULT_URL);
        assert_eq!(r.token, None);
    }

    #[test]
    fn settings_resolve_independently_and_empty_means_unset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write_config(dir.path(), "token = \"file-token\"\n");
        let env = env_of(&[(ENV_URL, "http://env"), (ENV_TOKEN, "")]);
        let r = resolve_with(None, Some(String::new()), env, Some(&file)).expect("resolve");
        assert_eq!(r.url, "http://env");
        assert_eq!(r.token.as_deref(), Some("file-token"));
    }

    #[test]
    fn a_broken_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write_config(dir.path(), "url = [");
        assert!(matches!(
            resolve_with(None, None, env_of(&[]), Some(&file)),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn save_login_round_trips_and_keeps_other_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir
            .path()
            .join("nested")
            .join("clawnet")
            .join("config.toml");
        save_login_to(&path, "http://one", "t1").expect("save");
        assert_eq!(
            load_file(&path).expect("load"),
            ConfigFile {
                url: Some("http://one".into()),
                token: Some("t1".into())
            }
        );

        fs::write(&path, "editor = \"vi\"\ntoken = \"old\"\n").expect("write");
        save_login_to(&path, "http://two", "t2").expect("save again");
        let text = fs::read_to_string(&path).expect("read");
        assert!(text.contains("editor = \"vi\""), "{text}");
        let loaded = load_file(&path).expect("load");
        assert_eq!(loaded.url.as_deref(), Some("http://two"));
        assert_eq!(loaded.token.as_deref(), Some("t2"));
    }

    #[cfg(unix)]
    #[test]
    fn saved_file_is_owner_only_even_if_it_was_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        fs::write(&path, "").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        save_login_to(&path, "http://h", "secret").expect("save");
        let mode = fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
