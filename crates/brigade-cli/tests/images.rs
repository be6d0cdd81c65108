//! End-to-end tests of `brigade images`: they run the binary on generated images
//! and check the outputs by decoding them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageFormat, Rgb, RgbImage, RgbaImage};
use serde_json::Value;

mod common;

use common::*;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A smooth gradient, so that lossy formats stay close to it.
fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 128])
    })
}

fn save(img: &RgbImage, path: &Path, format: ImageFormat) {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    let mut bytes = Vec::new();
    let (w, h) = img.dimensions();
    match format {
        ImageFormat::Jpeg => JpegEncoder::new_with_quality(&mut bytes, 90)
            .write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8)
            .unwrap(),
        ImageFormat::Png => PngEncoder::new(&mut bytes)
            .write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8)
            .unwrap(),
        ImageFormat::WebP => WebPEncoder::new_lossless(&mut bytes)
            .write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8)
            .unwrap(),
        _ => unreachable!(),
    }
    fs::write(path, bytes).unwrap();
}

/// A JPEG with an EXIF APP1 segment holding only the orientation tag.
fn save_jpeg_with_orientation(img: &RgbImage, path: &Path, orientation: u16) {
    let mut jpeg = Vec::new();
    let (w, h) = img.dimensions();
    JpegEncoder::new_with_quality(&mut jpeg, 95)
        .write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8)
        .unwrap();
    // TIFF header (big endian), one IFD with one entry: 0x0112 SHORT 1 = orientation.
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&(app1.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    fs::write(path, out).unwrap();
}

fn open(path: &Path) -> (ImageFormat, image::DynamicImage) {
    let r = image::ImageReader::open(path)
        .unwrap()
        .with_guessed_format()
        .unwrap();
    let f = r.format().unwrap();
    (f, r.decode().unwrap())
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return v;
    };
    for e in rd {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            v.extend(files_under(&e.path()));
        } else {
            v.push(e.path());
        }
    }
    v.sort();
    v
}

