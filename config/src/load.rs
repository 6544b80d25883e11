//! Loading: the YAML file and the `WIRESPAN_` environment merged through the `config`
//! crate, then deserialized section by section with `serde_path_to_error` so that
//! every refusal names where the value came from, its dotted key and the reason.

use std::fmt;
use std::path::{Path, PathBuf};

use config::{Environment, File, FileFormat, Map, Value, ValueKind};
use serde::de::DeserializeOwned;

use crate::schema::Config;
use crate::validate::ValidationError;

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "WIRESPAN_";
/// Separator between the parts of a key in a variable name
/// (`WIRESPAN_EXPORT__QUEUE_SIZE` is `export.queue_size`).
pub const ENV_SEPARATOR: &str = "__";
/// Keys whose environment value is a comma-separated list.
pub const ENV_LIST_KEYS: &[&str] = &[
    "capture.pids",
    "capture.ports",
    "capture.exclude_ports",
    "http.routes",
    "http.redact_query_params",
    "http.opt_in_attributes",
    "tls.debug_dirs",
];
/// The top-level sections of the file.
pub const SECTIONS: &[&str] = &[
    "capture",
    "connections",
    "http",
    "service",
    "traces",
    "tls",
    "kubernetes",
    "export",
    "metrics",
    "log",
];

/// Where a refused value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The configuration file, by the path given (or the origin passed to
    /// [`load_from_str`]).
    File(String),
    /// An environment variable, by name.
    Env(String),
    /// No file was given and the value is a built-in default.
    Defaults,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => f.write_str(path),
            Origin::Env(var) => write!(f, "environment {var}"),
            Origin::Defaults => f.write_str("default configuration"),
        }
    }
}

/// One refused key: `ORIGIN: KEY: REASON`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {key}: {reason}")]
pub struct Problem {
    pub origin: Origin,
    /// Dotted key such as `export.otlp.protocol` or `capture.ports[2]`.
    pub key: String,
    pub reason: String,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read the configuration file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML, or its root is not a mapping.
    #[error("{origin}{}: invalid YAML: {reason}", location(*line, *column))]
    Syntax {
        origin: String,
        /// 1-based, when the YAML parser says.
        line: Option<usize>,
        /// 1-based, when the YAML parser says.
        column: Option<usize>,
        reason: String,
    },
    /// Keys refused: unknown, of the wrong type, or out of range. One line each.
    #[error("{}", join_problems(problems))]
    Invalid { problems: Vec<Problem> },
}

impl ConfigError {
    /// The refused keys, if that is the kind of error (empty otherwise).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            _ => &[],
        }
    }
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn join_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads the configuration: the file at `path` if given (otherwise the defaults),
/// overridden by the process's `WIRESPAN_` environment variables, then validated.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut env = Vec::new();
    let mut bad_env = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        match value.into_string() {
            Ok(value) => env.push((name.to_string(), value)),
            Err(_) => bad_env.push(name.to_string()),
        }
    }
    if !bad_env.is_empty() {
        let problems = bad_env
            .into_iter()
            .map(|name| Problem {
                key: env_key(&name).unwrap_or_else(|| name.clone()),
                origin: Origin::Env(name),
                reason: "the value is not valid UTF-8".to_string(),
            })
            .collect();
        return Err(ConfigError::Invalid { problems });
    }
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            load_inner(Some((&text, &path.display().to_string())), &env)
        }
        None => load_inner(None, &env),
    }
}

/// Loads the configuration from YAML text (`origin` names it in errors, as a file
/// path would) and the given environment (only the `WIRESPAN_` variables in it are
/// used), then validates it.
pub fn load_from_str(
    yaml: &str,
    origin: &str,
    env: &[(String, String)],
) -> Result<Config, ConfigError> {
    load_inner(Some((yaml, origin)), env)
}

/// An environment override: the variable and the dotted key it sets.
struct EnvVar<'a> {
    name: &'a str,
    key: String,
    value: &'a str,
}

/// The dotted key a `WIRESPAN_` variable sets, or `None` if the variable is not a
/// configuration override: it must name a section (`WIRESPAN_EXPORT__QUEUE_SIZE`, or
/// a whole section like `WIRESPAN_LOG`), or contain `__`. Other `WIRESPAN_` variables
/// (such as one naming the file) are left alone.
fn env_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    let key = rest.to_lowercase().replace(ENV_SEPARATOR, ".");
    if key.contains('.') || SECTIONS.contains(&key.as_str()) {
        Some(key)
    } else {
        None
    }
}

