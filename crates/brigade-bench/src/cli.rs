//! The command-line scenarios: C1 (`brigade exec` vs `xargs -P` vs GNU
//! `parallel`), C2 (`brigade logs` vs `rg -c` vs `grep -c`), C3 (`brigade images` vs
//! `convert`), C5 (`brigade load` vs `psql \copy`, pgloader, `sqlite3 .import`, sqlite-utils).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::util::{self, med_range, num, ratio, rounds, Fail, Got, Table};
use crate::Ctx;

/// The executable `name` on PATH, if any.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// The first line of `tool --version`, if it runs.
pub fn version(tool: &str) -> Option<String> {
    let o = Command::new(tool).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

/// GNU parallel, as opposed to moreutils' `parallel`.
fn gnu_parallel() -> Result<PathBuf, String> {
    let p = find_tool("parallel").ok_or("GNU parallel not installed")?;
    match version("parallel") {
        Some(v) if v.contains("GNU parallel") => Ok(p),
        _ => Err("GNU parallel not installed (another `parallel` is on PATH)".into()),
    }
}

/// Runs `cmd` to the end with stdin from `input`; returns (wall s, stdout).
/// A non-zero exit is an error.
fn timed(cmd: &mut Command, input: Option<&Path>) -> Result<(f64, String), Fail> {
    let stdin = match input {
        Some(p) => Stdio::from(File::open(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => Stdio::null(),
    };
    let start = Instant::now();
    let out = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(Fail::Error(format!(
            "{:?} exited with {}: {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok((secs, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// The integer after `"key":` in `json`, from `from` on.
fn json_u64(json: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let at = json.find(&pat)? + pat.len();
    let digits: String = json[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Brigade,
    Xargs,
    Parallel,
    Rg,
    Grep,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Brigade => "brigade",
            Tool::Xargs => "xargs -P",
            Tool::Parallel => "GNU parallel",
            Tool::Rg => "rg -c",
            Tool::Grep => "grep -c",
        }
    }
}

fn brigade(ctx: &Ctx) -> Result<PathBuf, Fail> {
    ctx.brigade_bin().map_err(Fail::Error)
}

fn missing(tool: &str) -> Result<PathBuf, Fail> {
    find_tool(tool).ok_or_else(|| Fail::Missing(format!("{tool} not installed")))
}

// ---------------------------------------------------------------- C1

/// A table of wall times, one row per tool: its name, the median [min-max]
/// wall time (metric 0), the cells `extra` makes from the row's index and the
/// tool's figures, and
/// the ratio to the first row's wall time. `headers` names every column.
fn wall_table(
    headers: &[&str],
    rows: &[(String, &Got)],
    extra: impl Fn(usize, &Got, &[f64]) -> Vec<String>,
) -> String {
    let mut t = Table::new(headers);
    let base = rows[0].1.metric(0);
    for (i, (name, g)) in rows.iter().enumerate() {
        let cells = g.why_row(headers.len() - 1).unwrap_or_else(|| {
            let v = g.metric(0);
            [vec![med_range(&v)], extra(i, g, &v), vec![ratio(&v, &base)]].concat()
        });
        t.row([vec![name.clone()], cells].concat());
    }
    t.render()
}

pub fn c1(ctx: &Ctx) -> String {
    let n: u64 = ctx.pick(10_000, 500, 20);
    let warm_n = n.min(100);
    let rounds_n = ctx.rounds(3, 2);
    let j = ctx.cores;
    let dir = match tempfile::Builder::new()
        .prefix("brigade-bench-c1")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            util::fail(format!("C1: temp dir: {e}"));
            return format!("ERROR: temp dir: {e}\n");
        }
    };
    let write = |name: &str, n: u64| -> std::io::Result<PathBuf> {
        let p = dir.path().join(name);
        let mut w = BufWriter::new(File::create(&p)?);
        for i in 1..=n {
            writeln!(w, "{i}")?;
        }
        w.flush()?;
        Ok(p)
    };
    let (inputs, warm) = match (write("inputs", n), write("warm", warm_n)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            util::fail(format!("C1: inputs: {e}"));
            return format!("ERROR: inputs: {e}\n");
        }
    };
    let mut out = format!(
        "{n} `true` commands, one input line each (`true N`), {j} at a time (= cores) for every \
         tool, stdin from a file, output captured. Wall time of the whole command. {}, \
         alternating. Commands: `brigade exec \
         --quiet --json-file FILE -j {j} true` (the release binary; its JSON summary's count is checked), `xargs -P \
         {j} -n 1 true`, `parallel --will-cite -j {j} true` (exit status checked). Ratio: tool / \
         brigade.\n\n",
        ctx.rounds_text(rounds_n, &format!(" of {warm_n} commands"))
    );
    let list = [Tool::Brigade, Tool::Xargs, Tool::Parallel];
    let summary = dir.path().join("summary.json");
    let got = rounds(
        &list,
        ctx.warmup(),
        rounds_n,
        |t| format!("C1 {}", t.name()),
        |tool, w| {
            let (file, count) = if w { (&warm, warm_n) } else { (&inputs, n) };
            let js = j.to_string();
            let mut cmd = match tool {
                Tool::Brigade => {
                    let mut c = Command::new(brigade(ctx)?);
                    c.args(["exec", "--quiet", "--json-file"])
                        .arg(&summary)
                        .args(["-j", &js, "true"]);
                    c
                }
                Tool::Xargs => {
                    let mut c = Command::new(missing("xargs")?);
                    c.args(["-P", &js, "-n", "1", "true"]);
                    c
                }
                Tool::Parallel => {
                    let mut c = Command::new(gnu_parallel().map_err(Fail::Missing)?);
                    c.args(["--will-cite", "-j", &js, "true"]);
                    c
                }
                _ => unreachable!(),
            };
            let (secs, _) = timed(&mut cmd, Some(file))?;
            if tool == Tool::Brigade {
                let json = std::fs::read_to_string(&summary).unwrap_or_default();
                let ok = json_u64(&json, "succeeded");
                if ok != Some(count) {
                    return Err(Fail::Error(format!(
                        "{ok:?} commands succeeded, expected {count}: {}",
                        json.trim()
                    )));
                }
            }
            Ok(vec![secs])
        },
    );
    let rows: Vec<_> = list
        .iter()
        .zip(&got)
        .map(|(t, g)| (t.name().to_string(), g))
        .collect();
    out.push_str(&wall_table(
        &[
            "tool",
            "wall s median [min-max]",
            "us per command",
            "ratio to brigade",
        ],
        &rows,
        |_, _, v| vec![num(util::median(v) * 1e6 / n as f64)],
    ));
    let (b, x, p) = (got[0].median(0), got[1].median(0), got[2].median(0));
    util::target(
        "C1 vs xargs -P",
        "<= 1.1x `xargs -P`",
        match (b, x) {
            (Some(b), Some(x)) => format!("{:.2}x ({b:.3} s vs {x:.3} s)", b / x),
            _ => got[1].why().unwrap_or_else(|| "no figure".into()),
        },
        util::verdict(b.zip(x).map(|(b, x)| b / x <= 1.1)),
    );
    util::target(
        "C1 vs GNU parallel",
        ">= 5x faster than GNU parallel",
        match (b, p) {
            (Some(b), Some(p)) => format!("{:.1}x faster ({b:.3} s vs {p:.3} s)", p / b),
            _ => got[2].why().unwrap_or_else(|| "no figure".into()),
        },
        util::verdict(b.zip(p).map(|(b, p)| p / b >= 5.0)),
    );
    out
}

// ---------------------------------------------------------------- C2

/// The generated tree's expected counts.
#[derive(Default, Debug)]
struct Expect {
    files: u64,
    bytes: u64,
    /// Lines holding an error-level word (error, err, fatal, critical).
    errors: u64,
    /// Lines holding a warning-level word only (warn, warning).
    warnings: u64,
}

/// Levels: (word, weight, 0 none / 1 warning / 2 error).
const LEVELS: [(&str, u32, u8); 8] = [
    ("INFO", 70, 0),
    ("DEBUG", 12, 0),
    ("NOTICE", 3, 0),
    ("WARN", 6, 1),
    ("WARNING", 2, 1),
    ("ERROR", 5, 2),
    ("FATAL", 1, 2),
    ("CRITICAL", 1, 2),
];

/// Messages: (text before and after a number, weight, level as above). Some
/// hold the level words inside other words, which must not count.
const MESSAGES: [(&str, &str, u32, u8); 12] = [
    ("request served in ", " ms", 30, 0),
    ("cache hit ratio ", "%", 15, 0),
    ("user ", " logged in", 15, 0),
    ("terror alert level ", " in the movie db", 4, 0),
    ("processed ", " errors_total samples", 4, 0),
    ("disk usage warned at ", "%", 4, 0),
    ("forewarned is forearmed, says job ", "", 3, 0),
    ("fatalistic view of shard ", "", 3, 0),
    ("user warn_level=", " set", 3, 0),
    ("connection reset, retrying (err=", ")", 3, 2),
    ("job ", " failed with Error: timeout", 2, 2),
    ("critical-path latency ", " us", 2, 2),
];

const COMPONENTS: [&str; 6] = ["api", "db", "auth", "cache", "worker", "scheduler"];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<T: Copy>(&mut self, items: &[T], weight: impl Fn(&T) -> u32) -> T {
        let total: u32 = items.iter().map(&weight).sum();
        let mut r = (self.next() % total as u64) as u32;
        for it in items {
            let w = weight(it);
            if r < w {
                return *it;
            }
            r -= w;
        }
        items[items.len() - 1]
    }
}

/// Writes `files` files of about `file_bytes` each under `root` (8 directories), deterministically.
fn generate(root: &Path, files: u64, file_bytes: u64) -> std::io::Result<Expect> {
    let mut e = Expect::default();
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    for f in 0..files {
        let dir = root.join(format!("host{}", f % 8));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("app-{f:04}.log"));
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let mut written = 0u64;
        let mut line = String::with_capacity(160);
        while written < file_bytes {
            let r = rng.next();
            let level = rng.pick(&LEVELS, |l| l.1);
            let msg = rng.pick(&MESSAGES, |m| m.2);
            let comp = COMPONENTS[(r % COMPONENTS.len() as u64) as usize];
            line.clear();
            use std::fmt::Write as _;
            let _ = writeln!(
                line,
                "2024-03-{:02}T{:02}:{:02}:{:02}.{:03}Z {} [{comp}] {}{}{}",
                1 + (r >> 8) % 28,
                (r >> 16) % 24,
                (r >> 24) % 60,
                (r >> 32) % 60,
                (r >> 40) % 1000,
                level.0,
                msg.0,
                (r >> 50) % 10_000,
                msg.1
            );
            w.write_all(line.as_bytes())?;
            written += line.len() as u64;
            match level.2.max(msg.3) {
                2 => e.errors += 1,
                1 => e.warnings += 1,
                _ => {}
            }
        }
        w.flush()?;
        e.files += 1;
        e.bytes += written;
    }
    Ok(e)
}

/// Sums the counts of `path:count` lines.
fn sum_counts(out: &str) -> Result<u64, Fail> {
    let mut total = 0;
    for line in out.lines() {
        let n = line
            .rsplit(':')
            .next()
            .and_then(|c| c.trim().parse::<u64>().ok())
            .ok_or_else(|| Fail::Error(format!("unexpected output line: {line}")))?;
        total += n;
    }
    Ok(total)
}

pub fn c2(ctx: &Ctx) -> String {
    let (files, file_bytes): (u64, u64) =
        (ctx.pick(128, 64, 8), ctx.pick(8 << 20, 1 << 20, 128 << 10));
    let rounds_n = ctx.rounds(5, 3);
    let dir = match tempfile::Builder::new()
        .prefix("brigade-bench-c2")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            util::fail(format!("C2: temp dir: {e}"));
            return format!("ERROR: temp dir: {e}\n");
        }
    };
    let root = dir.path().join("logs");
    let gen_start = Instant::now();
    let expect = match generate(&root, files, file_bytes) {
        Ok(e) => e,
        Err(e) => {
            util::fail(format!("C2: generating the log tree: {e}"));
            return format!("ERROR: generating the log tree: {e}\n");
        }
    };
    eprint!("(generated in {:.1} s)", gen_start.elapsed().as_secs_f64());
    let matching = expect.errors + expect.warnings;
    let words = ["error", "err", "fatal", "critical", "warn", "warning"];
    let mut out = format!(
        "A generated log tree: {} files in 8 directories, {:.0} MiB, {matching} lines holding a \
         level word ({} error, {} warning), deterministic, in a temp dir, warm in the page cache \
         (the warm-up). Every tool counts the lines holding any of the words {} as a whole \
         word, any case, with LC_ALL=C: `brigade logs -q --json DIR` (errors + warnings; its \
         totals are checked), `rg -c -i -w --no-ignore -e WORD... DIR` and `grep -r -c -i -w -E \
         'WORD|...' DIR` (the sums of their per-file counts are checked). Each tool uses its \
         default parallelism (brigade and rg: one worker per core; grep: one thread). Peak RSS: \
         `ru_maxrss` from `wait4`. {}, alternating. Ratio: tool / brigade.\n\n",
        expect.files,
        expect.bytes as f64 / (1 << 20) as f64,
        expect.errors,
        expect.warnings,
        words.join(", "),
        ctx.rounds_text(rounds_n, "")
    );
    let list = [Tool::Brigade, Tool::Rg, Tool::Grep];
    let got = rounds(
        &list,
        ctx.warmup(),
        rounds_n,
        |t| format!("C2 {}", t.name()),
        |tool, _| {
            let mut cmd = match tool {
                Tool::Brigade => {
                    let mut c = Command::new(brigade(ctx)?);
                    c.args(["logs", "-q", "--json"]).arg(&root);
                    c
                }
                Tool::Rg => {
                    let mut c = Command::new(missing("rg")?);
                    c.args(["-c", "-i", "-w", "--no-ignore"]);
                    for w in words {
                        c.args(["-e", w]);
                    }
                    c.arg(&root);
                    c
                }
                Tool::Grep => {
                    let mut c = Command::new(missing("grep")?);
                    c.args(["-r", "-c", "-i", "-w", "-E", &words.join("|")])
                        .arg(&root);
                    c
                }
                _ => unreachable!(),
            };
            cmd.env("LC_ALL", "C").stdin(Stdio::null());
            let start = Instant::now();
            let (stdout, kib) = crate::child::run_rusage(&mut cmd)?;
            let secs = start.elapsed().as_secs_f64();
            match tool {
                Tool::Brigade => {
                    let totals = stdout
                        .find("\"totals\":")
                        .map(|i| &stdout[i..])
                        .ok_or_else(|| Fail::Error("no totals in the JSON output".into()))?;
                    let got = (
                        json_u64(totals, "files"),
                        json_u64(totals, "errors"),
                        json_u64(totals, "warnings"),
                    );
                    let want = (
                        Some(expect.files),
                        Some(expect.errors),
                        Some(expect.warnings),
                    );
                    if got != want {
                        return Err(Fail::Error(format!(
                            "(files, errors, warnings) = {got:?}, expected {want:?}"
                        )));
                    }
                }
                _ => {
                    let n = sum_counts(&stdout)?;
                    if n != matching {
                        return Err(Fail::Error(format!(
                            "{n} matching lines, expected {matching}"
                        )));
                    }
                }
            }
            Ok(vec![secs, kib as f64 / 1024.0])
        },
    );
    let rows: Vec<_> = list
        .iter()
        .zip(&got)
        .map(|(t, g)| (t.name().to_string(), g))
        .collect();
    out.push_str(&wall_table(
        &[
            "tool",
            "wall s median [min-max]",
            "GB/s",
            "peak RSS MiB",
            "ratio to brigade",
        ],
        &rows,
        |_, g, v| {
            vec![
                format!("{:.2}", expect.bytes as f64 / 1e9 / util::median(v)),
                med_range(&g.metric(1)),
            ]
        },
    ));
    let (b, r) = (got[0].median(0), got[1].median(0));
    util::target(
        "C2 vs rg -c",
        "<= 1.5x `rg -c`",
        match (b, r) {
            (Some(b), Some(r)) => format!("{:.2}x ({b:.3} s vs {r:.3} s)", b / r),
            _ => got[1].why().unwrap_or_else(|| "no figure".into()),
        },
        util::verdict(b.zip(r).map(|(b, r)| b / r <= 1.5)),
    );
    out
}

