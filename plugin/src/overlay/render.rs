// SPDX-License-Identifier: MIT OR Apache-2.0

//! Drawing the overlay: geometry in frame pixels, palettes, and the canvases drawn on (a
//! packed RGB frame, an I420/NV12 frame, or the ARGB rectangle of an overlay composition).
//!
//! Everything is drawn in one order on every canvas: the heat map and mask outline over the
//! roi, then the region boxes, then the score label. The heat map is a row of palette
//! indices per frame row (0..=255 the colour-map entries, [`OUTLINE`], [`CLEAR`]), so each
//! canvas only needs its palette converted once into its own colour space.

use super::blend::{self, PlaneTable, Table, CLEAR_PLANE, CLEAR_TABLE};
use super::colormap::Rgb;
use super::font;
use super::upsample::Upsampler;

/// Palette index of the mask outline; 0..=255 are the heat-map colours.
pub const OUTLINE: u16 = 256;
/// Palette index of a pixel left as it is.
pub const CLEAR: u16 = 257;
pub const PALETTE_LEN: usize = 258;

/// A palette entry: a colour in the canvas's own space, then its alpha.
pub type Entry = [u8; 4];
pub type Palette = [Entry; PALETTE_LEN];

/// A rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

impl Rect {
    pub const fn new(x: i32, y: i32, w: i32, h: i32) -> Self {
        Self { x, y, w, h }
    }

    pub fn is_empty(&self) -> bool {
        self.w <= 0 || self.h <= 0
    }

    pub fn right(&self) -> i32 {
        self.x + self.w
    }

    pub fn bottom(&self) -> i32 {
        self.y + self.h
    }

    pub fn intersect(&self, o: &Rect) -> Rect {
        let x = self.x.max(o.x);
        let y = self.y.max(o.y);
        Rect::new(
            x,
            y,
            (self.right().min(o.right()) - x).max(0),
            (self.bottom().min(o.bottom()) - y).max(0),
        )
    }

    pub fn union(&self, o: &Rect) -> Rect {
        if self.is_empty() {
            return *o;
        }
        if o.is_empty() {
            return *self;
        }
        let x = self.x.min(o.x);
        let y = self.y.min(o.y);
        Rect::new(
            x,
            y,
            self.right().max(o.right()) - x,
            self.bottom().max(o.bottom()) - y,
        )
    }
}

/// Maps coordinates from the frame size a meta refers to onto the frame being drawn.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    sx: f64,
    sy: f64,
}

impl Scale {
    /// `from` of zero (unknown) means the same size as `to`.
    pub fn new(from: (u32, u32), to: (u32, u32)) -> Self {
        let ratio = |f: u32, t: u32| if f == 0 { 1.0 } else { t as f64 / f as f64 };
        Self {
            sx: ratio(from.0, to.0),
            sy: ratio(from.1, to.1),
        }
    }

    pub fn rect(&self, x: u32, y: u32, w: u32, h: u32) -> Rect {
        let x0 = (x as f64 * self.sx).round() as i32;
        let y0 = (y as f64 * self.sy).round() as i32;
        let x1 = ((x as f64 + w as f64) * self.sx).round() as i32;
        let y1 = ((y as f64 + h as f64) * self.sy).round() as i32;
        Rect::new(x0, y0, x1 - x0, y1 - y0)
    }
}

/// A Y'CbCr matrix and range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvMatrix {
    pub kr: f64,
    pub kb: f64,
    pub full_range: bool,
}

impl YuvMatrix {
    pub const BT601: Self = Self {
        kr: 0.299,
        kb: 0.114,
        full_range: false,
    };
    pub const BT709: Self = Self {
        kr: 0.2126,
        kb: 0.0722,
        full_range: false,
    };
}

/// The colour space of a canvas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Space {
    /// Packed R, G, B bytes (RGB, RGBA, RGBx).
    Rgb,
    /// Packed B, G, R bytes (BGR, BGRA, BGRx).
    Bgr,
    /// Y, U, V.
    Yuv(YuvMatrix),
    /// The straight-alpha ARGB of an overlay rectangle (entries hold R, G, B).
    Argb,
}