#[test]
fn converts_a_tree_keeping_layout_sizes_and_aspect_and_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let out = dir.path().join("out");
    save(
        &gradient(1200, 800),
        &input.join("wide.jpg"),
        ImageFormat::Jpeg,
    );
    save(
        &gradient(300, 900),
        &input.join("a/tall.png"),
        ImageFormat::Png,
    );
    save(
        &gradient(200, 100),
        &input.join("a/b/small.webp"),
        ImageFormat::WebP,
    );
    // A truncated JPEG and a text file named .jpg.
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 90)
        .write_image(
            gradient(400, 300).as_raw(),
            400,
            300,
            ExtendedColorType::Rgb8,
        )
        .unwrap();
    fs::write(input.join("a/truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    fs::write(input.join("a/b/notes.jpg"), "just some text\n").unwrap();
    fs::write(input.join("README.txt"), "not an image, not picked up\n").unwrap();

    let o = brigade(&["images", p(&input), "--out", p(&out), "--json", "-j", "2"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let j = json_tail(&o);
    assert_eq!(j["images"]["images_in"], 3, "{j}");
    assert_eq!(j["images"]["images_out"], 3, "{j}");
    assert_eq!(j["images"]["failed"], 2, "{j}");
    assert!(j["images"]["bytes_in"].as_u64().unwrap() > 0);
    assert!(j["images"]["bytes_out"].as_u64().unwrap() > 0);
    assert!(j["peak_rss_bytes"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(j["slowest"].as_array().unwrap().len(), 3, "{j}");
    assert_eq!(j["summary"]["succeeded"], 3);
    assert_eq!(j["summary"]["failed"], 2);
    let failures = j["failures"].as_array().unwrap();
    let bad: Vec<&str> = failures
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(bad.iter().any(|b| b.ends_with("a/truncated.jpg")), "{j}");
    assert!(bad.iter().any(|b| b.ends_with("a/b/notes.jpg")), "{j}");

    let made = files_under(&out);
    let rel: Vec<String> = made
        .iter()
        .map(|f| f.strip_prefix(&out).unwrap().display().to_string())
        .collect();
    assert_eq!(rel, ["a/b/small.jpg", "a/tall.jpg", "wide.jpg"], "{rel:?}");
    for (name, want) in [
        ("wide.jpg", (800, 533)),      // fit within 800x600
        ("a/tall.jpg", (200, 600)),    // aspect 1:3 kept
        ("a/b/small.jpg", (200, 100)), // never enlarged
    ] {
        let (f, img) = open(&out.join(name));
        assert_eq!(f, ImageFormat::Jpeg, "{name}");
        assert_eq!((img.width(), img.height()), want, "{name}");
    }

    // Without --json the bad files are reported on stderr with their path.
    let out2 = dir.path().join("out2");
    let o = brigade(&["images", p(&input), "--out", p(&out2)]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("truncated.jpg: truncated JPEG"), "{err}");
    assert!(
        err.contains("notes.jpg: not a JPEG, PNG or WebP image"),
        "{err}"
    );
    assert!(err.contains("3 in"), "{err}");
}

#[test]
fn formats_fill_upscale_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("pic.png");
    save(&gradient(300, 200), &src, ImageFormat::Png);
    for (format, want) in [("png", ImageFormat::Png), ("webp", ImageFormat::WebP)] {
        let out = dir.path().join(format);
        let o = brigade(&[
            "images",
            p(&src),
            "--out",
            p(&out),
            "--format",
            format,
            "--fill",
            "100x100",
            "--filter",
            "catmull-rom",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let (f, img) = open(&out.join(format!("pic.{format}")));
        assert_eq!(f, want);
        assert_eq!((img.width(), img.height()), (100, 100));
        // Centre crop of a horizontal gradient: red spans about the middle two thirds.
        let rgb = img.to_rgb8();
        let left = rgb.get_pixel(0, 50)[0];
        let right = rgb.get_pixel(99, 50)[0];
        assert!(
            (35..=55).contains(&left) && (195..=220).contains(&right),
            "{left} {right}"
        );
    }
    let out = dir.path().join("up");
    let o = brigade(&[
        "images",
        p(&src),
        "--out",
        p(&out),
        "--upscale",
        "--max",
        "600x600",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (_, img) = open(&out.join("pic.jpg"));
    assert_eq!((img.width(), img.height()), (600, 400));

    let o = brigade(&["images", p(&src), "--out", p(&out), "--max", "800"]);
    assert_eq!(o.status.code(), Some(2));
    let o = brigade(&["images", p(&src), "--out", p(&out), "--quality", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn exif_orientation_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    // Left half red, right half blue; orientation 6 means "rotate 90° clockwise
    // to display", which puts the left half on top.
    let img = RgbImage::from_fn(200, 100, |x, _| {
        if x < 100 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let src = dir.path().join("rot.jpg");
    save_jpeg_with_orientation(&img, &src, 6);
    let out = dir.path().join("out");
    let o = brigade(&["images", p(&src), "--out", p(&out), "--format", "png"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (_, res) = open(&out.join("rot.png"));
    assert_eq!((res.width(), res.height()), (100, 200));
    let rgb = res.to_rgb8();
    let top = rgb.get_pixel(50, 20);
    let bottom = rgb.get_pixel(50, 180);
    assert!(top[0] > 200 && top[2] < 60, "top {top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "bottom {bottom:?}");

    // With --fill the size is planned upright too.
    let out = dir.path().join("fill");
    let o = brigade(&["images", p(&src), "--out", p(&out), "--fill", "50x80"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (_, res) = open(&out.join("rot.jpg"));
    assert_eq!((res.width(), res.height()), (50, 80));
}

/// The bounding box of the pixels that differ between two images of the same size.
fn diff_box(a: &RgbImage, b: &RgbImage) -> Option<(u32, u32, u32, u32)> {
    let mut bb: Option<(u32, u32, u32, u32)> = None;
    for (x, y, pa) in a.enumerate_pixels() {
        let pb = b.get_pixel(x, y);
        let d = (0..3).any(|c| pa[c].abs_diff(pb[c]) > 8);
        if d {
            bb = Some(match bb {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
    }
    bb
}

#[test]
fn watermarks_are_drawn_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("grey.png");
    save(
        &RgbImage::from_pixel(400, 300, Rgb([100, 100, 100])),
        &src,
        ImageFormat::Png,
    );
    let run = |name: &str, extra: &[&str]| -> RgbImage {
        let out = dir.path().join(name);
        let mut args = vec!["images", p(&src), "--out", p(&out), "--format", "png"];
        args.extend_from_slice(extra);
        let o = brigade(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        open(&out.join("grey.png")).1.to_rgb8()
    };
    let plain = run("plain", &[]);
    let br = run("br", &["--watermark", "Brigade"]);
    let tl = run(
        "tl",
        &[
            "--watermark",
            "Brigade",
            "--watermark-position",
            "top-left",
            "--watermark-size",
            "40px",
            "--watermark-opacity",
            "1",
        ],
    );
    let (x0, y0, x1, y1) = diff_box(&plain, &br).expect("watermark drawn");
    assert!(
        x0 > 200 && y0 > 150 && x1 < 400 && y1 < 300,
        "bottom-right: {x0},{y0}-{x1},{y1}"
    );
    let (x0, y0, x1, y1) = diff_box(&plain, &tl).expect("watermark drawn");
    assert!(
        x0 < 40 && y0 < 40 && x1 < 250 && y1 < 100,
        "top-left: {x0},{y0}-{x1},{y1}"
    );
    assert!(y1 - y0 > 25, "40px text is tall: {y0}-{y1}");
    // Opacity 1 text is white somewhere.
    assert!(tl.pixels().any(|p| p[0] > 240));

    // An image watermark, centred.
    let logo = dir.path().join("logo.png");
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(
            RgbaImage::from_pixel(50, 50, image::Rgba([255, 0, 0, 255])).as_raw(),
            50,
            50,
            ExtendedColorType::Rgba8,
        )
        .unwrap();
    fs::write(&logo, bytes).unwrap();
    let centred = run(
        "logo",
        &[
            "--watermark-image",
            p(&logo),
            "--watermark-position",
            "center",
            "--watermark-size",
            "100px",
            "--watermark-opacity",
            "0.5",
        ],
    );
    let (x0, y0, x1, y1) = diff_box(&plain, &centred).expect("logo drawn");
    assert_eq!((x0, y0, x1, y1), (150, 100, 249, 199));
    let mid = centred.get_pixel(200, 150);
    assert!(
        (170..=185).contains(&mid[0]) && (45..=55).contains(&mid[1]),
        "{mid:?}"
    );
}

#[test]
fn rerun_skips_up_to_date_outputs_and_force_redoes_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let out = dir.path().join("out");
    save(&gradient(100, 80), &input.join("one.png"), ImageFormat::Png);
    save(&gradient(90, 60), &input.join("two.jpg"), ImageFormat::Jpeg);
    let run = |extra: &[&str]| -> Value {
        let mut args = vec!["images", p(&input), "--out", p(&out), "--json"];
        args.extend_from_slice(extra);
        let o = brigade(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        json_tail(&o)
    };
    let j = run(&[]);
    assert_eq!(j["images"]["images_out"], 2, "{j}");
    let before = fs::metadata(out.join("one.jpg"))
        .unwrap()
        .modified()
        .unwrap();
    let j = run(&[]);
    assert_eq!(j["images"]["images_out"], 0, "{j}");
    assert_eq!(j["images"]["up_to_date"], 2, "{j}");
    assert_eq!(
        fs::metadata(out.join("one.jpg"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    let j = run(&["--force"]);
    assert_eq!(j["images"]["images_out"], 2, "{j}");
    assert_eq!(j["images"]["up_to_date"], 0, "{j}");
    // A newer input is redone.
    std::thread::sleep(Duration::from_millis(20));
    save(&gradient(100, 80), &input.join("one.png"), ImageFormat::Png);
    let j = run(&[]);
    assert_eq!(j["images"]["images_out"], 1, "{j}");
    assert_eq!(j["images"]["up_to_date"], 1, "{j}");
}

#[test]
fn an_interrupted_run_leaves_only_whole_images_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let out = dir.path().join("out");
    let first = input.join("img000.jpg");
    save(&gradient(1600, 1200), &first, ImageFormat::Jpeg);
    let n = 60;
    for i in 1..n {
        fs::copy(&first, input.join(format!("img{i:03}.jpg"))).unwrap();
    }
    let child = Command::new(bin())
        .args(["images", p(&input), "--out", p(&out), "-j", "2", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first output is in place (or something is being written).
    let until = Instant::now() + Duration::from_secs(60);
    while files_under(&out).is_empty() {
        assert!(Instant::now() < until, "no output appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = wait_or_fail(child, 60);
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    let j = json_tail(&o);
    assert_eq!(j["summary"]["interrupted"], true);
    let made = files_under(&out);
    assert!(made.len() < n, "the run was not cut short: {}", made.len());
    for f in &made {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.') && !name.ends_with(".tmp"),
            "left behind: {name}"
        );
        let (_, img) = open(f);
        assert_eq!((img.width(), img.height()), (800, 600), "{name}");
    }
    assert_eq!(
        j["images"]["images_out"].as_u64().unwrap() as usize,
        made.len()
    );
}
