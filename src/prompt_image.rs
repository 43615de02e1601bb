//! Loading the prompt image (the photo of a good part) from a file.
//!
//! [`load_prompt`] decodes PNG, JPEG, BMP, TIFF and WebP to 8-bit RGB with errors that name
//! the file and say what is wrong. The image size is read from the header and checked
//! against a pixel limit before anything is decoded, and the decoder runs under memory
//! limits, so a small file claiming a huge size cannot exhaust memory.
//!
//! Conversion to RGB follows Pillow's `Image.convert("RGB")`, which the training code
//! applies: gray is replicated, alpha is dropped (not composited), palettes are expanded.
//! 16-bit samples keep their high byte, which is what Pillow does when it opens 16-bit RGB
//! or RGBA PNGs. For 16-bit grayscale Pillow differs: it opens it as mode `I;16` and
//! `convert("RGB")` saturates every value above 255 to white, which destroys the image; the
//! high byte is kept here too, as for colour.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageError, ImageFormat, ImageReader, Limits, Rgb, RgbImage};

/// A pixel limit for prompt images that any real photo passes (8K is 33 megapixels).
pub const DEFAULT_MAX_PROMPT_PIXELS: u64 = 64_000_000;

/// Why a prompt image cannot be loaded. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// No file at this path.
    #[error("prompt image {}: file not found", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but cannot be read (permissions, a directory, I/O error).
    #[error("prompt image {}: cannot read the file: {error}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// The file has zero bytes.
    #[error("prompt image {}: file is empty (0 bytes)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The content is not a known image format.
    #[error(
        "prompt image {}: not an image (unknown format; PNG, JPEG, BMP, TIFF and WebP are \
         supported)",
        path.display()
    )]
    NotAnImage {
        /// The file.
        path: PathBuf,
    },
    /// A known image format that this build cannot decode.
    #[error("prompt image {}: unsupported image: {reason}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The file ends before the image data does.
    #[error("prompt image {}: truncated {format} file: {reason}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Format name, such as `PNG`.
        format: String,
        /// What the decoder said.
        reason: String,
    },
    /// The image data is invalid.
    #[error("prompt image {}: corrupt {format} data: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Format name, such as `PNG`.
        format: String,
        /// What the decoder said.
        reason: String,
    },
    /// The image has more pixels than allowed.
    #[error(
        "prompt image {}: {width}x{height} is too large ({} pixels, the limit is {limit})",
        path.display(),
        *width as u64 * *height as u64
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The limit in pixels.
        limit: u64,
    },
}

/// Loads the image at `path` as 8-bit RGB, refusing images of more than `max_pixels`
/// pixels before decoding them (see [`DEFAULT_MAX_PROMPT_PIXELS`]).
pub fn load_prompt(path: &Path, max_pixels: u64) -> Result<RgbImage, PromptError> {
    let owned = || path.to_path_buf();
    let io_error = |error: io::Error| match error.kind() {
        io::ErrorKind::NotFound => PromptError::NotFound { path: owned() },
        _ => PromptError::Unreadable {
            path: owned(),
            error,
        },
    };

    let meta = fs::metadata(path).map_err(io_error)?;
    if !meta.is_file() {
        return Err(PromptError::Unreadable {
            path: owned(),
            error: io::Error::other("not a regular file"),
        });
    }
    if meta.len() == 0 {
        return Err(PromptError::Empty { path: owned() });
    }

    let open = || -> Result<_, PromptError> {
        let file = fs::File::open(path).map_err(io_error)?;
        Ok(io::BufReader::new(file))
    };
    decode(path, max_pixels, open, || fs::read(path).map_err(io_error))
}

/// Decodes a prompt image held in memory; `label` names it in errors. Same checks and
/// conversion as [`load_prompt`] (which the fuzz target exercises through this).
pub fn decode_prompt(bytes: &[u8], label: &Path, max_pixels: u64) -> Result<RgbImage, PromptError> {
    if bytes.is_empty() {
        return Err(PromptError::Empty {
            path: label.to_path_buf(),
        });
    }
    decode(
        label,
        max_pixels,
        || Ok(io::Cursor::new(bytes)),
        || Ok(bytes.to_vec()),
    )
}

