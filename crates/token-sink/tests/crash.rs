//! Kills a writer process with SIGKILL in the middle of token writes, many times over, and checks
//! what it leaves: the token file always holds one whole token, and the next start-up removes
//! any temp file the killed run left.
//!
//! It needs a second process, so this binary has its own `main`: run with `--write-forever` it
//! is that process; otherwise it is the test.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a test without the default harness: it panics on failure and reports on stdout"
)]

use std::env;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use token_sink::FileSink;

const NAME: &str = "sigkill_mid_write_leaves_a_whole_token";
const CHILD_FLAG: &str = "--write-forever";
const ROUNDS: usize = 25;

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();

    if let [flag, path] = args.as_slice()
        && flag == CHILD_FLAG
    {
        write_forever(Path::new(path));
    }
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    // Honour a name filter the way the default harness does, so `cargo test -p token-sink other`
    // does not run this.
    let filters: Vec<_> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        println!("\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out\n");
        return;
    }

    println!("\nrunning 1 test");
    sigkill_mid_write_leaves_a_whole_token();
    println!("test {NAME} ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored\n");
}

/// Large values, so a kill lands inside a write more often than between two.
fn values() -> [Vec<u8>; 2] {
    [vec![b'a'; 300_000], vec![b'b'; 200_000]]
}

fn write_forever(path: &Path) -> ! {
    let sink = FileSink::new(path, 0o600).unwrap();
    sink.prepare().unwrap();

    let values = values();

    // Runs until it is killed.
    loop {
        for value in &values {
            sink.write(value).unwrap();
        }
    }
}

fn sigkill_mid_write_leaves_a_whole_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let exe = env::current_exe().unwrap();
    let mut leftovers = 0;

    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .arg(CHILD_FLAG)
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();

        // Let it get going, then kill it at a different point of its loop each round.
        wait_until(|| path.exists());
        pause(Duration::from_millis(fastrand::u64(1..30)));
        child.kill().unwrap();
        child.wait().unwrap();

        let content = fs::read(&path).unwrap();
        assert!(
            values().contains(&content),
            "round {round}: {} bytes in the token file",
            content.len()
        );

        let entries = fs::read_dir(dir.path()).unwrap().count();
        leftovers += entries - 1;
        let removed = FileSink::new(&path, 0o600).unwrap().prepare().unwrap();
        assert_eq!(removed, entries - 1, "round {round}");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "round {round}"
        );
    }

    eprintln!(
        "{ROUNDS} writers killed; {leftovers} left a temp file, all removed at the next start"
    );
}

fn wait_until(ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "the writer never wrote");
        pause(Duration::from_millis(1));
    }
}

/// The writer is a real process running on real time; there is no runtime to yield to here.
#[allow(clippy::disallowed_methods)]
fn pause(duration: Duration) {
    std::thread::sleep(duration);
}