impl Space {
    pub fn entry(&self, rgb: Rgb, alpha: u8) -> Entry {
        let [r, g, b] = rgb;
        match self {
            Space::Rgb | Space::Argb => [r, g, b, alpha],
            Space::Bgr => [b, g, r, alpha],
            Space::Yuv(m) => {
                let (r, g, b) = (r as f64 / 255.0, g as f64 / 255.0, b as f64 / 255.0);
                let y = m.kr * r + (1.0 - m.kr - m.kb) * g + m.kb * b;
                let cb = (b - y) / (2.0 * (1.0 - m.kb));
                let cr = (r - y) / (2.0 * (1.0 - m.kr));
                let (y, c) = if m.full_range {
                    (255.0 * y, 255.0)
                } else {
                    (16.0 + 219.0 * y, 224.0)
                };
                let q = |v: f64| v.round().clamp(0.0, 255.0) as u8;
                [q(y), q(128.0 + c * cb), q(128.0 + c * cr), alpha]
            }
        }
    }

    /// The heat-map colours with `alpha`, the outline colour opaque, and [`CLEAR`].
    pub fn palette(&self, heat: &[Rgb; 256], alpha: u8, outline: Rgb) -> Palette {
        let mut p = [[0; 4]; PALETTE_LEN];
        for (e, &c) in p.iter_mut().zip(heat.iter()) {
            *e = self.entry(c, alpha);
        }
        p[OUTLINE as usize] = self.entry(outline, 255);
        p[CLEAR as usize] = [0; 4];
        p
    }
}

/// Something to draw on.
pub trait Canvas {
    /// The part of the frame this canvas covers, in frame pixels.
    fn bounds(&self) -> Rect;
    /// Called once per frame before the first `span()` with the palette the spans use.
    fn begin(&mut self, _palette: &Palette) {}
    /// Blends one row of palette indices starting at frame pixel (`x`, `y`); the span
    /// lies inside `bounds()`.
    fn span(&mut self, x: i32, y: i32, idx: &[u16], palette: &Palette);
    /// Fills `r` (inside `bounds()`) with the opaque colour `c`.
    fn fill(&mut self, r: Rect, c: Entry);
}

/// A frame of packed 8-bit pixels, `P` bytes each, colour in the first three.
pub struct Packed<'a, const P: usize> {
    data: &'a mut [u8],
    stride: usize,
    width: i32,
    height: i32,
    table: Table,
}

impl<'a, const P: usize> Packed<'a, P> {
    pub fn new(data: &'a mut [u8], stride: usize, width: u32, height: u32) -> Self {
        Self {
            data,
            stride,
            width: width as i32,
            height: height as i32,
            table: CLEAR_TABLE,
        }
    }
}

impl<const P: usize> Canvas for Packed<'_, P> {
    fn bounds(&self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }

    fn begin(&mut self, palette: &Palette) {
        self.table = blend::table(palette);
    }

    fn span(&mut self, x: i32, y: i32, idx: &[u16], _palette: &Palette) {
        let off = y as usize * self.stride + x as usize * P;
        blend::span::<P>(&mut self.data[off..off + idx.len() * P], idx, &self.table);
    }

    fn fill(&mut self, r: Rect, c: Entry) {
        for y in r.y..r.bottom() {
            let off = y as usize * self.stride + r.x as usize * P;
            for px in self.data[off..off + r.w as usize * P].chunks_exact_mut(P) {
                px[..3].copy_from_slice(&c[..3]);
            }
        }
    }
}

/// The chroma planes of a 4:2:0 frame.
pub enum Chroma<'a> {
    /// I420: U and V planes.
    Planar(&'a mut [u8], &'a mut [u8]),
    /// NV12: one plane of U, V pairs.
    Interleaved(&'a mut [u8]),
}

