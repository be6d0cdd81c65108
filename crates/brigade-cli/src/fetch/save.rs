//! --save: bodies written under DIR/HOST/PATH, atomically (a temporary file
//! in the same folder, renamed into place), with names safe on any disk.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use url::Url;

/// The longest name kept whole; longer ones are cut and given a hash.
const MAX_NAME: usize = 120;

/// Where a URL's body goes under `dir`: the host (with `_port` when there is
/// one), then the path's segments made safe; a path ending in `/` gets
/// `index.html`; a query adds `_q` and a hash of it to the last name.
pub fn path_for(dir: &Path, url: &Url) -> PathBuf {
    let mut p = dir.to_path_buf();
    let host = url.host_str().unwrap_or("unknown-host");
    p.push(match url.port() {
        Some(port) => safe(&format!("{host}_{port}")),
        None => safe(host),
    });
    let segments: Vec<&str> = url.path_segments().map_or_else(Vec::new, |s| s.collect());
    let (dirs, last) = match segments.split_last() {
        Some((last, dirs)) => (dirs, *last),
        None => (&[][..], ""),
    };
    for d in dirs.iter().filter(|d| !d.is_empty()) {
        p.push(safe(d));
    }
    let mut name = if last.is_empty() {
        "index.html".to_string()
    } else {
        safe(last)
    };
    if let Some(q) = url.query() {
        name = format!("{name}_q{:016x}", hash(q));
    }
    p.push(name);
    p
}

/// A path segment as a file name: percent-escapes kept as text, every byte but
/// ASCII letters, digits, `.`, `-` and `_` replaced by `_`, no `.` or `..`,
/// no leading dot, at most MAX_NAME bytes (longer ones cut and hashed).
fn safe(segment: &str) -> String {
    let mut s: String = segment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        s.replace_range(0..1, "_");
    }
    if s.is_empty() {
        s.push('_');
    }
    if s.len() > MAX_NAME {
        s.truncate(MAX_NAME - 17);
        s = format!("{s}_{:016x}", hash(segment));
    }
    s
}

fn hash(s: &str) -> u64 {
    // FNV-1a: stable across runs and builds, unlike DefaultHasher's seed.
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    s.hash(&mut h);
    h.finish()
}

/// Writes `body` to its path under `dir`, atomically. Returns the path.
pub fn save(dir: &Path, url: &Url, body: &[u8]) -> Result<PathBuf, String> {
    let path = path_for(dir, url);
    let parent = path.parent().expect("under dir");
    let fail = |e: std::io::Error| format!("cannot save to {}: {e}", path.display());
    std::fs::create_dir_all(parent).map_err(fail)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".brigade-")
        .tempfile_in(parent)
        .map_err(fail)?;
    tmp.write_all(body).map_err(fail)?;
    tmp.persist(&path).map_err(|e| fail(e.error))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names() {
        let d = Path::new("/out");
        let p = |u: &str| path_for(d, &Url::parse(u).unwrap());
        assert_eq!(p("http://a.org/"), Path::new("/out/a.org/index.html"));
        assert_eq!(
            p("http://a.org:8080/x/y.html"),
            Path::new("/out/a.org_8080/x/y.html")
        );
        assert_eq!(
            p("http://a.org/%2e%2e/%2E%2E/etc/passwd"),
            Path::new("/out/a.org/etc/passwd")
        );
        assert_eq!(p("http://a.org/a%2Fb%00"), Path::new("/out/a.org/a_2Fb_00"));
        assert_eq!(p("http://a.org/../../x"), Path::new("/out/a.org/x"));
        assert_eq!(p("http://a.org/.hidden"), Path::new("/out/a.org/_hidden"));
        let q = p("http://a.org/s?q=1");
        assert!(q.to_str().unwrap().starts_with("/out/a.org/s_q"));
        assert_ne!(q, p("http://a.org/s?q=2"));
        let long = p(&format!("http://a.org/{}", "x".repeat(500)));
        assert!(long.file_name().unwrap().len() <= MAX_NAME);
    }

    #[test]
    fn saves_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::parse("http://h/a/b").unwrap();
        let path = save(dir.path(), &url, b"one").unwrap();
        save(dir.path(), &url, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }
}
