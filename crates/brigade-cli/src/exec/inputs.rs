//! Where the inputs come from: `:::` groups (every combination), `:::+`
//! (linked to the group before), `::::` and `-a` files, or stdin; split by
//! newline, NUL or a delimiter, into columns with --colsep, named by
//! --header, then packed into jobs (-n, -N, -X, -m) or blocks (--pipe).
//! Inputs are bytes from end to end: nothing is decoded.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use regex::bytes::Regex;

/// One job's worth of input.
#[derive(Debug)]
pub struct Job {
    /// The job number, from 1, in input order.
    pub seq: u64,
    /// Its inputs: one per input source (or column, or packed input).
    pub args: Vec<Vec<u8>>,
    /// With --pipe: the block for its stdin.
    pub stdin: Option<Vec<u8>>,
}

/// Where one input source's values come from.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// The words after `:::`.
    Words(Vec<Vec<u8>>),
    /// A file, one input per record (`-` is stdin).
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
struct Source {
    kind: Kind,
    /// `:::+` / `::::+`: paired with the source before, not combined.
    linked: bool,
}

/// The command words and the input sources, split apart.
#[derive(Debug)]
pub struct Split {
    /// The command and its arguments.
    pub command: Vec<OsString>,
    sources: Vec<Source>,
}

impl Split {
    /// Whether the inputs come from stdin (no `:::`, `::::` or -a).
    pub fn reads_stdin(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(&s.kind, Kind::File(p) if p.as_os_str() == "-"))
    }
}

/// Splits the words after the options into the command and the input sources.
pub fn split(words: Vec<OsString>, arg_files: &[PathBuf]) -> Result<Split, String> {
    let mut sources: Vec<Source> = arg_files
        .iter()
        .map(|p| Source {
            kind: Kind::File(p.clone()),
            linked: false,
        })
        .collect();
    let mut command = Vec::new();
    let mut current: Option<Source> = None;
    for w in words {
        let marker = match w.as_bytes() {
            b":::" => Some((false, false)),
            b":::+" => Some((false, true)),
            b"::::" => Some((true, false)),
            b"::::+" => Some((true, true)),
            _ => None,
        };
        match (marker, &mut current) {
            (Some((files, linked)), _) => {
                if let Some(s) = current.take() {
                    sources.push(s);
                }
                if linked && sources.is_empty() {
                    return Err(format!(
                        "'{}' links to the input source before it, and there is none",
                        w.to_string_lossy()
                    ));
                }
                current = Some(Source {
                    kind: if files {
                        Kind::File(PathBuf::new())
                    } else {
                        Kind::Words(Vec::new())
                    },
                    linked,
                });
            }
            (None, None) => command.push(w),
            (None, Some(s)) => match &mut s.kind {
                Kind::Words(v) => v.push(w.as_bytes().to_vec()),
                Kind::File(p) if p.as_os_str().is_empty() => *p = PathBuf::from(w),
                Kind::File(_) => {
                    // `:::: a b`: each file is a source of its own.
                    let next = Source {
                        kind: Kind::File(PathBuf::from(w)),
                        linked: false,
                    };
                    sources.push(std::mem::replace(s, next));
                }
            },
        }
    }
    if let Some(s) = current.take() {
        if matches!(&s.kind, Kind::File(p) if p.as_os_str().is_empty()) {
            return Err("'::::' must be followed by a file name".into());
        }
        sources.push(s);
    }
    if sources.is_empty() {
        sources.push(Source {
            kind: Kind::File(PathBuf::from("-")),
            linked: false,
        });
    }
    Ok(Split { command, sources })
}

/// How records are read and turned into inputs.
pub struct Reading {
    /// The byte between records.
    pub sep: u8,
    /// --colsep.
    pub colsep: Option<Regex>,
    /// -r: skip empty and blank records.
    pub skip_blank: bool,
    /// --header : the first record of each source names it.
    pub header: bool,
}

/// The inputs, ready to be packed into jobs.
pub struct Inputs {
    /// The --header names, in order.
    pub names: Vec<Vec<u8>>,
    /// How many input tuples, when known before the run.
    pub total: Option<u64>,
    /// Each item: one input from each source (columns split out).
    pub tuples: Box<dyn Iterator<Item = Vec<Vec<u8>>> + Send>,
    /// Set when reading a source failed midway (the message was printed).
    pub read_failed: Arc<AtomicBool>,
}