/// An I420 or NV12 frame. Chroma is drawn at half resolution: each 2x2 block takes the
/// colour of its top-left pixel.
pub struct Yuv420<'a> {
    luma: &'a mut [u8],
    luma_stride: usize,
    chroma: Chroma<'a>,
    chroma_stride: usize,
    width: i32,
    height: i32,
    /// The palette as Y, U and V tables for the planar kernels.
    planes: [PlaneTable; 3],
}

impl<'a> Yuv420<'a> {
    pub fn new(
        luma: &'a mut [u8],
        luma_stride: usize,
        chroma: Chroma<'a>,
        chroma_stride: usize,
        width: u32,
        height: u32,
    ) -> Self {
        Self {
            luma,
            luma_stride,
            chroma,
            chroma_stride,
            width: width as i32,
            height: height as i32,
            planes: [CLEAR_PLANE; 3],
        }
    }
}

fn planes_of(table: &Table) -> [PlaneTable; 3] {
    [
        blend::plane_table::<0>(table),
        blend::plane_table::<1>(table),
        blend::plane_table::<2>(table),
    ]
}

impl Canvas for Yuv420<'_> {
    fn bounds(&self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }

    fn begin(&mut self, palette: &Palette) {
        self.planes = planes_of(&blend::table(palette));
    }

    fn span(&mut self, x: i32, y: i32, idx: &[u16], _palette: &Palette) {
        let off = y as usize * self.luma_stride + x as usize;
        blend::span_plane(&mut self.luma[off..off + idx.len()], idx, &self.planes[0]);
        if y % 2 != 0 {
            return;
        }
        // Chroma takes the colour of the even pixels (the top-left of each 2x2 block).
        let first = ((x + 1) & !1) - x;
        let even = idx.get(first as usize..).unwrap_or(&[]);
        let n = even.len().div_ceil(2);
        let row = (y / 2) as usize * self.chroma_stride;
        let cx = ((x + first) / 2) as usize;
        match &mut self.chroma {
            Chroma::Planar(u, v) => {
                blend::span_plane_even(&mut u[row + cx..][..n], even, &self.planes[1]);
                blend::span_plane_even(&mut v[row + cx..][..n], even, &self.planes[2]);
            }
            Chroma::Interleaved(uv) => {
                let [_, pu, pv] = &self.planes;
                blend::span_interleaved(&mut uv[row + 2 * cx..][..2 * n], even, pu, pv);
            }
        }
    }

    fn fill(&mut self, r: Rect, c: Entry) {
        for y in r.y..r.bottom() {
            let off = y as usize * self.luma_stride + r.x as usize;
            self.luma[off..off + r.w as usize].fill(c[0]);
        }
        let (cx0, cx1) = ((r.x / 2) as usize, ((r.right() - 1) / 2 + 1) as usize);
        for cy in r.y / 2..(r.bottom() - 1) / 2 + 1 {
            let row = cy as usize * self.chroma_stride;
            match &mut self.chroma {
                Chroma::Planar(u, v) => {
                    u[row + cx0..row + cx1].fill(c[1]);
                    v[row + cx0..row + cx1].fill(c[2]);
                }
                Chroma::Interleaved(uv) => {
                    for pair in uv[row + 2 * cx0..row + 2 * cx1].chunks_exact_mut(2) {
                        pair[0] = c[1];
                        pair[1] = c[2];
                    }
                }
            }
        }
    }
}

/// Byte order of the overlay rectangle: `GST_VIDEO_OVERLAY_COMPOSITION_FORMAT_RGB` is
/// ARGB in native endianness, so BGRA in memory on little-endian machines.
#[cfg(target_endian = "little")]
const ARGB_ORDER: [usize; 4] = [2, 1, 0, 3];
#[cfg(target_endian = "big")]
const ARGB_ORDER: [usize; 4] = [1, 2, 3, 0];

/// The straight-alpha ARGB pixels of an overlay rectangle covering `area` of the frame,
/// tightly packed, transparent where nothing is drawn.
pub struct Layer<'a> {
    data: &'a mut [u8],
    area: Rect,
}

