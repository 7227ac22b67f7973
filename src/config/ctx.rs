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

/// An environment variable's name as configs spell them (`IAMPORT_API_SECRET`): upper case,
/// digits and `_`, not starting with a digit. Anything else at a `*_env` key may be a pasted
/// secret, and is never repeated in a message.
pub(in crate::config) fn looks_like_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 64
}

/// A path as configs spell them: no blanks, a `/` or a `.` in it, and its folder exists (a
/// pasted secret's "folder" does not). Anything else at a `*_file` key is never repeated.
pub(in crate::config) fn looks_like_path(s: &str) -> bool {
    if s.is_empty() || s.len() > 4096 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if !(s.contains('/') || s.contains('.')) || s.contains("-----") {
        return false;
    }
    match std::path::Path::new(s).parent() {
        None => true,
        Some(p) => p.as_os_str().is_empty() || p.is_dir(),
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
                    let message = match looks_like_env_name(var) {
                        true => format!("environment variable {var} is not set"),
                        // A secret pasted where its variable's name belongs: never repeat it.
                        false => format!(
                            "{base}_env takes the NAME of an environment variable (like \
                             VERIGATE_{}), and no variable by the name given is set; if you \
                             pasted the secret itself here, move it into the environment (it is \
                             not repeated in this message)",
                            base.to_ascii_uppercase()
                        ),
                    };
                    self.err(format!("{path}.{base}_env"), message);
                    None
                }
            },
            (None, Some(f)) => match std::fs::read_to_string(f) {
                Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                Ok(_) => {
                    self.err(format!("{path}.{base}_file"), format!("{f} is empty"));
                    None
                }
                Err(e) if looks_like_path(f) => {
                    self.err(
                        format!("{path}.{base}_file"),
                        format!("cannot read {f}: {e}"),
                    );
                    None
                }
                Err(_) => {
                    self.err(
                        format!("{path}.{base}_file"),
                        format!(
                            "{base}_file takes the path of a file holding the secret, and the \
                             value given is not a readable file; if you pasted the secret \
                             itself here, put it in a file (mode 0600) and name that file (the \
                             value is not repeated in this message)"
                        ),
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
