//! Speed of the frame pre-processing: 1920x1080 frames of several layouts to the model
//! input, single thread. Not a test; run it in release:
//!
//! ```sh
//! cargo run -p onenip --release --example preprocess_speed [-- SIZE [ITERATIONS [CASE]]]
//! ```
//!
//! `CASE` keeps only the case of that name (`GRAY8`, `RGB`...), which is
//! handy under `valgrind --tool=callgrind` for instruction counts per layout.
//!
//! It also counts the heap allocations made per frame.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use onenip::preprocess::{
    FrameRef, PixelLayout, Plane, Preprocessor, Roi, IMAGENET_MEAN, IMAGENET_STD,
};

/// Counts allocations, to check that a frame allocates nothing once warmed up.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;

/// A plane filled with a deterministic pattern.
fn plane(row_bytes: usize, rows: usize) -> (Vec<u8>, usize) {
    let stride = row_bytes.next_multiple_of(64);
    let data = (0..stride * rows)
        .map(|i| ((i * 7) ^ (i / stride * 13)) as u8)
        .collect();
    (data, stride)
}

/// A benchmark case: name, layout, planes (bytes and stride) and region of interest.
type Case = (
    &'static str,
    PixelLayout,
    Vec<(Vec<u8>, usize)>,
    Option<Roi>,
);

fn main() {
    let mut args = std::env::args().skip(1);
    let size: u32 = args.next().map_or(256, |s| s.parse().expect("SIZE"));
    let iterations: u32 = args.next().map_or(100, |s| s.parse().expect("ITERATIONS"));
    let only = args.next().unwrap_or_default();

    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let cases: [Case; 8] = [
        ("RGB", PixelLayout::Rgb, vec![plane(w * 3, h)], None),
        ("BGRx", PixelLayout::Bgrx, vec![plane(w * 4, h)], None),
        ("RGBA", PixelLayout::Rgba, vec![plane(w * 4, h)], None),
        ("GRAY8", PixelLayout::Gray8, vec![plane(w, h)], None),
        (
            "I420",
            PixelLayout::I420,
            vec![plane(w, h), plane(cw, ch), plane(cw, ch)],
            None,
        ),
        (
            "NV12",
            PixelLayout::Nv12,
            vec![plane(w, h), plane(cw * 2, ch)],
            None,
        ),
        (
            "RGB, ROI 801x601",
            PixelLayout::Rgb,
            vec![plane(w * 3, h)],
            Some(Roi {
                x: 501,
                y: 201,
                width: 801,
                height: 601,
            }),
        ),
        (
            "NV12, ROI 801x601",
            PixelLayout::Nv12,
            vec![plane(w, h), plane(cw * 2, ch)],
            Some(Roi {
                x: 501,
                y: 201,
                width: 801,
                height: 601,
            }),
        ),
    ];

    let mut pre = Preprocessor::new(size, IMAGENET_MEAN, IMAGENET_STD).unwrap();
    let mut out = vec![0.0f32; pre.output_len()];
    println!("{WIDTH}x{HEIGHT} -> {size}x{size}, {iterations} iterations, single thread");
    for (name, layout, bufs, roi) in cases.iter().filter(|c| only.is_empty() || c.0 == only) {
        let planes: Vec<Plane> = bufs
            .iter()
            .map(|(data, stride)| Plane {
                data,
                stride: *stride,
            })
            .collect();
        let frame = FrameRef {
            layout: *layout,
            width: WIDTH,
            height: HEIGHT,
            planes: &planes,
        };
        for _ in 0..5 {
            pre.run(&frame, *roi, &mut out).unwrap();
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed);
        let start = Instant::now();
        for _ in 0..iterations {
            pre.run(black_box(&frame), *roi, &mut out).unwrap();
            black_box(&out);
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / iterations as f64;
        let allocated = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
        // Exact: any allocation at all shows (0 expected once warmed up).
        let per_frame = allocated as f64 / iterations as f64;
        println!("{name:>18}: {ms:6.3} ms/frame, {per_frame} allocations/frame");
    }
}