fn load_inner(file: Option<(&str, &str)>, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let file_origin = match file {
        Some((_, origin)) => Origin::File(origin.to_string()),
        None => Origin::Defaults,
    };
    let vars: Vec<EnvVar<'_>> = env
        .iter()
        .filter_map(|(name, value)| env_key(name).map(|key| EnvVar { name, key, value }))
        .collect();

    let mut builder = config::Config::builder();
    if let Some((text, _)) = file {
        builder = builder.add_source(File::from_str(text, FileFormat::Yaml));
    }
    let mut scalars = Map::new();
    for var in &vars {
        if ENV_LIST_KEYS.contains(&var.key.as_str()) {
            let items: Vec<String> = var
                .value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            builder = builder.set_override(var.key.as_str(), items).map_err(|e| {
                invalid(Problem {
                    origin: Origin::Env(var.name.to_string()),
                    key: var.key.clone(),
                    reason: reason_of(&e),
                })
            })?;
        } else {
            scalars.insert(var.name.to_string(), var.value.to_string());
        }
    }
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
            .prefix_separator("_")
            .separator(ENV_SEPARATOR)
            .source(Some(scalars)),
    );

    let merged = match builder.build() {
        Ok(merged) => merged,
        // A file holding only `---` or `~` is an empty document: the defaults.
        Err(config::ConfigError::FileParse { cause, .. })
            if cause.to_string().starts_with("invalid type: unit value") =>
        {
            return load_inner(None, env).map_err(|e| with_file_origin(e, &file_origin));
        }
        Err(e) => return Err(build_error(e, &file_origin, &vars)),
    };
    let root = match merged.cache.kind {
        ValueKind::Table(map) => map,
        ValueKind::Nil => Map::new(),
        _ => {
            return Err(ConfigError::Syntax {
                origin: file_origin.to_string(),
                line: None,
                column: None,
                reason: "the file must be a mapping of sections (capture:, export:, ...)"
                    .to_string(),
            })
        }
    };

    let mut config = Config::default();
    let mut problems = Vec::new();
    for (section, value) in root {
        let found = match section.as_str() {
            "capture" => section_into(&section, value, &mut config.capture),
            "connections" => section_into(&section, value, &mut config.connections),
            "http" => section_into(&section, value, &mut config.http),
            "service" => section_into(&section, value, &mut config.service),
            "traces" => section_into(&section, value, &mut config.traces),
            "tls" => section_into(&section, value, &mut config.tls),
            "kubernetes" => section_into(&section, value, &mut config.kubernetes),
            "export" => section_into(&section, value, &mut config.export),
            "metrics" => section_into(&section, value, &mut config.metrics),
            "log" => section_into(&section, value, &mut config.log),
            _ => Err((section.clone(), unknown_key_reason(SECTIONS))),
        };
        if let Err((key, reason)) = found {
            problems.push(Problem {
                origin: origin_of(&key, &file_origin, &vars),
                key,
                reason,
            });
        }
    }
    if let Err(errors) = config.validate() {
        problems.extend(
            errors
                .into_iter()
                .map(|ValidationError { key, reason }| Problem {
                    origin: origin_of(&key, &file_origin, &vars),
                    key,
                    reason,
                }),
        );
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid { problems })
    }
}

/// Errors found with no file, reported against the (empty) file that was given.
fn with_file_origin(e: ConfigError, file_origin: &Origin) -> ConfigError {
    match e {
        ConfigError::Invalid { problems } => ConfigError::Invalid {
            problems: problems
                .into_iter()
                .map(|p| match p.origin {
                    Origin::Defaults => Problem {
                        origin: file_origin.clone(),
                        ..p
                    },
                    _ => p,
                })
                .collect(),
        },
        other => other,
    }
}

fn invalid(problem: Problem) -> ConfigError {
    ConfigError::Invalid {
        problems: vec![problem],
    }
}

