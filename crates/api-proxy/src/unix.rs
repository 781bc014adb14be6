//! Unix socket listeners: permissions in place before anyone can connect, and the file
//! removed again on shutdown.
//!
//! The socket is bound inside a fresh private directory (mode 0700) next to the configured
//! path, given its mode and owner there, then renamed into place. Until the rename no other
//! user can reach it, and from the rename on it has its final permissions; the process umask,
//! which is shared by every thread, is never touched.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::unistd::{Group, User};
use tracing::{debug, warn};

use crate::server::BindError;

/// The socket file a listener created, to remove on shutdown if it is still ours.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl SocketFile {
    /// Removes the socket unless another process has since put its own in its place.
    pub(crate) fn remove(&self) {
        let Ok(meta) = fs::symlink_metadata(&self.path) else {
            return;
        };
        if meta.dev() != self.device || meta.ino() != self.inode {
            debug!(path = %self.path.display(), "socket file replaced by someone else; left alone");
            return;
        }
        if let Err(error) = fs::remove_file(&self.path) {
            warn!(path = %self.path.display(), %error, "cannot remove the socket file");
        }
    }
}

/// Binds `path` with `mode` and ownership applied before the socket becomes reachable.
pub(crate) fn bind(
    path: &Path,
    mode: Option<u32>,
    user: Option<&str>,
    group: Option<&str>,
) -> Result<(UnixListener, SocketFile), BindError> {
    let uid = user.map(resolve_user).transpose()?;
    let gid = group.map(resolve_group).transpose()?;
    let failed = |source: io::Error| BindError::Unix {
        path: path.to_owned(),
        source,
    };

    check_existing(path)?;

    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let private = tempfile::Builder::new()
        .prefix(".va")
        .tempdir_in(parent)
        .map_err(failed)?;
    let staged = private.path().join("s");

    let listener = UnixListener::bind(&staged).map_err(failed)?;
    if let Some(mode) = mode {
        fs::set_permissions(&staged, fs::Permissions::from_mode(mode)).map_err(|source| {
            BindError::Permissions {
                path: path.to_owned(),
                source,
            }
        })?;
    }
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(&staged, uid, gid).map_err(|source| BindError::Permissions {
            path: path.to_owned(),
            source,
        })?;
    }

    // The rename replaces a stale socket atomically; `check_existing` made sure it is one.
    fs::rename(&staged, path).map_err(failed)?;
    drop(private);

    let meta = fs::symlink_metadata(path).map_err(failed)?;
    listener.set_nonblocking(true).map_err(failed)?;
    let file = SocketFile {
        path: path.to_owned(),
        device: meta.dev(),
        inode: meta.ino(),
    };
    Ok((listener, file))
}

/// A socket left by a previous run may be replaced; a live one, or any other kind of file,
/// may not.
fn check_existing(path: &Path) -> Result<(), BindError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(BindError::Unix {
                path: path.to_owned(),
                source,
            });
        }
    };

    if !meta.file_type().is_socket() {
        return Err(BindError::NotASocket {
            path: path.to_owned(),
        });
    }
    if UnixStream::connect(path).is_ok() {
        return Err(BindError::SocketInUse {
            path: path.to_owned(),
        });
    }
    debug!(path = %path.display(), "replacing a stale socket file");
    Ok(())
}

/// A user name, or a numeric id (which needs no account).
fn resolve_user(user: &str) -> Result<u32, BindError> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(uid);
    }
    match User::from_name(user) {
        Ok(Some(found)) => Ok(found.uid.as_raw()),
        _ => Err(BindError::UnknownUser {
            user: user.to_owned(),
        }),
    }
}

/// A group name, or a numeric id (which needs no entry).
fn resolve_group(group: &str) -> Result<u32, BindError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match Group::from_name(group) {
        Ok(Some(found)) => Ok(found.gid.as_raw()),
        _ => Err(BindError::UnknownGroup {
            group: group.to_owned(),
        }),
    }
}
