//! Pre-processing parity with the Python training transform (Pillow) and prompt loading.
//!
//! The fixtures in `tests/data/preprocess/` come from `tests/data/make_preprocess_fixtures.py`.

use std::fs;
use std::path::{Path, PathBuf};

use onenip::preprocess::{
    FrameRef, PixelLayout, Plane, PreprocessError, Preprocessor, Roi, IMAGENET_MEAN, IMAGENET_STD,
};
use onenip::prompt_image::{load_prompt, PromptError, DEFAULT_MAX_PROMPT_PIXELS};

/// One 8-bit step in the tensor, `1 / 255 / std`.
fn one_step(channel: usize) -> f32 {
    1.0 / 255.0 / IMAGENET_STD[channel] + 1e-6
}

/// Largest difference allowed where the resize is Pillow's: the same bytes, so only float
/// noise (there is none: the normalisation is the NumPy reference's f32 arithmetic).
const EXACT: f32 = 1e-6;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/preprocess")
        .join(name)
}

fn rgb_fixture(name: &str) -> image::RgbImage {
    image::open(data(&format!("{name}.png"))).unwrap().to_rgb8()
}

fn reference(name: &str, size: u32) -> Vec<f32> {
    let bytes = fs::read(data(&format!("{name}_s{size}.f32"))).unwrap();
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(v.len(), 3 * (size * size) as usize);
    v
}

/// How far a tensor is from the reference.
#[derive(Debug)]
struct Diff {
    max: f32,
    mean: f32,
    /// Share of values more than 1e-6 away.
    off: f64,
    /// Whether every value is within one 8-bit step of its channel.
    within_one_step: bool,
}

fn diff(got: &[f32], want: &[f32]) -> Diff {
    assert_eq!(got.len(), want.len());
    let plane = got.len() / 3;
    let (mut max, mut sum, mut off, mut within_one_step) = (0f32, 0f64, 0usize, true);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        assert!(d.is_finite(), "value {i} is {g}, expected {w}");
        max = max.max(d);
        sum += d as f64;
        off += usize::from(d > 1e-6);
        within_one_step &= d <= one_step(i / plane);
    }
    Diff {
        max,
        mean: (sum / got.len() as f64) as f32,
        off: off as f64 / got.len() as f64,
        within_one_step,
    }
}

/// Asserts exact Pillow parity: every value within [`EXACT`] of the reference.
fn assert_pillow_parity(what: &str, got: &[f32], want: &[f32]) {
    let d = diff(got, want);
    println!(
        "{what}: max {:.2e}, mean {:.2e}, {:.2} % off",
        d.max,
        d.mean,
        100.0 * d.off
    );
    assert!(d.max <= EXACT && d.off == 0.0, "{what}: {d:?}");
    assert!(d.within_one_step);
}

fn preprocessor(size: u32) -> Preprocessor {
    Preprocessor::new(size, IMAGENET_MEAN, IMAGENET_STD).unwrap()
}

fn run(size: u32, frame: &FrameRef, roi: Option<Roi>) -> Vec<f32> {
    let mut pre = preprocessor(size);
    let mut out = vec![f32::NAN; pre.output_len()];
    pre.run(frame, roi, &mut out).unwrap();
    out
}

/// Packs `img` in `layout` with rows padded to `width * bpp + 7` bytes. Padding bytes and
/// the fourth byte get junk that must not influence the result.
fn pack(img: &image::RgbImage, layout: PixelLayout) -> (Vec<u8>, usize) {
    let (order, bpp): ([usize; 3], usize) = match layout {
        PixelLayout::Rgb => ([0, 1, 2], 3),
        PixelLayout::Bgr => ([2, 1, 0], 3),
        PixelLayout::Rgba | PixelLayout::Rgbx => ([0, 1, 2], 4),
        PixelLayout::Bgra | PixelLayout::Bgrx => ([2, 1, 0], 4),
        _ => unreachable!(),
    };
    let stride = img.width() as usize * bpp + 7;
    let mut buf = vec![0xa5u8; stride * img.height() as usize];
    for (x, y, p) in img.enumerate_pixels() {
        let at = y as usize * stride + x as usize * bpp;
        for c in 0..3 {
            buf[at + order[c]] = p[c];
        }
        if bpp == 4 {
            buf[at + 3] = (x * 37 + y * 11) as u8;
        }
    }
    (buf, stride)
}

