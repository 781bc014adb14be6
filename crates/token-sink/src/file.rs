//! Atomic token files: temp file, fsync, rename, fsync of the directory.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, fchown};
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

/// Mode a token file gets when the configuration names none.
pub const DEFAULT_MODE: u32 = 0o640;

/// A token file is a plain file: set-id and sticky bits mean a typo, not a wish.
const PERMISSION_BITS: u32 = 0o777;

/// Temp files are `<file name>.tmp.<16 lowercase hex digits>`; the fixed shape is what lets the
/// start-up cleanup remove leftovers of a crashed run without touching anything else.
const TEMP_INFIX: &str = ".tmp.";
const TEMP_SUFFIX_LEN: usize = 16;

/// A name clash needs another writer drawing the same 64 random bits, so a few tries are plenty.
const CREATE_ATTEMPTS: usize = 8;

/// Writes a value to one path so that readers see the old content or the new, never a mix.
///
/// Each write creates a fresh temp file next to the target with `O_CREAT|O_EXCL` and the
/// configured mode, sets that mode exactly (the umask only ever narrows it) and the configured
/// owner, writes the value without a trailing newline, fsyncs, renames it over the target and
/// fsyncs the directory. Every rewrite therefore has the same mode and owner.
#[derive(Debug, Clone)]
pub struct FileSink {
    path: PathBuf,
    dir: PathBuf,
    file_name: OsString,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
}

/// The file sink settings cannot describe a token file.
#[derive(Debug, thiserror::Error)]
pub enum FileSinkRejected {
    /// The mode has bits above `0o777`.
    #[error("file sink {}: mode {mode:#o} has bits above 0o777", path.display())]
    ModeOutOfRange {
        /// The sink path.
        path: PathBuf,
        /// The mode as configured.
        mode: u32,
    },

    /// The path ends in `..` or is a root, so there is no file name to write.
    #[error("file sink {}: path does not name a file", path.display())]
    NoFileName {
        /// The sink path.
        path: PathBuf,
    },
}

/// The start-up check could not create and remove a file next to the token file.
#[derive(Debug, thiserror::Error)]
#[error("token file {}: start-up write check failed", path.display())]
pub struct WriteCheckFailed {
    /// The sink path.
    pub path: PathBuf,
    /// What the filesystem said.
    #[source]
    pub source: io::Error,
}

/// Writing the token file failed; the previous content, if any, is still in place.
#[derive(Debug, thiserror::Error)]
#[error("cannot write token file {}", path.display())]
pub struct FileWriteFailed {
    /// The sink path.
    pub path: PathBuf,
    /// What the filesystem said.
    #[source]
    pub source: io::Error,
}

impl FileSink {
    /// Describes a token file at `path` with permission bits `mode` (usually [`DEFAULT_MODE`]).
    ///
    /// No I/O happens here; [`FileSink::prepare`] checks the directory.
    pub fn new(path: impl Into<PathBuf>, mode: u32) -> Result<Self, FileSinkRejected> {
        let path = path.into();

        if mode & !PERMISSION_BITS != 0 {
            return Err(FileSinkRejected::ModeOutOfRange { path, mode });
        }
        let Some(file_name) = path.file_name().map(OsStr::to_os_string) else {
            return Err(FileSinkRejected::NoFileName { path });
        };

        // `Path::parent` of a bare file name is "", which no syscall accepts as a directory.
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };

        Ok(Self {
            path,
            dir,
            file_name,
            mode,
            uid: None,
            gid: None,
        })
    }

    /// Hands the file to `uid` and/or `gid` on every write; `None` leaves that id as created.
    pub fn with_owner(mut self, uid: Option<u32>, gid: Option<u32>) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// The target path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The permission bits every write sets.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Start-up work, blocking: proves a file can be created (with the configured mode and owner)
    /// next to the target, then removes temp files a crashed run left for this sink.
    ///
    /// Returns how many stale temp files were removed.
    pub fn prepare(&self) -> Result<usize, WriteCheckFailed> {
        let fail = |source| WriteCheckFailed {
            path: self.path.clone(),
            source,
        };

        self.write_check().map_err(fail)?;
        self.remove_stale_temp_files().map_err(fail)
    }

    /// Replaces the target's content with `value`, blocking until it is durable.
    pub fn write(&self, value: &[u8]) -> Result<(), FileWriteFailed> {
        self.write_atomically(value)
            .map_err(|source| FileWriteFailed {
                path: self.path.clone(),
                source,
            })
    }

    fn write_atomically(&self, value: &[u8]) -> io::Result<()> {
        let (temp, mut file) = self.create_temp()?;

        file.write_all(value)?;
        file.sync_all()?;
        drop(file);

        fs::rename(temp.path(), &self.path)?;
        temp.keep();

        // Without this the rename itself may not survive a power cut.
        File::open(&self.dir)?.sync_all()
    }

    fn write_check(&self) -> io::Result<()> {
        // The rename of every write would replace a FIFO, a socket or a device (`/dev/null`,
        // as root) as readily as a token file, and could never replace a directory, so that
        // every write would fail; a link is replaced as a link.
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.is_dir() => {
                let message = "the path is a directory, which a token file cannot replace";
                return Err(io::Error::new(io::ErrorKind::IsADirectory, message));
            }
            Ok(meta) if !meta.is_file() && !meta.is_symlink() => {
                let message = "the path exists and is no regular file; refusing to replace it";
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, message));
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }

        let (temp, mut file) = self.create_temp()?;

        // Random filler, so the check never puts anything meaningful on disk.
        file.write_all(random_suffix().as_bytes())?;
        drop(file);

        fs::remove_file(temp.path())?;
        temp.keep();
        Ok(())
    }

    fn create_temp(&self) -> io::Result<(TempFile, File)> {
        for _ in 0..CREATE_ATTEMPTS {
            let mut name = self.file_name.clone();
            name.push(TEMP_INFIX);
            name.push(random_suffix());
            let path = self.dir.join(name);

            let opened = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.mode)
                .open(&path);
            let file = match opened {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            };
            let temp = TempFile::new(path);

            // The umask may have narrowed the mode at creation; setting it now makes it exact
            // without the file ever having been wider. Owner before content, so a configured
            // group never sees an interval where the agent's own group owns the token.
            file.set_permissions(Permissions::from_mode(self.mode))?;
            if self.uid.is_some() || self.gid.is_some() {
                fchown(&file, self.uid, self.gid)?;
            }
            return Ok((temp, file));
        }

        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "every temporary file name tried was taken",
        ))
    }

    fn remove_stale_temp_files(&self) -> io::Result<usize> {
        let mut removed = 0;

        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if !self.is_our_temp_name(&entry.file_name()) || !entry.file_type()?.is_file() {
                continue;
            }

            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    debug!(temp.path = %entry.path().display(), "removed stale temp file");
                    removed += 1;
                }
                // Another writer may have renamed or removed it meanwhile.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    warn!(temp.path = %entry.path().display(), %error, "cannot remove stale temp file");
                }
            }
        }
        Ok(removed)
    }

    fn is_our_temp_name(&self, name: &OsStr) -> bool {
        let Some(rest) = name.as_bytes().strip_prefix(self.file_name.as_bytes()) else {
            return false;
        };
        let Some(suffix) = rest.strip_prefix(TEMP_INFIX.as_bytes()) else {
            return false;
        };

        suffix.len() == TEMP_SUFFIX_LEN
            && suffix
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    }
}

/// Removes the temp file when a write gives up half way, unless [`TempFile::keep`] was called.
struct TempFile {
    path: PathBuf,
    remove_on_drop: bool,
}

