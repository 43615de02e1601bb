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
#[derive(Debug, Default)]
pub struct Regions {
    labels: Vec<u32>,
    stack: Vec<u32>,
    found: Vec<Region>,
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
        self.found.clear();
        self.labels.clear();
        self.labels.resize(n, 0);
        let w = size as i64;
        let mut next_label = 0u32;
        for start in 0..n {
            if self.labels[start] != 0 || map[start] <= threshold {
                continue;
            }
            next_label += 1;
            self.labels[start] = next_label;
            self.stack.clear();
            self.stack.push(start as u32);
            let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
            let mut peak = f32::MIN;
            let mut area = 0u32;
            while let Some(i) = self.stack.pop() {
                let (x, y) = (i % size, i / size);
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
                peak = peak.max(map[i as usize]);
                area += 1;
                for dy in -1i64..=1 {
                    for dx in -1i64..=1 {
                        let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                        if (dx, dy) == (0, 0) || nx < 0 || ny < 0 || nx >= w || ny >= w {
                            continue;
                        }
                        let j = (ny * w + nx) as usize;
                        if self.labels[j] == 0 && map[j] > threshold {
                            self.labels[j] = next_label;
                            self.stack.push(j as u32);
                        }
                    }
                }
            }
            if area >= min_area {
                self.found.push(Region {
                    x: x0,
                    y: y0,
                    width: x1 - x0 + 1,
                    height: y1 - y0 + 1,
                    peak,
                    area,
                });
            }
        }
        self.found
            .sort_unstable_by(|a, b| b.peak.total_cmp(&a.peak));
        self.found.truncate(max_regions);
        &self.found
    }
}

/// Maps anomaly values to 8 bits: `u8 = round(value / scale)`, clamped to 0..=255.
/// `value ≈ u8 * scale` reads it back.
pub fn quantize_map(map: &[f32], scale: f32, out: &mut [u8]) {
    assert_eq!(map.len(), out.len());
    let inv = 1.0 / scale;
    for (o, &v) in out.iter_mut().zip(map) {
        *o = (v * inv).round().clamp(0.0, 255.0) as u8;
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
    }
}
