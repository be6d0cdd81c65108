//! `brigade images`: resize, re-encode and watermark images, a few at a time
//! (the seed's use case 1).
//!
//! Each worker keeps its scratch across jobs (the decode buffer, the resizer's
//! buffers, the encode buffer, the rendered watermark), and holds at most one
//! decoded full-size image at a time: the number of workers bounds memory.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use brigade::{Builder, Context, Failure};
use fast_image_resize::images::{Image as FirImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::metadata::Orientation;
use image::{
    ColorType, DynamicImage, ExtendedColorType, ImageBuffer, ImageDecoder, ImageEncoder,
    ImageFormat, ImageReader, RgbaImage,
};
use serde::Serialize;

use crate::interrupt;
use crate::run::{self, exit, Next, RunArgs};
use crate::units::human;

/// DejaVu Sans (Bitstream Vera licence, see assets/DejaVuSans-LICENSE.txt).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// File name extensions picked up when walking a folder.
const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Resize, re-encode and watermark images, several at a time
///
/// Inputs are image files and folders (walked recursively for .jpg, .jpeg,
/// .png and .webp files). Outputs go under --out, keeping each file's path
/// relative to the folder it was found in (a file given directly goes to
/// the top of --out), with the extension of the output format.
///
/// Images are turned upright by their EXIF orientation, then fit within
/// --max (aspect ratio kept, never enlarged unless --upscale), or with
/// --fill scaled and centre-cropped to exactly that size. An output newer
/// than its input is left alone unless --force. Outputs are written to a
/// temporary file and renamed, so an interrupted run never leaves a
/// truncated image. Corrupt or unsupported files are reported by path and
/// skipped; the rest complete.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    brigade images photos/ --out small/\n  \
    brigade images *.png --out thumbs --fill 200x200 --format webp\n  \
    brigade images photos --out web --max 1600x1600 --quality 85 --watermark '(c) 2024 Me'\n  \
    brigade images photos --out web --watermark-image logo.png --watermark-position top-left")]
pub struct Args {
    /// Image files and folders
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// Folder to write the outputs to (created if missing)
    #[arg(short, long, value_name = "DIR", required = true)]
    out: PathBuf,
    /// Fit within this size, keeping the aspect ratio
    #[arg(long, value_name = "WxH", default_value = "800x600", value_parser = parse_dims)]
    max: (u32, u32),
    /// Scale and centre-crop to exactly this size instead of fitting within --max
    #[arg(long, value_name = "WxH", value_parser = parse_dims)]
    fill: Option<(u32, u32)>,
    /// Enlarge images smaller than --max (by default they keep their size)
    #[arg(long)]
    upscale: bool,
    /// Resampling filter
    #[arg(long, value_enum, default_value = "lanczos3")]
    filter: Filter,
    /// Output format (WebP is written lossless)
    #[arg(long, value_enum, default_value = "jpeg")]
    format: Format,
    /// JPEG quality, 1 to 100
    #[arg(long, value_name = "Q", default_value_t = 80,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
    /// Draw this text on every output (white, with a dark shadow)
    #[arg(long, value_name = "TEXT")]
    watermark: Option<String>,
    /// Overlay this image (PNG with transparency works best) on every output
    #[arg(long, value_name = "FILE", conflicts_with = "watermark")]
    watermark_image: Option<PathBuf>,
    /// Where the watermark goes
    #[arg(long, value_enum, value_name = "POS", default_value = "bottom-right")]
    watermark_position: Position,
    /// Watermark size: N% of the output (text: of its height, default 5%;
    /// image: of its width, default 25%), or N px
    #[arg(long, value_name = "SIZE", value_parser = parse_wm_size)]
    watermark_size: Option<WmSize>,
    /// Watermark opacity, 0 to 1
    #[arg(long, value_name = "A", default_value_t = 0.5, value_parser = parse_opacity)]
    watermark_opacity: f32,
    /// Redo outputs that are newer than their inputs
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    Nearest,
    Box,
    Bilinear,
    Hamming,
    CatmullRom,
    Mitchell,
    Gaussian,
    Lanczos3,
}

impl Filter {
    fn alg(self) -> ResizeAlg {
        let f = match self {
            Filter::Nearest => return ResizeAlg::Nearest,
            Filter::Box => FilterType::Box,
            Filter::Bilinear => FilterType::Bilinear,
            Filter::Hamming => FilterType::Hamming,
            Filter::CatmullRom => FilterType::CatmullRom,
            Filter::Mitchell => FilterType::Mitchell,
            Filter::Gaussian => FilterType::Gaussian,
            Filter::Lanczos3 => FilterType::Lanczos3,
        };
        ResizeAlg::Convolution(f)
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jpeg,
    Png,
    Webp,
}

impl Format {
    fn ext(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
        }
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    TopLeft,
    Top,
    TopRight,
    Left,
    Center,
    Right,
    BottomLeft,
    Bottom,
    BottomRight,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum WmSize {
    Percent(f32),
    Px(u32),
}

fn parse_dims(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("'{text}' is not a size like 800x600");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if w == 0 || h == 0 {
        return Err(format!("'{text}': width and height must be at least 1"));
    }
    Ok((w, h))
}

fn parse_wm_size(text: &str) -> Result<WmSize, String> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        match p.trim().parse::<f32>() {
            Ok(v) if v > 0.0 && v <= 100.0 => Ok(WmSize::Percent(v)),
            _ => Err(format!("'{text}' is not a percentage between 0 and 100")),
        }
    } else {
        match t.strip_suffix("px").unwrap_or(t).trim().parse::<u32>() {
            Ok(v) if v > 0 => Ok(WmSize::Px(v)),
            _ => Err(format!("'{text}' is not a size like 5% or 24px")),
        }
    }
}

fn parse_opacity(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{text}' is not an opacity between 0 and 1")),
    }
}

