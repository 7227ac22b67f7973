//! What every check of a config section works with: where secrets come from, and the list of
//! problems (errors and warnings, each with its key path) being collected.

use super::duration;
use super::Problem;
use std::collections::HashMap;
use std::time::Duration;

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where secrets come from: environment variables (by name) and files (by path).
pub struct Secrets {
    env: Lookup,
}

impl Secrets {
    pub fn from_process() -> Self {
        Secrets {
            env: Box::new(|k| std::env::var(k).ok()),
        }
    }

    /// For tests and the demo: a fixed map instead of the process environment.
    pub fn from_map(map: HashMap<String, String>) -> Self {
        Secrets {
            env: Box::new(move |k| map.get(k).cloned()),
        }
    }

    fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }
}

pub(crate) struct Ctx<'a> {
    pub(crate) problems: Vec<Problem>,
    /// Valid, but probably not meant: printed by `check`, logged at start; never refuse.
    pub(crate) warnings: Vec<Problem>,
    pub(crate) secrets: &'a Secrets,
}

impl Ctx<'_> {
    pub(crate) fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn duration(
        &mut self,
        path: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Duration {
        match value {
            None => default,
            Some(v) => match duration::parse(v) {
                Ok(d) => d,
                Err(e) => {
                    self.err(path, e);
                    default
                }
            },
        }
    }

    /// A secret named either by `<base>_env` or `<base>_file`; exactly one must be set.
    pub(crate) fn secret(
        &mut self,
        path: &str,
        base: &str,
        env: Option<&str>,
        file: Option<&str>,
        required: bool,
    ) -> Option<String> {
        match (env, file) {
            (Some(_), Some(_)) => {
                self.err(
                    format!("{path}.{base}_env"),
                    format!("set either {base}_env or {base}_file, not both"),
                );
                None
            }
            (Some(var), None) => match self.secrets.env(var) {
                Some(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                _ => {
                    self.err(
                        format!("{path}.{base}_env"),
                        format!("environment variable {var} is not set"),
                    );
                    None
                }
            },
            (None, Some(f)) => match std::fs::read_to_string(f) {
                Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                Ok(_) => {
                    self.err(format!("{path}.{base}_file"), format!("{f} is empty"));
                    None
                }
                Err(e) => {
                    self.err(
                        format!("{path}.{base}_file"),
                        format!("cannot read {f}: {e}"),
                    );
                    None
                }
            },
            (None, None) => {
                if required {
                    self.err(
                        path,
                        format!(
                            "missing {base}_env or {base}_file (secrets never live in the YAML)"
                        ),
                    );
                }
                None
            }
        }
    }

    pub(crate) fn url(&mut self, path: &str, value: Option<&str>, default: &str) -> String {
        let v = value.unwrap_or(default).trim_end_matches('/').to_string();
        let lower = v.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) || v.len() < 10 {
            self.err(path, format!("`{v}` is not an http(s) URL"));
        }
        v
    }
}