impl TempFile {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            remove_on_drop: true,
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn keep(mut self) {
        self.remove_on_drop = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.remove_on_drop {
            // Best effort: a leftover is removed by the next start-up cleanup.
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn random_suffix() -> String {
    format!("{:016x}", fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn mode_is_exactly_as_configured_and_kept_on_rewrite() {
        fn check(mode: u32) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("token");
            let sink = FileSink::new(&path, mode).unwrap();

            sink.write(b"first").unwrap();
            assert_eq!(mode_of(&path), mode, "first write with mode {mode:#o}");

            // A chmod by someone else must not survive our next write.
            fs::set_permissions(&path, Permissions::from_mode(0o666)).unwrap();
            sink.write(b"second").unwrap();
            assert_eq!(mode_of(&path), mode, "rewrite with mode {mode:#o}");
            assert_eq!(fs::read(&path).unwrap(), b"second");
        }

        check(DEFAULT_MODE);
        check(0o600);
        check(0o644);
        check(0o400);
        // Wider than any usual umask allows at creation: only the explicit chmod gets it there.
        check(0o666);
    }

    #[test]
    fn value_is_written_without_a_trailing_newline() {
        fn check(value: &[u8]) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("token");

            FileSink::new(&path, DEFAULT_MODE)
                .unwrap()
                .write(value)
                .unwrap();
            assert_eq!(fs::read(&path).unwrap(), value);
        }

        check(b"hvs.CAESIabc");
        check(br#"{"token":"hvs.x","ttl":300}"#);
        check(b"");
    }

    #[test]
    fn modes_above_0o777_are_refused_naming_path_and_mode() {
        fn check(mode: u32, shown: &str) {
            let error = FileSink::new("/run/agent/token", mode).unwrap_err();
            let message = error.to_string();

            assert!(message.contains("/run/agent/token"), "{message}");
            assert!(message.contains(shown), "{message}");
        }

        check(0o1640, "0o1640");
        check(0o4755, "0o4755");
        // Decimal 640 read as a mode is 0o1200 (case B01).
        check(640, "0o1200");
        check(0o10000, "0o10000");
    }

    #[test]
    fn paths_without_a_file_name_are_refused() {
        for path in ["/", "/run/agent/..", ""] {
            let error = FileSink::new(path, DEFAULT_MODE).unwrap_err();
            assert!(
                matches!(error, FileSinkRejected::NoFileName { .. }),
                "{path:?}: {error}"
            );
        }
    }

    #[test]
    fn write_check_names_the_path_when_the_directory_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("token");

        let error = FileSink::new(&path, DEFAULT_MODE)
            .unwrap()
            .prepare()
            .unwrap_err();

        assert!(
            error.to_string().contains(&*path.to_string_lossy()),
            "{error}"
        );
        assert_eq!(error.source.kind(), io::ErrorKind::NotFound);
    }

    /// A rename replaces whatever holds the name: a FIFO, a socket, or (as root) a device
    /// such as `/dev/null`. Such a target is refused at start-up, naming it, instead of
    /// destroyed; so is a directory, which no write could ever replace (the agent would log
    /// in, spending a secret_id, and then retry its writes forever); a link is replaced as a
    /// link.
    #[test]
    fn write_check_refuses_to_replace_what_is_no_regular_file() {
        fn check(make: impl FnOnce(&Path), refused: Option<&str>) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("token");
            make(&path);

            let prepared = FileSink::new(&path, DEFAULT_MODE).unwrap().prepare();
            match (prepared, refused) {
                (Ok(_), None) => {}
                (Err(error), Some(expected)) => {
                    let reason = error.source.to_string();
                    assert!(reason.contains(expected), "{reason}");
                    assert!(fs::symlink_metadata(&path).is_ok(), "left in place");
                }
                (got, _) => panic!("{}: refused: {refused:?}, got {got:?}", path.display()),
            }
        }

        let no_file = Some("is no regular file");
        let fifo = |path: &Path| nix::unistd::mkfifo(path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        check(fifo, no_file);
        check(
            |path| drop(std::os::unix::net::UnixListener::bind(path).unwrap()),
            no_file,
        );
        check(|path| fs::create_dir(path).unwrap(), Some("is a directory"));
        check(|path| fs::write(path, "old").unwrap(), None);
        check(
            |path| std::os::unix::fs::symlink("/nonexistent", path).unwrap(),
            None,
        );
        check(|_| {}, None);
    }

    #[test]
    fn write_check_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::new(dir.path().join("token"), DEFAULT_MODE).unwrap();

        assert_eq!(sink.prepare().unwrap(), 0);
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn prepare_removes_only_our_stale_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::new(dir.path().join("token"), DEFAULT_MODE).unwrap();
        let keep = [
            "token",
            "token.tmp.0123",
            "token.tmp.0123456789ABCDEF",
            "token.tmp.0123456789abcdef0",
            "other.tmp.0123456789abcdef",
            "token.bak",
        ];
        let stale = ["token.tmp.0123456789abcdef", "token.tmp.ffffffffffffffff"];
        for name in keep.iter().chain(&stale) {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        // A directory with our pattern is not ours to delete.
        fs::create_dir(dir.path().join("token.tmp.aaaaaaaaaaaaaaaa")).unwrap();

        assert_eq!(sink.prepare().unwrap(), stale.len());

        let mut expected: Vec<_> = keep.iter().map(|s| s.to_string()).collect();
        expected.push("token.tmp.aaaaaaaaaaaaaaaa".into());
        expected.sort();
        assert_eq!(entries(dir.path()), expected);
    }

    #[test]
    fn temp_names_match_the_cleanup_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::new(dir.path().join("token"), DEFAULT_MODE).unwrap();

        let (temp, _file) = sink.create_temp().unwrap();
        assert!(sink.is_our_temp_name(temp.path().file_name().unwrap()));
        drop(temp);
        assert!(
            entries(dir.path()).is_empty(),
            "a dropped temp file is removed"
        );
    }

    #[test]
    fn owner_is_set_and_kept_on_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");

        // Only root may give a file away; anyone may set their own ids.
        let own = fs::metadata(dir.path()).unwrap();
        let (uid, gid) = if own.uid() == 0 {
            (12_345, 23_456)
        } else {
            (own.uid(), own.gid())
        };
        let sink = FileSink::new(&path, 0o600)
            .unwrap()
            .with_owner(Some(uid), Some(gid));

        for value in [&b"one"[..], b"two"] {
            sink.write(value).unwrap();
            let meta = fs::metadata(&path).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (uid, gid));
            assert_eq!(meta.mode() & 0o7777, 0o600);
        }
    }

    #[test]
    fn relative_paths_write_in_the_named_directory() {
        let sink = FileSink::new("token", DEFAULT_MODE).unwrap();
        assert_eq!(sink.dir, Path::new("."));

        let sink = FileSink::new("run/token", DEFAULT_MODE).unwrap();
        assert_eq!(sink.dir, Path::new("run"));
    }

    #[test]
    fn a_failed_write_keeps_the_old_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let sink = FileSink::new(&path, DEFAULT_MODE).unwrap();
        sink.write(b"old").unwrap();

        // Renaming a file over a non-empty directory fails, whoever we are.
        let blocked = FileSink::new(dir.path().join("blocked"), DEFAULT_MODE).unwrap();
        fs::create_dir_all(dir.path().join("blocked").join("inner")).unwrap();
        let error = blocked.write(b"new").unwrap_err();

        assert!(error.to_string().contains("blocked"), "{error}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["blocked", "token"]);
    }

    #[test]
    fn concurrent_readers_never_see_empty_or_partial_content() {
        const WRITES: usize = 300;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let sink = FileSink::new(&path, DEFAULT_MODE).unwrap();

        // Different lengths, so a partial read or a mix of two versions cannot look valid.
        let values: Vec<Vec<u8>> = (0..8)
            .map(|i| vec![b'a' + i as u8; 100 + 4_000 * i])
            .collect();
        sink.write(&values[0]).unwrap();

        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (path, done, values) = (path.clone(), done.clone(), values.clone());
                thread::spawn(move || {
                    let mut reads = 0;
                    while !done.load(Ordering::Relaxed) {
                        let seen = fs::read(&path).unwrap();
                        assert!(values.contains(&seen), "read {} bytes", seen.len());
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();

        for i in 0..WRITES {
            sink.write(&values[i % values.len()]).unwrap();
        }
        done.store(true, Ordering::Relaxed);

        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
        assert_eq!(entries(dir.path()), ["token"]);
    }
}