/// What to do to every image; shared by the workers.
struct Plan {
    max: (u32, u32),
    fill: Option<(u32, u32)>,
    upscale: bool,
    alg: ResizeAlg,
    format: Format,
    quality: u8,
    mark: Option<Mark>,
    position: Position,
    size: Option<WmSize>,
    opacity: f32,
    force: bool,
}

enum Mark {
    Text(String),
    Image(RgbaImage),
}

/// A worker's scratch, kept across jobs.
struct Scratch {
    /// The input file's bytes.
    file: Vec<u8>,
    /// The decoded source image (the one full-size image a worker holds).
    src: Vec<u8>,
    resizer: Resizer,
    /// The encoded output.
    encoded: Vec<u8>,
    /// The last rendered watermark: its size in pixels and its coverage.
    mark: Option<(u32, Overlay)>,
    font: FontRef<'static>,
    worker: usize,
}

/// A watermark ready to blend: per pixel an RGB colour and an alpha.
struct Overlay {
    w: u32,
    h: u32,
    /// RGBA, straight alpha.
    px: Vec<[u8; 4]>,
}

struct Job {
    src: PathBuf,
    dst: PathBuf,
    /// Found wrong before any work: a walk error or a clashing output.
    error: Option<String>,
}

/// What a job did.
#[derive(Debug)]
enum Done {
    Written {
        width: u32,
        height: u32,
        bytes_in: u64,
        bytes_out: u64,
    },
    UpToDate,
}

/// Temporary files being written now, removed on a hard stop (Ctrl-C twice).
static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn in_flight() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner())
}

fn up_to_date(src: &Path, dst: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified());
    match (modified(src), modified(dst)) {
        (Ok(s), Ok(d)) => d >= s,
        _ => false,
    }
}

fn process(plan: &Plan, st: &mut Scratch, job: &Job) -> Result<Done, String> {
    if let Some(e) = &job.error {
        return Err(e.clone());
    }
    if !plan.force && up_to_date(&job.src, &job.dst) {
        return Ok(Done::UpToDate);
    }
    st.file.clear();
    File::open(&job.src)
        .and_then(|mut f| f.read_to_end(&mut st.file))
        .map_err(|e| format!("cannot read: {e}"))?;
    let bytes_in = st.file.len() as u64;
    let (w, h, pt, orientation) = decode(&st.file, &mut st.src)?;
    let img = resize(plan, st, w, h, pt, orientation)?;
    let (width, height) = (img.width(), img.height());
    let (mut bytes, color) = match (plan.format, img.color().has_alpha()) {
        (Format::Jpeg, true) => (on_white(img.into_rgba8()), ExtendedColorType::Rgb8),
        (_, true) => (img.into_rgba8().into_raw(), ExtendedColorType::Rgba8),
        (_, false) => (img.into_rgb8().into_raw(), ExtendedColorType::Rgb8),
    };
    if plan.mark.is_some() {
        let channels = if color == ExtendedColorType::Rgba8 {
            4
        } else {
            3
        };
        watermark(plan, st, &mut bytes, width, height, channels);
    }
    st.encoded.clear();
    let encoded = match plan.format {
        Format::Jpeg => JpegEncoder::new_with_quality(&mut st.encoded, plan.quality)
            .write_image(&bytes, width, height, color),
        Format::Png => PngEncoder::new(&mut st.encoded).write_image(&bytes, width, height, color),
        Format::Webp => {
            WebPEncoder::new_lossless(&mut st.encoded).write_image(&bytes, width, height, color)
        }
    };
    drop(bytes);
    encoded.map_err(|e| format!("cannot encode: {e}"))?;
    write_atomically(&job.dst, &st.encoded, st.worker)
        .map_err(|e| format!("cannot write {}: {e}", job.dst.display()))?;
    Ok(Done::Written {
        width,
        height,
        bytes_in,
        bytes_out: st.encoded.len() as u64,
    })
}

