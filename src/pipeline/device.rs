//! The denoising loop with the latents kept on the execution device (IoBinding), for CUDA.
//!
//! On the host path (`engine.rs`) every UNet call ships its input up and its prediction back, and the
//! CFG/fusion/Euler arithmetic runs in Rust: at full size 4×25×8×72×128 floats (29.5 MB) up and half that back,
//! 175 times per generation, plus a device synchronisation per call. Here the same arithmetic is expressed as three
//! small ONNX graphs built in memory with ONNX Runtime's model editor, run on the UNet's provider, and every tensor
//! of the loop (latents, UNet input, prediction) is a device buffer bound with IoBinding. Only scalars, the
//! re-injection noise (drawn on the host so a seed gives the same frames on every machine) and the final latents
//! cross the bus.
//!
//! The graphs repeat the host path's operations in the same order (see `schedule::euler_v_step` and
//! `engine::fuse_predictions`), one elementwise op per node, so on the CPU the two paths give bit-identical latents;
//! the tests hold them to that.

use ort::editor::{Graph, Model, Node, ONNX_DOMAIN, Opset};
use ort::memory::{AllocationDevice, Allocator};
use ort::operator::Attribute;
use ort::session::{RunOptions, Session};
use ort::value::{Outlet, Shape, SymbolicDimensions, Tensor, TensorElementType, ValueType};

use super::PipelineError;
use super::engine::Calls;

/// Where the latents live between UNet calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SamplerPlacement {
    /// On the device when the UNet runs on CUDA, on the host otherwise (where "device" memory is host memory and
    /// the extra graph launches would only cost time).
    #[default]
    Auto,
    Host,
    Device,
}

/// Latent geometry: latents are (1, F, 4, h, w), the fused UNet batch is 4 rows of them.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub frames: usize,
    pub h: usize,
    pub w: usize,
}

impl Dims {
    fn latents(&self) -> [i64; 5] {
        [1, self.frames as i64, 4, self.h as i64, self.w as i64]
    }
    fn rows(&self, channels: i64, n: i64) -> [i64; 5] {
        [
            n,
            self.frames as i64,
            channels,
            self.h as i64,
            self.w as i64,
        ]
    }
    fn per_frame(&self) -> [i64; 5] {
        [1, self.frames as i64, 1, 1, 1]
    }
}

const OPSET: u32 = 21;

/// The fused prediction's logical rows: 0 forward unconditional, 1 forward conditional, 2 reverse unconditional,
/// 3 reverse conditional. One UNet call takes one group of them, forward rows first, because the graph pairs row
/// i of its reverse half with row i of its forward half for the attention maps (rows [0,k) forward, [k,2k)
/// reverse). k = 2 runs all four in one call; the low-memory k = 1 graph runs the unconditional pair, then the
/// conditional pair: the same pairings, so the same prediction.
pub fn call_groups(k: usize) -> &'static [&'static [usize]] {
    if k == 1 {
        &[&[0, 2], &[1, 3]]
    } else {
        &[&[0, 1, 2, 3]]
    }
}

/// Row r runs in reverse time.
pub fn is_reverse_row(r: usize) -> bool {
    r >= 2
}

/// Row r is conditioned; on keyframe A (forward) or B (reverse): index r / 2.
pub fn row_condition(r: usize) -> Option<usize> {
    (r % 2 == 1).then_some(r / 2)
}

fn f32_outlet(name: &str, shape: &[i64]) -> Outlet {
    Outlet::new(
        name,
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape: Shape::new(shape.iter().copied()),
            dimension_symbols: SymbolicDimensions::empty(shape.len()),
        },
    )
}

/// A small graph under construction; node names are generated, tensor names are the caller's.
struct Builder {
    graph: Graph,
    nodes: usize,
    frames: usize,
    has_reverse: bool,
}

impl Builder {
    fn new(
        inputs: &[(String, Vec<i64>)],
        outputs: &[(String, Vec<i64>)],
        frames: usize,
    ) -> ort::Result<Self> {
        let mut graph = Graph::new()?;
        graph.set_inputs(inputs.iter().map(|(n, s)| f32_outlet(n, s)))?;
        graph.set_outputs(outputs.iter().map(|(n, s)| f32_outlet(n, s)))?;
        Ok(Self {
            graph,
            nodes: 0,
            frames,
            has_reverse: false,
        })
    }

