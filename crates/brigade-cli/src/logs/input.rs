//! Where the lines come from: the paths named on the command line, the files
//! found under folders (with `--glob` filters), standard input, and the
//! decompressors picked by file extension.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// The name standard input gets in the report.
pub const STDIN: &str = "<stdin>";

/// The most memory an `.xz` stream may ask for (its dictionary): `xz -9`
/// needs 65 MiB; more than this is refused with an error naming the file.
const XZ_MEMLIMIT: u64 = 80 << 20;

/// One thing to read, or to report.
#[derive(Debug)]
pub struct Job {
    pub path: PathBuf,
    pub what: What,
}

#[derive(Debug)]
pub enum What {
    /// A file (a symlink named on the command line is followed).
    File,
    /// Standard input (`-`).
    Stdin,
    /// Found in a folder and not read; the reason says why.
    Skip(&'static str),
    /// The walk could not read this entry.
    WalkError(String),
}

impl Job {
    /// The name shown in the report.
    pub fn name(&self) -> String {
        match self.what {
            What::Stdin => STDIN.into(),
            _ => self.path.display().to_string(),
        }
    }
}

/// Opens a job's input, decompressing by extension: .gz, .bz2, .xz, .zst.
pub fn open(job: &Job) -> io::Result<Box<dyn Read>> {
    if let What::Stdin = job.what {
        return Ok(Box::new(io::stdin().lock()));
    }
    let path = &job.path;
    let f = File::open(path)?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    Ok(match ext {
        "gz" => Box::new(flate2::read::MultiGzDecoder::new(f)),
        "bz2" => Box::new(bzip2::read::MultiBzDecoder::new(f)),
        "xz" => {
            let stream = liblzma::stream::Stream::new_stream_decoder(
                XZ_MEMLIMIT,
                liblzma::stream::CONCATENATED,
            )
            .map_err(io::Error::other)?;
            Box::new(liblzma::read::XzDecoder::new_stream(
                BufReader::new(f),
                stream,
            ))
        }
        "zst" => Box::new(zstd::stream::read::Decoder::new(f)?),
        _ => Box::new(f),
    })
}

/// A `--glob` or `--iglob` as given, with its place on the command line
/// (the later glob wins, as in rg, whichever of the two options it came with).
#[derive(Debug, Clone)]
pub struct GlobArg {
    pub glob: String,
    pub nocase: bool,
    order: usize,
}

static GLOB_ORDER: AtomicUsize = AtomicUsize::new(0);

fn glob_arg(text: &str, nocase: bool) -> Result<GlobArg, String> {
    if text.trim_start_matches('!').is_empty() {
        return Err("an empty glob".into());
    }
    Ok(GlobArg {
        glob: text.to_string(),
        nocase,
        order: GLOB_ORDER.fetch_add(1, Ordering::Relaxed),
    })
}

/// clap's parser for `--glob`.
pub fn parse_glob(text: &str) -> Result<GlobArg, String> {
    glob_arg(text, false)
}

/// clap's parser for `--iglob`.
pub fn parse_iglob(text: &str) -> Result<GlobArg, String> {
    glob_arg(text, true)
}

/// The include and exclude globs, with rg's (gitignore's) meaning: a glob
/// without a `/` matches a name at any depth, one with a `/` matches the path
/// from the folder named on the command line; `!` excludes; a trailing `/`
/// matches folders only; the last glob that matches decides. With at least one
/// include glob, a file that matches none is left out; folders are always
/// entered unless excluded.
#[derive(Debug, Default)]
pub struct Filter {
    set: GlobSet,
    /// Per glob: (excludes, folders only).
    rules: Vec<(bool, bool)>,
    includes: bool,
}

impl Filter {
    pub fn new(globs: &[&GlobArg]) -> Result<Filter, String> {
        let mut globs = globs.to_vec();
        globs.sort_by_key(|g| g.order);
        let mut set = GlobSetBuilder::new();
        let mut rules = Vec::new();
        for g in globs {
            let (exclude, mut pat) = match g.glob.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, g.glob.as_str()),
            };
            let dir_only = pat.ends_with('/');
            pat = pat.trim_end_matches('/');
            let anchored = if let Some(rest) = pat.strip_prefix('/') {
                rest.to_string()
            } else if pat.contains('/') || pat.starts_with("**") {
                pat.to_string()
            } else {
                format!("**/{pat}")
            };
            let glob = GlobBuilder::new(&anchored)
                .literal_separator(true)
                .case_insensitive(g.nocase)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("bad glob '{}': {e}", g.glob))?;
            set.add(glob);
            rules.push((exclude, dir_only));
        }
        Ok(Filter {
            set: set.build().map_err(|e| e.to_string())?,
            includes: rules.iter().any(|r| !r.0),
            rules,
        })
    }

    /// Whether `rel` (a path under a folder named on the command line,
    /// relative to it) is searched (a file) or entered (a folder).
    pub fn allows(&self, rel: &Path, is_dir: bool) -> bool {
        let last = self
            .set
            .matches(rel)
            .into_iter()
            .filter(|&i| is_dir || !self.rules[i].1)
            .max();
        match last {
            Some(i) => !self.rules[i].0,
            None => is_dir || !self.includes,
        }
    }
}

