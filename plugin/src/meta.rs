// SPDX-License-Identifier: MIT OR Apache-2.0

//! `OnenipAnomalyMeta`: the result attached to every buffer leaving `onenipdetect`.
//!
//! GStreamer 1.22 has no analytics library, so the result is a `GstCustomMeta` whose
//! structure any language can read (from Python: `buf.get_custom_meta("OnenipAnomalyMeta")
//! .get_structure()`). [`AnomalyMeta`] is the typed Rust view of that structure. Each
//! anomalous region is also attached as a standard `GstVideoRegionOfInterestMeta` of type
//! `anomaly` with an `onenip` parameter structure holding its peak score.

use gst::prelude::*;

/// Name the custom meta is registered under.
pub const META_NAME: &str = "OnenipAnomalyMeta";
/// `GstVideoRegionOfInterestMeta` type of the anomalous regions.
pub const ROI_TYPE: &str = "anomaly";
/// Name of the parameter structure on those region metas.
pub const ROI_PARAM: &str = "onenip";

/// Registers the custom meta (idempotent). Called when the plugin loads.
pub fn register() {
    if !gst::meta::CustomMeta::is_registered(META_NAME) {
        // No tags: the meta describes the whole frame and survives conversion and scaling
        // (it records the frame size it refers to).
        gst::meta::CustomMeta::register(META_NAME, &[]);
    }
}

/// A box in frame pixels with its peak anomaly value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub peak: f32,
}

impl RegionBox {
    pub const STRUCTURE_NAME: &'static str = "region";

    /// The regions of an anomaly map (`size` x `size` over `roi`, x, y, w, h in frame
    /// pixels) above `pixel_threshold`, as boxes in frame pixels, highest peak first.
    pub fn find(
        regions: &mut onenip::postprocess::Regions,
        map: &[f32],
        size: u32,
        pixel_threshold: f32,
        roi: (u32, u32, u32, u32),
    ) -> Vec<RegionBox> {
        use onenip::postprocess::{MAX_REGIONS, MIN_REGION_AREA};
        regions
            .find(map, size, pixel_threshold, MIN_REGION_AREA, MAX_REGIONS)
            .iter()
            .map(|r| {
                let (x, y, width, height) = r.to_frame(size, roi);
                RegionBox {
                    x,
                    y,
                    width,
                    height,
                    peak: r.peak,
                }
            })
            .collect()
    }

    pub fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(Self::STRUCTURE_NAME)
            .field("x", self.x)
            .field("y", self.y)
            .field("width", self.width)
            .field("height", self.height)
            .field("peak", self.peak)
            .build()
    }

    pub fn from_structure(s: &gst::StructureRef) -> Result<Self, glib::BoolError> {
        let get_u32 = |name: &str| {
            s.get::<u32>(name)
                .map_err(|e| glib::bool_error!("region field {name}: {e}"))
        };
        Ok(Self {
            x: get_u32("x")?,
            y: get_u32("y")?,
            width: get_u32("width")?,
            height: get_u32("height")?,
            peak: s
                .get::<f32>("peak")
                .map_err(|e| glib::bool_error!("region field peak: {e}"))?,
        })
    }

    pub fn to_array(regions: &[RegionBox]) -> gst::Array {
        gst::Array::new(regions.iter().map(|r| r.to_structure().to_send_value()))
    }

    pub fn from_array(array: &[glib::SendValue]) -> Result<Vec<RegionBox>, glib::BoolError> {
        let mut regions = Vec::with_capacity(array.len());
        Self::read_array(array, &mut regions)?;
        Ok(regions)
    }

    /// Reads the regions of `array` into `regions` (cleared first), borrowing the
    /// structures instead of copying them.
    pub fn read_array(
        array: &[glib::SendValue],
        regions: &mut Vec<RegionBox>,
    ) -> Result<(), glib::BoolError> {
        regions.clear();
        for v in array {
            let s = v
                .get::<&gst::StructureRef>()
                .map_err(|e| glib::bool_error!("region is not a structure: {e}"))?;
            regions.push(RegionBox::from_structure(s)?);
        }
        Ok(())
    }
}

