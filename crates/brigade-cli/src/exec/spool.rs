//! A job's output: spooled to a temporary file while it runs (as GNU parallel
//! does), so memory stays bounded whatever the job prints, then copied to
//! stdout and stderr in one block. Small outputs are read back into memory
//! at once, so that a long --keep-order window holds no open files.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Outputs up to this size are kept in memory once the job ends.
pub const IN_MEMORY: u64 = 16 * 1024;

/// One stream of a finished job's output.
#[derive(Debug)]
pub enum Spool {
    /// Small: read back whole.
    Mem(Vec<u8>),
    /// Large: still in its file, `len` bytes.
    File(File, u64),
}

impl Default for Spool {
    fn default() -> Self {
        Spool::Mem(Vec::new())
    }
}

/// A fresh spool file in `dir` (or the system's temporary directory), already unlinked.
pub fn file(dir: Option<&Path>) -> io::Result<File> {
    match dir {
        Some(d) => tempfile::tempfile_in(d),
        None => tempfile::tempfile(),
    }
}

/// A spool file that stays, at `path` (for --results).
pub fn kept_file(path: &Path) -> io::Result<File> {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

impl Spool {
    /// Takes back a file the job wrote to: small contents are read into memory.
    pub fn settle(mut f: File) -> io::Result<Spool> {
        let len = f.seek(SeekFrom::End(0))?;
        f.seek(SeekFrom::Start(0))?;
        if len <= IN_MEMORY {
            let mut v = Vec::with_capacity(len as usize);
            f.take(len).read_to_end(&mut v)?;
            Ok(Spool::Mem(v))
        } else {
            Ok(Spool::File(f, len))
        }
    }

    /// The number of bytes.
    pub fn len(&self) -> u64 {
        match self {
            Spool::Mem(v) => v.len() as u64,
            Spool::File(_, n) => *n,
        }
    }

    /// Copies the output to `out`, each line after `tag` when there is one.
    pub fn copy_to(&self, out: &mut dyn Write, tag: Option<&[u8]>) -> io::Result<()> {
        match (self, tag) {
            (Spool::Mem(v), None) => out.write_all(v),
            (Spool::Mem(v), Some(t)) => tagged(&mut &v[..], out, t),
            (Spool::File(f, n), tag) => {
                let mut f: &File = f;
                f.seek(SeekFrom::Start(0))?;
                let mut r = BufReader::with_capacity(256 * 1024, f.take(*n));
                match tag {
                    None => io::copy(&mut r, out).map(|_| ()),
                    Some(t) => tagged(&mut r, out, t),
                }
            }
        }
    }
}

/// Copies lines from `r` to `out`, each after `tag`.
pub fn tagged(r: &mut dyn BufRead, out: &mut dyn Write, tag: &[u8]) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        out.write_all(tag)?;
        out.write_all(&line)?;
    }
}

/// The folder --results keeps one job's files in: DIR/1/VALUE/2/VALUE/...
/// (in a value, `\` is written `\\` and `/` is written `\_`, as parallel does).
pub fn results_dir(root: &Path, args: &[Vec<u8>]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut p = root.to_path_buf();
    for (i, a) in args.iter().enumerate() {
        let mut v = Vec::with_capacity(a.len());
        for &b in a {
            match b {
                b'\\' => v.extend_from_slice(b"\\\\"),
                b'/' => v.extend_from_slice(b"\\_"),
                _ => v.push(b),
            }
        }
        p.push((i + 1).to_string());
        p.push(std::ffi::OsStr::from_bytes(&v));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_outputs_come_back_to_memory_large_ones_stay_in_the_file() {
        let mut f = file(None).unwrap();
        f.write_all(b"a\nb\n").unwrap();
        let s = Spool::settle(f).unwrap();
        assert!(matches!(s, Spool::Mem(_)));
        let mut out = Vec::new();
        s.copy_to(&mut out, Some(b"t\t")).unwrap();
        assert_eq!(out, b"t\ta\nt\tb\n");

        let mut f = file(None).unwrap();
        let big = vec![b'x'; IN_MEMORY as usize + 1];
        f.write_all(&big).unwrap();
        let s = Spool::settle(f).unwrap();
        assert!(matches!(s, Spool::File(_, n) if n == IN_MEMORY + 1));
        let mut out = Vec::new();
        s.copy_to(&mut out, None).unwrap();
        assert_eq!(out, big);
    }

    #[test]
    fn results_paths_escape_slashes() {
        let p = results_dir(Path::new("out"), &[b"a/b".to_vec(), b"c\\d".to_vec()]);
        assert_eq!(p, Path::new("out/1/a\\_b/2/c\\\\d"));
    }
}