/// Header check, then decoding under limits. `open` gives a fresh reader each time; `whole`
/// gives all the bytes (only needed for JPEG's end-of-image check).
fn decode<R: io::BufRead + io::Seek>(
    path: &Path,
    max_pixels: u64,
    open: impl Fn() -> Result<R, PromptError>,
    whole: impl Fn() -> Result<Vec<u8>, PromptError>,
) -> Result<RgbImage, PromptError> {
    let owned = || path.to_path_buf();
    let open = || -> Result<_, PromptError> {
        // The format comes from the content only (all supported formats have a magic
        // number): a text file named `.png` is "not an image", a PNG named `.jpg` is fine.
        let reader = ImageReader::new(open()?)
            .with_guessed_format()
            .map_err(|error| PromptError::Unreadable {
                path: owned(),
                error,
            })?;
        match reader.format() {
            Some(format) => Ok((reader, format)),
            None => Err(PromptError::NotAnImage { path: owned() }),
        }
    };

    // First pass: the header only.
    let (reader, format) = open()?;
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| decode_error(path, format, e))?;
    if width == 0 || height == 0 {
        return Err(PromptError::Corrupt {
            path: owned(),
            format: format_name(format),
            reason: format!("image size {width}x{height} is empty"),
        });
    }
    if width as u64 * height as u64 > max_pixels {
        return Err(PromptError::TooLarge {
            path: owned(),
            width,
            height,
            limit: max_pixels,
        });
    }

    // The JPEG decoder fills a truncated scan with gray instead of failing: look for the
    // end-of-image marker after the first scan (scan data cannot contain it: the encoder
    // escapes 0xFF bytes). Thumbnails in the metadata, before the scan, have their own.
    if format == ImageFormat::Jpeg {
        let bytes = whole()?;
        let scan = bytes.windows(2).position(|m| m == [0xff, 0xda]);
        let complete = scan.is_some_and(|at| bytes[at..].windows(2).any(|m| m == [0xff, 0xd9]));
        if !complete {
            return Err(PromptError::Truncated {
                path: owned(),
                format: format_name(format),
                reason: "the image data ends before the end-of-image marker".into(),
            });
        }
    }

    // Second pass: decode under limits derived from the (accepted) header size. 16 bytes
    // per pixel covers the widest decoded type (RGBA f32); the margin is for decoder state.
    let (mut reader, format) = open()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(
        (width as u64 * height as u64)
            .saturating_mul(16)
            .saturating_add(64 << 20),
    );
    reader.limits(limits);
    let img = reader.decode().map_err(|e| decode_error(path, format, e))?;
    Ok(to_rgb8(img))
}

/// Converts to 8-bit RGB like Pillow's `convert("RGB")`, keeping the high byte of 16-bit
/// samples (see the module documentation).
fn to_rgb8(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let high = |v: u16| (v >> 8) as u8;
    match img {
        DynamicImage::ImageLuma16(b) => {
            RgbImage::from_fn(w, h, |x, y| Rgb([high(b.get_pixel(x, y)[0]); 3]))
        }
        DynamicImage::ImageLumaA16(b) => {
            RgbImage::from_fn(w, h, |x, y| Rgb([high(b.get_pixel(x, y)[0]); 3]))
        }
        DynamicImage::ImageRgb16(b) => RgbImage::from_fn(w, h, |x, y| {
            let p = b.get_pixel(x, y).0;
            Rgb([high(p[0]), high(p[1]), high(p[2])])
        }),
        DynamicImage::ImageRgba16(b) => RgbImage::from_fn(w, h, |x, y| {
            let p = b.get_pixel(x, y).0;
            Rgb([high(p[0]), high(p[1]), high(p[2])])
        }),
        DynamicImage::ImageRgb8(b) => b,
        other => other.to_rgb8(),
    }
}

fn format_name(format: ImageFormat) -> String {
    format!("{format:?}").to_uppercase()
}

/// Classifies a decoder error: truncation, unsupported, too large, or corrupt data.
fn decode_error(path: &Path, format: ImageFormat, error: ImageError) -> PromptError {
    let path = path.to_path_buf();
    let format_name = format_name(format);
    let reason = error.to_string();
    match error {
        ImageError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            PromptError::Truncated {
                path,
                format: format_name,
                reason,
            }
        }
        ImageError::IoError(error) => PromptError::Unreadable { path, error },
        ImageError::Unsupported(_) => PromptError::Unsupported { path, reason },
        _ if is_truncation(&reason) => PromptError::Truncated {
            path,
            format: format_name,
            reason,
        },
        _ => PromptError::Corrupt {
            path,
            format: format_name,
            reason,
        },
    }
}

/// Decoders report a premature end of data in their own words.
fn is_truncation(reason: &str) -> bool {
    let reason = reason.to_lowercase();
    [
        "end of file",
        "eof",
        "truncated",
        "not enough data",
        "not enough bytes",
        "unexpected end",
    ]
    .iter()
    .any(|s| reason.contains(s))
}
