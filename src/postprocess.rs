//! From the model's anomaly map to what users read: the 8-bit map and the anomalous regions.
//!
//! Buffers are owned by [`Regions`] and reused from frame to frame, so that the per-frame
//! work allocates nothing once the first frames have grown them.

/// Regions smaller than this many anomaly-map pixels are noise, not defects.
pub const MIN_REGION_AREA: u32 = 4;
/// At most this many regions per frame are reported.
pub const MAX_REGIONS: usize = 16;

/// An anomalous region: a box in anomaly-map pixels and its highest anomaly value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// Highest anomaly-map value inside the region.
    pub peak: f32,
    /// Number of map pixels above the threshold.
    pub area: u32,
}

impl Region {
    /// The box scaled from a `map_size` x `map_size` map onto `roi` (x, y, w, h in frame
    /// pixels), rounded outwards so that the box covers every pixel it touches.
    pub fn to_frame(&self, map_size: u32, roi: (u32, u32, u32, u32)) -> (u32, u32, u32, u32) {
        let (rx, ry, rw, rh) = roi;
        let sx = rw as f64 / map_size as f64;
        let sy = rh as f64 / map_size as f64;
        let x0 = (self.x as f64 * sx).floor() as u32;
        let y0 = (self.y as f64 * sy).floor() as u32;
        let x1 = (((self.x + self.width) as f64 * sx).ceil() as u32).min(rw);
        let y1 = (((self.y + self.height) as f64 * sy).ceil() as u32).min(rh);
        (rx + x0, ry + y0, x1 - x0, y1 - y0)
    }
}

/// Connected regions of an anomaly map above a threshold (8-connectivity), largest peak
/// first, at most `max_regions`.
///
/// Labels runs, not pixels: each row's runs above the threshold are joined (union-find) with
/// the runs of the row above that touch them, so the cost follows the number of runs. A frame
/// that is anomalous almost everywhere (a wrong prompt, a covered lens) costs little more than
/// a clean one.
#[derive(Debug, Default)]
pub struct Regions {
    runs: Vec<Run>,
    parent: Vec<u32>,
    slot: Vec<u32>,
    found: Vec<Region>,
}

/// Pixels `x0..=x1` of row `y` above the threshold, with their highest value.
#[derive(Debug, Clone, Copy)]
struct Run {
    y: u32,
    x0: u32,
    x1: u32,
    peak: f32,
}

impl Regions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Finds the regions of `map` (`size` x `size`, row-major) whose values exceed
    /// `threshold`; regions smaller than `min_area` map pixels are dropped as noise.
    pub fn find(
        &mut self,
        map: &[f32],
        size: u32,
        threshold: f32,
        min_area: u32,
        max_regions: usize,
    ) -> &[Region] {
        let n = (size * size) as usize;
        assert_eq!(map.len(), n, "map is not {size}x{size}");
        self.runs.clear();
        self.parent.clear();
        self.found.clear();
        if size == 0 {
            return &self.found;
        }
        let mut above_start = 0; // first run of the previous row
        for (y, row) in map.chunks_exact(size as usize).enumerate() {
            let row_start = self.runs.len();
            let mut x = 0;
            while x < row.len() {
                if row[x] <= threshold {
                    x += 1;
                    continue;
                }
                let x0 = x;
                let mut peak = row[x];
                x += 1;
                while x < row.len() && row[x] > threshold {
                    peak = peak.max(row[x]);
                    x += 1;
                }
                self.runs.push(Run {
                    y: y as u32,
                    x0: x0 as u32,
                    x1: (x - 1) as u32,
                    peak,
                });
                self.parent.push(self.parent.len() as u32);
            }
            // Join each new run with the runs above that touch it, diagonals included. Both
            // rows are sorted by x, so one forward pass over the row above suffices.
            let mut a = above_start;
            for r in row_start..self.runs.len() {
                let Run { x0, x1, .. } = self.runs[r];
                while a < row_start && self.runs[a].x1 + 1 < x0 {
                    a += 1;
                }
                let mut b = a;
                while b < row_start && self.runs[b].x0 <= x1 + 1 {
                    union(&mut self.parent, r as u32, b as u32);
                    b += 1;
                }
            }
            above_start = row_start;
        }

        // One region per set, in the order of its first run (raster order). The root of a
        // set is its earliest run, so it is met before the others.
        self.slot.clear();
        self.slot.resize(self.runs.len(), 0);
        for r in 0..self.runs.len() {
            let root = find_root(&mut self.parent, r as u32) as usize;
            let run = self.runs[r];
            let len = run.x1 - run.x0 + 1;
            if root == r {
                self.slot[r] = self.found.len() as u32;
                self.found.push(Region {
                    x: run.x0,
                    y: run.y,
                    width: run.x1 + 1, // x1 + 1 and y1 + 1 until the boxes are final
                    height: run.y + 1,
                    peak: run.peak,
                    area: len,
                });
            } else {
                let g = &mut self.found[self.slot[root] as usize];
                g.x = g.x.min(run.x0);
                g.width = g.width.max(run.x1 + 1);
                g.height = g.height.max(run.y + 1);
                g.peak = g.peak.max(run.peak);
                g.area += len;
            }
        }
        for g in &mut self.found {
            g.width -= g.x;
            g.height -= g.y;
        }
        self.found.retain(|g| g.area >= min_area);
        self.found
            .sort_by(|a, b| b.peak.total_cmp(&a.peak).then((a.y, a.x).cmp(&(b.y, b.x))));
        self.found.truncate(max_regions);
        &self.found
    }
}