/// Decodes the file's bytes `file` into `buf` (both reused across jobs);
/// returns the size, the pixel type and the EXIF orientation.
fn decode(file: &[u8], buf: &mut Vec<u8>) -> Result<(u32, u32, PixelType, Orientation), String> {
    let reader = ImageReader::new(Cursor::new(file))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    match reader.format() {
        None => return Err("not a JPEG, PNG or WebP image".into()),
        Some(ImageFormat::Jpeg) if !jpeg_complete(file) => {
            return Err("truncated JPEG (no end-of-image marker after the image data)".into())
        }
        Some(_) => {}
    }
    let mut dec = reader.into_decoder().map_err(|e| e.to_string())?;
    let orientation = dec.orientation().unwrap_or(Orientation::NoTransforms);
    let (w, h) = dec.dimensions();
    let ct = dec.color_type();
    let pt = match ct {
        ColorType::L8 => PixelType::U8,
        ColorType::La8 => PixelType::U8x2,
        ColorType::Rgb8 => PixelType::U8x3,
        ColorType::Rgba8 => PixelType::U8x4,
        _ => {
            // 16-bit or float: convert to 8 bits per channel.
            let img = DynamicImage::from_decoder(dec).map_err(|e| e.to_string())?;
            return Ok(if ct.has_alpha() {
                *buf = img.into_rgba8().into_raw();
                (w, h, PixelType::U8x4, orientation)
            } else {
                *buf = img.into_rgb8().into_raw();
                (w, h, PixelType::U8x3, orientation)
            });
        }
    };
    let n = usize::try_from(dec.total_bytes()).map_err(|_| "image too large".to_string())?;
    if buf.len() < n {
        buf.resize(n, 0);
    }
    dec.read_image(&mut buf[..n]).map_err(|e| e.to_string())?;
    Ok((w, h, pt, orientation))
}

/// Whether a JPEG has its end-of-image marker after its last scan. The JPEG
/// decoder fills a truncated image with grey and carries on; this catches it.
/// Inside entropy-coded data 0xFF is always followed by 0x00 or a restart
/// marker, so the first EOI after the last start-of-scan is the real one (an
/// EXIF thumbnail's markers come before the main image's).
fn jpeg_complete(file: &[u8]) -> bool {
    let last_sos = file.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        None => false,
        Some(i) => file[i..].windows(2).any(|w| w == [0xFF, 0xD9]),
    }
}