// ---------------------------------------------------------------- C3

/// Whether this `brigade` binary has the `images` subcommand.
fn has_images(bin: &Path) -> bool {
    Command::new(bin)
        .args(["images", "--help"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Files directly in `dir`.
fn count_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file()))
            .count() as u64
    })
}

pub fn c3(ctx: &Ctx) -> String {
    let n: u64 = ctx.pick(500, 8, 4);
    let (w, h) = ctx.pick((3000, 2000), (3000, 2000), (600, 400));
    let (mw, mh) = ctx.pick((800, 600), (800, 600), (200, 150));
    let sources = ctx.pick(5, 1, 1);
    let warm_n = ctx.pick(10, 2, 0);
    let rounds_n = ctx.rounds(2, 1);
    let j = ctx.cores;
    let pending = |why: &str| {
        util::target(
            "C3 images",
            "ahead of `convert` via `xargs -P`",
            format!("pending: {why}"),
            "pending",
        );
        format!(
            "pending: {why}, so there is nothing to measure against ImageMagick `convert` via \
             `xargs -P` ({n} {w}x{h} JPEGs to {mw}x{mh} q80).\n"
        )
    };
    let bin = match ctx.brigade_bin() {
        Ok(b) => b,
        Err(e) => {
            util::fail(format!("C3: {e}"));
            return format!("ERROR: {e}\n");
        }
    };
    if !has_images(&bin) {
        return pending("`brigade images` does not exist yet");
    }
    let Some(convert) = find_tool("convert") else {
        util::target(
            "C3 images",
            "ahead of `convert` via `xargs -P`",
            "ImageMagick not installed".into(),
            "no figure",
        );
        return "ImageMagick `convert` not installed: it is both the peer and the maker of the \
                input images, so C3 is skipped.\n"
            .into();
    };
    let Some(xargs) = find_tool("xargs") else {
        util::target(
            "C3 images",
            "ahead of `convert` via `xargs -P`",
            "xargs not installed".into(),
            "no figure",
        );
        return "xargs not installed: C3 is skipped.\n".into();
    };
    let dir = match tempfile::Builder::new()
        .prefix("brigade-bench-c3")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            util::fail(format!("C3: temp dir: {e}"));
            return format!("ERROR: temp dir: {e}\n");
        }
    };
    // Photo-like sources (fractal plasma plus noise), copied round-robin, as
    // crates/brigade-cli/benches-c3.sh does.
    let setup = || -> Result<(PathBuf, PathBuf), String> {
        let (inp, warm) = (dir.path().join("in"), dir.path().join("warm"));
        std::fs::create_dir_all(&inp).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&warm).map_err(|e| e.to_string())?;
        let mut srcs = Vec::new();
        for k in 0..sources {
            let src = dir.path().join(format!("src{k}.jpg"));
            let o = Command::new(&convert)
                .args(["-seed", &k.to_string(), "-size", &format!("{w}x{h}")])
                .args(["plasma:fractal", "-attenuate", "0.3", "+noise", "Gaussian"])
                .args(["-quality", "90"])
                .arg(&src)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("convert: {e}"))?;
            if !o.status.success() {
                return Err(format!(
                    "convert could not make a source image: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            srcs.push(src);
        }
        let mut names = String::new();
        for i in 0..n {
            let name = format!("img{i:04}.jpg");
            std::fs::copy(&srcs[(i % sources) as usize], inp.join(&name))
                .map_err(|e| e.to_string())?;
            if i < warm_n {
                std::fs::copy(&srcs[(i % sources) as usize], warm.join(&name))
                    .map_err(|e| e.to_string())?;
            }
            names.push_str(&name);
            names.push('\n');
        }
        std::fs::write(dir.path().join("list"), &names).map_err(|e| e.to_string())?;
        let warm_list: String = names
            .lines()
            .take(warm_n as usize)
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(dir.path().join("warm-list"), warm_list).map_err(|e| e.to_string())?;
        // Warm the page cache.
        for i in 0..n {
            let _ = std::fs::read(inp.join(format!("img{i:04}.jpg")));
        }
        Ok((inp, warm))
    };
    let gen_start = Instant::now();
    let (inp, warm) = match setup() {
        Ok(x) => x,
        Err(e) => {
            util::fail(format!("C3: making the input images: {e}"));
            return format!("ERROR: making the input images: {e}\n");
        }
    };
    eprint!("(inputs in {:.1} s)", gen_start.elapsed().as_secs_f64());
    let bytes: u64 = (0..n)
        .filter_map(|i| std::fs::metadata(inp.join(format!("img{i:04}.jpg"))).ok())
        .map(|m| m.len())
        .sum();
    let max = format!("{mw}x{mh}");
    let mut out = format!(
        "{n} JPEGs of {w}x{h} ({} MiB; {sources} distinct photo-like images made with \
         `convert plasma:fractal +noise`, copied round-robin), warm in the page cache, fit within \
         {max} at quality 80, {j} at a time (= cores), into a fresh folder each run. `brigade \
         images IN --out OUT --max {max} --quality 80 --json -j {j}` (its JSON count and the \
         files written are checked) vs `xargs -P {j} -I{{}} convert {{}} -auto-orient -resize \
         {max} -quality 80 OUT/{{}}` (the files written are counted). Peak RSS: `ru_maxrss` from \
         `wait4`: for brigade its one process; for xargs the largest single `convert` ({j} of \
         them run at once). {}, alternating. Ratio: tool / brigade.\n\n",
        num(bytes as f64 / (1 << 20) as f64),
        ctx.rounds_text(rounds_n, &format!(" of {warm_n} images"))
    );
    let mut run_no = 0;
    let list = [Tool::Brigade, Tool::Xargs];
    let got = rounds(
        &list,
        ctx.warmup() && warm_n > 0,
        rounds_n,
        |t| format!("C3 {}", t.name()),
        |tool, is_warm| {
            let (src, list_file, count) = if is_warm {
                (&warm, dir.path().join("warm-list"), warm_n)
            } else {
                (&inp, dir.path().join("list"), n)
            };
            run_no += 1;
            let outdir = dir.path().join(format!("out{run_no}"));
            std::fs::create_dir_all(&outdir).map_err(|e| format!("{e}"))?;
            let js = j.to_string();
            let mut cmd = match tool {
                Tool::Brigade => {
                    let mut c = Command::new(&bin);
                    c.arg("images")
                        .arg(src)
                        .arg("--out")
                        .arg(&outdir)
                        .args(["--max", &max, "--quality", "80", "--json", "-j", &js])
                        .stdin(Stdio::null());
                    c
                }
                _ => {
                    let mut c = Command::new(&xargs);
                    c.current_dir(src)
                        .args(["-P", &js, "-I{}"])
                        .arg(&convert)
                        .args(["{}", "-auto-orient", "-resize", &max, "-quality", "80"])
                        .arg(outdir.join("{}"))
                        .stdin(Stdio::from(
                            File::open(&list_file).map_err(|e| format!("{e}"))?,
                        ));
                    c
                }
            };
            let start = Instant::now();
            let (stdout, kib) = crate::child::run_rusage(&mut cmd)?;
            let secs = start.elapsed().as_secs_f64();
            let written = count_files(&outdir);
            let _ = std::fs::remove_dir_all(&outdir);
            if tool == Tool::Brigade {
                let said = json_u64(&stdout, "images_out");
                if said != Some(count) || json_u64(&stdout, "failed") != Some(0) {
                    return Err(Fail::Error(format!(
                        "images_out {said:?}, expected {count}: {}",
                        stdout.trim()
                    )));
                }
            }
            if written != count {
                return Err(Fail::Error(format!(
                    "{written} files written, expected {count}"
                )));
            }
            Ok(vec![secs, kib as f64 / 1024.0])
        },
    );
    let rows: Vec<_> = list
        .iter()
        .zip(&got)
        .map(|(t, g)| {
            let name = match t {
                Tool::Brigade => "brigade images".to_string(),
                _ => format!("xargs -P {j} convert"),
            };
            (name, g)
        })
        .collect();
    out.push_str(&wall_table(
        &[
            "tool",
            "wall s median [min-max]",
            "images/s",
            "peak RSS MiB",
            "ratio to brigade (wall)",
        ],
        &rows,
        |i, g, v| {
            // Brigade is one process; convert runs `j` processes at once.
            let per = if i == 0 {
                String::new()
            } else {
                format!(" (x {j} processes)")
            };
            vec![
                num(n as f64 / util::median(v)),
                format!("{}{per}", med_range(&g.metric(1))),
            ]
        },
    ));
    let (b, c) = (got[0].median(0), got[1].median(0));
    let (brss, crss) = (got[0].median(1), got[1].median(1));
    util::target(
        "C3 images",
        "ahead of `convert` via `xargs -P`",
        match (b, c) {
            (Some(b), Some(c)) => format!(
                "{:.2}x the images/s ({:.1} vs {:.1}); peak RSS {:.0} MiB vs {:.0} MiB x {j}",
                c / b,
                n as f64 / b,
                n as f64 / c,
                brss.unwrap_or(f64::NAN),
                crss.unwrap_or(f64::NAN)
            ),
            _ => got[1].why().unwrap_or_else(|| "no figure".into()),
        },
        util::verdict(b.zip(c).map(|(b, c)| b < c)),
    );
    out
}

