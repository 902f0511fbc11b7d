//! A plain interleaved f32 image, the currency between the plugin, the cache, the pipeline and the CLI.
//!
//! Pixels are stored row-major, top row first, `channels` values per pixel. Values are nominally in [0, 1]
//! (display-referred, sRGB-encoded unless a caller says otherwise); nothing here clamps silently except the
//! 8/16-bit writers, which must.

use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ImageError {
    #[error("cannot read image {path}: {source}")]
    Read {
        path: String,
        source: image::ImageError,
    },
    #[error("cannot write image {path}: {source}")]
    Write {
        path: String,
        source: image::ImageError,
    },
    #[error("image buffer has {got} values, expected {width}x{height}x{channels} = {expected}")]
    BadLength {
        width: usize,
        height: usize,
        channels: usize,
        got: usize,
        expected: usize,
    },
    #[error("unsupported channel count {0} (expected 3 or 4)")]
    Channels(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ImageF32 {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<f32>,
}

impl ImageF32 {
    pub fn new(width: usize, height: usize, channels: usize) -> Self {
        Self {
            width,
            height,
            channels,
            data: vec![0.0; width * height * channels],
        }
    }

    pub fn from_vec(
        width: usize,
        height: usize,
        channels: usize,
        data: Vec<f32>,
    ) -> Result<Self, ImageError> {
        let expected = width * height * channels;
        if data.len() != expected {
            return Err(ImageError::BadLength {
                width,
                height,
                channels,
                got: data.len(),
                expected,
            });
        }
        Ok(Self {
            width,
            height,
            channels,
            data,
        })
    }

    #[inline]
    pub fn pixel(&self, x: usize, y: usize) -> &[f32] {
        self.pixel_row(y, x, 1)
    }

    #[inline]
    pub fn pixel_mut(&mut self, x: usize, y: usize) -> &mut [f32] {
        self.pixel_row_mut(y, x, 1)
    }

    /// `n` pixels of row `y` from column `x`.
    #[inline]
    fn pixel_row(&self, y: usize, x: usize, n: usize) -> &[f32] {
        let start = (y * self.width + x) * self.channels;
        &self.data[start..start + n * self.channels]
    }

    #[inline]
    fn pixel_row_mut(&mut self, y: usize, x: usize, n: usize) -> &mut [f32] {
        let start = (y * self.width + x) * self.channels;
        &mut self.data[start..start + n * self.channels]
    }

    /// Drops or adds an alpha channel (added alpha is opaque).
    pub fn to_channels(&self, channels: usize) -> Result<Self, ImageError> {
        if !(channels == 3 || channels == 4) {
            return Err(ImageError::Channels(channels));
        }
        if channels == self.channels {
            return Ok(self.clone());
        }
        let mut out = Self::new(self.width, self.height, channels);
        for (src, dst) in self
            .data
            .chunks_exact(self.channels)
            .zip(out.data.chunks_exact_mut(channels))
        {
            dst[..3].copy_from_slice(&src[..3]);
            if channels == 4 {
                dst[3] = 1.0;
            }
        }
        Ok(out)
    }

    /// Reads a PNG (8 or 16 bit, any colour type) as RGB or RGBA in [0, 1], or an OpenEXR file as its float
    /// values (scene-linear by convention: see `is_linear_file`).
    pub fn read_png(path: &Path) -> Result<Self, ImageError> {
        let dynimg = image::open(path).map_err(|source| ImageError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let has_alpha = dynimg.color().has_alpha();
        if has_alpha {
            let buf = dynimg.to_rgba32f();
            let (w, h) = buf.dimensions();
            Ok(Self {
                width: w as usize,
                height: h as usize,
                channels: 4,
                data: buf.into_raw(),
            })
        } else {
            let buf = dynimg.to_rgb32f();
            let (w, h) = buf.dimensions();
            Ok(Self {
                width: w as usize,
                height: h as usize,
                channels: 3,
                data: buf.into_raw(),
            })
        }
    }

    /// Writes an 8-bit PNG. Values are clamped to [0, 1] and rounded to nearest, so the same image always
    /// produces the same bytes.
    pub fn write_png(&self, path: &Path) -> Result<(), ImageError> {
        let bytes: Vec<u8> = self.data.iter().map(|&v| to_u8(v)).collect();
        let color = match self.channels {
            3 => image::ExtendedColorType::Rgb8,
            4 => image::ExtendedColorType::Rgba8,
            c => return Err(ImageError::Channels(c)),
        };
        image::save_buffer(path, &bytes, self.width as u32, self.height as u32, color).map_err(
            |source| ImageError::Write {
                path: path.display().to_string(),
                source,
            },
        )
    }

    /// Writes a 32-bit float OpenEXR file (RGB or RGBA), values as they are.
    pub fn write_exr(&self, path: &Path) -> Result<(), ImageError> {
        let err = |source| ImageError::Write {
            path: path.display().to_string(),
            source,
        };
        let (w, h) = (self.width as u32, self.height as u32);
        let img = match self.channels {
            3 => image::DynamicImage::ImageRgb32F(
                image::ImageBuffer::from_raw(w, h, self.data.clone()).expect("length checked"),
            ),
            4 => image::DynamicImage::ImageRgba32F(
                image::ImageBuffer::from_raw(w, h, self.data.clone()).expect("length checked"),
            ),
            c => return Err(ImageError::Channels(c)),
        };
        img.save_with_format(path, image::ImageFormat::OpenExr)
            .map_err(err)
    }
}

/// Whether a file holds scene-linear values (OpenEXR) rather than display-referred ones (PNG).
pub fn is_linear_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("exr"))
}

/// Linear → sRGB-encoded (the IEC 61966-2-1 curve); negatives map to 0, values above 1 stay above 1.
pub fn srgb_encode(l: f32) -> f32 {
    if l <= 0.003_130_8 {
        l.max(0.0) * 12.92
    } else {
        1.055 * l.powf(1.0 / 2.4) - 0.055
    }
}

/// sRGB-encoded → linear.
pub fn srgb_decode(v: f32) -> f32 {
    if v <= 0.040_45 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

/// [0,1] float → 8-bit code value, round-to-nearest; NaN maps to 0 so a bad pixel can never panic a cast.
#[inline]
pub fn to_u8(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_u8_rounds_and_clamps() {
        assert_eq!(to_u8(0.0), 0);
        assert_eq!(to_u8(1.0), 255);
        assert_eq!(to_u8(0.5), 128);
        assert_eq!(to_u8(-3.0), 0);
        assert_eq!(to_u8(7.0), 255);
        assert_eq!(to_u8(f32::NAN), 0);
        assert_eq!(to_u8(1.0 / 255.0 * 17.49), 17);
    }

    #[test]
    fn png_round_trip_is_exact_for_code_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut img = ImageF32::new(5, 3, 4);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = ((i * 37) % 256) as f32 / 255.0;
        }
        let p = dir.path().join("x.png");
        img.write_png(&p).unwrap();
        let back = ImageF32::read_png(&p).unwrap();
        assert_eq!((back.width, back.height, back.channels), (5, 3, 4));
        for (a, b) in img.data.iter().zip(&back.data) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn srgb_round_trip() {
        for i in 0..=100 {
            let v = i as f32 / 100.0;
            assert!((srgb_decode(srgb_encode(v)) - v).abs() < 1e-5, "{v}");
        }
        assert!((srgb_encode(0.5) - 0.735_356_6).abs() < 1e-5);
        assert_eq!(srgb_encode(-0.2), 0.0);
    }

    #[test]
    fn exr_round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let img = ImageF32::from_vec(
            3,
            2,
            3,
            vec![
                0.0, 0.25, 1.0, 2.5, -0.125, 1e-4, 0.3, 0.7, 0.9, 4.0, 0.5, 0.01, 0.2, 0.4, 0.6,
                0.8, 1.2, 1.4,
            ],
        )
        .unwrap();
        let p = dir.path().join("x.exr");
        img.write_exr(&p).unwrap();
        assert!(is_linear_file(&p) && !is_linear_file(Path::new("x.png")));
        assert_eq!(
            ImageF32::read_png(&p).unwrap(),
            img,
            "32-bit float EXR keeps every value, HDR and negative ones too"
        );
    }

    #[test]
    fn from_vec_rejects_wrong_length() {
        let e = ImageF32::from_vec(2, 2, 3, vec![0.0; 11]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "image buffer has 11 values, expected 2x2x3 = 12"
        );
    }
}