/// Whether an orientation swaps width and height.
fn swaps(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// The output size and the centred source crop (left, top, width, height),
/// both in upright coordinates.
/// A source crop: left, top, width, height.
type Crop = (f64, f64, f64, f64);

fn geometry(plan: &Plan, w: u32, h: u32) -> ((u32, u32), Option<Crop>) {
    let (fw, fh) = (f64::from(w), f64::from(h));
    if let Some((tw, th)) = plan.fill {
        let scale = (f64::from(tw) / fw).max(f64::from(th) / fh);
        let (cw, ch) = (f64::from(tw) / scale, f64::from(th) / scale);
        return ((tw, th), Some(((fw - cw) / 2.0, (fh - ch) / 2.0, cw, ch)));
    }
    let (mw, mh) = plan.max;
    let mut scale = (f64::from(mw) / fw).min(f64::from(mh) / fh);
    if !plan.upscale {
        scale = scale.min(1.0);
    }
    let side = |v: f64| ((v * scale).round() as u32).max(1);
    ((side(fw), side(fh)), None)
}

/// Resizes the decoded image, then turns it upright. Resizing first and
/// rotating the small result is the same as rotating first (sizes and the
/// centred crop are planned in upright coordinates) and much cheaper.
fn resize(
    plan: &Plan,
    st: &mut Scratch,
    w: u32,
    h: u32,
    pt: PixelType,
    orientation: Orientation,
) -> Result<DynamicImage, String> {
    let swap = swaps(orientation);
    let (uw, uh) = if swap { (h, w) } else { (w, h) };
    let ((tw, th), crop) = geometry(plan, uw, uh);
    let (tw, th, crop) = if swap {
        (th, tw, crop.map(|(l, t, cw, ch)| (t, l, ch, cw)))
    } else {
        (tw, th, crop)
    };
    let n = w as usize * h as usize * pt.size();
    let src = ImageRef::new(w, h, &st.src[..n], pt).map_err(|e| e.to_string())?;
    let mut dst = FirImage::new(tw, th, pt);
    let mut opts = ResizeOptions::new().resize_alg(plan.alg);
    if let Some((l, t, cw, ch)) = crop {
        opts = opts.crop(l, t, cw, ch);
    }
    st.resizer
        .resize(&src, &mut dst, &opts)
        .map_err(|e| format!("cannot resize: {e}"))?;
    let raw = dst.into_vec();
    let bad = || "internal error: resized buffer has the wrong size".to_string();
    let mut img = match pt {
        PixelType::U8 => {
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(tw, th, raw).ok_or_else(bad)?)
        }
        PixelType::U8x2 => {
            DynamicImage::ImageLumaA8(ImageBuffer::from_raw(tw, th, raw).ok_or_else(bad)?)
        }
        PixelType::U8x3 => {
            DynamicImage::ImageRgb8(ImageBuffer::from_raw(tw, th, raw).ok_or_else(bad)?)
        }
        _ => DynamicImage::ImageRgba8(ImageBuffer::from_raw(tw, th, raw).ok_or_else(bad)?),
    };
    img.apply_orientation(orientation);
    Ok(img)
}