/// Deserializes one section; an empty (`null`) section keeps its defaults. On error,
/// the full dotted key and the reason.
fn section_into<T: DeserializeOwned>(
    section: &str,
    value: Value,
    out: &mut T,
) -> Result<(), (String, String)> {
    if matches!(value.kind, ValueKind::Nil) {
        return Ok(());
    }
    check_mappings(section, &value)?;
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => {
            *out = v;
            Ok(())
        }
        Err(e) => {
            let path = e.path().to_string();
            let mut key = if path == "." || path.is_empty() {
                section.to_string()
            } else if path.starts_with('[') {
                format!("{section}{path}")
            } else {
                format!("{section}.{path}")
            };
            if let config::ConfigError::NotFound(missing) = e.inner() {
                // `missing` is like "rules[0]name": the field is after the last `]`/`.`.
                let field = missing.rsplit([']', '.']).next().unwrap_or(missing);
                if !field.is_empty() {
                    key = format!("{key}.{field}");
                }
            }
            let raw = reason_of(e.inner());
            let reason = match parse_unknown_field(&raw) {
                Some((field, expected)) => {
                    if !key.ends_with(&format!(".{field}")) {
                        key = format!("{key}.{field}");
                    }
                    unknown_key_reason(&expected)
                }
                None if raw.ends_with("expected a duration") => {
                    format!("{}, such as 250ms, 30s, 5m or 1h 30m", tidy_reason(&raw))
                }
                None => tidy_reason(&raw),
            };
            Err((key, reason))
        }
    }
}