fn packed_frame<'a>(
    img: &image::RgbImage,
    layout: PixelLayout,
    planes: &'a [Plane<'a>],
) -> FrameRef<'a> {
    FrameRef {
        layout,
        width: img.width(),
        height: img.height(),
        planes,
    }
}

const PACKED: [PixelLayout; 6] = [
    PixelLayout::Rgb,
    PixelLayout::Bgr,
    PixelLayout::Rgba,
    PixelLayout::Rgbx,
    PixelLayout::Bgra,
    PixelLayout::Bgrx,
];

#[test]
fn packed_formats_match_pillow() {
    for name in ["rgb_37x23", "rgb_64x48"] {
        let img = rgb_fixture(name);
        for layout in PACKED {
            let (buf, stride) = pack(&img, layout);
            let planes = [Plane { data: &buf, stride }];
            let frame = packed_frame(&img, layout, &planes);
            for size in [16, 32] {
                let got = run(size, &frame, None);
                assert_pillow_parity(
                    &format!("{name} {layout:?} S={size}"),
                    &got,
                    &reference(name, size),
                );
            }
        }
    }
}

#[test]
fn channel_order_only_permutes() {
    // Whatever the layout, the same pixels give the same tensor, bit for bit.
    let img = rgb_fixture("rgb_37x23");
    let (buf, stride) = pack(&img, PixelLayout::Rgb);
    let rgb = run(
        16,
        &packed_frame(&img, PixelLayout::Rgb, &[Plane { data: &buf, stride }]),
        None,
    );
    for layout in PACKED {
        let (buf, stride) = pack(&img, layout);
        let planes = [Plane { data: &buf, stride }];
        assert_eq!(
            run(16, &packed_frame(&img, layout, &planes), None),
            rgb,
            "{layout:?}"
        );
    }
}

#[test]
fn gray_matches_pillow_convert_rgb() {
    let img = image::open(data("gray_37x23.png")).unwrap().to_luma8();
    let (w, h) = img.dimensions();
    let stride = w as usize + 7;
    let mut buf = vec![0xa5u8; stride * h as usize];
    for (y, row) in img.as_raw().chunks_exact(w as usize).enumerate() {
        buf[y * stride..][..w as usize].copy_from_slice(row);
    }
    let planes = [Plane { data: &buf, stride }];
    let frame = FrameRef {
        layout: PixelLayout::Gray8,
        width: w,
        height: h,
        planes: &planes,
    };
    for size in [16, 32] {
        let got = run(size, &frame, None);
        assert_pillow_parity(
            &format!("gray_37x23 S={size}"),
            &got,
            &reference("gray_37x23", size),
        );
    }
}

/// The I420 fixture of an RGB fixture, as planes with padded strides: I420 (Y, U, V) or
/// NV12 (Y, UV).
fn yuv_planes(name: &str, width: u32, height: u32, nv12: bool) -> Vec<(Vec<u8>, usize)> {
    let raw = fs::read(data(&format!("{name}.i420"))).unwrap();
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    assert_eq!(raw.len(), w * h + 2 * cw * ch);
    let (y, chroma) = raw.split_at(w * h);
    let (u, v) = chroma.split_at(cw * ch);
    let padded = |src: &[u8], row: usize, rows: usize| {
        let stride = row + 7;
        let mut buf = vec![0x5au8; stride * rows];
        for (r, line) in src.chunks_exact(row).enumerate() {
            buf[r * stride..][..row].copy_from_slice(line);
        }
        (buf, stride)
    };
    if nv12 {
        let uv: Vec<u8> = u.iter().zip(v).flat_map(|(&u, &v)| [u, v]).collect();
        vec![padded(y, w, h), padded(&uv, 2 * cw, ch)]
    } else {
        vec![padded(y, w, h), padded(u, cw, ch), padded(v, cw, ch)]
    }
}