/// Flattens transparency onto white, for JPEG.
fn on_white(img: RgbaImage) -> Vec<u8> {
    let mut out = Vec::with_capacity(img.width() as usize * img.height() as usize * 3);
    for p in img.pixels() {
        let a = u32::from(p[3]);
        for c in 0..3 {
            out.push(((u32::from(p[c]) * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    out
}

/// The watermark's size in pixels for an output of `w` x `h`.
fn mark_size(plan: &Plan, w: u32, h: u32) -> u32 {
    let text = matches!(plan.mark, Some(Mark::Text(_)));
    let size = plan
        .size
        .unwrap_or(WmSize::Percent(if text { 5.0 } else { 25.0 }));
    match size {
        WmSize::Px(px) => px,
        WmSize::Percent(p) => {
            let base = if text { h } else { w };
            ((f64::from(base) * f64::from(p) / 100.0).round() as u32).max(1)
        }
    }
}

/// Renders text as white glyphs over a dark shadow.
fn render_text(font: &FontRef<'_>, text: &str, px: u32) -> Overlay {
    let scale = PxScale::from(px as f32);
    let sf = font.as_scaled(scale);
    let shadow = (px / 16).max(1) as i32;
    let mut glyphs = Vec::new();
    let mut x = 0.0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = sf.glyph_id(c);
        if let Some(p) = prev {
            x += sf.kern(p, id);
        }
        glyphs.push(id.with_scale_and_position(scale, point(x, sf.ascent())));
        x += sf.h_advance(id);
        prev = Some(id);
    }
    let w = (x.ceil() as i32 + shadow + 1).max(1) as u32;
    let h = ((sf.ascent() - sf.descent()).ceil() as i32 + shadow + 1).max(1) as u32;
    let mut fill = vec![0f32; (w * h) as usize];
    let mut dark = vec![0f32; (w * h) as usize];
    for g in glyphs {
        let Some(o) = font.outline_glyph(g) else {
            continue;
        };
        let b = o.px_bounds();
        o.draw(|gx, gy, cov| {
            let x = b.min.x as i32 + gx as i32;
            let y = b.min.y as i32 + gy as i32;
            for (buf, dx) in [(&mut fill, 0), (&mut dark, shadow)] {
                let (x, y) = (x + dx, y + dx);
                if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                    let i = (y as u32 * w + x as u32) as usize;
                    buf[i] = (buf[i] + cov).min(1.0);
                }
            }
        });
    }
    let px = fill
        .iter()
        .zip(&dark)
        .map(|(&f, &d)| {
            // White over black, composited: alpha = f + d(1 - f), colour = white share.
            let a = f + d * (1.0 - f);
            let v = if a > 0.0 { f / a } else { 0.0 };
            let c = (v * 255.0).round() as u8;
            [c, c, c, (a * 255.0).round() as u8]
        })
        .collect();
    Overlay { w, h, px }
}

fn scale_image(img: &RgbaImage, width: u32) -> Overlay {
    let height = ((f64::from(img.height()) * f64::from(width) / f64::from(img.width())).round()
        as u32)
        .max(1);
    let small = if (width, height) == img.dimensions() {
        img.clone()
    } else {
        image::imageops::resize(img, width, height, image::imageops::FilterType::Lanczos3)
    };
    Overlay {
        w: width,
        h: height,
        px: small.pixels().map(|p| p.0).collect(),
    }
}

/// Blends the watermark into `bytes` (RGB or RGBA, `channels` per pixel).
fn watermark(plan: &Plan, st: &mut Scratch, bytes: &mut [u8], w: u32, h: u32, channels: usize) {
    let size = mark_size(plan, w, h);
    if st.mark.as_ref().is_none_or(|(s, _)| *s != size) {
        let overlay = match &plan.mark {
            Some(Mark::Text(t)) => render_text(&st.font, t, size),
            Some(Mark::Image(img)) => scale_image(img, size),
            None => return,
        };
        st.mark = Some((size, overlay));
    }
    let Some((_, ov)) = &st.mark else { return };
    let margin = (w.min(h) / 50).max(2) as i64;
    let (w64, h64, ow, oh) = (i64::from(w), i64::from(h), i64::from(ov.w), i64::from(ov.h));
    use Position as P;
    let x0 = match plan.position {
        P::TopLeft | P::Left | P::BottomLeft => margin,
        P::Top | P::Center | P::Bottom => (w64 - ow) / 2,
        _ => w64 - ow - margin,
    };
    let y0 = match plan.position {
        P::TopLeft | P::Top | P::TopRight => margin,
        P::Left | P::Center | P::Right => (h64 - oh) / 2,
        _ => h64 - oh - margin,
    };
    for oy in 0..oh {
        let y = y0 + oy;
        if y < 0 || y >= h64 {
            continue;
        }
        for ox in 0..ow {
            let x = x0 + ox;
            if x < 0 || x >= w64 {
                continue;
            }
            let m = ov.px[(oy * ow + ox) as usize];
            let a = f32::from(m[3]) / 255.0 * plan.opacity;
            if a <= 0.0 {
                continue;
            }
            let i = (y as usize * w as usize + x as usize) * channels;
            for c in 0..3 {
                let v = f32::from(bytes[i + c]) * (1.0 - a) + f32::from(m[c]) * a;
                bytes[i + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Writes `data` to a temporary file next to `dst`, then renames it over `dst`.
fn write_atomically(dst: &Path, data: &[u8], worker: usize) -> io::Result<()> {
    let dir = dst.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = dst.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(
        ".{name}.brigade-{}-{worker}.tmp",
        std::process::id()
    ));
    in_flight().push(tmp.clone());
    let r = fs::write(&tmp, data).and_then(|()| fs::rename(&tmp, dst));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    in_flight().retain(|p| p != &tmp);
    r
}

fn is_image_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Every input file paired with its output path, lazily.
fn jobs(roots: Vec<PathBuf>, out: PathBuf, format: Format) -> impl Iterator<Item = Job> + Send {
    let out_canon = fs::canonicalize(&out).ok();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut claimed = move |src: PathBuf, rel: &Path| -> Job {
        let dst = out.join(rel).with_extension(format.ext());
        let error = (!seen.insert(dst.clone())).then(|| {
            format!(
                "its output {} is also another input's output; skipped",
                dst.display()
            )
        });
        Job { src, dst, error }
    };
    roots.into_iter().flat_map(move |root| {
        let is_dir = root.is_dir();
        let out_canon = out_canon.clone();
        let walk = walkdir::WalkDir::new(&root)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(move |e| {
                // Never walk into the output folder.
                !(e.file_type().is_dir()
                    && out_canon.is_some()
                    && fs::canonicalize(e.path()).ok() == out_canon)
            });
        let mut list = Vec::new();
        for entry in walk {
            match entry {
                Ok(e) if e.file_type().is_file() => {
                    let p = e.into_path();
                    if is_dir && !is_image_name(&p) {
                        continue;
                    }
                    let rel = if is_dir {
                        p.strip_prefix(&root).unwrap_or(&p).to_path_buf()
                    } else {
                        PathBuf::from(p.file_name().unwrap_or_default())
                    };
                    list.push(claimed(p, &rel));
                }
                Ok(_) => {}
                Err(e) => {
                    let path = e.path().map(Path::to_path_buf).unwrap_or_default();
                    let why = e
                        .io_error()
                        .map_or_else(|| e.to_string(), |io| io.to_string());
                    list.push(Job {
                        src: path,
                        dst: PathBuf::new(),
                        error: Some(why),
                    });
                }
            }
        }
        list
    })
}

/// Peak resident memory of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[derive(Serialize, Default)]
struct Images {
    /// Images read and converted.
    images_in: u64,
    /// Images written.
    images_out: u64,
    /// Outputs already newer than their inputs, left alone.
    up_to_date: u64,
    /// Inputs that could not be converted.
    failed: u64,
    bytes_in: u64,
    bytes_out: u64,
}

#[derive(Serialize, Clone)]
struct Slow {
    path: String,
    ms: f64,
    width: u32,
    height: u32,
}

#[derive(Serialize)]
struct Bad {
    path: String,
    reason: String,
}

#[derive(Serialize)]
struct Report<'a> {
    images: &'a Images,
    slowest: &'a [Slow],
    failures: &'a [Bad],
    peak_rss_bytes: u64,
    summary: &'a run::Summary,
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

pub fn main(args: Args) -> i32 {
    let started = Instant::now();
    let mark = match (&args.watermark, &args.watermark_image) {
        (Some(t), _) => Some(Mark::Text(t.clone())),
        (None, Some(p)) => match image::open(p) {
            Ok(img) => Some(Mark::Image(img.into_rgba8())),
            Err(e) => {
                eprintln!(
                    "brigade images: cannot read the watermark image {}: {e}",
                    p.display()
                );
                return exit::USAGE;
            }
        },
        (None, None) => None,
    };
    if let Err(e) = FontRef::try_from_slice(FONT) {
        eprintln!("brigade images: the bundled font is broken: {e}");
        return exit::USAGE;
    }
    if let Err(e) = fs::create_dir_all(&args.out) {
        eprintln!(
            "brigade images: cannot create the output folder {}: {e}",
            args.out.display()
        );
        return exit::USAGE;
    }
    let mut bad_input = false;
    let mut roots = Vec::new();
    for p in &args.inputs {
        match fs::metadata(p) {
            Ok(_) => roots.push(p.clone()),
            Err(e) => {
                eprintln!("brigade images: {}: {e}", p.display());
                bad_input = true;
            }
        }
    }
    let plan = Arc::new(Plan {
        max: args.max,
        fill: args.fill,
        upscale: args.upscale,
        alg: args.filter.alg(),
        format: args.format,
        quality: args.quality,
        mark,
        position: args.watermark_position,
        size: args.watermark_size,
        opacity: args.watermark_opacity,
        force: args.force,
    });
    interrupt::on_hard_stop(|| {
        for p in in_flight().iter() {
            let _ = fs::remove_file(p);
        }
    });
    let p = plan.clone();
    let results = args
        .run
        .apply(Builder::new(), run::cores())
        .state(|worker| {
            Ok::<_, String>(Scratch {
                file: Vec::new(),
                src: Vec::new(),
                resizer: Resizer::new(),
                encoded: Vec::new(),
                mark: None,
                font: FontRef::try_from_slice(FONT).map_err(|e| e.to_string())?,
                worker,
            })
        })
        .run(
            jobs(roots, args.out.clone(), args.format),
            move |st: &mut Scratch, job: &Job, _ctx: &Context<Job>| process(&p, st, job),
        );

    let json = args.run.json;
    let mut images = Images::default();
    let mut failures = Vec::new();
    let mut slowest: Vec<Slow> = Vec::new();
    let summary = run::drive(&args.run, results, None, started, |o| {
        let path = o.job.src.display().to_string();
        let why = match &o.result {
            Ok(Done::Written {
                width,
                height,
                bytes_in,
                bytes_out,
            }) => {
                images.images_in += 1;
                images.images_out += 1;
                images.bytes_in += bytes_in;
                images.bytes_out += bytes_out;
                slowest.push(Slow {
                    path,
                    ms: (o.run_time.as_secs_f64() * 1e6).round() / 1e3,
                    width: *width,
                    height: *height,
                });
                slowest.sort_by(|a, b| b.ms.total_cmp(&a.ms));
                slowest.truncate(5);
                return Next::Continue;
            }
            Ok(Done::UpToDate) => {
                images.up_to_date += 1;
                return Next::Continue;
            }
            Err(Failure::Cancelled) => return Next::Continue,
            Err(Failure::Error(e)) => e.clone(),
            Err(other) => other.to_string(),
        };
        images.failed += 1;
        if !json {
            eprintln!("brigade images: {path}: {why}");
        }
        failures.push(Bad { path, reason: why });
        Next::Continue
    });
    let mut summary = summary;
    if bad_input && !summary.interrupted {
        summary.exit_code = exit::USAGE;
    }
    let rss = peak_rss();
    if json {
        let report = Report {
            images: &images,
            slowest: &slowest,
            failures: &failures,
            peak_rss_bytes: rss,
            summary: &summary,
        };
        let line = serde_json::to_string(&report).expect("a report serialises");
        if let Next::StopQuietly = run::on_write(writeln!(io::stdout(), "{line}")) {
            return summary.exit_code;
        }
    } else if !args.run.quiet {
        let mut s = format!(
            "brigade images: {} in ({}) -> {} out ({}), {} up to date, {} failed; peak memory {}",
            images.images_in,
            mb(images.bytes_in),
            images.images_out,
            mb(images.bytes_out),
            images.up_to_date,
            images.failed,
            mb(rss),
        );
        if !slowest.is_empty() {
            let list: Vec<String> = slowest
                .iter()
                .take(3)
                .map(|s| {
                    format!(
                        "{} ({})",
                        s.path,
                        human(Duration::from_secs_f64(s.ms / 1e3))
                    )
                })
                .collect();
            s.push_str(&format!("\n         slowest: {}", list.join(", ")));
        }
        eprintln!("{s}");
        summary.print(&args.run);
    }
    summary.exit_code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(max: (u32, u32), fill: Option<(u32, u32)>, upscale: bool) -> Plan {
        Plan {
            max,
            fill,
            upscale,
            alg: Filter::Lanczos3.alg(),
            format: Format::Jpeg,
            quality: 80,
            mark: None,
            position: Position::BottomRight,
            size: None,
            opacity: 0.5,
            force: false,
        }
    }

    #[test]
    fn fit_keeps_the_aspect_ratio_and_never_enlarges_by_default() {
        let p = plan((800, 600), None, false);
        assert_eq!(geometry(&p, 3000, 2000).0, (800, 533));
        assert_eq!(geometry(&p, 2000, 3000).0, (400, 600));
        assert_eq!(geometry(&p, 300, 200).0, (300, 200));
        let up = plan((800, 600), None, true);
        assert_eq!(geometry(&up, 300, 200).0, (800, 533));
    }

    #[test]
    fn fill_crops_to_exactly_the_size() {
        let p = plan((800, 600), Some((100, 100)), false);
        let ((w, h), crop) = geometry(&p, 300, 200);
        assert_eq!((w, h), (100, 100));
        assert_eq!(crop, Some((50.0, 0.0, 200.0, 200.0)));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_dims("800x600"), Ok((800, 600)));
        assert!(parse_dims("0x600").is_err());
        assert!(parse_dims("800").is_err());
        assert_eq!(parse_wm_size("5%"), Ok(WmSize::Percent(5.0)));
        assert_eq!(parse_wm_size("24px"), Ok(WmSize::Px(24)));
        assert_eq!(parse_wm_size("24"), Ok(WmSize::Px(24)));
        assert!(parse_wm_size("0%").is_err());
        assert!(parse_opacity("1.5").is_err());
    }

    #[test]
    fn text_renders_something() {
        let font = FontRef::try_from_slice(FONT).unwrap();
        let o = render_text(&font, "Brigade", 32);
        assert!(o.w > 60 && o.h >= 32, "{}x{}", o.w, o.h);
        assert!(o.px.iter().any(|p| p[3] > 200 && p[0] > 200));
    }
}