impl<'a> Layer<'a> {
    /// `data` must hold `area.w * area.h * 4` bytes, all zero.
    pub fn new(data: &'a mut [u8], area: Rect) -> Self {
        Self { data, area }
    }

    #[inline(always)]
    fn put(px: &mut [u8], e: &Entry) {
        for (c, &pos) in e.iter().zip(ARGB_ORDER.iter()) {
            px[pos] = *c;
        }
    }
}

impl Canvas for Layer<'_> {
    fn bounds(&self) -> Rect {
        self.area
    }

    // The layer starts transparent and every pixel of a span is written once, so "over"
    // is a plain copy.
    fn span(&mut self, x: i32, y: i32, idx: &[u16], palette: &Palette) {
        let off =
            ((y - self.area.y) as usize * self.area.w as usize + (x - self.area.x) as usize) * 4;
        for (px, &i) in self.data[off..off + idx.len() * 4]
            .chunks_exact_mut(4)
            .zip(idx)
        {
            let e = &palette[i as usize];
            if e[3] != 0 {
                Self::put(px, e);
            }
        }
    }

    fn fill(&mut self, r: Rect, c: Entry) {
        let c = [c[0], c[1], c[2], 255];
        for y in r.y..r.bottom() {
            let off = ((y - self.area.y) as usize * self.area.w as usize
                + (r.x - self.area.x) as usize)
                * 4;
            for px in self.data[off..off + r.w as usize * 4].chunks_exact_mut(4) {
                Self::put(px, &c);
            }
        }
    }
}

/// The anomaly map: GRAY8, tightly packed.
#[derive(Debug, Clone, Copy)]
pub struct MapView<'a> {
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
}

/// The score label: opaque background, text on top.
#[derive(Debug, Clone, Copy)]
pub struct Label<'a> {
    pub text: &'a str,
    pub rect: Rect,
    /// Device pixels per font pixel.
    pub scale: i32,
    pub background: Entry,
    pub foreground: Entry,
}

impl<'a> Label<'a> {
    /// A label for `text` at `anchor` (top-left), moved inside `frame` where it would not
    /// fit.
    pub fn place(
        text: &'a str,
        scale: i32,
        anchor: (i32, i32),
        frame: Rect,
        background: Entry,
        foreground: Entry,
    ) -> Self {
        let pad = 2 * scale;
        let w = font::text_width(text, scale) + 2 * pad;
        let h = font::HEIGHT * scale + 2 * pad;
        let x = anchor.0.min(frame.right() - w).max(frame.x);
        let y = anchor.1.min(frame.bottom() - h).max(frame.y);
        Self {
            text,
            rect: Rect::new(x, y, w, h),
            scale,
            background,
            foreground,
        }
    }
}

/// What to draw on one frame, in frame pixels.
pub struct Scene<'a> {
    /// The inspected part of the frame the map covers (may reach past the frame).
    pub roi: Rect,
    pub map: Option<MapView<'a>>,
    pub heatmap: bool,
    pub outline: bool,
    pub outline_width: i32,
    pub boxes: &'a [Rect],
    pub box_width: i32,
    pub box_colour: Entry,
    pub label: Option<Label<'a>>,
}

impl Scene<'_> {
    fn draws_map(&self) -> bool {
        (self.heatmap || self.outline) && self.map.is_some()
    }

    /// The part of `frame` anything is drawn on.
    pub fn extent(&self, frame: Rect) -> Rect {
        let mut e = Rect::default();
        if self.draws_map() {
            e = e.union(&self.roi.intersect(&frame));
        }
        for b in self.boxes {
            e = e.union(&b.intersect(&frame));
        }
        if let Some(l) = &self.label {
            e = e.union(&l.rect.intersect(&frame));
        }
        e
    }
}

/// The drawing code, with its buffers kept from frame to frame.
#[derive(Debug, Default)]
pub struct Renderer {
    /// The map upsampled to the visible part of the roi: a ring of the rows the outline
    /// reads (2t + 1 around the current one).
    values: Vec<u8>,
    upsampler: Upsampler,
    /// One row of palette indices.
    idx: Vec<u16>,
}

