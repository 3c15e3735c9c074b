//! Configuration: an optional `guildkeep.toml`, overridden by environment variables
//! (`GUILDKEEP_<KEY>` for every key, plus `DISCORD_TOKEN`, `DISCORD_DEV_GUILD` and
//! `DISCORD_API_BASE`), with `.env` loaded into the environment by `main` beforehand
//! ([`load_dotenv`]: the working directory's only, never a parent's).
//!
//! The token is a secret: `Config`'s `Debug` does not print it, a malformed `.env` is reported
//! by line number without its text, and `DISCORD_API_BASE` (where the token is sent) may only
//! name this machine.
//!
//! Every key is parsed by one function whether it came from the file or the environment, so
//! an unknown key or a bad value fails at start-up with one line naming the key, the value
//! and where it came from. Not here: using the values (store, bot, ops).

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::store::{ShardOwnership, StoreConfig, Synchronous};

/// Everything the binary can be configured with.
#[derive(Clone)]
pub struct Config {
    pub store: StoreConfig,
    /// The bot token; only `guildkeep run` needs it.
    pub discord_token: Option<String>,
    /// Register commands in this guild only (instant), instead of globally.
    pub dev_guild: Option<u64>,
    /// Another Discord API base, for tests against a fake Discord. Unset in production.
    pub api_base: Option<String>,
    /// How long after the bot is removed from a guild its data is deleted; zero: at once.
    pub deletion_grace: Duration,
    /// Active reminders one member may have in one guild.
    pub reminder_cap: usize,
    /// How long ended reminders and past delivery records are kept (`retention.rs`).
    pub reminder_retention: Duration,
    /// Occurrences in a row of a repeating reminder that could not be delivered (DMs closed,
    /// a permission missing) before it ends.
    pub reminder_failed_runs: u32,
    /// Total gateway shards, when this process runs only some of them.
    pub shard_count: Option<u64>,
    /// Where `guildkeep run` serves `/metrics`, `/healthz` and `/readyz`; `None`: nowhere.
    pub metrics_addr: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown configuration key `{key}` in {origin}")]
    UnknownKey { key: String, origin: String },
    #[error("configuration key `{key}` = `{value}` (from {origin}) is invalid: {expected}")]
    BadValue {
        key: &'static str,
        value: String,
        origin: String,
        expected: &'static str,
    },
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    /// The line's text is left out: it may hold the token.
    #[error("{path}: line {line} is not a `KEY=value` line (not shown: it may hold a secret)")]
    DotEnvLine { path: PathBuf, line: usize },
    #[error("cannot read {path}: {source}")]
    DotEnvRead {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("store", &self.store)
            .field(
                "discord_token",
                &self.discord_token.as_ref().map(|_| "<redacted>"),
            )
            .field("dev_guild", &self.dev_guild)
            .field("api_base", &self.api_base)
            .field("deletion_grace", &self.deletion_grace)
            .field("reminder_cap", &self.reminder_cap)
            .field("reminder_retention", &self.reminder_retention)
            .field("reminder_failed_runs", &self.reminder_failed_runs)
            .field("shard_count", &self.shard_count)
            .field("metrics_addr", &self.metrics_addr)
            .finish()
    }
}

/// The `.env` file `main` loads: in the working directory, and only there. Looking in parent
/// directories, as `dotenvy::dotenv` does, let a `.env` planted anywhere above the working
/// directory set the token's destination (`DISCORD_API_BASE`) or the data directory.
pub const DOTENV: &str = ".env";

/// Loads `path` into the environment, keeping variables already set. A missing file is
/// normal; a malformed one is an error naming the line by number only.
pub fn load_dotenv(path: &Path) -> Result<(), ConfigError> {
    match dotenvy::from_path(path) {
        Ok(()) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(dotenvy::Error::LineParse(text, _)) => {
            // dotenvy gives the offending text, not its line: find it in the file.
            let file = std::fs::read_to_string(path).unwrap_or_default();
            let line = file
                .find(&text)
                .map_or(0, |at| file[..at].matches('\n').count() + 1);
            Err(ConfigError::DotEnvLine {
                path: path.to_owned(),
                line,
            })
        }
        Err(dotenvy::Error::Io(source)) => Err(ConfigError::DotEnvRead {
            path: path.to_owned(),
            source,
        }),
        Err(other) => Err(ConfigError::DotEnvRead {
            path: path.to_owned(),
            source: std::io::Error::other(other.to_string()),
        }),
    }
}

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_FILE: &str = "guildkeep.toml";