/// The root of `i`, halving the path on the way.
fn find_root(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let up = parent[parent[i as usize] as usize];
        parent[i as usize] = up;
        i = up;
    }
    i
}

/// Joins the sets of `a` and `b`; the lower index (the earlier run) stays the root.
fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find_root(parent, a), find_root(parent, b));
    if ra != rb {
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
    }
}

/// Maps anomaly values to 8 bits: `u8 = round(value / scale)`, clamped to 0..=255.
/// `value ≈ u8 * scale` reads it back.
pub fn quantize_map(map: &[f32], scale: f32, out: &mut [u8]) {
    assert_eq!(map.len(), out.len());
    let inv = 1.0 / scale;
    for (o, &v) in out.iter_mut().zip(map) {
        // round() half away from zero, written so that it vectorises (f32::round is a libm
        // call per value without SSE4.1): clamp first, then truncate (NaN becomes 0) and
        // add one where the fraction is at least a half.
        let t = (v * inv).clamp(0.0, 255.0);
        let whole = t as u32;
        *o = (whole + u32::from(t - whole as f32 >= 0.5)) as u8;
    }
}

/// The value scale used for the 8-bit map: the pixel threshold lands at 128, so that the
/// gray map shows twice the threshold range before saturating.
pub fn map_scale(pixel_threshold: f32) -> f32 {
    if pixel_threshold.is_finite() && pixel_threshold > 0.0 {
        pixel_threshold / 128.0
    } else {
        1.0 / 255.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_two_regions_with_boxes_and_peaks() {
        let size = 8;
        let mut map = vec![0.0f32; 64];
        // A 2x2 blob at (1,1) peaking at 5, and a diagonal pair at (5,5),(6,6) (8-connected).
        for (x, y, v) in [
            (1, 1, 3.0),
            (2, 1, 5.0),
            (1, 2, 2.0),
            (2, 2, 2.5),
            (5, 5, 4.0),
            (6, 6, 1.5),
        ] {
            map[y * 8 + x] = v;
        }
        let mut regions = Regions::new();
        let found = regions.find(&map, size, 1.0, 1, 10).to_vec();
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0],
            Region {
                x: 1,
                y: 1,
                width: 2,
                height: 2,
                peak: 5.0,
                area: 4
            }
        );
        assert_eq!(
            found[1],
            Region {
                x: 5,
                y: 5,
                width: 2,
                height: 2,
                peak: 4.0,
                area: 2
            }
        );
        // Minimum area and maximum count.
        assert_eq!(regions.find(&map, size, 1.0, 3, 10).len(), 1);
        assert_eq!(regions.find(&map, size, 1.0, 1, 1)[0].peak, 5.0);
        assert!(regions.find(&map, size, 10.0, 1, 10).is_empty());
    }

    /// Pixel flood fill, the plain definition of 8-connected regions.
    fn flood_fill(map: &[f32], size: u32, threshold: f32, min_area: u32) -> Vec<Region> {
        let w = size as i64;
        let mut seen = vec![false; map.len()];
        let mut out = Vec::new();
        for start in 0..map.len() {
            if seen[start] || map[start] <= threshold {
                continue;
            }
            seen[start] = true;
            let mut stack = vec![start];
            let (mut x0, mut y0, mut x1, mut y1, mut peak, mut area) =
                (u32::MAX, u32::MAX, 0, 0, f32::MIN, 0);
            while let Some(i) = stack.pop() {
                let (x, y) = ((i as i64 % w) as u32, (i as i64 / w) as u32);
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                peak = peak.max(map[i]);
                area += 1;
                for (dx, dy) in (-1..=1).flat_map(|dy| (-1..=1).map(move |dx| (dx, dy))) {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if (0..w).contains(&nx) && (0..w).contains(&ny) {
                        let j = (ny * w + nx) as usize;
                        if !seen[j] && map[j] > threshold {
                            seen[j] = true;
                            stack.push(j);
                        }
                    }
                }
            }
            if area >= min_area {
                out.push(Region {
                    x: x0,
                    y: y0,
                    width: x1 - x0 + 1,
                    height: y1 - y0 + 1,
                    peak,
                    area,
                });
            }
        }
        out.sort_by(|a, b| b.peak.total_cmp(&a.peak).then((a.y, a.x).cmp(&(b.y, b.x))));
        out
    }

    #[test]
    fn run_labelling_matches_a_flood_fill() {
        // U and spiral shapes join late; noise at several densities, up to nearly all above.
        let mut seed = 0x2545_f491_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut regions = Regions::new();
        for size in [1u32, 2, 7, 32, 64] {
            for density in [0.05f32, 0.3, 0.5, 0.7, 0.95] {
                let map: Vec<f32> = (0..size * size)
                    .map(|_| {
                        if next() < density {
                            1.0 + next()
                        } else {
                            next() * 0.5
                        }
                    })
                    .collect();
                for min_area in [1, 4] {
                    let want = flood_fill(&map, size, 0.9, min_area);
                    let got = regions.find(&map, size, 0.9, min_area, usize::MAX);
                    assert_eq!(got, &want[..], "size {size} density {density}");
                }
            }
        }
        // A U: two columns joined only by the bottom row.
        let mut map = vec![0.0f32; 25];
        for y in 0..5 {
            map[y * 5] = 2.0;
            map[y * 5 + 4] = 3.0;
        }
        for x in 0..5 {
            map[20 + x] = 1.5;
        }
        assert_eq!(
            regions.find(&map, 5, 1.0, 1, 16),
            &[Region {
                x: 0,
                y: 0,
                width: 5,
                height: 5,
                peak: 3.0,
                area: 13
            }]
        );
    }

    #[test]
    fn region_maps_onto_the_roi_in_frame_pixels() {
        let r = Region {
            x: 64,
            y: 128,
            width: 64,
            height: 32,
            peak: 1.0,
            area: 1,
        };
        // A 256 map over a 1024x512 roi at (100, 50).
        assert_eq!(r.to_frame(256, (100, 50, 1024, 512)), (356, 306, 256, 64));
        let edge = Region {
            x: 255,
            y: 255,
            width: 1,
            height: 1,
            peak: 1.0,
            area: 1,
        };
        assert_eq!(edge.to_frame(256, (0, 0, 100, 100)), (99, 99, 1, 1));
    }

    #[test]
    fn quantizes_with_the_threshold_at_128() {
        let scale = map_scale(2.0);
        let mut out = [0u8; 4];
        quantize_map(&[0.0, 2.0, 4.0, 100.0], scale, &mut out);
        assert_eq!(out, [0, 128, 255, 255]);
        // Rounding as f32::round, saturating at both ends, NaN as 0.
        let values = [
            0.49,
            0.5,
            2.5,
            127.5,
            254.49,
            254.5,
            255.7,
            -0.6,
            -3.0,
            f32::NAN,
        ];
        let mut got = [0u8; 10];
        quantize_map(&values, 1.0, &mut got);
        let want = values.map(|v| v.round().clamp(0.0, 255.0) as u8);
        assert_eq!(got, want);
        assert_eq!(got, [0, 1, 3, 128, 254, 255, 255, 0, 0, 0]);
    }
}