impl Renderer {
    pub fn draw(&mut self, canvas: &mut impl Canvas, scene: &Scene, palette: &Palette) {
        let bounds = canvas.bounds();
        canvas.begin(palette);
        if let (true, Some(map)) = (scene.draws_map(), scene.map) {
            self.draw_map(canvas, scene, map, palette);
        }
        for b in scene.boxes {
            let t = scene.box_width.min(b.w).min(b.h).max(1);
            for side in [
                Rect::new(b.x, b.y, b.w, t),
                Rect::new(b.x, b.bottom() - t, b.w, t),
                Rect::new(b.x, b.y, t, b.h),
                Rect::new(b.right() - t, b.y, t, b.h),
            ] {
                let side = side.intersect(&bounds);
                if !side.is_empty() {
                    canvas.fill(side, scene.box_colour);
                }
            }
        }
        if let Some(label) = &scene.label {
            let background = label.rect.intersect(&bounds);
            if background.is_empty() {
                return;
            }
            canvas.fill(background, label.background);
            let s = label.scale;
            let (x0, y0) = (label.rect.x + 2 * s, label.rect.y + 2 * s);
            font::for_each_pixel(label.text, |fx, fy| {
                let dot = Rect::new(x0 + fx * s, y0 + fy * s, s, s).intersect(&bounds);
                if !dot.is_empty() {
                    canvas.fill(dot, label.foreground);
                }
            });
        }
    }

    fn draw_map(
        &mut self,
        canvas: &mut impl Canvas,
        scene: &Scene,
        map: MapView,
        palette: &Palette,
    ) {
        let roi = scene.roi;
        let vis = roi.intersect(&canvas.bounds());
        let (mw, mh) = (map.width, map.height);
        if vis.is_empty() || mw == 0 || mh == 0 || map.data.len() < mw * mh {
            return;
        }
        let (vw, vh) = (vis.w as usize, vis.h as usize);

        // Palette indices: the heat colour, or the outline on mask pixels (>= 128, the pixel
        // threshold) with a pixel outside the mask `t` pixels away. The map rows are
        // upsampled just ahead, into a ring of the 2t + 1 rows the outline looks at, so that
        // they stay in cache.
        let t = scene.outline_width.max(1) as usize;
        let ahead = if scene.outline { t } else { 0 };
        let ring = 2 * ahead + 1;
        self.values.resize(ring * vw, 0);
        self.idx.resize(vw, CLEAR);
        self.upsampler.begin(map, roi, vis);
        let heat = |idx: &mut [u16], row: &[u8]| {
            if scene.heatmap {
                kernels::widen(idx, row);
            } else {
                idx.fill(CLEAR);
            }
        };
        let mut next = 0;
        for r in 0..vh {
            while next < vh && next <= r + ahead {
                let slot = next % ring;
                self.upsampler
                    .row(map, next, &mut self.values[slot * vw..][..vw]);
                next += 1;
            }
            let values = &self.values;
            let at = |r: usize| &values[r % ring * vw..][..vw];
            let idx = &mut self.idx;
            let row = at(r);
            // Mask pixels on the border of the visible roi are outline; inside, those with a
            // pixel outside the mask `t` pixels away, found by the kernel as it writes the
            // inner columns.
            let inner = scene.outline && r >= t && r + t < vh && vw > 2 * t;
            if inner {
                heat(&mut idx[..t], &row[..t]);
                heat(&mut idx[vw - t..], &row[vw - t..]);
                kernels::heat_and_outline(
                    &mut idx[t..vw - t],
                    kernels::Cross {
                        centre: &row[t..vw - t],
                        left: &row[..vw - 2 * t],
                        right: &row[2 * t..],
                        up: &at(r - t)[t..vw - t],
                        down: &at(r + t)[t..vw - t],
                    },
                    scene.heatmap,
                );
            } else {
                heat(idx, row);
            }
            if scene.outline {
                let edge_cols = if inner { t } else { vw };
                for c in (0..edge_cols).chain(vw.saturating_sub(edge_cols).max(edge_cols)..vw) {
                    if row[c] >= 128 {
                        idx[c] = OUTLINE;
                    }
                }
            }
            canvas.span(vis.x, vis.y + r as i32, idx, palette);
        }
    }
}

