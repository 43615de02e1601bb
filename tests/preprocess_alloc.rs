//! After the first frame of a geometry, `Preprocessor::run` allocates nothing.
//!
//! A counting global allocator, in a test binary of its own so that it counts nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use onenip::preprocess::{
    FrameRef, PixelLayout, Plane, Preprocessor, Roi, IMAGENET_MEAN, IMAGENET_STD,
};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn plane(row_bytes: usize, rows: usize) -> (Vec<u8>, usize) {
    let stride = row_bytes + 9;
    let data = (0..stride * rows).map(|i| (i * 31 % 251) as u8).collect();
    (data, stride)
}

#[test]
fn run_allocates_nothing_after_the_first_frame() {
    let (w, h) = (317usize, 181usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let cases = [
        (PixelLayout::Rgb, vec![plane(w * 3, h)]),
        (PixelLayout::Bgrx, vec![plane(w * 4, h)]),
        (PixelLayout::Gray8, vec![plane(w, h)]),
        (
            PixelLayout::I420,
            vec![plane(w, h), plane(cw, ch), plane(cw, ch)],
        ),
        (PixelLayout::Nv12, vec![plane(w, h), plane(cw * 2, ch)]),
    ];
    let roi = Roi {
        x: 13,
        y: 7,
        width: 101,
        height: 77,
    };
    for size in [32, 224] {
        for (layout, bufs) in &cases {
            let planes: Vec<Plane> = bufs
                .iter()
                .map(|(data, stride)| Plane {
                    data,
                    stride: *stride,
                })
                .collect();
            let frame = FrameRef {
                layout: *layout,
                width: w as u32,
                height: h as u32,
                planes: &planes,
            };
            for roi in [None, Some(roi)] {
                let mut pre = Preprocessor::new(size, IMAGENET_MEAN, IMAGENET_STD).unwrap();
                let mut out = vec![0.0f32; pre.output_len()];
                // The first frame computes the weights and sizes the buffers.
                pre.run(&frame, roi, &mut out).unwrap();
                let before = ALLOCATIONS.load(Ordering::SeqCst);
                for _ in 0..3 {
                    pre.run(&frame, roi, &mut out).unwrap();
                }
                let allocated = ALLOCATIONS.load(Ordering::SeqCst) - before;
                assert_eq!(allocated, 0, "{layout:?} S={size} roi={roi:?}");
            }
        }
    }
}