/// The typed content of `OnenipAnomalyMeta`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnomalyMeta {
    /// Image score (max of the 16x16-pooled anomaly map).
    pub score: f32,
    /// `score > image_threshold`.
    pub anomalous: bool,
    pub image_threshold: f32,
    pub pixel_threshold: f32,
    /// The inspected part of the frame: x, y, width, height in frame pixels.
    pub roi: (u32, u32, u32, u32),
    /// The frame size every coordinate here refers to.
    pub frame_width: u32,
    pub frame_height: u32,
    /// The anomaly map over the roi, GRAY8, `map_width` x `map_height`, tightly packed;
    /// value = byte * `map_scale`.
    pub map: Option<gst::Buffer>,
    pub map_width: u32,
    pub map_height: u32,
    pub map_scale: f32,
    /// Regions above the pixel threshold, in frame pixels, highest peak first.
    pub regions: Vec<RegionBox>,
    /// True when this frame was not inferred (inference-interval, QoS) and carries the last
    /// result.
    pub stale: bool,
    /// Time spent on this frame's inference (pre-processing, models, post-processing).
    pub latency: gst::ClockTime,
    /// Execution provider that ran the models.
    pub provider: String,
    /// The prompt this frame was compared with: its file, or `capture`.
    pub prompt: String,
}

impl AnomalyMeta {
    pub fn to_structure(&self) -> gst::Structure {
        let mut s = gst::Structure::new_empty(META_NAME);
        self.write_fields(&mut s);
        s
    }

    /// Writes every field into `s` (the meta's own structure: no intermediate copy).
    fn write_fields(&self, s: &mut gst::StructureRef) {
        let (rx, ry, rw, rh) = self.roi;
        s.set("score", self.score);
        s.set("anomalous", self.anomalous);
        s.set("image-threshold", self.image_threshold);
        s.set("pixel-threshold", self.pixel_threshold);
        s.set("roi-x", rx);
        s.set("roi-y", ry);
        s.set("roi-width", rw);
        s.set("roi-height", rh);
        s.set("frame-width", self.frame_width);
        s.set("frame-height", self.frame_height);
        if let Some(map) = &self.map {
            s.set("map", map);
        }
        s.set("map-width", self.map_width);
        s.set("map-height", self.map_height);
        s.set("map-scale", self.map_scale);
        s.set("regions", RegionBox::to_array(&self.regions));
        s.set("stale", self.stale);
        s.set("latency", self.latency);
        s.set("provider", &self.provider);
        s.set("prompt", &self.prompt);
    }

    pub fn from_structure(s: &gst::StructureRef) -> Result<Self, glib::BoolError> {
        let mut meta = Self::default();
        meta.read_structure(s)?;
        Ok(meta)
    }

    /// Reads `s` into `self`, reusing its strings and region list: a reader that keeps one
    /// `AnomalyMeta` reads every frame's result without allocating. On an error, `self` is
    /// left partly updated.
    pub fn read_structure(&mut self, s: &gst::StructureRef) -> Result<(), glib::BoolError> {
        macro_rules! get {
            ($name:literal) => {
                s.get($name)
                    .map_err(|e| glib::bool_error!("{} field {}: {}", META_NAME, $name, e))?
            };
        }
        self.score = get!("score");
        self.anomalous = get!("anomalous");
        self.image_threshold = get!("image-threshold");
        self.pixel_threshold = get!("pixel-threshold");
        self.roi = (
            get!("roi-x"),
            get!("roi-y"),
            get!("roi-width"),
            get!("roi-height"),
        );
        self.frame_width = get!("frame-width");
        self.frame_height = get!("frame-height");
        self.map = s
            .get_optional("map")
            .map_err(|e| glib::bool_error!("{META_NAME} field map: {e}"))?;
        self.map_width = get!("map-width");
        self.map_height = get!("map-height");
        self.map_scale = get!("map-scale");
        let regions: gst::ArrayRef = get!("regions");
        RegionBox::read_array(&regions, &mut self.regions)?;
        self.stale = get!("stale");
        self.latency = get!("latency");
        for (field, value) in [
            (&mut self.provider, get!("provider")),
            (&mut self.prompt, get!("prompt")),
        ] {
            field.clear();
            field.push_str(value);
        }
        Ok(())
    }