// ---------------------------------------------------------------- C5

/// The C5 table's columns: ints, floats, text, timestamps.
const C5_PG_DDL: &str =
    "id BIGINT, user_id BIGINT, amount DOUBLE PRECISION, ratio DOUBLE PRECISION, \
                         name TEXT, category TEXT, created_at TIMESTAMP, updated_at TIMESTAMP";
const C5_LITE_DDL: &str = "id INTEGER, user_id INTEGER, amount REAL, ratio REAL, name TEXT, \
                           category TEXT, created_at TEXT, updated_at TEXT";
const C5_COLUMNS: &str = "id,user_id,amount,ratio,name,category,created_at,updated_at";
const C5_TABLE: &str = "brigade_bench_c5";
const C5_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Writes `n` rows of 8 columns as CSV with a header; returns the bytes written.
fn c5_csv(path: &Path, n: u64) -> std::io::Result<u64> {
    const CATS: [&str; 8] = [
        "books", "games", "garden", "tools", "toys", "food", "music", "sport",
    ];
    let mut w = BufWriter::new(File::create(path)?);
    writeln!(w, "{C5_COLUMNS}")?;
    for i in 1..=n {
        writeln!(
            w,
            "{i},{},{}.{:02},{:.6},\"customer {i}, {}\",{},2024-{:02}-{:02} {:02}:{:02}:{:02},2025-01-{:02} 12:00:00",
            i * 7919 % 100_000,
            i % 10_000,
            i % 100,
            (i * 31 % 1000) as f64 / 997.0,
            CATS[(i % 8) as usize],
            CATS[(i / 8 % 8) as usize],
            i % 12 + 1,
            i % 28 + 1,
            i % 24,
            i % 60,
            (i / 60) % 60,
            i % 28 + 1,
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loader {
    BrigadePg,
    PsqlCopy,
    Pgloader,
    BrigadeLite,
    Sqlite3Import,
    SqliteUtils,
}

impl Loader {
    fn name(self) -> &'static str {
        match self {
            Loader::BrigadePg => "brigade load (PostgreSQL, COPY)",
            Loader::PsqlCopy => "psql \\copy",
            Loader::Pgloader => "pgloader",
            Loader::BrigadeLite => "brigade load (SQLite)",
            Loader::Sqlite3Import => "sqlite3 .import",
            Loader::SqliteUtils => "sqlite-utils insert",
        }
    }
}

/// `sqlite-utils` on PATH or in pip's user folder.
fn sqlite_utils() -> Option<PathBuf> {
    find_tool("sqlite-utils").or_else(|| {
        let p = PathBuf::from(std::env::var_os("HOME")?).join(".local/bin/sqlite-utils");
        p.is_file().then_some(p)
    })
}

/// Runs `psql -tAc SQL` against the test database; its trimmed output.
fn psql(sql: &str) -> Result<String, Fail> {
    let psql = find_tool("psql").ok_or_else(|| Fail::Missing("psql not installed".into()))?;
    let out = Command::new(psql)
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-tA",
            "-d",
            C5_PG,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if !out.status.success() {
        let e = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if e.contains("could not connect") || e.contains("Connection refused") {
            return Err(Fail::Missing(format!("PostgreSQL not reachable: {e}")));
        }
        return Err(Fail::Error(format!("psql -c {sql:?}: {e}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs `sqlite3 DB SQL`; its trimmed output.
fn sqlite3(db: &Path, sql: &str) -> Result<String, Fail> {
    let bin = missing("sqlite3")?;
    let out = Command::new(bin)
        .arg(db)
        .arg(sql)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("sqlite3: {e}"))?;
    if !out.status.success() {
        return Err(Fail::Error(format!(
            "sqlite3 {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One load of `csv` by `tool` into a fresh (empty) table: (wall s, peak RSS MiB).
fn c5_run(ctx: &Ctx, tool: Loader, csv: &Path, n: u64, dir: &Path) -> Result<Vec<f64>, Fail> {
    let pg = matches!(
        tool,
        Loader::BrigadePg | Loader::PsqlCopy | Loader::Pgloader
    );
    let db = dir.join("c5.db");
    if pg {
        psql(&format!(
            "DROP TABLE IF EXISTS {C5_TABLE}; CREATE TABLE {C5_TABLE} ({C5_PG_DDL})"
        ))?;
    } else {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("c5.db{ext}")));
        }
        sqlite3(&db, &format!("CREATE TABLE {C5_TABLE} ({C5_LITE_DDL})"))?;
    }
    let csv_s = csv
        .to_str()
        .ok_or_else(|| Fail::Error("a non-UTF-8 temp path".into()))?;
    let mut cmd = match tool {
        Loader::BrigadePg | Loader::BrigadeLite => {
            let mut c = Command::new(brigade(ctx)?);
            let target = if pg {
                C5_PG.to_string()
            } else {
                db.to_str()
                    .ok_or_else(|| Fail::Error("a non-UTF-8 temp path".into()))?
                    .to_string()
            };
            c.args([
                "load", "--db", &target, "--table", C5_TABLE, "--json", csv_s,
            ]);
            c
        }
        Loader::PsqlCopy => {
            let mut c = Command::new(missing("psql")?);
            c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", C5_PG, "-c"])
                .arg(format!(
                    "\\copy {C5_TABLE} FROM '{csv_s}' WITH (FORMAT csv, HEADER true)"
                ));
            c
        }
        Loader::Pgloader => {
            let mut c = Command::new(missing("pgloader")?);
            c.args(["--quiet", "--type", "csv", "--field", C5_COLUMNS])
                .args([
                    "--with",
                    "skip header = 1",
                    "--with",
                    "fields terminated by ','",
                ])
                .args(["--with", "fields optionally enclosed by '\"'"])
                .arg(csv)
                .arg(format!("{C5_PG}?tablename={C5_TABLE}"));
            c
        }
        Loader::Sqlite3Import => {
            let mut c = Command::new(missing("sqlite3")?);
            c.arg(&db)
                .arg(format!(".import --csv --skip 1 {csv_s} {C5_TABLE}"));
            c
        }
        Loader::SqliteUtils => {
            let bin = sqlite_utils().ok_or_else(|| {
                Fail::Missing("sqlite-utils not installed (pip install sqlite-utils)".into())
            })?;
            let mut c = Command::new(bin);
            c.args(["insert"]).arg(&db).args([C5_TABLE, csv_s, "--csv"]);
            c
        }
    };
    cmd.stdin(Stdio::null());
    let start = Instant::now();
    let (stdout, kib) = crate::child::run_rusage(&mut cmd)?;
    let secs = start.elapsed().as_secs_f64();
    if matches!(tool, Loader::BrigadePg | Loader::BrigadeLite)
        && json_u64(&stdout, "rows_inserted") != Some(n)
    {
        return Err(Fail::Error(format!(
            "rows_inserted is not {n}: {}",
            stdout.trim()
        )));
    }
    let count = if pg {
        psql(&format!("SELECT count(*) FROM {C5_TABLE}"))?
    } else {
        sqlite3(&db, &format!("SELECT count(*) FROM {C5_TABLE}"))?
    };
    if count != n.to_string() {
        return Err(Fail::Error(format!(
            "{count} rows in the table, expected {n}"
        )));
    }
    Ok(vec![secs, kib as f64 / 1024.0])
}

pub fn c5(ctx: &Ctx) -> String {
    let n: u64 = ctx.pick(2_000_000, 200_000, 2_000);
    let rounds_n = ctx.rounds(3, 1);
    let dir = match tempfile::Builder::new()
        .prefix("brigade-bench-c5")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            util::fail(format!("C5: temp dir: {e}"));
            return format!("ERROR: temp dir: {e}\n");
        }
    };
    let csv = dir.path().join("c5.csv");
    let bytes = match c5_csv(&csv, n) {
        Ok(b) => b,
        Err(e) => {
            util::fail(format!("C5: writing the CSV: {e}"));
            return format!("ERROR: writing the CSV: {e}\n");
        }
    };
    // Into the page cache, in small reads: a child's ru_maxrss starts from this
    // process's peak at fork, so the bench must never hold the file itself.
    if let Ok(mut f) = File::open(&csv) {
        let _ = std::io::copy(&mut f, &mut std::io::sink());
    }
    let mut out = format!(
        "{n} generated rows of 8 columns (2 integers, 2 floats, 2 texts, 2 timestamps; one quoted \
         field with a comma per row) as one CSV file of {} MiB, warm in the page cache, into an \
         empty table created beforehand (PostgreSQL on the same machine: `{C5_PG}`, table \
         `{C5_TABLE}` dropped and created before each run; SQLite: a fresh file each run). \
         Commands: `brigade load --db URL --table {C5_TABLE} --json FILE` (default settings: COPY, \
         5,000-row batches, workers = cores for PostgreSQL, 1 for SQLite; its JSON count is \
         checked), `psql -c \"\\copy {C5_TABLE} FROM FILE WITH (FORMAT csv, HEADER true)\"`, \
         `pgloader --type csv --field ... --with \"skip header = 1\" FILE URL?tablename=...`, \
         `sqlite3 DB \".import --csv --skip 1 FILE {C5_TABLE}\"`, `sqlite-utils insert DB \
         {C5_TABLE} FILE --csv`. Every run's row count is checked in the table. Peak RSS: \
         `ru_maxrss` of the command (for psql and pgloader the client only, not the server). {}, \
         alternating. Ratio: tool / brigade (wall).\n\n",
        num(bytes as f64 / (1 << 20) as f64),
        ctx.rounds_text(rounds_n, " of the same size")
    );
    let tables = [
        [Loader::BrigadePg, Loader::PsqlCopy, Loader::Pgloader],
        [
            Loader::BrigadeLite,
            Loader::Sqlite3Import,
            Loader::SqliteUtils,
        ],
    ];
    let mut medians = Vec::new();
    for list in tables {
        let got = rounds(
            &list,
            false,
            rounds_n,
            |t| format!("C5 {}", t.name()),
            |tool, _| c5_run(ctx, tool, &csv, n, dir.path()),
        );
        let rows: Vec<_> = list
            .iter()
            .zip(&got)
            .map(|(t, g)| (t.name().to_string(), g))
            .collect();
        out.push_str(&wall_table(
            &[
                "tool",
                "wall s median [min-max]",
                "rows/s",
                "peak RSS MiB",
                "ratio to brigade (wall)",
            ],
            &rows,
            |_, g, v| vec![num(n as f64 / util::median(v)), med_range(&g.metric(1))],
        ));
        out.push('\n');
        medians.push(
            got.iter()
                .map(|g| (g.median(0), g.median(1)))
                .collect::<Vec<_>>(),
        );
    }
    let _ = psql(&format!("DROP TABLE IF EXISTS {C5_TABLE}"));
    // Targets: speed as a fraction of each peer's rows/s (peer wall / brigade wall).
    let speed = |b: Option<f64>, p: Option<f64>| b.zip(p).map(|(b, p)| p / b);
    let pg = &medians[0];
    let lite = &medians[1];
    let report = |figure: &str, target: &str, x: Option<f64>, min: f64| {
        util::target(
            figure,
            target,
            x.map_or("no figure".into(), |x| format!("{x:.2}x")),
            util::verdict(x.map(|x| x >= min)),
        );
    };
    report(
        "C5 PostgreSQL vs psql \\copy",
        ">= 0.9x",
        speed(pg[0].0, pg[1].0),
        0.9,
    );
    report(
        "C5 PostgreSQL vs pgloader",
        ">= 2x",
        speed(pg[0].0, pg[2].0),
        2.0,
    );
    report(
        "C5 SQLite vs sqlite3 .import",
        ">= 0.8x",
        speed(lite[0].0, lite[1].0),
        0.8,
    );
    report(
        "C5 SQLite vs sqlite-utils",
        ">= 5x",
        speed(lite[0].0, lite[2].0),
        5.0,
    );
    let rss = pg[0]
        .1
        .into_iter()
        .chain(lite[0].1)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    util::target(
        "C5 peak RSS",
        "<= 128 MiB",
        rss.map_or("no figure".into(), |r| format!("{r:.0} MiB at {n} rows")),
        util::verdict(rss.map(|r| r <= 128.0)),
    );
    out
}
