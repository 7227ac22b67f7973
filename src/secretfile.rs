//! `verigate keygen --out FILE`: a file only its owner can read, written without following a
//! symbolic link, and never over an existing file unless the caller says so.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{0} exists; keygen does not overwrite secrets (give --force to replace it)")]
    Exists(String),
    #[error("{0} is a symbolic link; keygen writes secrets only to a plain file")]
    Symlink(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Write `contents` to `path` with mode 0600. Refuses a symbolic link at `path` (also a
/// dangling one) and, unless `force`, any existing file.
pub fn write(path: &Path, contents: &str, force: bool) -> Result<(), SecretFileError> {
    let name = path.display().to_string();
    let io = |source| SecretFileError::Io {
        path: name.clone(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true)
        .mode(0o600)
        // The last component is never followed, even when it appears between a check and
        // the open: the open itself fails with ELOOP.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(SecretFileError::Symlink(name))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // create_new does not follow a symbolic link either: it reports it as existing.
            return Err(match std::fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_symlink() => SecretFileError::Symlink(name),
                _ => SecretFileError::Exists(name),
            });
        }
        Err(e) => return Err(io(e)),
    };
    // An overwritten file keeps its old mode through open(): set it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn mode_0600_no_overwrite_no_symlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("secrets.env");
        write(&p, "A=1\n", false).expect("fresh file");
        assert_eq!(std::fs::metadata(&p).expect("meta").mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "A=1\n");

        assert!(matches!(
            write(&p, "A=2\n", false),
            Err(SecretFileError::Exists(_))
        ));
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "A=1\n");

        // --force replaces it, and a world-readable file becomes 0600.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write(&p, "A=3\n", true).expect("forced");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "A=3\n");
        assert_eq!(std::fs::metadata(&p).expect("meta").mode() & 0o777, 0o600);

        // A link to another file is never written through, forced or not, dangling or not.
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep").expect("target");
        let link = dir.path().join("link.env");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        for force in [false, true] {
            assert!(matches!(
                write(&link, "B=1\n", force),
                Err(SecretFileError::Symlink(_))
            ));
        }
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep");
        let dangling = dir.path().join("dangling.env");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).expect("symlink");
        assert!(matches!(
            write(&dangling, "B=1\n", false),
            Err(SecretFileError::Symlink(_))
        ));
        assert!(!dir.path().join("nothing").exists());
    }
}
