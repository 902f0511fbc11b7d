//! Keyframe preprocessing exactly as SVD's pipeline does it (research/svd.md §3.6):
//! VAE path: [0,1] → [-1,1]; CLIP path: [-1,1] → Gaussian anti-alias blur → bicubic (align_corners, A = −0.75)
//! to 224×224 → [0,1] → CLIP mean/std.

use crate::image::ImageF32;

/// Planar (3, H, W) in [-1, 1] from the RGB channels of an interleaved [0,1] image.
pub fn to_planar_pm1(img: &ImageF32) -> Vec<f32> {
    let (w, h, c) = (img.width, img.height, img.channels);
    let mut out = vec![0.0f32; 3 * h * w];
    for y in 0..h {
        for x in 0..w {
            let px = &img.data[(y * w + x) * c..];
            for ch in 0..3 {
                // SVD knows [−1, 1]; out-of-range input (HDR, negative) is clipped rather than extrapolated.
                out[ch * h * w + y * w + x] = px[ch].clamp(0.0, 1.0) * 2.0 - 1.0;
            }
        }
    }
    out
}

/// CLIP `pixel_values` (3, size, size) for one keyframe given as planar [-1,1] (3, H, W).
pub fn clip_pixels(
    planar_pm1: &[f32],
    h: usize,
    w: usize,
    size: usize,
    mean: &[f32; 3],
    std: &[f32; 3],
) -> Vec<f32> {
    let resized = resize_with_antialiasing(planar_pm1, 3, h, w, size, size);
    let mut out = resized;
    let plane = size * size;
    for ch in 0..3 {
        for v in &mut out[ch * plane..(ch + 1) * plane] {
            *v = ((*v + 1.0) / 2.0 - mean[ch]) / std[ch];
        }
    }
    out
}

/// diffusers' `_resize_with_antialiasing`: a separable Gaussian blur (σ = max((factor−1)/2, 0.001), kernel
/// int(max(4σ, 3)) made odd, reflect padding; x first, then y) followed by PyTorch's bicubic interpolation
/// with align_corners=True.
pub fn resize_with_antialiasing(
    src: &[f32],
    channels: usize,
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    let (fy, fx) = (h as f64 / out_h as f64, w as f64 / out_w as f64);
    let sy = ((fy - 1.0) / 2.0).max(0.001) as f32;
    let sx = ((fx - 1.0) / 2.0).max(0.001) as f32;
    let odd = |k: usize| if k.is_multiple_of(2) { k + 1 } else { k };
    let ky = odd((2.0 * 2.0 * sy as f64).max(3.0) as usize);
    let kx = odd((2.0 * 2.0 * sx as f64).max(3.0) as usize);
    let gx = gaussian_kernel(kx, sx);
    let gy = gaussian_kernel(ky, sy);
    let mut blurred = vec![0.0f32; src.len()];
    let mut tmp = vec![0.0f32; h * w];
    for c in 0..channels {
        let plane = &src[c * h * w..(c + 1) * h * w];
        blur_axis(plane, &mut tmp, w, h, &gx, Axis::X);
        blur_axis(
            &tmp,
            &mut blurred[c * h * w..(c + 1) * h * w],
            w,
            h,
            &gy,
            Axis::Y,
        );
    }
    bicubic_align_corners(&blurred, channels, h, w, out_h, out_w)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Axis {
    X,
    Y,
}

/// One pass of the separable blur along `axis`, with reflect padding (kernel centred, odd length).
fn blur_axis(src: &[f32], dst: &mut [f32], w: usize, h: usize, kernel: &[f32], axis: Axis) {
    let half = (kernel.len() / 2) as isize;
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0f32;
            for (k, g) in kernel.iter().enumerate() {
                let off = k as isize - half;
                let i = match axis {
                    Axis::X => y * w + reflect(x as isize + off, w),
                    Axis::Y => reflect(y as isize + off, h) * w + x,
                };
                acc += g * src[i];
            }
            dst[y * w + x] = acc;
        }
    }
}

