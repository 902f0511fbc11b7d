//! The sampler's arithmetic (DESIGN §4; diffusers' EulerDiscreteScheduler as SVD configures it), as pure functions.

/// Karras σ schedule of `steps` values from σ_max down to σ_min, plus the final 0. Computed in f64 and rounded to
/// f32 once, as diffusers does (numpy float64, then a float32 tensor), so the two agree to the last bit.
pub fn karras_sigmas(steps: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Vec<f32> {
    let min_inv = sigma_min.powf(1.0 / rho);
    let max_inv = sigma_max.powf(1.0 / rho);
    let mut out: Vec<f32> = (0..steps)
        .map(|i| {
            let ramp = if steps == 1 {
                0.0
            } else {
                i as f64 / (steps - 1) as f64
            };
            (max_inv + ramp * (min_inv - max_inv)).powf(rho) as f32
        })
        .collect();
    out.push(0.0);
    out
}

/// The UNet's continuous timestep input for σ: 0.25·ln σ.
pub fn timestep(sigma: f32) -> f32 {
    0.25 * sigma.ln()
}

/// The noisy latents enter the UNet divided by √(σ²+1) (c_in = 1/√(σ²+1)). A division, like diffusers'
/// `scale_model_input`, so both round the same way.
pub fn input_divisor(sigma: f32) -> f32 {
    (sigma * sigma + 1.0).sqrt()
}

/// diffusers' `init_noise_sigma` for "leading" spacing: √(σ_max²+1).
pub fn init_noise_sigma(sigma_max: f32) -> f32 {
    (sigma_max * sigma_max + 1.0).sqrt()
}

/// The Euler step's scalars (c_out = −σ/√(σ²+1), σ²+1, Δσ), computed once here for both the host loop and the
/// on-device graphs, so the two use the very same f32 values.
pub fn euler_v_coefficients(sigma: f32, sigma_next: f32) -> (f32, f32, f32) {
    let s2 = sigma * sigma + 1.0;
    (-sigma / s2.sqrt(), s2, sigma_next - sigma)
}

/// One Euler step with a v-prediction: x0 = −σ/√(σ²+1)·v + x/(σ²+1); x ← x + (x − x0)/σ · (σ_next − σ).
/// Written element-wise in the same operation order as the reference so fp32 rounding matches closely.
pub fn euler_v_step(x: &mut [f32], v: &[f32], sigma: f32, sigma_next: f32) {
    let (c_out, s2, dt) = euler_v_coefficients(sigma, sigma_next);
    for (xi, &vi) in x.iter_mut().zip(v) {
        let x0 = c_out * vi + *xi / s2;
        *xi += (*xi - x0) / sigma * dt;
    }
}

/// Standard deviation of the noise that takes a sample from σ_next back up to σ: √(σ² − σ_next²).
pub fn reinjection_std(sigma: f32, sigma_next: f32) -> f32 {
    (sigma * sigma - sigma_next * sigma_next).sqrt()
}

/// `torch.linspace(a, b, n)` in f32 (same formula: a + i·(b−a)/(n−1), symmetric from both ends).
pub fn linspace(a: f32, b: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![a];
    }
    let step = (b - a) / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                a + step * i as f32
            } else {
                b - step * (n - 1 - i) as f32
            }
        })
        .collect()
}

/// How the forward and reverse predictions are combined (DESIGN §4).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// The authors' default: both directions get the symmetric guidance ((ramp + flip(ramp))/2), weights 0.5/0.5.
    Average,
    /// Both directions get SVD's ramp in their own frame order; output frame i weighs forward by 1 − i/(F−1).
    Linear,
}

/// Per-frame guidance for the forward path, the reverse path (in its own, flipped, frame order) and the forward
/// weight of each output frame.
pub fn guidance_and_weights(
    fusion: Fusion,
    g_min: f32,
    g_max: f32,
    frames: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let ramp = linspace(g_min, g_max, frames);
    match fusion {
        Fusion::Average => {
            let g: Vec<f32> = (0..frames)
                .map(|i| (ramp[i] + ramp[frames - 1 - i]) / 2.0)
                .collect();
            (g.clone(), g, vec![0.5; frames])
        }
        Fusion::Linear => (ramp.clone(), ramp, linspace(1.0, 0.0, frames)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// diffusers 0.42.1, `EulerDiscreteScheduler.from_pretrained(models/tiny/source/scheduler)` (SVD's config),
    /// `set_timesteps(50)`, `sigmas[[0,1,2,3,24,25,47,48,49,50]]` printed with `repr(float(x))`.
    #[test]
    #[allow(
        clippy::excessive_precision,
        reason = "the values exactly as diffusers prints them"
    )]
    fn karras_sigmas_match_diffusers() {
        let s = karras_sigmas(50, 0.002, 700.0, 7.0);
        assert_eq!(s.len(), 51);
        let want = [
            (0, 700.0f32),
            (1, 620.3277587890625),
            (2, 548.55810546875),
            (3, 484.0267028808594),
            (24, 17.270841598510742),
            (25, 14.051309585571289),
            (47, 0.007684304844588041),
            (48, 0.004048990085721016),
            (49, 0.0020000000949949026),
            (50, 0.0),
        ];
        for (i, w) in want {
            assert_eq!(s[i], w, "sigma[{i}]");
        }
    }

    #[test]
    #[allow(
        clippy::excessive_precision,
        reason = "the values exactly as diffusers prints them"
    )]
    fn timestep_and_scalings() {
        assert!((timestep(700.0) - 1.6378).abs() < 1e-4);
        assert!((timestep(0.002) + 1.5537).abs() < 1e-4);
        assert_eq!(init_noise_sigma(700.0), 700.000_732_421_875); // diffusers' init_noise_sigma, printed
        assert!((reinjection_std(700.0, 620.3277587890625) - 324.3).abs() < 0.05);
    }

    #[test]
    fn euler_step_matches_hand_computation() {
        // σ=2, σ_next=1, x=3, v=0.5: x0 = -2/√5·0.5 + 3/5 = 0.152786; x' = 3 + (3-0.152786)/2·(-1) = 1.576393
        let mut x = [3.0f32];
        euler_v_step(&mut x, &[0.5], 2.0, 1.0);
        assert!((x[0] - 1.576_393).abs() < 1e-5, "{}", x[0]);
    }

    #[test]
    fn linspace_matches_torch() {
        // torch.linspace(1, 3, 7) = [1, 1.3333334, 1.6666667, 2, 2.3333333, 2.6666665, 3]
        let l = linspace(1.0, 3.0, 7);
        assert_eq!(
            l,
            vec![
                1.0,
                1.333_333_4,
                1.666_666_7,
                2.0,
                2.333_333_3,
                2.666_666_7,
                3.0
            ]
        );
    }

    #[test]
    fn symmetric_guidance_is_constant_for_a_linear_ramp() {
        let (gf, gr, w) = guidance_and_weights(Fusion::Average, 1.0, 3.0, 25);
        assert!(gf.iter().all(|&g| (g - 2.0).abs() < 1e-6));
        assert_eq!(gf, gr);
        assert!(w.iter().all(|&x| x == 0.5));
        let (gf, _, w) = guidance_and_weights(Fusion::Linear, 1.0, 3.0, 5);
        assert_eq!(gf, vec![1.0, 1.5, 2.0, 2.5, 3.0]);
        assert_eq!(w, vec![1.0, 0.75, 0.5, 0.25, 0.0]);
    }
}
