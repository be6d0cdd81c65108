//! Memory stays bounded whatever the jobs print: output is spooled to files.
//! Alone in its test binary, so that the peak memory of this process's
//! children is brigade's own.

use std::process::{Command, Stdio};

mod common;

use common::*;

#[test]
fn large_outputs_are_spooled_not_held_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out");
    let size: u64 = 150 * 1024 * 1024;
    // (-q sh -c SCRIPT {}: the same job before and after the fix.)
    let job = format!("head -c {size} /dev/zero");
    let status = Command::new(bin())
        .args([
            "exec", "-q", "-k", "-j", "2", "sh", "-c", &job, "{}", ":::", "a", "b",
        ])
        .env("TMPDIR", dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::metadata(&out_path).unwrap().len(),
        2 * size,
        "every byte reached stdout"
    );
    // The largest resident set among the children waited for: brigade (head is small).
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let peak_mib = usage.max_rss() / 1024;
    assert!(
        peak_mib < 64,
        "brigade held {peak_mib} MiB for 2 x 150 MiB of output"
    );
}