    fn op(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: &str,
        attributes: Vec<Attribute>,
    ) -> ort::Result<()> {
        self.nodes += 1;
        let name = format!("{op}_{}", self.nodes);
        self.graph.add_node(Node::new(
            op,
            ONNX_DOMAIN,
            name,
            inputs,
            [output],
            attributes,
        )?)
    }

    fn flip(&mut self, input: &str, output: &str) -> ort::Result<()> {
        if !self.has_reverse {
            // Frame indices F−1 … 0: Gather with them along the frame axis turns forward time into reverse time.
            let mut rev = Tensor::<i64>::new(&Allocator::default(), [self.frames])?;
            for (i, v) in rev.extract_tensor_mut().1.iter_mut().enumerate() {
                *v = (self.frames - 1 - i) as i64;
            }
            self.graph.add_initializer("reverse_frames", rev, false)?;
            self.has_reverse = true;
        }
        self.op(
            "Gather",
            &[input, "reverse_frames"],
            output,
            vec![Attribute::new("axis", 1i64)?],
        )
    }

    fn finish(self) -> ort::Result<Model> {
        let mut model = Model::new([Opset::new(ONNX_DOMAIN, OPSET)?])?;
        model.set_graph(self.graph)?;
        Ok(model)
    }
}

fn io(list: &[(&str, &[i64])]) -> Vec<(String, Vec<i64>)> {
    list.iter()
        .map(|(n, s)| (n.to_string(), s.to_vec()))
        .collect()
}

/// For each call group g: sample_g (n,F,8,h,w) = the group's rows of [z/d, z/d, flip(z/d), flip(z/d)] ‖ cond_g
/// along channels, as in `Engine::fused_prediction`.
pub fn prepare_graph(d: Dims, k: usize) -> ort::Result<Model> {
    let groups = call_groups(k);
    let n = |g: &[usize]| g.len() as i64;
    let mut inputs = io(&[("z", &d.latents()), ("divisor", &[1])]);
    let mut outputs = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        inputs.push((format!("cond_{gi}"), d.rows(4, n(g)).to_vec()));
        outputs.push((format!("sample_{gi}"), d.rows(8, n(g)).to_vec()));
    }
    let mut b = Builder::new(&inputs, &outputs, d.frames)?;
    b.op("Div", &["z", "divisor"], "zs", vec![])?;
    b.flip("zs", "zr")?;
    for (gi, g) in groups.iter().enumerate() {
        let rows: Vec<&str> = g
            .iter()
            .map(|&r| if is_reverse_row(r) { "zr" } else { "zs" })
            .collect();
        let zz = format!("z_rows_{gi}");
        b.op("Concat", &rows, &zz, vec![Attribute::new("axis", 0i64)?])?;
        b.op(
            "Concat",
            &[&zz, &format!("cond_{gi}")],
            &format!("sample_{gi}"),
            vec![Attribute::new("axis", 2i64)?],
        )?;
    }
    b.finish()
}

