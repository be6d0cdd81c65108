//! `brigade fetch` against real HTTP servers: an in-process hyper server on
//! 127.0.0.1 (plain and TLS with a self-signed certificate), and nginx for an
//! end-to-end crawl.
//!
//! With BRIGADE_REQUIRE_SERVICES set (CI), a missing nginx fails the test;
//! without it, that test is skipped with a printed reason.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

use common::{bin, brigade_in, text};

type Body = BoxBody<Bytes, std::io::Error>;

/// What the server saw.
#[derive(Default)]
struct Seen {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Every request: path and query, and when it came.
    hits: Mutex<Vec<(String, Instant)>>,
}

impl Seen {
    fn hits_of(&self, prefix: &str) -> Vec<Instant> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, t)| *t)
            .collect()
    }
}

struct Server {
    addr: SocketAddr,
    tls_addr: SocketAddr,
    cert_pem: String,
    seen: Arc<Seen>,
    _rt: tokio::runtime::Runtime,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn full(status: u16, headers: &[(&str, String)], body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    )
    .unwrap()
}

fn html(title: &str, extra: &str) -> Response<Body> {
    full(
        200,
        &[("content-type", "text/html; charset=utf-8".into())],
        format!("<html><head><title>{title}</title></head><body>{extra}</body></html>"),
    )
}

/// A body of `chunks` chunks of `size` bytes, `pause` apart, then an error
/// (a connection cut mid-body) when `fail`.
fn streamed(
    chunks: usize,
    size: usize,
    pause: Duration,
    fail: bool,
    declared: Option<usize>,
) -> Response<Body> {
    let stream = futures_stream(chunks, size, pause, fail);
    let mut r = Response::builder()
        .status(200)
        .header("content-type", "application/octet-stream");
    if let Some(n) = declared {
        r = r.header("content-length", n.to_string());
    }
    r.body(BodyExt::boxed(StreamBody::new(stream))).unwrap()
}

fn futures_stream(chunks: usize, size: usize, pause: Duration, fail: bool) -> ChannelStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(2);
    tokio::spawn(async move {
        for _ in 0..chunks {
            if tx
                .send(Ok(Frame::data(Bytes::from(vec![b'a'; size]))))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(pause).await;
        }
        if fail {
            let _ = tx.send(Err(std::io::Error::other("cut"))).await;
        }
    });
    ChannelStream(rx)
}

struct ChannelStream(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl futures_core::Stream for ChannelStream {
    type Item = Result<Frame<Bytes>, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

async fn route(
    req: Request<hyper::body::Incoming>,
    seen: Arc<Seen>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let pq = req
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_string());
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let n_before = {
        let mut hits = seen.hits.lock().unwrap();
        let n = hits.iter().filter(|(p, _)| *p == pq).count();
        hits.push((pq.clone(), Instant::now()));
        n
    };
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let ms = |k: &str| query.get(k).and_then(|v| v.parse().ok()).unwrap_or(0u64);
    let resp = match path.as_str() {
        "/robots.txt" => full(200, &[], "User-agent: *\nDisallow: /private\nCrawl-delay: 1\n"),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(ms("ms"))).await;
            html("slow", "")
        }
        "/slowbody" => streamed(20, 10, Duration::from_millis(200), false, None),
        "/huge" => streamed(800, 64 * 1024, Duration::ZERO, false, Some(800 * 64 * 1024)),
        "/reset" => streamed(2, 500, Duration::from_millis(10), true, Some(100_000)),
        // The first hit of each query is refused with Retry-After in seconds.
        "/429s" if n_before == 0 => full(429, &[("retry-after", "1".into())], "slow down"),
        "/429s" => html("ok after 429", ""),
        // The same with an HTTP date two seconds ahead.
        "/429date" if n_before == 0 => full(
            429,
            &[(
                "retry-after",
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2)),
            )],
            "slow down",
        ),
        "/429date" => html("ok after 429 date", ""),
        "/503" => full(503, &[("retry-after", "1".into())], "down"),
        "/500" => full(500, &[], "oops"),
        "/404" => full(404, &[], "no"),
        "/loop/a" => full(302, &[("location", "/loop/b".into())], ""),
        "/loop/b" => full(302, &[("location", "/loop/a".into())], ""),
        "/to-private" => full(301, &[("location", "/private/x".into())], ""),
        p if p.starts_with("/redirect/") => {
            let n: u32 = p["/redirect/".len()..].parse().unwrap_or(0);
            if n == 0 {
                html("landed", "")
            } else {
                full(302, &[("location", format!("/redirect/{}", n - 1))], "")
            }
        }
        "/latin1" => full(
            200,
            &[("content-type", "text/html; charset=iso-8859-1".into())],
            &b"<title>caf\xe9</title>"[..],
        ),
        // Says UTF-8, is Latin-1.
        "/wrong-charset" => full(
            200,
            &[("content-type", "text/html; charset=utf-8".into())],
            &b"<title>caf\xe9</title>"[..],
        ),
        "/meta-sjis" => full(
            200,
            &[("content-type", "text/html".into())],
            &b"<meta charset=\"shift_jis\"><title>\x93\xfa\x96\x7b</title>"[..],
        ),
        "/links" => html(
            "links",
            "<a href='/page/1'>1</a><a href='page/2#frag'>2</a><p class='x'>one</p><p class='x'>two</p>",
        ),
        p if p.starts_with("/page/") => html(&format!("Page {}", &p[6..]), ""),
        _ => full(404, &[], "not found"),
    };
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    Ok(resp)
}