/// Serde would fill a struct from a list, field by field in order; refuse that
/// where the schema has a struct: the sections, `export.otlp` and the items of
/// `service.rules` and `service.peers`.
fn check_mappings(section: &str, value: &Value) -> Result<(), (String, String)> {
    fn mapping(key: &str, value: &Value) -> Result<(), (String, String)> {
        match &value.kind {
            ValueKind::Table(_) | ValueKind::Nil => Ok(()),
            _ => Err((
                key.to_string(),
                format!("expected a mapping of keys, found {}", describe(value)),
            )),
        }
    }
    mapping(section, value)?;
    let ValueKind::Table(table) = &value.kind else {
        return Ok(());
    };
    for (key, items) in table {
        match (section, key.as_str()) {
            ("export", "otlp") => mapping("export.otlp", items)?,
            ("service", "rules" | "peers") => {
                if let ValueKind::Array(items) = &items.kind {
                    for (i, item) in items.iter().enumerate() {
                        mapping(&format!("service.{key}[{i}]"), item)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn describe(value: &Value) -> String {
    match &value.kind {
        ValueKind::Array(_) => "a list".to_string(),
        ValueKind::String(s) => format!("the string {s:?}"),
        ValueKind::Table(_) => "a mapping".to_string(),
        ValueKind::Nil => "nothing".to_string(),
        other => format!("the value {other}"),
    }
}

fn unknown_key_reason<S: AsRef<str>>(expected: &[S]) -> String {
    if expected.is_empty() {
        "unknown key".to_string()
    } else {
        let list: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
        format!("unknown key (known keys here: {})", list.join(", "))
    }
}

/// Serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`", or
/// "there are no fields"): the field and the expected ones.
fn parse_unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    let field = rest[..end].to_string();
    let tail = &rest[end + 1..];
    let expected = tail
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect();
    Some((field, expected))
}

/// The `config` crate's message without the key and origin it sometimes appends
/// (we name both ourselves).
fn reason_of(e: &config::ConfigError) -> String {
    match e {
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => {
            let unexpected = unexpected.to_string();
            let number = unexpected
                .split('`')
                .nth(1)
                .filter(|n| n.parse::<f64>().is_ok());
            match number {
                Some(n) if unexpected.contains("integer") && expected.contains("integer") => {
                    format!("{n} is out of range for {expected}")
                }
                _ => format!("invalid type: {unexpected}, expected {expected}"),
            }
        }
        config::ConfigError::NotFound(_) => "required key is missing".to_string(),
        config::ConfigError::At { error, .. } => reason_of(error),
        other => other.to_string(),
    }
}

/// Backtick-quoted words become "double-quoted" (numbers bare), as in
/// `unknown variant "grcp", expected "grpc" or "http/protobuf"`.
fn tidy_reason(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for (i, part) in msg.split('`').enumerate() {
        if i % 2 == 1 && part.parse::<f64>().is_err() {
            out.push('"');
            out.push_str(part);
            out.push('"');
        } else {
            out.push_str(part);
        }
    }
    out
}

/// Names the environment variable that set `key` (or the part of the tree it is in),
/// else the file.
fn origin_of(key: &str, file_origin: &Origin, vars: &[EnvVar<'_>]) -> Origin {
    let under = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
    };
    // The variable that set this key or a section holding it; failing that, one that
    // set a key inside it (an unknown section named only by the environment).
    vars.iter()
        .filter(|v| under(key, &v.key))
        .max_by_key(|v| v.key.len())
        .or_else(|| vars.iter().find(|v| under(&v.key, key)))
        .map(|v| Origin::Env(v.name.to_string()))
        .unwrap_or_else(|| file_origin.clone())
}

fn build_error(e: config::ConfigError, file_origin: &Origin, vars: &[EnvVar<'_>]) -> ConfigError {
    match e {
        config::ConfigError::FileParse { cause, .. } => {
            let msg = cause.to_string();
            if let Some(found) = msg
                .strip_prefix("invalid type: ")
                .and_then(|m| m.strip_suffix(", expected a map"))
            {
                return ConfigError::Syntax {
                    origin: file_origin.to_string(),
                    line: None,
                    column: None,
                    reason: format!("the top level must be a mapping of sections (capture:, export:, ...), not a {found}"),
                };
            }
            let (line, column) = yaml_location(&msg);
            let reason = match msg.find(" at byte ") {
                Some(i) if line.is_some() => msg[..i].to_string(),
                _ => msg,
            };
            ConfigError::Syntax {
                origin: file_origin.to_string(),
                line,
                column,
                reason,
            }
        }
        config::ConfigError::Type { .. } if vars.is_empty() => ConfigError::Syntax {
            origin: file_origin.to_string(),
            line: None,
            column: None,
            reason: "the file must be a mapping of sections (capture:, export:, ...)".to_string(),
        },
        other => {
            // Merging failed: a key set both as a value and as a section, typically by
            // an environment variable. Blame the first override, or the file.
            let origin = vars
                .first()
                .map(|v| Origin::Env(v.name.to_string()))
                .unwrap_or_else(|| file_origin.clone());
            let key = vars.first().map(|v| v.key.clone()).unwrap_or_default();
            invalid(Problem {
                origin,
                key,
                reason: reason_of(&other),
            })
        }
    }
}

/// yaml-rust2 ends its messages with "at byte B line L column C".
fn yaml_location(msg: &str) -> (Option<usize>, Option<usize>) {
    let number_after = |word: &str| -> Option<usize> {
        let i = msg.rfind(word)?;
        msg[i + word.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let line = number_after(" line ");
    // Its column is already 1-based, like its line.
    let column = number_after(" column ");
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys() {
        assert_eq!(
            env_key("WIRESPAN_EXPORT__QUEUE_SIZE").as_deref(),
            Some("export.queue_size")
        );
        assert_eq!(
            env_key("WIRESPAN_EXPORT__OTLP__ENDPOINT").as_deref(),
            Some("export.otlp.endpoint")
        );
        assert_eq!(env_key("WIRESPAN_LOG").as_deref(), Some("log"));
        assert_eq!(env_key("WIRESPAN_CONFIG"), None);
        assert_eq!(env_key("OTHER_EXPORT__QUEUE_SIZE"), None);
    }

    #[test]
    fn unknown_field_messages() {
        assert_eq!(
            parse_unknown_field("unknown field `bogus`, expected one of `a`, `b`"),
            Some(("bogus".to_string(), vec!["a".to_string(), "b".to_string()]))
        );
        assert_eq!(
            parse_unknown_field("unknown field `x`, there are no fields"),
            Some(("x".to_string(), vec![]))
        );
        assert_eq!(parse_unknown_field("invalid type"), None);
    }

    #[test]
    fn tidy_quotes_words_not_numbers() {
        assert_eq!(
            tidy_reason("unknown variant `grcp`, expected `grpc` or `http/protobuf`"),
            r#"unknown variant "grcp", expected "grpc" or "http/protobuf""#
        );
        assert_eq!(
            tidy_reason("invalid value: integer `70000`, expected u16"),
            "invalid value: integer 70000, expected u16"
        );
    }

    #[test]
    fn yaml_locations() {
        assert_eq!(
            yaml_location("mapping values are not allowed at byte 4 line 1 column 5"),
            (Some(1), Some(5))
        );
        assert_eq!(yaml_location("no location"), (None, None));
    }

    #[test]
    fn origin_display() {
        assert_eq!(Origin::File("a.yaml".into()).to_string(), "a.yaml");
        assert_eq!(
            Origin::Env("WIRESPAN_X__Y".into()).to_string(),
            "environment WIRESPAN_X__Y"
        );
    }
}