/// z_next = Euler(z, fused v): the groups' predictions split back into the four rows, CFG per direction, reverse
/// rows flipped back to forward time, weighted fusion, then the v-prediction Euler step with host-computed
/// scalars (c_out, σ²+1, σ, Δσ).
pub fn update_graph(d: Dims, k: usize) -> ort::Result<Model> {
    let groups = call_groups(k);
    let (lat, pf) = (d.latents(), d.per_frame());
    let mut inputs = io(&[("z", &lat)]);
    for (gi, g) in groups.iter().enumerate() {
        inputs.push((format!("pred_{gi}"), d.rows(4, g.len() as i64).to_vec()));
    }
    inputs.extend(io(&[
        ("g_fwd", &pf),
        ("g_rev", &pf),
        ("w_fwd", &pf),
        ("w_rev", &pf),
        ("c_out", &[1]),
        ("s2", &[1]),
        ("sigma", &[1]),
        ("dt", &[1]),
    ]));
    let mut b = Builder::new(&inputs, &io(&[("z_next", &lat)]), d.frames)?;
    for (gi, g) in groups.iter().enumerate() {
        let rows: Vec<String> = g.iter().map(|r| format!("row{r}")).collect();
        let attrs = [
            Attribute::new("axis", 0i64)?,
            Attribute::new("num_outputs", g.len() as i64)?,
        ];
        b.graph.add_node(Node::new(
            "Split",
            ONNX_DOMAIN,
            format!("split_{gi}"),
            [format!("pred_{gi}")],
            rows,
            attrs,
        )?)?;
    }
    b.flip("row2", "u2")?;
    b.flip("row3", "c2")?;
    for (u, c, g, v) in [("row0", "row1", "g_fwd", "v1"), ("u2", "c2", "g_rev", "v2")] {
        let (diff, scaled) = (format!("{v}_diff"), format!("{v}_scaled"));
        b.op("Sub", &[c, u], &diff, vec![])?;
        b.op("Mul", &[g, &diff], &scaled, vec![])?;
        b.op("Add", &[u, &scaled], v, vec![])?;
    }
    b.op("Mul", &["w_fwd", "v1"], "v1w", vec![])?;
    b.op("Mul", &["w_rev", "v2"], "v2w", vec![])?;
    b.op("Add", &["v1w", "v2w"], "v", vec![])?;
    b.op("Mul", &["c_out", "v"], "cv", vec![])?;
    b.op("Div", &["z", "s2"], "zs2", vec![])?;
    b.op("Add", &["cv", "zs2"], "x0", vec![])?;
    b.op("Sub", &["z", "x0"], "e", vec![])?;
    b.op("Div", &["e", "sigma"], "es", vec![])?;
    b.op("Mul", &["es", "dt"], "step", vec![])?;
    b.op("Add", &["z", "step"], "z_next", vec![])?;
    b.finish()
}

/// z_next = z + std·eps: the re-injection, and (from z = 0) the initial latents eps·σ_init.
pub fn inject_graph(d: Dims) -> ort::Result<Model> {
    let lat = d.latents();
    let mut b = Builder::new(
        &io(&[("z", &lat), ("eps", &lat), ("std", &[1])]),
        &io(&[("z_next", &lat)]),
        d.frames,
    )?;
    b.op("Mul", &["eps", "std"], "noise", vec![])?;
    b.op("Add", &["z", "noise"], "z_next", vec![])?;
    b.finish()
}

/// The three sampler sessions, opened on the UNet's provider.
pub(super) struct SamplerSessions {
    pub prepare: Session,
    pub update: Session,
    pub inject: Session,
}

fn scalar(v: f32) -> ort::Result<Tensor<f32>> {
    Tensor::from_array(([1usize], vec![v]))
}

/// The per-generation state of the on-device loop: buffers on the device, and one binding per session (per call
/// group for the UNet). The latents ping-pong between two buffers so no graph ever reads the buffer it writes.
pub(super) struct DeviceLoop {
    dims: Dims,
    z: [Tensor<f32>; 2],
    current: usize,
    samples: Vec<Tensor<f32>>,
    preds: Vec<Tensor<f32>>,
    prepare: ort::session::IoBinding,
    update: ort::session::IoBinding,
    inject: ort::session::IoBinding,
    unet: Vec<ort::session::IoBinding>,
}

/// Fixed inputs of one UNet call group, uploaded once per generation.
pub(super) struct GroupConstants {
    /// (n,F,4,h,w): the VAE conditioning latents of each row (zero for the unconditional rows).
    pub cond_rows: Vec<f32>,
    /// (n,1,D) and (n,3)
    pub encoder_hidden_states: Vec<f32>,
    pub added_time_ids: Vec<f32>,
}

/// Fixed inputs of one generation.
pub(super) struct LoopConstants<'a> {
    pub k: usize,
    pub groups: Vec<GroupConstants>,
    pub embed_dim: usize,
    pub g_fwd: &'a [f32],
    /// Reverse guidance indexed by output (forward-time) frame: g_rev[F−1−f] of the schedule.
    pub g_rev_by_output_frame: Vec<f32>,
    pub w_fwd: &'a [f32],
    pub w_rev: Vec<f32>,
}

/// The stage name of every device-loop failure: the engine retries those on the host.
pub const DEVICE_LOOP_STAGE: &str = "denoise (latents on device)";