fn run_yuv(name: &str, nv12: bool, size: u32, roi: Option<Roi>) -> Vec<f32> {
    let img = rgb_fixture(name);
    let bufs = yuv_planes(name, img.width(), img.height(), nv12);
    let planes: Vec<Plane> = bufs
        .iter()
        .map(|(data, stride)| Plane {
            data,
            stride: *stride,
        })
        .collect();
    let frame = FrameRef {
        layout: if nv12 {
            PixelLayout::Nv12
        } else {
            PixelLayout::I420
        },
        width: img.width(),
        height: img.height(),
        planes: &planes,
    };
    run(size, &frame, roi)
}

/// YUV is resized before the colour conversion and was subsampled: close, not exact.
const YUV_MEAN_BOUND: f32 = 0.05;

#[test]
fn yuv_is_close_to_pillow_on_rgb() {
    for name in ["rgb_37x23", "rgb_64x48"] {
        for size in [16, 32] {
            let i420 = run_yuv(name, false, size, None);
            let nv12 = run_yuv(name, true, size, None);
            assert_eq!(i420, nv12, "{name} S={size}: I420 and NV12 must agree");
            let d = diff(&i420, &reference(name, size));
            println!(
                "{name} I420/NV12 S={size}: max {:.3}, mean {:.4}",
                d.max, d.mean
            );
            assert!(d.mean < YUV_MEAN_BOUND, "{name} S={size}: {d:?}");
        }
    }
}

const ROI: Roi = Roi {
    x: 5,
    y: 7,
    width: 41,
    height: 30,
};

#[test]
fn roi_equals_pillow_crop_then_resize() {
    let img = rgb_fixture("rgb_64x48");
    for layout in [PixelLayout::Rgb, PixelLayout::Bgrx] {
        let (buf, stride) = pack(&img, layout);
        let planes = [Plane { data: &buf, stride }];
        let frame = packed_frame(&img, layout, &planes);
        for size in [16, 32] {
            let want = reference("rgb_64x48_roi_5_7_41_30", size);
            let got = run(size, &frame, Some(ROI));
            assert_pillow_parity(&format!("ROI {layout:?} S={size}"), &got, &want);
        }
    }
    for size in [16, 32] {
        let want = reference("rgb_64x48_roi_5_7_41_30", size);
        for nv12 in [false, true] {
            let d = diff(&run_yuv("rgb_64x48", nv12, size, Some(ROI)), &want);
            println!(
                "ROI YUV nv12={nv12} S={size}: max {:.3}, mean {:.4}",
                d.max, d.mean
            );
            assert!(d.mean < YUV_MEAN_BOUND, "ROI YUV S={size}: {d:?}");
        }
    }
}

