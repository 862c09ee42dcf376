//! How every tool of the project writes a file: the whole content into a fresh temporary file
//! in the destination's folder, then a rename over the destination. A reader sees the old file
//! or the new one, never a torn one; a crash leaves at most a stray `.NAME.*.tmp` beside it; a
//! symlink at the destination is replaced, not written through; and a failure leaves the old
//! file as it was.
//!
//! Also here: the check, before any work starts, that a path can be written
//! ([`check_writable`]), and the private temporary folders for the files a run passes between
//! processes ([`private_dir`]).

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// The folder a path's file lives in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A temporary file beside `path`, named `.NAME.XXXXXX.tmp`, made with `O_EXCL` (and mode 0644
/// less the umask, as a file made by `File::create` would have).
fn temporary_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(folder_of(path))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename: the
/// only way the project's tools write a file.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    if path.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is a folder",
            path.display()
        )));
    }
    let mut file = temporary_beside(path)?;
    file.write_all(bytes.as_ref())?;
    file.as_file().sync_data()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Checks, before any work, that `path` can be written by [`write`]: not a folder, its folder
/// exists and takes a new file, and a file already there may be written. Touches nothing: the
/// probe file it makes is removed, an existing file is opened without truncation.
pub fn check_writable(path: &Path) -> Result<(), String> {
    let fail = |why: String| Err(format!("cannot write {}: {why}", path.display()));
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return fail("it is a folder".into()),
        Ok(_) => {
            if let Err(e) = std::fs::OpenOptions::new().write(true).open(path) {
                return fail(e.to_string());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return fail(e.to_string()),
    }
    match temporary_beside(path) {
        Ok(probe) => {
            let _ = probe.close();
            Ok(())
        }
        Err(e) => fail(format!("{}: {e}", folder_of(path).display())),
    }
}

/// Checks, before any work, that folders can be made at `dir` and files written in it: `dir`
/// is a folder that takes a new file, or does not exist yet and its nearest existing ancestor
/// does. Makes nothing (the probe file is removed).
pub fn check_folder_writable(dir: &Path) -> Result<(), String> {
    let mut at = dir;
    loop {
        match std::fs::metadata(at) {
            Ok(meta) if meta.is_dir() => {
                return check_writable(&at.join("probe"))
                    .map_err(|_| format!("cannot write into {}", at.display()));
            }
            Ok(_) => return Err(format!("{} is not a folder", at.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                at = match at.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => Path::new("."),
                };
            }
            Err(e) => return Err(format!("{}: {e}", at.display())),
        }
    }
}

/// A fresh folder only this user can enter (mode 0700, a random name made with `mkdir`, under
/// the temporary directory), removed when dropped, and on an interrupt, whose exit drops
/// nothing ([`crate::child::make_removed_on_interrupt`]): where files passed between processes
/// (reports, Unix sockets, valgrind's output) go, so no other user can guess, pre-create or
/// redirect them.
pub fn private_dir(prefix: &str) -> std::io::Result<PrivateDir> {
    crate::child::make_removed_on_interrupt(
        || {
            tempfile::Builder::new()
                .prefix(&format!("{prefix}-"))
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir()
        },
        tempfile::TempDir::path,
    )
    .map(PrivateDir)
}

/// A folder of [`private_dir`]'s: removed, with what is in it, when dropped.
#[derive(Debug)]
pub struct PrivateDir(tempfile::TempDir);

impl PrivateDir {
    /// Where it is.
    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for PrivateDir {
    /// Taken off the interrupt's list before the folder goes (its field drops after this).
    fn drop(&mut self) {
        crate::child::forget_on_interrupt(self.0.path());
    }
}

/// A Unix socket's path, `NAME.sock` in a fresh [`private_dir`]; the folder (and the socket
/// in it) goes when the returned guard is dropped.
pub fn private_socket(prefix: &str) -> std::io::Result<(PrivateDir, std::path::PathBuf)> {
    let dir = private_dir(prefix)?;
    let path = dir.path().join("server.sock");
    Ok((dir, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_a_symlink_instead_of_writing_through_it() {
        let dir = private_dir("echo-files-test").unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "theirs").unwrap();
        let link = dir.path().join("out.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write(&link, "ours").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "theirs");
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "ours");
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file left behind");
    }

    #[test]
    fn private_folders_are_fresh_and_closed_to_others() {
        let (a, path) = private_socket("echo-files-test").unwrap();
        let (b, _) = private_socket("echo-files-test").unwrap();
        assert_ne!(a.path(), b.path());
        assert!(path.starts_with(a.path()));
        let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let gone = a.path().to_owned();
        drop(a);
        assert!(!gone.exists());
    }

    #[test]
    fn checking_a_path_changes_nothing() {
        let dir = private_dir("echo-files-test").unwrap();
        let file = dir.path().join("kept.json");
        std::fs::write(&file, "kept").unwrap();
        check_writable(&file).unwrap();
        check_writable(&dir.path().join("new.json")).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "kept");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(check_writable(dir.path()).is_err());
        assert!(check_writable(&dir.path().join("missing/x.json")).is_err());
        check_folder_writable(&dir.path().join("new/deeper")).unwrap();
        assert!(check_folder_writable(&file.join("below")).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