fn open(p: &Path) -> Result<Box<dyn Read + Send>, String> {
    if p.as_os_str() == "-" {
        return Ok(Box::new(io::stdin()));
    }
    File::open(p)
        .map(|f| Box::new(f) as Box<dyn Read + Send>)
        .map_err(|e| format!("cannot read the input file {}: {e}", p.display()))
}

fn name(p: &Path) -> String {
    if p.as_os_str() == "-" {
        "stdin".into()
    } else {
        p.display().to_string()
    }
}

/// Records read from `r`, separated by `sep` (a last record without `sep` counts).
fn records(
    r: Box<dyn Read + Send>,
    sep: u8,
    what: String,
    failed: Arc<AtomicBool>,
) -> impl Iterator<Item = Vec<u8>> + Send {
    BufReader::with_capacity(64 * 1024, r)
        .split(sep)
        .map_while(move |rec| match rec {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!(
                    "brigade exec: reading {what} failed: {e}; no more inputs are read from it"
                );
                failed.store(true, Ordering::SeqCst);
                None
            }
        })
}

fn is_blank(v: &[u8]) -> bool {
    v.iter().all(|b| b.is_ascii_whitespace())
}

fn columns(colsep: Option<&Regex>, v: Vec<u8>) -> Vec<Vec<u8>> {
    match colsep {
        None => vec![v],
        Some(re) => re.split(&v).map(<[u8]>::to_vec).collect(),
    }
}

impl Split {
    /// Opens the sources. One file or stdin is streamed; several are read whole.
    pub fn inputs(&self, how: &Reading) -> Result<Inputs, String> {
        let failed = Arc::new(AtomicBool::new(false));
        let colsep = how.colsep.clone();
        if let [Source {
            kind: Kind::File(p),
            ..
        }] = self.sources.as_slice()
        {
            let mut recs = records(open(p)?, how.sep, name(p), failed.clone());
            let mut names = Vec::new();
            if how.header {
                if let Some(h) = recs.next() {
                    names = columns(colsep.as_ref(), h);
                }
            }
            let skip = how.skip_blank;
            let tuples = recs
                .filter(move |v| !(skip && is_blank(v)))
                .map(move |v| columns(colsep.as_ref(), v));
            return Ok(Inputs {
                names,
                total: None,
                tuples: Box::new(tuples),
                read_failed: failed,
            });
        }
        let mut values: Vec<Vec<Vec<Vec<u8>>>> = Vec::new();
        let mut names = Vec::new();
        for s in &self.sources {
            let mut vals: Vec<Vec<u8>> = match &s.kind {
                Kind::Words(w) => w.clone(),
                Kind::File(p) => records(open(p)?, how.sep, name(p), failed.clone()).collect(),
            };
            if how.header && !vals.is_empty() {
                names.extend(columns(colsep.as_ref(), vals.remove(0)));
            }
            values.push(
                vals.into_iter()
                    .filter(|v| !(how.skip_blank && is_blank(v)))
                    .map(|v| columns(colsep.as_ref(), v))
                    .collect(),
            );
        }
        // Link groups: a source and the `:::+` ones after it, paired up, as
        // long as the shortest of them (as parallel's `:::+`).
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            match groups.last_mut() {
                Some(g) if s.linked => g.push(i),
                _ => groups.push(vec![i]),
            }
        }
        let lens: Vec<u64> = groups
            .iter()
            .map(|g| g.iter().map(|&i| values[i].len()).min().unwrap_or(0) as u64)
            .collect();
        let total = lens
            .iter()
            .try_fold(1u64, |acc, &l| acc.checked_mul(l))
            .ok_or("the input sources have more combinations than can be counted")?;
        let tuples = (0..total).map(move |k| {
            // The last group varies fastest.
            let mut idx = vec![0u64; groups.len()];
            let mut rest = k;
            for (g, &l) in lens.iter().enumerate().rev() {
                idx[g] = rest % l;
                rest /= l;
            }
            let mut tuple = Vec::new();
            for (g, members) in groups.iter().enumerate() {
                for &s in members {
                    tuple.extend(values[s][idx[g] as usize].iter().cloned());
                }
            }
            tuple
        });
        Ok(Inputs {
            names,
            total: Some(total),
            tuples: Box::new(tuples),
            read_failed: failed,
        })
    }

    /// The one source --pipe reads blocks from: stdin, or the one file given.
    pub fn pipe_source(&self) -> Result<(Box<dyn Read + Send>, String), String> {
        match self.sources.as_slice() {
            [Source {
                kind: Kind::File(p),
                ..
            }] => Ok((open(p)?, name(p))),
            _ => Err("--pipe reads one input: stdin, or one file with -a or ::::".into()),
        }
    }
}