/// High-quality resize (Catmull-Rom, i.e. bicubic) of any channel count. Used to fit keyframes to the model size
/// and generated frames back to the clip: a good interpolating filter without Lanczos' extra ringing.
pub fn resize(img: &ImageF32, width: usize, height: usize) -> ImageF32 {
    if img.width == width && img.height == height {
        return img.clone();
    }
    let filter = image::imageops::FilterType::CatmullRom;
    let data = match img.channels {
        3 => {
            let buf: image::ImageBuffer<image::Rgb<f32>, Vec<f32>> =
                image::ImageBuffer::from_raw(img.width as u32, img.height as u32, img.data.clone())
                    .expect("length checked by ImageF32");
            image::imageops::resize(&buf, width as u32, height as u32, filter).into_raw()
        }
        4 => {
            let buf: image::ImageBuffer<image::Rgba<f32>, Vec<f32>> =
                image::ImageBuffer::from_raw(img.width as u32, img.height as u32, img.data.clone())
                    .expect("length checked by ImageF32");
            image::imageops::resize(&buf, width as u32, height as u32, filter).into_raw()
        }
        c => {
            // Other layouts are resized plane by plane as 1-channel images.
            let mut out = vec![0.0f32; width * height * c];
            for ch in 0..c {
                let plane: Vec<f32> = img.data.iter().skip(ch).step_by(c).copied().collect();
                let buf: image::ImageBuffer<image::Luma<f32>, Vec<f32>> =
                    image::ImageBuffer::from_raw(img.width as u32, img.height as u32, plane)
                        .expect("plane size");
                let r =
                    image::imageops::resize(&buf, width as u32, height as u32, filter).into_raw();
                for (i, v) in r.into_iter().enumerate() {
                    out[i * c + ch] = v;
                }
            }
            out
        }
    };
    ImageF32 {
        width,
        height,
        channels: img.channels,
        data,
    }
}