/// A setting as found, before parsing: its text and where it came from.
struct Raw {
    text: String,
    origin: String,
}

type Apply = fn(&mut Config, &Raw) -> Result<(), &'static str>;

/// Every key: its name in the TOML file, its environment variable, and how it is applied.
const KEYS: &[(&str, &str, Apply)] = &[
    ("data_dir", "GUILDKEEP_DATA_DIR", |c, raw| {
        (!raw.text.is_empty())
            .then(|| c.store.data_dir = PathBuf::from(&raw.text))
            .ok_or("expected a directory path")
    }),
    ("max_open_guilds", "GUILDKEEP_MAX_OPEN_GUILDS", |c, raw| {
        c.store.max_open_guilds = whole(raw, 1, 1_000_000)?;
        Ok(())
    }),
    ("idle_timeout", "GUILDKEEP_IDLE_TIMEOUT", |c, raw| {
        c.store.idle_timeout = duration(raw, false, ON_THE_CLOCK)?;
        Ok(())
    }),
    (
        "connections_per_guild",
        "GUILDKEEP_CONNECTIONS_PER_GUILD",
        |c, raw| {
            c.store.connections_per_guild = whole(raw, 1, 64)?;
            Ok(())
        },
    ),
    ("busy_timeout", "GUILDKEEP_BUSY_TIMEOUT", |c, raw| {
        c.store.busy_timeout = duration(raw, false, IN_SQLITE)?;
        Ok(())
    }),
    ("synchronous", "GUILDKEEP_SYNCHRONOUS", |c, raw| {
        c.store.synchronous = match raw.text.to_ascii_lowercase().as_str() {
            "normal" => Synchronous::Normal,
            "full" => Synchronous::Full,
            _ => return Err("expected `normal` or `full`"),
        };
        Ok(())
    }),
    ("max_guild_mib", "GUILDKEEP_MAX_GUILD_MIB", |c, raw| {
        c.store.max_guild_bytes = whole::<u64>(raw, 1, 1 << 20)? << 20;
        Ok(())
    }),
    ("open_wait", "GUILDKEEP_OPEN_WAIT", |c, raw| {
        c.store.open_wait = duration(raw, false, ON_THE_CLOCK)?;
        Ok(())
    }),
    ("deletion_grace", "GUILDKEEP_DELETION_GRACE", |c, raw| {
        c.deletion_grace = duration(raw, true, ON_THE_CLOCK)?;
        Ok(())
    }),
    (
        "reminder_retention",
        "GUILDKEEP_REMINDER_RETENTION",
        |c, raw| {
            c.reminder_retention = duration(raw, false, ON_THE_CLOCK)?;
            Ok(())
        },
    ),
    ("reminder_cap", "GUILDKEEP_REMINDER_CAP", |c, raw| {
        c.reminder_cap = whole(raw, 1, 10_000)?;
        Ok(())
    }),
    (
        "reminder_failed_runs",
        "GUILDKEEP_REMINDER_FAILED_RUNS",
        |c, raw| {
            c.reminder_failed_runs = whole(raw, 1, 1000)?;
            Ok(())
        },
    ),
    ("shard_count", "GUILDKEEP_SHARD_COUNT", |c, raw| {
        c.shard_count = Some(whole(raw, 1, 1_000_000)?);
        Ok(())
    }),
    ("shards", "GUILDKEEP_SHARDS", |c, raw| {
        let owned = shard_range(&raw.text).ok_or("expected a shard range such as `0..4`")?;
        c.store.shards = Some(ShardOwnership { count: 0, owned });
        Ok(())
    }),
    ("metrics_addr", "GUILDKEEP_METRICS_ADDR", |c, raw| {
        c.metrics_addr =
            match raw.text.trim() {
                "off" => None,
                addr => Some(addr.parse().map_err(|_| {
                    "expected `off` or an address and port such as `127.0.0.1:9089`"
                })?),
            };
        Ok(())
    }),
    ("dev_guild", "DISCORD_DEV_GUILD", |c, raw| {
        c.dev_guild = Some(whole(raw, 1, u64::MAX)?);
        Ok(())
    }),
    ("api_base", "DISCORD_API_BASE", |c, raw| {
        loopback_url(&raw.text)
            .then(|| c.api_base = Some(raw.text.trim_end_matches('/').to_owned()))
            .ok_or(
                "expected an http:// or https:// URL on this machine (127.0.0.0/8, [::1] or \
                 localhost): the bot sends its token there",
            )
    }),
];

