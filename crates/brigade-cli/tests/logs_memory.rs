//! `brigade logs` reads files in chunks: its memory does not grow with the
//! size of a file, nor with what a small compressed file holds. Alone in its
//! test binary, so that the peak memory of this process's children is
//! brigade's own.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;

use common::*;

/// The bound of the promise, in MiB.
const BOUND_MIB: i64 = 64;

/// Writes `copies` gzip members of `block` one after another: a small file
/// that decompresses to `copies * block.len()` bytes.
fn gzip_bomb(path: &Path, block: &[u8], copies: usize) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(block).unwrap();
    let member = gz.finish().unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for _ in 0..copies {
        f.write_all(&member).unwrap();
    }
    f.flush().unwrap();
}

fn run_logs(args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    json_tail(&out)
}

/// The largest resident set among the children waited for so far: brigade's.
fn children_peak_mib() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .unwrap()
        .max_rss()
        / 1024
}

#[test]
fn a_gzip_bomb_of_newlines_is_counted_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.log.gz");
    // 1 GiB of newlines in about 1 MB.
    gzip_bomb(&bomb, &vec![b'\n'; 1 << 20], 1024);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 4 << 20);
    let v = run_logs(&["logs", "-q", "--json", bomb.to_str().unwrap()]);
    assert_eq!(v["totals"]["lines"], 1u64 << 30, "{v}");
    assert_eq!(v["totals"]["bytes"], 1u64 << 30);
    let peak = children_peak_mib();
    assert!(
        peak < BOUND_MIB,
        "brigade held {peak} MiB for a 1 GiB gzip bomb"
    );
}

#[test]
fn eight_workers_over_big_files_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // 64 KiB of log lines with known counts: 3 error lines and 2 warning lines in 8.
    let mut block = Vec::new();
    let lines = [
        "2024-03-01T10:00:00Z ERROR [db] connection reset\n",
        "2024-03-01T10:00:01Z INFO [api] request served in 12 ms\n",
        "2024-03-01T10:00:02Z WARN [cache] hit ratio low\n",
        "2024-03-01T10:00:03Z INFO [api] terror alert level 3 in the movie db\n",
        "2024-03-01T10:00:04Z FATAL [auth] key missing\n",
        "2024-03-01T10:00:05Z warning [worker] slow job\n",
        "2024-03-01T10:00:06Z critical [scheduler] missed tick\n",
        "2024-03-01T10:00:07Z DEBUG [db] pool size 8\n",
    ];
    while block.len() < 64 << 10 {
        for l in lines {
            block.extend_from_slice(l.as_bytes());
        }
    }
    let per_block = (block.len() / lines.concat().len()) as u64;
    // One plain file of 192 MiB and seven .gz of 128 MiB each.
    let plain_blocks = 3 * 1024;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.path().join("big.log")).unwrap());
    for _ in 0..plain_blocks {
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
    for i in 0..7 {
        gzip_bomb(&dir.path().join(format!("big{i}.log.gz")), &block, 2048);
    }
    let v = run_logs(&[
        "logs",
        "-q",
        "--json",
        "-j",
        "8",
        dir.path().to_str().unwrap(),
    ]);
    let blocks = plain_blocks + 7 * 2048;
    assert_eq!(v["totals"]["files"], 8, "{v}");
    assert_eq!(v["totals"]["errors"], 3 * per_block * blocks, "{v}");
    assert_eq!(v["totals"]["warnings"], 2 * per_block * blocks, "{v}");
    assert_eq!(v["totals"]["lines"], 8 * per_block * blocks, "{v}");
    let peak = children_peak_mib();
    assert!(
        peak < BOUND_MIB,
        "brigade -j 8 held {peak} MiB over 8 files of 128-192 MiB"
    );
}
