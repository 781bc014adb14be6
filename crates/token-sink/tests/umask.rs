//! The umask narrows what `open` creates, and it may be anything the agent was started with; the
//! token file must still end up with exactly the configured mode. The umask is per process, so
//! this test has a binary of its own and sets it in a single test.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use nix::sys::stat::{Mode, umask};
use token_sink::FileSink;

#[test]
fn mode_is_exact_under_restrictive_and_permissive_umasks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let original = umask(Mode::empty());

    for mask in [0o000, 0o002, 0o022, 0o027, 0o077, 0o777] {
        umask(Mode::from_bits_truncate(mask));

        for mode in [0o640, 0o600, 0o644, 0o666, 0o400] {
            let sink = FileSink::new(&path, mode).unwrap();
            sink.prepare().unwrap();

            for value in ["hvs.first", "hvs.rewrite"] {
                sink.write(value.as_bytes()).unwrap();

                let actual = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
                assert_eq!(actual, mode, "umask {mask:#o}, mode {mode:#o}");
                assert_eq!(fs::read_to_string(&path).unwrap(), value);
            }
        }
    }
    umask(original);
}