#[test]
fn roi_is_clamped_to_the_frame() {
    let img = rgb_fixture("rgb_64x48");
    let (buf, stride) = pack(&img, PixelLayout::Rgb);
    let planes = [Plane { data: &buf, stride }];
    let frame = packed_frame(&img, PixelLayout::Rgb, &planes);
    let inside = Roi {
        x: 40,
        y: 30,
        width: 24,
        height: 18,
    };
    let beyond = Roi {
        width: 1000,
        height: 1000,
        ..inside
    };
    assert_eq!(run(16, &frame, Some(beyond)), run(16, &frame, Some(inside)));
    let full = Roi {
        x: 0,
        y: 0,
        width: 64,
        height: 48,
    };
    assert_eq!(run(16, &frame, Some(full)), run(16, &frame, None));

    let mut pre = preprocessor(16);
    let mut out = vec![0.0; pre.output_len()];
    let outside = Roi {
        x: 64,
        y: 0,
        width: 10,
        height: 10,
    };
    let err = pre.run(&frame, Some(outside), &mut out).unwrap_err();
    assert!(matches!(err, PreprocessError::RoiOutside { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "ROI 64,0,10,10 lies outside the 64x48 frame"
    );
}

#[test]
fn roi_parse() {
    assert_eq!(Roi::parse("5,7,41,30"), Ok(ROI));
    assert_eq!(Roi::parse(" 5, 7 ,41,30 "), Ok(ROI));
    assert_eq!(ROI.to_string(), "5,7,41,30");
    for (bad, why) in [
        ("", "found 1 field"),
        ("1,2,3", "found 3 field"),
        ("1,2,3,4,5", "found 5 field"),
        ("1,2,-3,4", "w \"-3\" is not a non-negative integer"),
        ("a,2,3,4", "x \"a\" is not"),
        ("1,2,0,4", "width and height must be greater than 0"),
    ] {
        let err = Roi::parse(bad).unwrap_err();
        assert!(err.contains(&format!("\"{bad}\"")), "{err}");
        assert!(err.contains(why), "{err}");
    }
    assert_eq!(
        ROI.clamp_to(20, 20),
        Some(Roi {
            x: 5,
            y: 7,
            width: 15,
            height: 13
        })
    );
    assert_eq!(ROI.clamp_to(5, 48), None);
}

#[test]
fn bad_frames_are_refused_with_reasons() {
    let mut pre = preprocessor(16);
    let mut out = vec![0.0; pre.output_len()];
    let buf = vec![0u8; 100];
    let one = [Plane {
        data: &buf,
        stride: 12,
    }];
    let frame = |layout, width, height, planes| FrameRef {
        layout,
        width,
        height,
        planes,
    };
    let mut check = |frame: FrameRef, out: &mut [f32], expected: &str| {
        let err = pre.run(&frame, None, out).unwrap_err();
        assert_eq!(err.to_string(), expected);
    };
    check(
        frame(PixelLayout::Rgb, 4, 0, &one),
        &mut out,
        "frame size 4x0 is empty",
    );
    check(
        frame(PixelLayout::I420, 4, 4, &one),
        &mut out,
        "I420 frame needs 3 plane(s), got 1",
    );
    check(
        frame(PixelLayout::Rgbx, 4, 4, &one),
        &mut out,
        "Rgbx plane 0: stride 12 is less than the 16 bytes of a row",
    );
    check(
        frame(PixelLayout::Rgb, 4, 10, &one),
        &mut out,
        "Rgb plane 0: 100 bytes is too small for 10 rows of stride 12 (needs 120)",
    );
    check(
        frame(PixelLayout::Rgb, 4, 4, &one),
        &mut out[1..],
        "output has 767 floats, expected 768 (3x16x16)",
    );
    // The last row needs no padding.
    let exact = vec![0u8; 12 * 3 + 4 * 3];
    let planes = [Plane {
        data: &exact,
        stride: 12,
    }];
    pre.run(&frame(PixelLayout::Rgb, 4, 4, &planes), None, &mut out)
        .unwrap();

    let err = Preprocessor::new(0, IMAGENET_MEAN, IMAGENET_STD).unwrap_err();
    assert_eq!(err.to_string(), "model input size must be greater than 0");
    assert!(Preprocessor::new(16, IMAGENET_MEAN, [0.2, 0.0, 0.2]).is_err());
}

#[test]
fn preprocessor_is_reusable_across_sizes_and_formats() {
    // Buffers are reused: a small frame after a big ROI, gray after RGBx, and so on.
    let mut pre = preprocessor(16);
    let mut out = vec![0.0; pre.output_len()];
    let big = rgb_fixture("rgb_64x48");
    let small = rgb_fixture("rgb_37x23");
    for img in [&big, &small, &big] {
        for layout in PACKED {
            let (buf, stride) = pack(img, layout);
            let planes = [Plane { data: &buf, stride }];
            pre.run(&packed_frame(img, layout, &planes), None, &mut out)
                .unwrap();
            let name = if img.width() == 64 {
                "rgb_64x48"
            } else {
                "rgb_37x23"
            };
            assert!(
                diff(&out, &reference(name, 16)).max <= EXACT,
                "{name} {layout:?}"
            );
        }
    }
}

// --- prompt images ---------------------------------------------------------------------

#[test]
fn prompt_path_matches_pillow() {
    let img = load_prompt(&data("rgb_64x48.png"), DEFAULT_MAX_PROMPT_PIXELS).unwrap();
    assert_eq!(img.dimensions(), (64, 48));
    let mut pre = preprocessor(32);
    let mut out = vec![0.0; pre.output_len()];
    pre.run_rgb_image(&img, &mut out).unwrap();
    assert_pillow_parity("prompt rgb_64x48 S=32", &out, &reference("rgb_64x48", 32));

    let gray = load_prompt(&data("gray_37x23.png"), DEFAULT_MAX_PROMPT_PIXELS).unwrap();
    pre.run_rgb_image(&gray, &mut out).unwrap();
    assert_pillow_parity("prompt gray_37x23 S=32", &out, &reference("gray_37x23", 32));
}

/// A scratch directory for one test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("onenip-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A hand-made PNG (stored, uncompressed zlib) so tests control every header field.
fn png(width: u32, height: u32, color_type: u8, plte: Option<&[u8]>, rows: &[u8]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, color_type, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    if let Some(plte) = plte {
        chunk(&mut out, b"PLTE", plte);
    }
    // zlib: header, one final stored block, Adler-32.
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend((rows.len() as u16).to_le_bytes());
    z.extend((!(rows.len() as u16)).to_le_bytes());
    z.extend(rows);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in rows {
        a = (a + byte as u32) % 65521;
        b = (b + a) % 65521;
    }
    z.extend(((b << 16) | a).to_be_bytes());
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

#[test]
fn prompt_formats_convert_to_rgb8() {
    let dir = TempDir::new("prompt-formats");
    let load = |path: &Path| load_prompt(path, DEFAULT_MAX_PROMPT_PIXELS).unwrap();
    let rgb = rgb_fixture("rgb_37x23");

    // 8-bit RGB PNG: unchanged.
    let png_rgb = dir.file(
        "rgb.png",
        &encode(&rgb.clone().into(), image::ImageFormat::Png),
    );
    assert_eq!(load(&png_rgb), rgb);

    // JPEG: lossy, but the same picture.
    let jpeg = dir.file(
        "rgb.jpg",
        &encode(&rgb.clone().into(), image::ImageFormat::Jpeg),
    );
    let loaded = load(&jpeg);
    assert_eq!(loaded.dimensions(), rgb.dimensions());
    let err: f64 = loaded
        .as_raw()
        .iter()
        .zip(rgb.as_raw())
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .sum::<f64>()
        / rgb.as_raw().len() as f64;
    assert!(err < 20.0, "JPEG mean abs error {err}");

    // 16-bit gray and RGB: the high byte of each sample.
    let gray16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(7, 5, |x, y| {
        image::Luma([(x * 9000 + y * 1111) as u16 | 0xff])
    });
    let path = dir.file(
        "gray16.png",
        &encode(&gray16.clone().into(), image::ImageFormat::Png),
    );
    let loaded = load(&path);
    for (x, y, p) in loaded.enumerate_pixels() {
        let v = (gray16.get_pixel(x, y)[0] >> 8) as u8;
        assert_eq!(p.0, [v; 3]);
    }
    let rgb16 = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(7, 5, |x, y| {
        image::Rgb([(x * 9000) as u16 | 0xff, (y * 13000) as u16, 0x80ff])
    });
    let path = dir.file(
        "rgb16.png",
        &encode(&rgb16.clone().into(), image::ImageFormat::Png),
    );
    for (x, y, p) in load(&path).enumerate_pixels() {
        let q = rgb16.get_pixel(x, y).0;
        assert_eq!(p.0, q.map(|v| (v >> 8) as u8));
    }

    // 8-bit gray: replicated; RGBA: alpha dropped, not composited.
    let gray = image::GrayImage::from_fn(7, 5, |x, y| image::Luma([(x * 30 + y) as u8]));
    let path = dir.file(
        "gray.png",
        &encode(&gray.clone().into(), image::ImageFormat::Png),
    );
    for (x, y, p) in load(&path).enumerate_pixels() {
        assert_eq!(p.0, [gray.get_pixel(x, y)[0]; 3]);
    }
    let rgba = image::RgbaImage::from_fn(7, 5, |x, y| {
        image::Rgba([(x * 30) as u8, (y * 50) as u8, 200, (x * y * 7) as u8])
    });
    let path = dir.file(
        "rgba.png",
        &encode(&rgba.clone().into(), image::ImageFormat::Png),
    );
    for (x, y, p) in load(&path).enumerate_pixels() {
        assert_eq!(p.0, rgba.get_pixel(x, y).0[..3]);
    }

    // Palette: expanded. 2x2 pixels, each row a filter byte and two indices.
    let plte = [255, 0, 0, 0, 255, 0, 0, 0, 255];
    let path = dir.file(
        "palette.png",
        &png(2, 2, 3, Some(&plte), &[0, 0, 1, 0, 2, 0]),
    );
    let loaded = load(&path);
    let pixels: Vec<[u8; 3]> = loaded.pixels().map(|p| p.0).collect();
    assert_eq!(pixels, [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 0, 0]]);

    // BMP too.
    let path = dir.file(
        "rgb.bmp",
        &encode(&rgb.clone().into(), image::ImageFormat::Bmp),
    );
    assert_eq!(load(&path), rgb);
}

#[test]
fn prompt_errors_name_the_file_and_the_reason() {
    let dir = TempDir::new("prompt-errors");
    let load = |path: &Path| load_prompt(path, DEFAULT_MAX_PROMPT_PIXELS).unwrap_err();
    let check = |err: PromptError, path: &Path, reason: &str| {
        let text = err.to_string();
        println!("{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(reason), "{text}");
    };

    let missing = dir.0.join("missing.png");
    let err = load(&missing);
    assert!(matches!(err, PromptError::NotFound { .. }));
    check(err, &missing, "file not found");

    let err = load(&dir.0);
    assert!(matches!(err, PromptError::Unreadable { .. }));
    check(err, &dir.0, "cannot read the file: not a regular file");

    let empty = dir.file("empty.png", b"");
    let err = load(&empty);
    assert!(matches!(err, PromptError::Empty { .. }));
    check(err, &empty, "file is empty (0 bytes)");

    let text = dir.file(
        "notes.png",
        b"this is not an image, whatever its name says\n",
    );
    let err = load(&text);
    assert!(matches!(err, PromptError::NotAnImage { .. }), "{err}");
    check(err, &text, "not an image");

    let whole = fs::read(data("rgb_64x48.png")).unwrap();
    let truncated = dir.file("truncated.png", &whole[..whole.len() / 2]);
    let err = load(&truncated);
    assert!(matches!(err, PromptError::Truncated { .. }), "{err}");
    check(err, &truncated, "truncated PNG file");

    // The JPEG decoder itself would fill a truncated scan with gray.
    let jpeg = encode(&rgb_fixture("rgb_64x48").into(), image::ImageFormat::Jpeg);
    for (name, cut) in [
        ("scan.jpg", jpeg.len() / 2),
        ("header.jpg", 300),
        ("eoi.jpg", jpeg.len() - 2),
    ] {
        let truncated = dir.file(name, &jpeg[..cut]);
        let err = load(&truncated);
        assert!(matches!(err, PromptError::Truncated { .. }), "{err}");
        check(err, &truncated, "truncated JPEG file");
    }
    let whole_jpeg = dir.file("whole.jpg", &jpeg);
    assert!(load_prompt(&whole_jpeg, DEFAULT_MAX_PROMPT_PIXELS).is_ok());

    let header_only = dir.file("header-only.png", &whole[..20]);
    let err = load(&header_only);
    assert!(matches!(err, PromptError::Truncated { .. }), "{err}");

    // 20000 x 20000 in the header, 2 KB on disk: refused before decoding.
    let huge = dir.file("huge.png", &png(20000, 20000, 0, None, &[0; 1000]));
    assert!(fs::metadata(&huge).unwrap().len() < 2048);
    let err = load(&huge);
    assert!(matches!(err, PromptError::TooLarge { .. }), "{err}");
    check(
        err,
        &huge,
        "20000x20000 is too large (400000000 pixels, the limit is 64000000)",
    );

    // The limit is the caller's.
    let err = load_prompt(&data("rgb_64x48.png"), 1000).unwrap_err();
    check(
        err,
        &data("rgb_64x48.png"),
        "64x48 is too large (3072 pixels, the limit is 1000)",
    );
    assert!(load_prompt(&data("rgb_64x48.png"), 3072).is_ok());
}

#[test]
fn preprocessor_can_move_to_a_streaming_thread() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Preprocessor>();
}