fn fail(e: ort::Error) -> PipelineError {
    PipelineError::Inference {
        stage: DEVICE_LOOP_STAGE,
        message: e.to_string(),
    }
}

fn host_tensor(shape: &[i64], data: &[f32]) -> ort::Result<Tensor<f32>> {
    Tensor::from_array((
        shape.iter().map(|&v| v as usize).collect::<Vec<_>>(),
        data.to_vec(),
    ))
}

impl DeviceLoop {
    /// Allocates the buffers with the UNet session's allocator for `device` (its CUDA arena on CUDA) and binds
    /// everything that stays fixed for the generation.
    pub fn new(
        dims: Dims,
        device: &AllocationDevice<'_>,
        sessions: &SamplerSessions,
        unet: &Session,
        consts: &LoopConstants<'_>,
    ) -> Result<Self, PipelineError> {
        if std::env::var("SVD_INBETWEEN_TEST_FAIL").as_deref() == Ok("device-loop") {
            // Test-only hook (tests/cli.rs): proves a device-loop failure falls back to the host loop.
            return Err(PipelineError::Inference {
                stage: DEVICE_LOOP_STAGE,
                message: "test failure requested by SVD_INBETWEEN_TEST_FAIL".into(),
            });
        }
        let allocator = if *device == AllocationDevice::CPU {
            Allocator::default()
        } else {
            Allocator::new(unet, crate::runtime::cuda_memory().map_err(fail)?).map_err(fail)?
        };
        let lat = dims.latents();
        let z = [
            Tensor::<f32>::new(&allocator, lat).map_err(fail)?,
            Tensor::<f32>::new(&allocator, lat).map_err(fail)?,
        ];
        let groups = call_groups(consts.k);
        let mut samples = Vec::new();
        let mut preds = Vec::new();
        for g in groups {
            samples
                .push(Tensor::<f32>::new(&allocator, dims.rows(8, g.len() as i64)).map_err(fail)?);
            preds.push(Tensor::<f32>::new(&allocator, dims.rows(4, g.len() as i64)).map_err(fail)?);
        }

        // Host-side constants: ORT copies them to the device once, at bind time.
        let mut prepare = sessions.prepare.create_binding().map_err(fail)?;
        let mut update = sessions.update.create_binding().map_err(fail)?;
        let unet_output = unet
            .outputs()
            .first()
            .map(|o| o.name().to_string())
            .unwrap_or_else(|| "noise_pred".into());
        let mut unet_bindings = Vec::new();
        for (gi, (g, c)) in groups.iter().zip(&consts.groups).enumerate() {
            let n = g.len() as i64;
            prepare
                .bind_input(
                    format!("cond_{gi}"),
                    &host_tensor(&dims.rows(4, n), &c.cond_rows).map_err(fail)?,
                )
                .map_err(fail)?;
            prepare
                .bind_output(format!("sample_{gi}"), &mut samples[gi])
                .map_err(fail)?;
            let mut ub = unet.create_binding().map_err(fail)?;
            ub.bind_input(
                "encoder_hidden_states",
                &host_tensor(&[n, 1, consts.embed_dim as i64], &c.encoder_hidden_states)
                    .map_err(fail)?,
            )
            .map_err(fail)?;
            ub.bind_input(
                "added_time_ids",
                &host_tensor(&[n, 3], &c.added_time_ids).map_err(fail)?,
            )
            .map_err(fail)?;
            ub.bind_output(unet_output.as_str(), &mut preds[gi])
                .map_err(fail)?;
            unet_bindings.push(ub);
        }
        let pf = dims.per_frame();
        update
            .bind_input("g_fwd", &host_tensor(&pf, consts.g_fwd).map_err(fail)?)
            .map_err(fail)?;
        update
            .bind_input(
                "g_rev",
                &host_tensor(&pf, &consts.g_rev_by_output_frame).map_err(fail)?,
            )
            .map_err(fail)?;
        update
            .bind_input("w_fwd", &host_tensor(&pf, consts.w_fwd).map_err(fail)?)
            .map_err(fail)?;
        update
            .bind_input("w_rev", &host_tensor(&pf, &consts.w_rev).map_err(fail)?)
            .map_err(fail)?;

        let inject = sessions.inject.create_binding().map_err(fail)?;
        Ok(Self {
            dims,
            z,
            current: 0,
            samples,
            preds,
            prepare,
            update,
            inject,
            unet: unet_bindings,
        })
    }