/// How inputs are packed into jobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Packing {
    /// One input tuple per job.
    One,
    /// Up to N tuples per job (-n, -N).
    Up(usize),
    /// -N 0: a job per tuple, with no inputs.
    NoArgs,
    /// As many as fit (-X, -m): spread evenly over `workers` when the total is known.
    Fill { workers: usize },
}

/// The most bytes of input -X and -m put in one command line.
pub const MAX_LINE: usize = 128 * 1024;

/// Packs input tuples into numbered jobs.
pub fn jobs(
    tuples: Box<dyn Iterator<Item = Vec<Vec<u8>>> + Send>,
    total: Option<u64>,
    packing: Packing,
) -> (Box<dyn Iterator<Item = Job> + Send>, Option<u64>) {
    let per = match packing {
        Packing::One => {
            let it = tuples.zip(1u64..).map(|(args, seq)| Job {
                seq,
                args,
                stdin: None,
            });
            return (Box::new(it), total);
        }
        Packing::NoArgs => {
            let it = tuples.zip(1u64..).map(|(_, seq)| Job {
                seq,
                args: Vec::new(),
                stdin: None,
            });
            return (Box::new(it), total);
        }
        Packing::Up(n) => n.max(1),
        Packing::Fill { workers } => match total {
            Some(t) => (t as usize).div_ceil(workers.max(1)).max(1),
            None => usize::MAX,
        },
    };
    let count = total.map(|t| (t as usize).div_ceil(per) as u64);
    let mut tuples = tuples.peekable();
    let mut seq = 0u64;
    let fill = matches!(packing, Packing::Fill { .. });
    let it = std::iter::from_fn(move || {
        let mut args: Vec<Vec<u8>> = Vec::new();
        let mut n = 0;
        let mut bytes = 0;
        while n < per {
            let Some(t) = tuples.peek() else { break };
            let size: usize = t.iter().map(|a| a.len() + 3).sum();
            if fill && n > 0 && bytes + size > MAX_LINE {
                break;
            }
            bytes += size;
            args.extend(tuples.next().expect("peeked"));
            n += 1;
        }
        if n == 0 {
            return None;
        }
        seq += 1;
        Some(Job {
            seq,
            args,
            stdin: None,
        })
    });
    // -X and -m may cut more jobs than counted when lines grow long.
    (Box::new(it), if fill { None } else { count })
}