/// Environment variables that are read elsewhere and so are not unknown keys.
const OTHER_ENV: &[&str] = &["DISCORD_TOKEN", "GUILDKEEP_CONFIG", "GUILDKEEP_LOG"];

impl Config {
    /// Loads `file` (or [`DEFAULT_FILE`] when present) and then the environment `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        let default = Path::new(DEFAULT_FILE);
        let file = file.or_else(|| default.exists().then_some(default));
        if let Some(path) = file {
            for (key, raw) in read_file(path)? {
                config.apply(&key, raw, |(name, _, _)| *name == key)?;
            }
        }
        let env: BTreeMap<String, String> = env.into_iter().collect();
        for (var, value) in env {
            if var == "DISCORD_TOKEN" {
                config.discord_token = Some(value).filter(|t| !t.trim().is_empty());
                continue;
            }
            let ours = var.starts_with("GUILDKEEP_") || KEYS.iter().any(|(_, v, _)| *v == var);
            if !ours || OTHER_ENV.contains(&var.as_str()) {
                continue;
            }
            let raw = Raw {
                text: value,
                origin: format!("environment variable {var}"),
            };
            config.apply(&var, raw, |(_, name, _)| *name == var)?;
        }
        config.settle_shards()?;
        Ok(config)
    }

    fn apply(
        &mut self,
        key: &str,
        raw: Raw,
        matches: impl Fn(&&(&str, &str, Apply)) -> bool,
    ) -> Result<(), ConfigError> {
        let Some((name, _, apply)) = KEYS.iter().find(matches) else {
            return Err(ConfigError::UnknownKey {
                key: key.to_owned(),
                origin: raw.origin,
            });
        };
        apply(self, &raw).map_err(|expected| ConfigError::BadValue {
            key: name,
            value: raw.text,
            origin: raw.origin,
            expected,
        })
    }

    /// `shards` needs `shard_count`, which may come from another source, so the two are
    /// combined once everything is read.
    fn settle_shards(&mut self) -> Result<(), ConfigError> {
        let bad = |value: String, expected| ConfigError::BadValue {
            key: "shards",
            value,
            origin: "the configuration".into(),
            expected,
        };
        match (&mut self.store.shards, self.shard_count) {
            (None, _) => Ok(()),
            (Some(shards), None) => Err(bad(
                format!("{:?}", shards.owned),
                "`shards` needs `shard_count`",
            )),
            (Some(shards), Some(count)) if shards.owned.end > count => Err(bad(
                format!("{:?}", shards.owned),
                "the range must lie within 0..shard_count",
            )),
            (Some(shards), Some(count)) => {
                shards.count = count;
                Ok(())
            }
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            store: StoreConfig::new("data"),
            discord_token: None,
            dev_guild: None,
            api_base: None,
            deletion_grace: Duration::from_secs(14 * 24 * 3600),
            reminder_cap: 25,
            reminder_retention: Duration::from_secs(90 * 24 * 3600),
            reminder_failed_runs: 3,
            shard_count: None,
            metrics_addr: Some(DEFAULT_METRICS_ADDR),
        }
    }
}

/// Loopback only: the figures are for the operator. Port 9089 lies below the range
/// Prometheus's default-port allocations use (9090-9093 for its own servers, 9100-9999 for
/// exporters, now full, and on from 10000), so no allocated exporter on the same host has it.
pub const DEFAULT_METRICS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9089);

fn read_file(path: &Path) -> Result<Vec<(String, Raw)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Toml {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
    let origin = path.display().to_string();
    Ok(table
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            let origin = origin.clone();
            (key, Raw { text, origin })
        })
        .collect())
}

fn whole<T: TryFrom<u64>>(raw: &Raw, min: u64, max: u64) -> Result<T, &'static str> {
    const EXPECTED: &str = "expected a whole number in the allowed range";
    let n: u64 = raw.text.trim().parse().map_err(|_| EXPECTED)?;
    if !(min..=max).contains(&n) {
        return Err(EXPECTED);
    }
    T::try_from(n).map_err(|_| EXPECTED)
}

/// The longest a duration may be, and the message that says so.
struct Limit {
    max: Duration,
    expected: &'static str,
}

/// A duration SQLite is given (the busy timeout): it takes a 32-bit count of milliseconds,
/// a little under 25 days, and rusqlite panics on anything longer.
const IN_SQLITE: Limit = Limit {
    max: Duration::from_secs(24 * 86_400),
    expected: "expected a duration of at most 24days (SQLite counts it in 32-bit milliseconds)",
};