/// How a keyframe of another aspect ratio is fitted to the model's fixed size.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Scale to fit inside, keep proportions, black bars on the rest; the bars are cropped off the results.
    #[default]
    Letterbox,
    /// Scale each axis independently (distorts when the aspects differ).
    Stretch,
}

/// Where a fitted source image lies inside the model frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

/// The placement of a `src_w`×`src_h` image in a `dst_w`×`dst_h` frame: the whole frame for `Stretch`; for
/// `Letterbox` the largest centred rectangle of the source's aspect (rounded to whole pixels, at least 1).
pub fn placement(src_w: usize, src_h: usize, dst_w: usize, dst_h: usize, fit: Fit) -> Placement {
    if fit == Fit::Stretch || src_w == 0 || src_h == 0 {
        return Placement {
            x: 0,
            y: 0,
            width: dst_w,
            height: dst_h,
        };
    }
    // Compare aspects with integers: src_w/src_h against dst_w/dst_h.
    let (width, height) = if src_w * dst_h >= dst_w * src_h {
        (
            dst_w,
            ((dst_w * src_h) as f64 / src_w as f64).round().max(1.0) as usize,
        )
    } else {
        (
            ((dst_h * src_w) as f64 / src_h as f64).round().max(1.0) as usize,
            dst_h,
        )
    };
    Placement {
        x: (dst_w - width) / 2,
        y: (dst_h - height) / 2,
        width,
        height,
    }
}

/// `img` fitted into a `width`×`height` frame (black outside the placement), and the placement.
pub fn fit_into(img: &ImageF32, width: usize, height: usize, fit: Fit) -> (ImageF32, Placement) {
    let p = placement(img.width, img.height, width, height, fit);
    let scaled = resize(img, p.width, p.height);
    if (p.width, p.height) == (width, height) {
        return (scaled, p);
    }
    let mut out = ImageF32::new(width, height, img.channels);
    for y in 0..p.height {
        out.pixel_row_mut(p.y + y, p.x, p.width)
            .copy_from_slice(scaled.pixel_row(y, 0, p.width));
    }
    (out, p)
}

/// The region `p` of `img`.
pub fn crop(img: &ImageF32, p: Placement) -> ImageF32 {
    let mut out = ImageF32::new(p.width, p.height, img.channels);
    for y in 0..p.height {
        out.pixel_row_mut(y, 0, p.width)
            .copy_from_slice(img.pixel_row(p.y + y, p.x, p.width));
    }
    out
}

#[cfg(test)]
mod fit_tests {
    use super::*;

    #[test]
    fn letterbox_placements() {
        // 4:3 into the tiny model's 2:1: pillarbox, 256·64/192 = 85.33 → 85 wide, centred at (128 − 85) / 2 = 21
        assert_eq!(
            placement(256, 192, 128, 64, Fit::Letterbox),
            Placement {
                x: 21,
                y: 0,
                width: 85,
                height: 64
            }
        );
        // 9:16 portrait into SVD-XT's 1024×576: 576·1080/1920 = 324 wide, x = 350
        assert_eq!(
            placement(1080, 1920, 1024, 576, Fit::Letterbox),
            Placement {
                x: 350,
                y: 0,
                width: 324,
                height: 576
            }
        );
        // 2.39:1 scope into 16:9: letterbox, 1024·858/2048 = 429 high, y = 73
        assert_eq!(
            placement(2048, 858, 1024, 576, Fit::Letterbox),
            Placement {
                x: 0,
                y: 73,
                width: 1024,
                height: 429
            }
        );
        // the model's own aspect, and stretch: the whole frame
        assert_eq!(
            placement(1920, 1080, 1024, 576, Fit::Letterbox),
            Placement {
                x: 0,
                y: 0,
                width: 1024,
                height: 576
            }
        );
        assert_eq!(
            placement(256, 192, 128, 64, Fit::Stretch),
            Placement {
                x: 0,
                y: 0,
                width: 128,
                height: 64
            }
        );
    }

    #[test]
    fn fit_pads_black_and_crop_recovers_the_picture() {
        let src =
            ImageF32::from_vec(3, 4, 3, (0..36).map(|v| 0.5 + v as f32 / 100.0).collect()).unwrap();
        let (fitted, p) = fit_into(&src, 6, 4, Fit::Letterbox);
        assert_eq!(
            p,
            Placement {
                x: 1,
                y: 0,
                width: 3,
                height: 4
            }
        );
        for y in 0..4 {
            for x in [0usize, 4, 5] {
                assert_eq!(fitted.pixel(x, y), &[0.0, 0.0, 0.0], "bar at ({x},{y})");
            }
        }
        assert_eq!(
            crop(&fitted, p),
            src,
            "same size: the picture is copied, not resampled"
        );
    }
}