/// --pipe: blocks of whole records from `r`, `records` records each (-N) or about `block` bytes.
pub fn blocks(
    r: Box<dyn Read + Send>,
    what: String,
    block: usize,
    records: Option<usize>,
    failed: Arc<AtomicBool>,
) -> Box<dyn Iterator<Item = Job> + Send> {
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let mut seq = 0u64;
    let mut carry: Vec<u8> = Vec::new();
    let mut eof = false;
    let fail = move |e: io::Error| {
        eprintln!("brigade exec: reading {what} failed: {e}; no more blocks are read from it");
        failed.store(true, Ordering::SeqCst);
    };
    let it = std::iter::from_fn(move || {
        let data = match records {
            Some(n) => {
                let mut buf = Vec::new();
                for _ in 0..n.max(1) {
                    match r.read_until(b'\n', &mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => {
                            fail(e);
                            break;
                        }
                    }
                }
                buf
            }
            None => {
                let mut chunk = vec![0u8; 64 * 1024];
                while carry.len() < block && !eof {
                    match r.read(&mut chunk) {
                        Ok(0) => eof = true,
                        Ok(k) => carry.extend_from_slice(&chunk[..k]),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            fail(e);
                            eof = true;
                        }
                    }
                }
                // Cut after the last line end within the block, or the first after it.
                let within = carry[..block.min(carry.len())]
                    .iter()
                    .rposition(|&b| b == b'\n');
                let cut = match within {
                    Some(i) => Some(i + 1),
                    None => loop {
                        if let Some(i) = carry[block.min(carry.len())..]
                            .iter()
                            .position(|&b| b == b'\n')
                        {
                            break Some(block.min(carry.len()) + i + 1);
                        }
                        if eof {
                            break None;
                        }
                        match r.read(&mut chunk) {
                            Ok(0) => eof = true,
                            Ok(k) => carry.extend_from_slice(&chunk[..k]),
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                fail(e);
                                eof = true;
                            }
                        }
                    },
                };
                match cut {
                    Some(c) => {
                        let rest = carry.split_off(c);
                        std::mem::replace(&mut carry, rest)
                    }
                    None => std::mem::take(&mut carry),
                }
            }
        };
        if data.is_empty() {
            return None;
        }
        seq += 1;
        Some(Job {
            seq,
            args: Vec::new(),
            stdin: Some(data),
        })
    });
    Box::new(it)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<OsString> {
        w.iter().map(OsString::from).collect()
    }

    fn all(s: &Split) -> Vec<Vec<String>> {
        let how = Reading {
            sep: b'\n',
            colsep: None,
            skip_blank: false,
            header: false,
        };
        s.inputs(&how)
            .unwrap()
            .tuples
            .map(|t| {
                t.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn groups_combine_and_link() {
        let s = split(words(&["echo", ":::", "a", "b", ":::", "1", "2"]), &[]).unwrap();
        assert_eq!(s.command, words(&["echo"]));
        assert_eq!(all(&s), [["a", "1"], ["a", "2"], ["b", "1"], ["b", "2"]]);
        let s = split(
            words(&["echo", ":::", "a", "b", "c", ":::+", "1", "2"]),
            &[],
        )
        .unwrap();
        assert_eq!(all(&s), [["a", "1"], ["b", "2"]]);
        assert!(split(words(&["echo", ":::+", "1"]), &[]).is_err());
        assert!(split(words(&["echo", "::::"]), &[]).is_err());
    }

    #[test]
    fn no_source_means_stdin() {
        let s = split(words(&["gzip"]), &[]).unwrap();
        assert!(s.reads_stdin());
        let s = split(words(&["gzip", ":::", "x"]), &[]).unwrap();
        assert!(!s.reads_stdin());
    }

    #[test]
    fn packing() {
        let t: Vec<Vec<Vec<u8>>> = (1..=5).map(|i| vec![vec![b'0' + i]]).collect();
        let (it, n) = jobs(Box::new(t.clone().into_iter()), Some(5), Packing::Up(2));
        let got: Vec<usize> = it.map(|j| j.args.len()).collect();
        assert_eq!((got, n), (vec![2, 2, 1], Some(3)));
        let (it, _) = jobs(
            Box::new(t.into_iter()),
            Some(5),
            Packing::Fill { workers: 2 },
        );
        let got: Vec<usize> = it.map(|j| j.args.len()).collect();
        assert_eq!(got, [3, 2]);
    }

    #[test]
    fn pipe_blocks_cut_at_line_ends() {
        let data: Vec<u8> = (1..=10)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let f = Arc::new(AtomicBool::new(false));
        let sizes: Vec<usize> = blocks(
            Box::new(io::Cursor::new(data.clone())),
            "t".into(),
            6,
            None,
            f.clone(),
        )
        .map(|j| j.stdin.unwrap().len())
        .collect();
        assert_eq!(sizes, [6, 6, 6, 3]);
        let lines: Vec<usize> = blocks(Box::new(io::Cursor::new(data)), "t".into(), 1, Some(3), f)
            .map(|j| j.stdin.unwrap().iter().filter(|&&b| b == b'\n').count())
            .collect();
        assert_eq!(lines, [3, 3, 3, 1]);
    }
}
