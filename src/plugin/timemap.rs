//! Time mapping (DESIGN §6): which host frames are keyframes, where an output time falls between them, and
//! which generated frames it reads.

/// Position of `t` in the open interval (a, b), or `None` when `t` is a keyframe or outside (identity).
pub fn interval_position(t: f64, a: f64, b: f64) -> Option<f64> {
    // partial_cmp: NaN keyframes are no interval either.
    if a.partial_cmp(&b) != Some(std::cmp::Ordering::Less) || t <= a || t >= b {
        return None;
    }
    Some((t - a) / (b - a))
}

/// How an output time between keyframes reads the F generated frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FrameSampling {
    /// Blend the two generated frames around u·(F−1) (smooth when the clip has more frames than the model).
    Blend,
    /// The nearest generated frame (no blending; jumps when the clip has more frames than the model).
    Nearest,
}

/// The generated frames (indices and weights, summing to 1) that output position `u` ∈ (0,1) reads.
pub fn generated_frames_for(u: f64, frames: usize, sampling: FrameSampling) -> [(usize, f32); 2] {
    let pos = (u.clamp(0.0, 1.0) * (frames - 1) as f64).max(0.0);
    match sampling {
        FrameSampling::Nearest => {
            let i = (pos.round() as usize).min(frames - 1);
            [(i, 1.0), (i, 0.0)]
        }
        FrameSampling::Blend => {
            let i0 = (pos.floor() as usize).min(frames - 1);
            let i1 = (i0 + 1).min(frames - 1);
            let w1 = (pos - i0 as f64) as f32;
            [(i0, 1.0 - w1), (i1, w1)]
        }
    }
}

/// The picture at output position `u` ∈ (0,1) from the generated frames (all the same size).
pub fn frame_at(
    generated: &[crate::image::ImageF32],
    u: f64,
    sampling: FrameSampling,
) -> crate::image::ImageF32 {
    let [(i0, w0), (i1, w1)] = generated_frames_for(u, generated.len(), sampling);
    let (g0, g1) = (&generated[i0], &generated[i1]);
    let mut mixed = g0.clone();
    for (k, d) in mixed.data.iter_mut().enumerate() {
        *d = w0 * g0.data[k] + w1 * g1.data[k];
    }
    mixed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_outside_the_open_interval() {
        assert_eq!(interval_position(10.0, 10.0, 20.0), None);
        assert_eq!(interval_position(20.0, 10.0, 20.0), None);
        assert_eq!(interval_position(9.0, 10.0, 20.0), None);
        assert_eq!(interval_position(15.0, 10.0, 20.0), Some(0.5));
        assert_eq!(
            interval_position(15.0, 20.0, 10.0),
            None,
            "reversed keyframes have no interval"
        );
        assert_eq!(
            interval_position(15.0, 12.0, 12.0),
            None,
            "equal keyframes have no interval"
        );
    }

    #[test]
    fn generated_frame_lookup() {
        // 25 generated frames over 10 output frames: u = 0.5 → index 12 exactly
        assert_eq!(
            generated_frames_for(0.5, 25, FrameSampling::Blend),
            [(12, 1.0), (13, 0.0)]
        );
        let [(i0, w0), (i1, w1)] = generated_frames_for(0.3, 7, FrameSampling::Blend); // pos 1.8
        assert_eq!((i0, i1), (1, 2));
        assert!((w0 - 0.2).abs() < 1e-6 && (w1 - 0.8).abs() < 1e-6);
        assert_eq!(
            generated_frames_for(0.3, 7, FrameSampling::Nearest)[0],
            (2, 1.0)
        );
        assert_eq!(generated_frames_for(1.0, 7, FrameSampling::Blend)[0].0, 6);
    }
}