fn server() -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seen = Arc::new(Seen::default());
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = cert.cert.pem();
    let (addr, tls_addr) = rt.block_on(async {
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = (plain.local_addr().unwrap(), tls.local_addr().unwrap());
        let s = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = plain.accept().await else {
                    continue;
                };
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| route(req, Arc::clone(&s)));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.cert.der().clone()],
                tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(
                    cert.key_pair.serialize_der(),
                )
                .unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let s = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = tls.accept().await else {
                    continue;
                };
                let (s, acceptor) = (Arc::clone(&s), acceptor.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| route(req, Arc::clone(&s)));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        addrs
    });
    Server {
        addr,
        tls_addr,
        cert_pem,
        seen,
        _rt: rt,
    }
}

fn fetch(args: &[&str], stdin: &[u8]) -> Output {
    let args: Vec<&str> = std::iter::once("fetch")
        .chain(args.iter().copied())
        .collect();
    brigade_in(Path::new("."), &args, stdin)
}

fn records(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn by_input(recs: &[Value]) -> HashMap<String, Value> {
    recs.iter()
        .map(|r| (r["input"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

#[test]
fn every_input_gets_one_record_bad_ones_included() {
    let s = server();
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut stdin = Vec::new();
    for line in [
        s.url("/page/1"),
        s.url("/404"),
        "ftp://example.com/x".into(),
        "http://exa mple.com/".into(),
        format!("http://{refused}/"),
        "http://no-such-host.invalid/".into(),
        s.url("/reset"),
        s.url("/loop/a"),
        s.url("/redirect/12"),
        s.url("/redirect/3"),
        s.url("/slowbody"),
    ] {
        stdin.extend_from_slice(line.as_bytes());
        stdin.push(b'\n');
    }
    stdin.extend_from_slice(b"http://bad\xff\xfe/\n\n");
    let out = fetch(&["--timeout", "1500ms"], &stdin);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let recs = records(&out);
    assert_eq!(recs.len(), 12, "{}", text(&out.stdout));
    let r = by_input(&recs);
    let get = |k: &str| r.get(k).unwrap_or_else(|| panic!("no record for {k}"));
    let err = |k: &str| get(k)["error"].as_str().unwrap_or("").to_string();
    let page = get(&s.url("/page/1"));
    assert_eq!(page["status_code"], 200);
    assert_eq!(page["title"], "Page 1");
    assert_eq!(page["failed"], false);
    assert_eq!(get(&s.url("/404"))["status_code"], 404);
    assert_eq!(
        get(&s.url("/404"))["failed"],
        false,
        "an answer is not a failure"
    );
    assert!(err("ftp://example.com/x").contains("unsupported scheme 'ftp'"));
    assert!(err("http://exa mple.com/").contains("invalid URL"));
    assert!(err(&format!("http://{refused}/")).contains("connection refused"));
    assert!(
        err("http://no-such-host.invalid/").contains("DNS"),
        "{}",
        err("http://no-such-host.invalid/")
    );
    assert!(
        err(&s.url("/reset")).contains("cut off after"),
        "{}",
        err(&s.url("/reset"))
    );
    assert!(err(&s.url("/loop/a")).contains("redirect loop"));
    assert!(err(&s.url("/redirect/12")).contains("too many redirects"));
    assert!(
        err(&s.url("/slowbody")).contains("timed out"),
        "{}",
        err(&s.url("/slowbody"))
    );
    let chain = get(&s.url("/redirect/3"));
    assert_eq!(
        chain["chain_status_codes"],
        serde_json::json!([302, 302, 302, 200])
    );
    assert_eq!(chain["final_url"], s.url("/redirect/0"));
    let bad = recs
        .iter()
        .find(|r| r["input"].as_str().unwrap().starts_with("http://bad"))
        .unwrap();
    assert!(bad["error"].as_str().unwrap().contains("not valid UTF-8"));
    for k in [
        s.url("/reset"),
        s.url("/loop/a"),
        s.url("/slowbody"),
        "ftp://example.com/x".into(),
    ] {
        assert_eq!(get(&k)["failed"], true, "{k}");
    }
}

#[test]
fn per_host_slots_are_never_exceeded() {
    let s = server();
    let urls: Vec<String> = (0..16)
        .map(|i| s.url(&format!("/slow?ms=200&i={i}")))
        .collect();
    let mut args: Vec<&str> = vec!["-j", "16", "--per-host", "3"];
    args.extend(urls.iter().map(String::as_str));
    let out = fetch(&args, b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(records(&out).len(), 16);
    let max = s.seen.max_in_flight.load(Ordering::SeqCst);
    assert!(
        max <= 3,
        "the server saw {max} requests at once, --per-host 3"
    );
    assert!(
        max >= 2,
        "requests to one host should overlap up to --per-host, saw {max}"
    );
}

#[test]
fn delay_spaces_request_starts() {
    let s = server();
    let urls: Vec<String> = (0..4).map(|i| s.url(&format!("/page/d{i}"))).collect();
    let mut args: Vec<&str> = vec!["--delay", "300ms", "--per-host", "4"];
    args.extend(urls.iter().map(String::as_str));
    let out = fetch(&args, b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut hits = s.seen.hits_of("/page/d");
    hits.sort();
    assert_eq!(hits.len(), 4);
    let span = hits[3] - hits[0];
    assert!(
        span >= Duration::from_millis(800),
        "3 gaps of 300ms took {span:?}"
    );
}

#[test]
fn retry_after_in_seconds_and_as_a_date_slows_only_that_host() {
    let s = server();
    // Another origin on the same server: localhost instead of 127.0.0.1.
    let other: Vec<String> = (0..5)
        .map(|i| format!("http://localhost:{}/page/o{i}", s.addr.port()))
        .collect();
    let mut args = vec![
        "--retries".to_string(),
        "2".into(),
        s.url("/429s?k=1"),
        s.url("/429date?k=1"),
    ];
    args.extend(other.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = fetch(&args, b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r = by_input(&records(&out));
    for k in [s.url("/429s?k=1"), s.url("/429date?k=1")] {
        assert_eq!(r[&k]["status_code"], 200, "{k}: {}", r[&k]);
        assert_eq!(r[&k]["attempts"], 2);
        assert_eq!(r[&k]["failed"], false);
    }
    let gap = |p: &str| {
        let h = s.seen.hits_of(p);
        assert_eq!(h.len(), 2, "{p}");
        h[1] - h[0]
    };
    assert!(
        gap("/429s") >= Duration::from_millis(900),
        "Retry-After: 1 waited {:?}",
        gap("/429s")
    );
    assert!(
        gap("/429date") >= Duration::from_millis(900),
        "Retry-After date waited {:?}",
        gap("/429date")
    );
    for k in &other {
        let ms = r[k]["elapsed_ms"].as_u64().unwrap();
        assert!(
            ms < 900,
            "{k} waited {ms}ms: another host's Retry-After slowed it"
        );
    }
}

#[test]
fn retries_only_what_is_worth_retrying() {
    let s = server();
    let out = fetch(
        &[
            "--retries",
            "2",
            &s.url("/503"),
            &s.url("/500"),
            &s.url("/404"),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r = by_input(&records(&out));
    assert_eq!(r[&s.url("/503")]["attempts"], 3);
    assert_eq!(r[&s.url("/503")]["status_code"], 503);
    assert_eq!(r[&s.url("/500")]["attempts"], 3);
    assert_eq!(r[&s.url("/404")]["attempts"], 1, "a 404 is never retried");
    assert_eq!(s.seen.hits_of("/404").len(), 1);
    assert_eq!(s.seen.hits_of("/503").len(), 3);
    let h = s.seen.hits_of("/503");
    assert!(
        h[2] - h[0] >= Duration::from_millis(1800),
        "503 Retry-After: 1 honoured twice"
    );
}

#[test]
fn bodies_capped_and_decoded_by_charset() {
    let s = server();
    let out = fetch(
        &[
            "--max-body",
            "1MiB",
            "--extract",
            "links",
            "--extract",
            "css:p.x",
            &s.url("/huge"),
            &s.url("/latin1"),
            &s.url("/wrong-charset"),
            &s.url("/meta-sjis"),
            &s.url("/links"),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r = by_input(&records(&out));
    let huge = &r[&s.url("/huge")];
    assert_eq!(huge["truncated"], true);
    assert_eq!(huge["content_length"], 1 << 20);
    assert!(huge["error"].as_str().unwrap().contains("truncated"));
    assert_eq!(r[&s.url("/latin1")]["title"], "café");
    let wrong = &r[&s.url("/wrong-charset")];
    assert_eq!(wrong["decode_errors"], true);
    assert_eq!(wrong["title"], "caf\u{fffd}");
    assert_eq!(r[&s.url("/meta-sjis")]["title"], "日本");
    let links = &r[&s.url("/links")];
    assert_eq!(
        links["links"],
        serde_json::json!([s.url("/page/1"), s.url("/page/2")])
    );
    assert_eq!(links["css"]["p.x"], serde_json::json!(["one", "two"]));
}

#[test]
fn robots_disallow_at_every_hop_and_crawl_delay() {
    let s = server();
    let out = fetch(
        &[
            "--robots",
            "--per-host",
            "4",
            &s.url("/private/a"),
            &s.url("/to-private"),
            &s.url("/page/r1"),
            &s.url("/page/r2"),
            &s.url("/page/r3"),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let r = by_input(&records(&out));
    for k in [s.url("/private/a"), s.url("/to-private")] {
        assert_eq!(r[&k]["failed"], true);
        assert!(
            r[&k]["error"].as_str().unwrap().contains("robots.txt"),
            "{}",
            r[&k]
        );
    }
    assert!(
        s.seen.hits_of("/private").is_empty(),
        "a disallowed path was fetched"
    );
    assert_eq!(
        s.seen.hits_of("/robots.txt").len(),
        1,
        "robots.txt is read once per host"
    );
    let mut h = s.seen.hits_of("/page/r");
    h.sort();
    assert_eq!(h.len(), 3);
    assert!(
        h[2] - h[0] >= Duration::from_millis(1800),
        "Crawl-delay: 1 gave {:?}",
        h[2] - h[0]
    );
}

#[test]
fn https_with_a_self_signed_certificate() {
    let s = server();
    let url = format!("https://localhost:{}/page/tls", s.tls_addr.port());
    let out = fetch(&[&url], b"");
    assert_eq!(out.status.code(), Some(1));
    let rec = &records(&out)[0];
    assert_eq!(rec["failed"], true);
    assert!(rec["error"].as_str().unwrap().contains("TLS"), "{rec}");

    let out = fetch(&["--insecure", &url], b"");
    assert_eq!(
        records(&out)[0]["title"],
        "Page tls",
        "{}",
        text(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("cert.pem");
    std::fs::write(&pem, &s.cert_pem).unwrap();
    let out = fetch(&["--cacert", pem.to_str().unwrap(), &url], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(records(&out)[0]["status_code"], 200);
}

/// Reruns with the same --resume file; returns the inputs it printed records for.
fn rerun_resumed(resume: &Path, stdin: &str) -> Vec<String> {
    let resume = resume.to_str().unwrap();
    let out = fetch(
        &["--resume", resume, "-j", "8", "--per-host", "8"],
        stdin.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    records(&out)
        .iter()
        .map(|r| r["input"].as_str().unwrap().to_string())
        .collect()
}

/// Starts `brigade fetch -j 2 --per-host 2 --resume FILE` on `stdin` and
/// returns once the server has seen `hits` requests to /slow.
fn started_resumable(s: &Server, resume: &Path, stdin: &str, hits: usize) -> std::process::Child {
    let mut child = Command::new(bin())
        .args(["fetch", "-j", "2", "--per-host", "2", "--resume"])
        .arg(resume)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let started = Instant::now();
    while s.seen.hits_of("/slow").len() < hits && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn resume_after_ctrl_c_gives_each_input_one_record() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let resume = dir.path().join("done.txt");
    let inputs: Vec<String> = (0..40)
        .map(|i| s.url(&format!("/slow?ms=100&r={i}")))
        .collect();
    let stdin = inputs.join("\n") + "\n";
    // Let a few finish, then Ctrl-C once.
    let child = started_resumable(&s, &resume, &stdin, 6);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let first = child.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(130), "{}", text(&first.stderr));
    let a = records(&first);
    assert!(
        !a.is_empty() && a.len() < 40,
        "{} records before Ctrl-C",
        a.len()
    );
    let b = rerun_resumed(&resume, &stdin);
    let mut all: Vec<String> = a
        .iter()
        .map(|r| r["input"].as_str().unwrap().to_string())
        .chain(b)
        .collect();
    all.sort();
    let mut want = inputs.clone();
    want.sort();
    assert_eq!(all, want, "every input exactly once across the two runs");
    let done = std::fs::read_to_string(&resume).unwrap();
    assert_eq!(done.lines().count(), 40);
}

#[test]
fn resume_after_kill_9_skips_no_input() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let resume = dir.path().join("done.txt");
    let inputs: Vec<String> = (0..40)
        .map(|i| s.url(&format!("/slow?ms=100&k={i}")))
        .collect();
    let stdin = inputs.join("\n") + "\n";
    let mut child = started_resumable(&s, &resume, &stdin, 8);
    child.kill().unwrap(); // SIGKILL
    let first = child.wait_with_output().unwrap();
    // A line cut short by the kill is not a record.
    let a: Vec<String> = text(&first.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| r["input"].as_str().unwrap().to_string())
        .collect();
    assert!(a.len() < 40, "the kill came too late to test anything");
    let done = std::fs::read_to_string(&resume).unwrap();
    for line in done.lines().filter(|l| !l.is_empty()) {
        assert!(
            a.iter().any(|i| i == line),
            "{line} is in the resume file but its record was never written"
        );
    }
    let b = rerun_resumed(&resume, &stdin);
    let mut all: Vec<String> = a.iter().chain(&b).cloned().collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(all.len(), 40, "an input was skipped");
    assert!(
        before - all.len() <= 1,
        "{} duplicates: only the record being added to the resume file at the kill may repeat",
        before - all.len()
    );
}

#[test]
fn crawl_against_nginx() {
    let Some(nginx) = nginx_path() else { return };
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("secret")).unwrap();
    // index -> p1..p30; each pN -> p(N+1) and back home; p30 -> deep/, which is past --depth 2.
    let mut index = String::from("<html><title>Home</title>");
    for i in 1..=30 {
        index.push_str(&format!("<a href='p{i}.html'>{i}</a>"));
        std::fs::write(
            site.join(format!("p{i}.html")),
            format!("<title>P{i}</title><a href='/'>home</a><a href='p{}.html#top'>next</a><a href='http://elsewhere.invalid/'>x</a>", i + 1),
        )
        .unwrap();
    }
    index.push_str("<a href='/secret/s.html'>s</a></html>");
    std::fs::write(site.join("index.html"), index).unwrap();
    std::fs::write(site.join("secret/s.html"), "<title>Secret</title>").unwrap();
    std::fs::write(
        site.join("robots.txt"),
        "User-agent: *\nDisallow: /secret/\n",
    )
    .unwrap();
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n \
             fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n \
             types {{ text/html html; text/plain txt; }}\n \
             server {{ listen 127.0.0.1:{port}; root {d}/site; }}\n}}\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    // Readable by nginx's worker when it runs as root and switches to nobody.
    for p in [dir.path().to_path_buf(), site.clone(), site.join("secret")] {
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let mut nginx = Command::new(nginx)
        .args([
            "-p",
            dir.path().to_str().unwrap(),
            "-e",
            &format!("{}/error.log", dir.path().display()),
        ])
        .args(["-c", conf.to_str().unwrap(), "-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx");
    let up = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if up.elapsed() > Duration::from_secs(10) || nginx.try_wait().unwrap().is_some() {
            let _ = nginx.kill();
            let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
            panic!("nginx did not start on port {port}: {log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let home = format!("http://127.0.0.1:{port}/");
    let save = dir.path().join("saved");
    let out = fetch(
        &[
            "--crawl",
            "--depth",
            "2",
            "--json",
            "--save",
            save.to_str().unwrap(),
            &home,
        ],
        b"",
    );
    let small = fetch(
        &["--crawl", "--frontier", "5", "-j", "1", "--json", &home],
        b"",
    );
    let _ = nginx.kill();
    let _ = nginx.wait();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let recs = records(&out);
    let summary = recs.last().unwrap().clone();
    let pages: Vec<&Value> = recs.iter().filter(|r| r.get("input").is_some()).collect();
    // Home at depth 0, p1..p30 at depth 1, p31 (a 404) at depth 2; not /secret/, not elsewhere.
    let mut urls: Vec<String> = pages
        .iter()
        .map(|r| r["url"].as_str().unwrap().to_string())
        .collect();
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), pages.len(), "a page was fetched twice");
    assert_eq!(pages.len(), 32, "{urls:?}");
    assert!(urls
        .iter()
        .all(|u| !u.contains("secret") && !u.contains("elsewhere")));
    let p7 = pages
        .iter()
        .find(|r| r["url"].as_str().unwrap().ends_with("/p7.html"))
        .unwrap();
    assert_eq!(p7["title"], "P7");
    assert_eq!(p7["depth"], 1);
    assert_eq!(p7["parent"], home);
    let saved = std::fs::read_to_string(p7["saved"].as_str().unwrap()).unwrap();
    assert!(saved.contains("<title>P7</title>"));
    assert!(summary["crawl"]["out_of_scope"].as_u64().unwrap() >= 30);

    assert_eq!(small.status.code(), Some(0), "{}", text(&small.stderr));
    let recs = records(&small);
    let summary = recs.last().unwrap();
    assert!(
        summary["crawl"]["frontier_overflow"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert!(recs.len() - 1 < 32, "the bounded frontier dropped links");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nginx_path() -> Option<&'static Path> {
    let p = Path::new("/usr/sbin/nginx");
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("BRIGADE_REQUIRE_SERVICES").is_some() {
        panic!("nginx is not installed at /usr/sbin/nginx, and BRIGADE_REQUIRE_SERVICES is set");
    }
    eprintln!("skipping: nginx is not installed at /usr/sbin/nginx");
    None
}