/// Every job for `roots`, lazily. A root that is not a folder (a symlink to
/// a file included) is read whatever the globs; folders are walked with
/// `filter`, following the symlinks inside them only if `follow`; what is left
/// out inside folders, other than by a glob, becomes a job that says why.
pub fn walk(roots: Vec<PathBuf>, filter: Filter, follow: bool) -> impl Iterator<Item = Job> + Send {
    let filter = Arc::new(filter);
    roots
        .into_iter()
        .flat_map(move |root| -> Box<dyn Iterator<Item = Job> + Send> {
            if root.as_os_str() == "-" {
                return Box::new(std::iter::once(Job {
                    path: root,
                    what: What::Stdin,
                }));
            }
            if std::fs::metadata(&root).is_ok_and(|m| !m.is_dir()) {
                return Box::new(std::iter::once(Job {
                    path: root,
                    what: What::File,
                }));
            }
            let filter = filter.clone();
            let base = root.clone();
            let entries = walkdir::WalkDir::new(root)
                .follow_links(follow)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(move |e| {
                    e.depth() == 0
                        || filter.allows(
                            e.path().strip_prefix(&base).unwrap_or(e.path()),
                            e.file_type().is_dir(),
                        )
                });
            Box::new(entries.filter_map(job_for))
        })
}

/// The job for one entry found in a folder (none for a folder).
fn job_for(entry: walkdir::Result<walkdir::DirEntry>) -> Option<Job> {
    let what = match &entry {
        Ok(e) if e.file_type().is_file() => What::File,
        // A folder, or the root (a folder, or a symlink to one, named).
        Ok(e) if e.file_type().is_dir() || e.depth() == 0 => return None,
        Ok(e) if e.file_type().is_symlink() => {
            What::Skip("symlink, not followed (name it, or use --follow)")
        }
        Ok(_) => What::Skip("not a regular file"),
        Err(e) => What::WalkError(
            e.io_error()
                .map_or_else(|| e.to_string(), |io| io.to_string()),
        ),
    };
    let path = match entry {
        Ok(e) => e.into_path(),
        Err(e) => e.path().map(Path::to_path_buf).unwrap_or_default(),
    };
    Some(Job { path, what })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(globs: &[(&str, bool)]) -> Filter {
        let args: Vec<GlobArg> = globs
            .iter()
            .map(|(g, nocase)| glob_arg(g, *nocase).unwrap())
            .collect();
        Filter::new(&args.iter().collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn globs_include_exclude_and_the_last_one_wins() {
        let f = filter(&[("*.log", false)]);
        assert!(f.allows(Path::new("a/b/x.log"), false));
        assert!(!f.allows(Path::new("a/b/x.txt"), false));
        assert!(f.allows(Path::new("a"), true), "folders are entered");
        let f = filter(&[("!*.gz", false)]);
        assert!(f.allows(Path::new("x.log"), false));
        assert!(!f.allows(Path::new("d/x.gz"), false));
        let f = filter(&[("!old/", false)]);
        assert!(!f.allows(Path::new("a/old"), true));
        assert!(
            f.allows(Path::new("a/old"), false),
            "a trailing / is for folders"
        );
        let f = filter(&[("!*.log", false), ("keep.log", false)]);
        assert!(f.allows(Path::new("d/keep.log"), false));
        assert!(!f.allows(Path::new("d/other.log"), false));
        let f = filter(&[("sub/*.log", false)]);
        assert!(f.allows(Path::new("sub/a.log"), false));
        assert!(!f.allows(Path::new("x/sub/a.log"), false), "a / anchors");
        assert!(
            !f.allows(Path::new("sub/deep/a.log"), false),
            "* stops at /"
        );
        let f = filter(&[("*.LOG", true)]);
        assert!(f.allows(Path::new("a.log"), false));
        assert!(!filter(&[("*.LOG", false)]).allows(Path::new("a.log"), false));
        let bad = glob_arg("a[", false).unwrap();
        assert!(Filter::new(&[&bad]).unwrap_err().contains("a["));
        assert!(glob_arg("!", false).is_err());
    }
}