/// A duration added to a clock reading (an `Instant`; the date, for `deletion_grace`), where
/// an unbounded one overflows and panics. A century is longer than any sensible setting.
const ON_THE_CLOCK: Limit = Limit {
    max: Duration::from_secs(100 * 365 * 86_400),
    expected: "expected a duration of at most 36500days",
};

/// `"90s"`, `"10m"`, `"14days"` (humantime), or a bare number of seconds, up to `limit`.
fn duration(raw: &Raw, zero_allowed: bool, limit: Limit) -> Result<Duration, &'static str> {
    let text = raw.text.trim();
    let parsed = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text)
            .map_err(|_| "expected a duration such as `30s`, `10m` or `14days`")?,
    };
    if parsed.is_zero() && !zero_allowed {
        return Err("expected a duration greater than zero");
    }
    if parsed > limit.max {
        return Err(limit.expected);
    }
    Ok(parsed)
}

/// Whether `text` is an http(s) URL whose host is a loopback address or `localhost`. No user
/// info is accepted: in `http://127.0.0.1@example.com` the host is `example.com`.
fn loopback_url(text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return false,
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    let host_ok = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    port_ok && host_ok
}

/// `"2..4"` (shards 2 and 3) or a single shard `"3"`.
fn shard_range(text: &str) -> Option<Range<u64>> {
    let text = text.trim();
    let range = match text.split_once("..") {
        Some((start, end)) => start.trim().parse().ok()?..end.trim().parse().ok()?,
        None => {
            let shard: u64 = text.parse().ok()?;
            shard..shard + 1
        }
    };
    (!range.is_empty()).then_some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(body: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("guildkeep.toml");
        std::fs::write(&path, body).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_match_the_documentation() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.store.data_dir, PathBuf::from("data"));
        assert_eq!(c.store.max_open_guilds, 256);
        assert_eq!(c.store.idle_timeout, Duration::from_secs(600));
        assert_eq!(c.deletion_grace, Duration::from_secs(14 * 86400));
        assert_eq!(c.reminder_cap, 25);
        assert_eq!(c.reminder_failed_runs, 3);
        let c = Config::load(None, env(&[("GUILDKEEP_REMINDER_FAILED_RUNS", "5")])).unwrap();
        assert_eq!(c.reminder_failed_runs, 5);
        assert!(Config::load(None, env(&[("GUILDKEEP_REMINDER_FAILED_RUNS", "0")])).is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let (_dir, path) =
            file("max_open_guilds = 8\nidle_timeout = \"5m\"\nsynchronous = \"full\"\n");
        let c = Config::load(Some(&path), env(&[("GUILDKEEP_MAX_OPEN_GUILDS", "16")])).unwrap();
        assert_eq!(c.store.max_open_guilds, 16);
        assert_eq!(c.store.idle_timeout, Duration::from_secs(300));
        assert_eq!(c.store.synchronous, Synchronous::Full);
    }

    #[test]
    fn metrics_are_on_loopback_by_default_and_off_when_asked() {
        assert_eq!(
            Config::load(None, env(&[])).unwrap().metrics_addr,
            Some(DEFAULT_METRICS_ADDR)
        );
        let (_dir, path) = file("metrics_addr = \"0.0.0.0:9189\"\n");
        let c = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(c.metrics_addr, Some(([0, 0, 0, 0], 9189).into()));
        let off = env(&[("GUILDKEEP_METRICS_ADDR", "off")]);
        assert_eq!(Config::load(Some(&path), off).unwrap().metrics_addr, None);
    }

    #[test]
    fn unknown_keys_are_named() {
        let (_dir, path) = file("max_open_guild = 8\n");
        let err = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(err.contains("`max_open_guild`"), "{err}");
        let err = Config::load(None, env(&[("GUILDKEEP_DATADIR", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("GUILDKEEP_DATADIR"), "{err}");
    }

    #[test]
    fn bad_values_name_key_and_value() {
        let cases = [
            ("GUILDKEEP_MAX_OPEN_GUILDS", "0", "max_open_guilds"),
            ("GUILDKEEP_MAX_OPEN_GUILDS", "lots", "max_open_guilds"),
            ("GUILDKEEP_IDLE_TIMEOUT", "soon", "idle_timeout"),
            ("GUILDKEEP_SYNCHRONOUS", "sometimes", "synchronous"),
            ("DISCORD_DEV_GUILD", "0", "dev_guild"),
            ("GUILDKEEP_SHARDS", "4..2", "shards"),
            ("GUILDKEEP_METRICS_ADDR", "9089", "metrics_addr"),
        ];
        for (var, value, key) in cases {
            let err = Config::load(None, env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("`{key}` = `{value}`")),
                "{var}: {err}"
            );
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn durations_past_what_sqlite_or_the_clock_can_hold_are_refused_naming_the_limit() {
        let cases = [
            ("GUILDKEEP_BUSY_TIMEOUT", "25days", "busy_timeout", "24days"),
            (
                "GUILDKEEP_IDLE_TIMEOUT",
                "36501days",
                "idle_timeout",
                "36500days",
            ),
            (
                "GUILDKEEP_OPEN_WAIT",
                "18446744073709551615",
                "open_wait",
                "36500days",
            ),
            (
                "GUILDKEEP_DELETION_GRACE",
                "300000years",
                "deletion_grace",
                "36500days",
            ),
        ];
        for (var, value, key, limit) in cases {
            let err = Config::load(None, env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{key}` = `{value}`")), "{err}");
            assert!(err.contains(&format!("at most {limit}")), "{err}");
        }
        // The limits themselves are taken, and every use of them works.
        let c = Config::load(
            None,
            env(&[
                ("GUILDKEEP_BUSY_TIMEOUT", "24days"),
                ("GUILDKEEP_IDLE_TIMEOUT", "36500days"),
                ("GUILDKEEP_OPEN_WAIT", "36500days"),
                ("GUILDKEEP_DELETION_GRACE", "36500days"),
            ]),
        )
        .unwrap();
        rusqlite::Connection::open_in_memory()
            .unwrap()
            .busy_timeout(c.store.busy_timeout)
            .unwrap();
        let now = std::time::Instant::now();
        let _ = now + c.store.open_wait + c.store.idle_timeout;
        let _ = chrono::Utc::now() + chrono::TimeDelta::from_std(c.deletion_grace).unwrap();
    }

    #[test]
    fn shards_need_a_count_that_covers_them() {
        let ok = Config::load(
            None,
            env(&[("GUILDKEEP_SHARD_COUNT", "4"), ("GUILDKEEP_SHARDS", "2..4")]),
        )
        .unwrap();
        assert_eq!(
            ok.store.shards,
            Some(ShardOwnership {
                count: 4,
                owned: 2..4
            })
        );
        assert!(Config::load(None, env(&[("GUILDKEEP_SHARDS", "0..2")])).is_err());
        assert!(Config::load(
            None,
            env(&[("GUILDKEEP_SHARD_COUNT", "2"), ("GUILDKEEP_SHARDS", "1..3")])
        )
        .is_err());
    }

    #[test]
    fn the_api_base_must_be_on_this_machine() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.5.6.7/api/",
            "https://localhost:443",
            "http://[::1]:9000/",
            "http://LOCALHOST",
        ] {
            let c = Config::load(None, env(&[("DISCORD_API_BASE", ok)])).unwrap();
            assert!(c.api_base.is_some(), "{ok}");
        }
        for refused in [
            "http://10.0.0.1:8080",
            "https://discord.example",
            "http://127.0.0.1@attacker.example",
            "http://localhost.attacker.example",
            "http://[::ffff:8.8.8.8]/",
            "http://128.0.0.1",
            "http://127.0.0.1:99999",
            "ftp://127.0.0.1",
            "127.0.0.1:8080",
        ] {
            let err = Config::load(None, env(&[("DISCORD_API_BASE", refused)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("`api_base`") && err.contains("on this machine"),
                "{refused}: {err}"
            );
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn debug_output_never_holds_the_token() {
        let token = "MTIzNDU2Nzg5MDEyMzQ1Njc4.secret.part";
        let c = Config::load(None, env(&[("DISCORD_TOKEN", token)])).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains(token) && !shown.contains("secret"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(format!("{c:#?}").contains("reminder_cap"));
    }

    #[test]
    fn a_malformed_dotenv_is_named_by_line_without_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "# the token\n\nDISCORD_TOKEN abc.secret.xyz\n").unwrap();
        let err = load_dotenv(&path).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("abc.secret"), "{err}");
        assert!(load_dotenv(&dir.path().join("absent.env")).is_ok());
    }

    #[test]
    fn an_empty_token_counts_as_missing() {
        let c = Config::load(None, env(&[("DISCORD_TOKEN", "  ")])).unwrap();
        assert_eq!(c.discord_token, None);
    }
}