fn gaussian_kernel(size: usize, sigma: f32) -> Vec<f32> {
    let half = (size / 2) as f32;
    let g: Vec<f32> = (0..size)
        .map(|i| (-((i as f32 - half).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = g.iter().sum();
    g.into_iter().map(|v| v / sum).collect()
}

/// torch "reflect" padding: mirror without repeating the edge sample.
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let mut i = i;
    while i < 0 || i >= n {
        if i < 0 {
            i = -i;
        }
        if i >= n {
            i = 2 * (n - 1) - i;
        }
    }
    i as usize
}

fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let c1 = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [c2(t + 1.0), c1(t), c1(1.0 - t), c2(2.0 - t)]
}

/// PyTorch `interpolate(mode="bicubic", align_corners=True)`: source coordinate = dst·(in−1)/(out−1), four taps
/// with clamped indices, rows interpolated first and then combined along y.
pub fn bicubic_align_corners(
    src: &[f32],
    channels: usize,
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    let scale = |inp: usize, out: usize| {
        if out > 1 {
            (inp as f32 - 1.0) / (out as f32 - 1.0)
        } else {
            0.0
        }
    };
    let (sh, sw) = (scale(h, out_h), scale(w, out_w));
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    let mut out = vec![0.0f32; channels * out_h * out_w];
    for c in 0..channels {
        let plane = &src[c * h * w..(c + 1) * h * w];
        for oy in 0..out_h {
            let ry = sh * oy as f32;
            let iy = ry.floor();
            let wy = cubic_weights(ry - iy);
            for ox in 0..out_w {
                let rx = sw * ox as f32;
                let ix = rx.floor();
                let wx = cubic_weights(rx - ix);
                let mut rows = [0.0f32; 4];
                for (k, row) in rows.iter_mut().enumerate() {
                    let yy = clamp(iy as isize - 1 + k as isize, h);
                    let mut acc = 0.0f32;
                    for (j, wxj) in wx.iter().enumerate() {
                        let xx = clamp(ix as isize - 1 + j as isize, w);
                        acc += plane[yy * w + xx] * wxj;
                    }
                    *row = acc;
                }
                out[c * out_h * out_w + oy * out_w + ox] =
                    rows.iter().zip(wy.iter()).map(|(r, wv)| r * wv).sum();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_mirrors_without_edge_repeat() {
        assert_eq!(reflect(-1, 5), 1);
        assert_eq!(reflect(-2, 5), 2);
        assert_eq!(reflect(5, 5), 3);
        assert_eq!(reflect(6, 5), 2);
        assert_eq!(reflect(2, 5), 2);
    }

    #[test]
    fn gaussian_kernel_for_576x1024_to_224() {
        // research/svd.md §3.6: σ = (0.7857, 1.7857), kernel (3, 7) for 576×1024
        let fx = 1024.0f64 / 224.0;
        let sx = ((fx - 1.0) / 2.0) as f32;
        assert!((sx - 1.7857).abs() < 1e-4);
        let k = gaussian_kernel(7, sx);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(k[3] > k[2] && (k[2] - k[4]).abs() < 1e-7);
    }

    #[test]
    fn bicubic_identity_and_constant() {
        let src: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(bicubic_align_corners(&src, 1, 3, 4, 3, 4), src);
        let c = vec![0.25f32; 20];
        assert!(
            bicubic_align_corners(&c, 1, 4, 5, 9, 7)
                .iter()
                .all(|v| (v - 0.25).abs() < 1e-6)
        );
    }
}

#[cfg(test)]
mod golden {
    use super::*;

    /// Downscaling (the real 576×1024 → 224 case blurs; the tiny models only upscale). Expected values:
    /// diffusers 0.42.1 `_resize_with_antialiasing` on the same analytic input, saved by the snippet in
    /// tests/fixtures/README.md. fp32 convolution order differs (PyTorch conv2d vs our loops): 1e-5.
    #[test]
    fn antialiased_downscale_matches_diffusers() {
        let (c, h, w) = (3usize, 48usize, 80usize);
        let mut x = vec![0.0f32; c * h * w];
        for k in 0..c {
            for i in 0..h {
                for j in 0..w {
                    let (fi, fj, fk) = (i as f64, j as f64, k as f64);
                    x[k * h * w + i * w + j] = ((0.37 * fi + 0.11 * fj + fk).sin()
                        * (0.05 * fi * fj / 10.0 + fk).cos())
                        as f32;
                }
            }
        }
        let got = resize_with_antialiasing(&x, c, h, w, 8, 12);
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/antialias_48x80_to_8x12.npy"
        );
        let (shape, want) =
            crate::pipeline::noise::read_npy_f32(std::path::Path::new(path)).unwrap();
        assert_eq!(shape, vec![3, 8, 12]);
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 1e-5, "max abs {err}");
    }
}