    fn swap(&mut self) {
        self.current ^= 1;
    }

    /// z ← base + std·eps, where base is the current latents, or zero for the initial latents.
    pub fn inject(
        &mut self,
        session: &mut Session,
        eps: Vec<f32>,
        std: f32,
        from_zero: bool,
        opts: &RunOptions,
    ) -> Result<(), PipelineError> {
        let lat = self.dims.latents();
        if from_zero {
            self.inject
                .bind_input(
                    "z",
                    &host_tensor(&lat, &vec![0.0f32; eps.len()]).map_err(fail)?,
                )
                .map_err(fail)?;
        } else {
            self.inject
                .bind_input("z", &self.z[self.current])
                .map_err(fail)?;
        }
        self.inject
            .bind_input("eps", &host_tensor(&lat, &eps).map_err(fail)?)
            .map_err(fail)?;
        self.inject
            .bind_input("std", &scalar(std).map_err(fail)?)
            .map_err(fail)?;
        let next = self.current ^ 1;
        self.inject
            .bind_output("z_next", &mut self.z[next])
            .map_err(fail)?;
        session
            .run_binding_with_options(&self.inject, opts)
            .map_err(fail)?;
        self.swap();
        Ok(())
    }

    /// One fused prediction (one UNet call per group) and Euler step from σ to σ_next, without the latents
    /// leaving the device; `calls` checks for cancellation before and reports progress after each UNet run.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        sessions: &mut SamplerSessions,
        unet: &mut Session,
        divisor: f32,
        timestep: f32,
        euler: [f32; 4],
        opts: &RunOptions,
        calls: &mut Calls<'_>,
    ) -> Result<(), PipelineError> {
        self.prepare
            .bind_input("z", &self.z[self.current])
            .map_err(fail)?;
        self.prepare
            .bind_input("divisor", &scalar(divisor).map_err(fail)?)
            .map_err(fail)?;
        sessions
            .prepare
            .run_binding_with_options(&self.prepare, opts)
            .map_err(fail)?;

        let t = scalar(timestep).map_err(fail)?;
        for (binding, sample) in self.unet.iter_mut().zip(&self.samples) {
            calls.before_run()?;
            binding.bind_input("sample", sample).map_err(fail)?;
            binding.bind_input("timestep", &t).map_err(fail)?;
            unet.run_binding_with_options(binding, opts).map_err(fail)?;
            calls.after_run();
        }

        let [c_out, s2, sigma, dt] = euler;
        self.update
            .bind_input("z", &self.z[self.current])
            .map_err(fail)?;
        for (gi, pred) in self.preds.iter().enumerate() {
            self.update
                .bind_input(format!("pred_{gi}"), pred)
                .map_err(fail)?;
        }
        for (name, v) in [("c_out", c_out), ("s2", s2), ("sigma", sigma), ("dt", dt)] {
            self.update
                .bind_input(name, &scalar(v).map_err(fail)?)
                .map_err(fail)?;
        }
        let next = self.current ^ 1;
        self.update
            .bind_output("z_next", &mut self.z[next])
            .map_err(fail)?;
        sessions
            .update
            .run_binding_with_options(&self.update, opts)
            .map_err(fail)?;
        self.swap();
        Ok(())
    }

    /// Copies the latents to the host (the one transfer of the loop's state).
    pub fn download(&self) -> Result<Vec<f32>, PipelineError> {
        let z = &self.z[self.current];
        if z.memory_info().allocation_device() == AllocationDevice::CPU {
            return Ok(z.extract_tensor().1.to_vec());
        }
        let host = z.to(AllocationDevice::CPU, 0).map_err(fail)?;
        Ok(host.extract_tensor().1.to_vec())
    }

    /// Where the loop's buffers are ("Cpu" or "Cuda"), as ONNX Runtime reports it.
    pub fn buffers_device(&self) -> String {
        self.z[self.current]
            .memory_info()
            .allocation_device()
            .as_str()
            .to_string()
    }
}