    /// Attaches this result to `buffer`: the custom meta, plus one region-of-interest meta
    /// per region.
    pub fn attach(&self, buffer: &mut gst::BufferRef) -> Result<(), glib::BoolError> {
        {
            let mut meta = gst::meta::CustomMeta::add(buffer, META_NAME)?;
            self.write_fields(meta.mut_structure());
        }
        for (id, r) in self.regions.iter().enumerate() {
            let mut roi = gst_video::VideoRegionOfInterestMeta::add(
                buffer,
                ROI_TYPE,
                (r.x, r.y, r.width, r.height),
            );
            // GStreamer gives every ROI meta id 0; readers look regions up by id (PyGObject
            // cannot iterate metas), so number them 0..n-1 in region order.
            roi.set_id(id as i32);
            roi.add_param(
                gst::Structure::builder(ROI_PARAM)
                    .field("score", r.peak)
                    .field("image-score", self.score)
                    .build(),
            );
        }
        Ok(())
    }

    /// Reads the result attached to `buffer`, if any.
    pub fn from_buffer(buffer: &gst::BufferRef) -> Option<Result<Self, glib::BoolError>> {
        let mut meta = Self::default();
        Some(meta.read_buffer(buffer)?.map(|()| meta))
    }

    /// Reads the result attached to `buffer` into `self` (see [`Self::read_structure`]);
    /// `None` when the buffer has none.
    pub fn read_buffer(&mut self, buffer: &gst::BufferRef) -> Option<Result<(), glib::BoolError>> {
        let meta = gst::meta::CustomMeta::from_buffer(buffer, META_NAME).ok()?;
        Some(self.read_structure(meta.structure()))
    }

    /// The anomaly map's bytes, if present.
    pub fn map_bytes(&self) -> Option<gst::buffer::MappedBuffer<gst::buffer::Readable>> {
        self.map.clone()?.into_mapped_buffer_readable().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(score: f32, regions: usize, provider: &str) -> AnomalyMeta {
        AnomalyMeta {
            score,
            anomalous: score > 0.5,
            image_threshold: 0.5,
            pixel_threshold: 0.4,
            roi: (1, 2, 300, 200),
            frame_width: 320,
            frame_height: 240,
            map: Some(gst::Buffer::from_slice(vec![score as u8; 16])),
            map_width: 4,
            map_height: 4,
            map_scale: 0.01,
            regions: (0..regions as u32)
                .map(|i| RegionBox {
                    x: i,
                    y: 2 * i,
                    width: 10 + i,
                    height: 5,
                    peak: score - i as f32,
                })
                .collect(),
            stale: regions == 0,
            latency: gst::ClockTime::from_mseconds(7),
            provider: provider.into(),
            prompt: "prompt.png".into(),
        }
    }

    fn attached(meta: &AnomalyMeta) -> gst::Buffer {
        let mut buffer = gst::Buffer::new();
        meta.attach(buffer.get_mut().unwrap()).unwrap();
        buffer
    }

    #[test]
    fn a_reader_reads_every_result_into_the_same_buffers() {
        gst::init().unwrap();
        register();
        let (first, second) = (result(90.0, 3, "tensorrt"), result(0.2, 2, "cpu"));
        let mut read = AnomalyMeta::default();
        read.read_buffer(&attached(&first)).unwrap().unwrap();
        assert_eq!(read, first);
        let (provider, regions) = (read.provider.as_ptr(), read.regions.as_ptr());
        read.read_buffer(&attached(&second)).unwrap().unwrap();
        assert_eq!(read, second);
        assert_eq!(
            read.provider.as_ptr(),
            provider,
            "the string was reallocated"
        );
        assert_eq!(
            read.regions.as_ptr(),
            regions,
            "the region list was reallocated"
        );
        assert_eq!(
            AnomalyMeta::from_buffer(&attached(&second))
                .unwrap()
                .unwrap(),
            second
        );
        assert!(read.read_buffer(&gst::Buffer::new()).is_none());
    }
}