/// The per-pixel loops of the palette indices (see [`dispatch`](super::dispatch)).
mod kernels {
    use super::super::dispatch::dispatch;
    use super::{CLEAR, OUTLINE};

    /// The five rows around a pixel `t` pixels away, all of one length.
    pub struct Cross<'a> {
        pub centre: &'a [u8],
        pub left: &'a [u8],
        pub right: &'a [u8],
        pub up: &'a [u8],
        pub down: &'a [u8],
    }

    dispatch! {
        /// Map values as heat-map palette indices.
        fn widen(idx: &mut [u16], row: &[u8]) {
            for (i, &v) in idx.iter_mut().zip(row) {
                *i = v as u16;
            }
        }
    }

    dispatch! {
        /// The indices of pixels whose four neighbours `t` pixels away are in `cross`: the
        /// outline on mask pixels (>= 128) with a neighbour outside the mask (< 128), that is
        /// bit 7 set in the centre and clear in one neighbour; otherwise the heat colour, or
        /// clear without the heat map.
        fn heat_and_outline(idx: &mut [u16], cross: Cross, heat: bool) {
            let Cross { centre, left, right, up, down } = cross;
            let n = idx.len();
            let (centre, left, right, up, down) = (&centre[..n], &left[..n], &right[..n], &up[..n], &down[..n]);
            let heat = u16::from(heat).wrapping_neg(); // 0xffff: the heat colour
            for k in 0..n {
                let edge = (centre[k] & !(left[k] & right[k] & up[k] & down[k])) >> 7;
                let keep = u16::from(edge).wrapping_sub(1); // 0xffff: not an edge
                let base = (u16::from(centre[k]) & heat) | (CLEAR & !heat);
                idx[k] = (base & keep) | (OUTLINE & !keep);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `src` over `dst` with alpha `a`, rounded.
    fn mix(src: u8, dst: u8, a: u8) -> u8 {
        let t = src as u32 * a as u32 + dst as u32 * (255 - a as u32) + 128;
        ((t + (t >> 8)) >> 8) as u8
    }

    fn scene<'a>(map: MapView<'a>, boxes: &'a [Rect]) -> Scene<'a> {
        Scene {
            roi: Rect::new(2, 2, 8, 8),
            map: Some(map),
            heatmap: true,
            outline: true,
            outline_width: 1,
            boxes,
            box_width: 1,
            box_colour: [0, 0, 255, 255],
            label: None,
        }
    }

    #[test]
    fn rect_maths() {
        let a = Rect::new(0, 0, 10, 10);
        let b = Rect::new(5, 5, 10, 10);
        assert_eq!(a.intersect(&b), Rect::new(5, 5, 5, 5));
        assert_eq!(a.union(&b), Rect::new(0, 0, 15, 15));
        assert!(a.intersect(&Rect::new(20, 20, 1, 1)).is_empty());
        let s = Scale::new((640, 480), (320, 240));
        assert_eq!(s.rect(200, 100, 120, 80), Rect::new(100, 50, 60, 40));
    }

    #[test]
    fn packed_and_layer_agree() {
        // A 4x4 map, hot in the middle.
        let mut m = [0u8; 16];
        for i in [5, 6, 9, 10] {
            m[i] = 255;
        }
        let map = MapView {
            data: &m,
            width: 4,
            height: 4,
        };
        let boxes = [Rect::new(3, 3, 6, 6)];
        let s = scene(map, &boxes);
        let heat: [Rgb; 256] = std::array::from_fn(|i| [i as u8, 0, 0]);
        let mut r = Renderer::default();

        let mut frame = vec![100u8; 12 * 12 * 3];
        let pal = Space::Rgb.palette(&heat, 128, [0, 255, 0]);
        r.draw(&mut Packed::<3>::new(&mut frame, 36, 12, 12), &s, &pal);
        let px = |x: usize, y: usize| &frame[(y * 12 + x) * 3..][..3];
        assert_eq!(px(0, 0), [100, 100, 100], "outside the roi");
        assert_eq!(px(3, 3), [0, 0, 255], "box");
        assert_eq!(px(2, 2), [mix(0, 100, 128); 3], "cold heat");
        let outline = (0..12)
            .flat_map(|y| (0..12).map(move |x| (x, y)))
            .filter(|&(x, y)| px(x, y) == [0, 255, 0])
            .count();
        assert!(outline > 0);

        let area = s.extent(Rect::new(0, 0, 12, 12));
        assert_eq!(area, Rect::new(2, 2, 8, 8));
        let mut layer = vec![0u8; 8 * 8 * 4];
        let pal = Space::Argb.palette(&heat, 128, [0, 255, 0]);
        r.draw(&mut Layer::new(&mut layer, area), &s, &pal);
        let lp = |x: usize, y: usize| {
            let p = &layer[((y - 2) * 8 + (x - 2)) * 4..][..4];
            [
                p[ARGB_ORDER[0]],
                p[ARGB_ORDER[1]],
                p[ARGB_ORDER[2]],
                p[ARGB_ORDER[3]],
            ]
        };
        assert_eq!(lp(3, 3), [0, 0, 255, 255]);
        assert_eq!(lp(2, 2), [0, 0, 0, 128]);
    }

    /// I420 and NV12 against a packed 4:4:4 frame whose chroma is constant per 2x2 block:
    /// luma matches everywhere, chroma at each block's top-left pixel.
    #[test]
    fn yuv420_matches_packed_444() {
        let (w, h) = (70usize, 37usize);
        let m: Vec<u8> = (0..9 * 7).map(|i| (i * 41 % 256) as u8).collect();
        let map = MapView {
            data: &m,
            width: 9,
            height: 7,
        };
        let boxes = [Rect::new(10, 8, 20, 12)];
        let mut s = scene(map, &boxes);
        (s.roi, s.box_width) = (Rect::new(3, 1, 61, 33), 2);
        let heat: [Rgb; 256] = std::array::from_fn(|i| [i as u8, 255 - i as u8, (i * 7) as u8]);
        let pal = Space::Yuv(YuvMatrix::BT709).palette(&heat, 150, [0, 255, 0]);
        let at = |x: usize, y: usize, c: usize| ((x * 7 + y * 13 + c * 29) % 200 + 20) as u8;
        let mut r = Renderer::default();

        let mut packed: Vec<u8> = (0..w * h)
            .flat_map(|p| {
                let (x, y) = (p % w, p / w);
                [at(x, y, 0), at(x & !1, y & !1, 1), at(x & !1, y & !1, 2), 0]
            })
            .collect();
        r.draw(
            &mut Packed::<4>::new(&mut packed, w * 4, w as u32, h as u32),
            &s,
            &pal,
        );

        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let luma: Vec<u8> = (0..w * h).map(|p| at(p % w, p / w, 0)).collect();
        let plane = |c| {
            (0..cw * ch)
                .map(|p| at(p % cw * 2, p / cw * 2, c))
                .collect::<Vec<u8>>()
        };
        for nv12 in [false, true] {
            let (mut y, mut u, mut v) = (luma.clone(), plane(1), plane(2));
            let mut uv: Vec<u8> = u.iter().zip(&v).flat_map(|(&a, &b)| [a, b]).collect();
            let chroma = if nv12 {
                Chroma::Interleaved(&mut uv)
            } else {
                Chroma::Planar(&mut u, &mut v)
            };
            let stride = if nv12 { 2 * cw } else { cw };
            let mut canvas = Yuv420::new(&mut y, w, chroma, stride, w as u32, h as u32);
            r.draw(&mut canvas, &s, &pal);
            for p in 0..w * h {
                assert_eq!(y[p], packed[p * 4], "luma at {p}, nv12 {nv12}");
            }
            for c in 0..cw * ch {
                let px = &packed[((c / cw * 2) * w + c % cw * 2) * 4..][..3];
                let got = if nv12 {
                    [uv[2 * c], uv[2 * c + 1]]
                } else {
                    [u[c], v[c]]
                };
                assert_eq!(got, [px[1], px[2]], "chroma block {c}, nv12 {nv12}");
            }
        }
    }

    /// The palette indices drawn, read back from an opaque palette (heat `[i, 0, 1]`,
    /// outline `[0, 255, 0]`) over a frame of `[0, 0, 7]` (clear), against the definition:
    /// map rows upsampled whole, then every pixel tested.
    #[test]
    fn indices_match_the_definition() {
        let (w, h) = (150usize, 90usize);
        let (mw, mh) = (23usize, 17usize);
        let m: Vec<u8> = (0..mw * mh)
            .map(|i| {
                if (i * 7919) % 5 < 2 {
                    200
                } else {
                    (i * 31 % 120) as u8
                }
            })
            .collect();
        let map = MapView {
            data: &m,
            width: mw,
            height: mh,
        };
        let heat: [Rgb; 256] = std::array::from_fn(|i| [i as u8, 0, 1]);
        let pal = Space::Rgb.palette(&heat, 255, [0, 255, 0]);
        let roi = Rect::new(-7, 5, 140, 100);
        let vis = roi.intersect(&Rect::new(0, 0, w as i32, h as i32));
        let (vw, vh) = (vis.w as usize, vis.h as usize);
        let mut up = Upsampler::default();
        up.begin(map, roi, vis);
        let mut values = vec![0u8; vw * vh];
        for (r, row) in values.chunks_exact_mut(vw).enumerate() {
            up.row(map, r, row);
        }
        let v = |r: usize, c: usize| values[r * vw + c];
        let mut renderer = Renderer::default();
        for t in [1usize, 2, 3, 6] {
            for (heatmap, outline) in [(true, true), (false, true), (true, false)] {
                let s = Scene {
                    roi,
                    map: Some(map),
                    heatmap,
                    outline,
                    outline_width: t as i32,
                    boxes: &[],
                    box_width: 1,
                    box_colour: [0; 4],
                    label: None,
                };
                let mut frame: Vec<u8> = [0, 0, 7].repeat(w * h);
                renderer.draw(
                    &mut Packed::<3>::new(&mut frame, w * 3, w as u32, h as u32),
                    &s,
                    &pal,
                );
                for r in 0..vh {
                    for c in 0..vw {
                        let mask = |r: usize, c: usize| v(r, c) >= 128;
                        let border = r < t || r + t >= vh || c < t || c + t >= vw;
                        let edge = mask(r, c)
                            && (border
                                || !mask(r - t, c)
                                || !mask(r + t, c)
                                || !mask(r, c - t)
                                || !mask(r, c + t));
                        let want = if outline && edge {
                            [0, 255, 0]
                        } else if heatmap {
                            [v(r, c), 0, 1]
                        } else {
                            [0, 0, 7]
                        };
                        let p = ((vis.y as usize + r) * w + vis.x as usize + c) * 3;
                        assert_eq!(
                            frame[p..p + 3],
                            want,
                            "pixel ({c}, {r}) of the roi, t {t}, heat map {heatmap}, outline {outline}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn yuv_entry() {
        let m = Space::Yuv(YuvMatrix::BT601);
        assert_eq!(m.entry([255, 255, 255], 1), [235, 128, 128, 1]);
        assert_eq!(m.entry([0, 0, 0], 1), [16, 128, 128, 1]);
        let red = m.entry([255, 0, 0], 1);
        assert_eq!(red[0], 81);
        assert_eq!(red[2], 240);
    }
}
