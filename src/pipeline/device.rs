//! The denoising loop with the latents kept on the execution device (IoBinding), for CUDA.
//!
//! On the host path (`engine.rs`) every UNet call ships the latents to the provider and its prediction back, and
//! the CFG/fusion/Euler arithmetic runs in Rust. At full size that is 4×25×4×72×128 floats (3.7 MB) each way,
//! 175 times per generation, plus a device synchronisation per call. Here the same arithmetic is expressed as three
//! small ONNX graphs built in memory with ONNX Runtime's model editor, run on the UNet's provider, and every tensor
//! of the loop (latents, UNet input, prediction) is a device buffer bound with IoBinding. Only scalars, the
//! re-injection noise (drawn on the host so a seed gives the same frames on every machine) and the final latents
//! cross the bus.
//!
//! The graphs repeat the host path's operations in the same order (see `schedule::euler_v_step` and
//! `Engine::fused_prediction`), so on the CPU the two paths agree to float rounding; the tests hold them to that.

use ort::editor::{Graph, Model, Node, ONNX_DOMAIN, Opset};
use ort::memory::{AllocationDevice, Allocator};
use ort::operator::Attribute;
use ort::session::{RunOptions, Session};
use ort::value::{Outlet, Shape, SymbolicDimensions, Tensor, TensorElementType, ValueType};

/// Where the latents live between UNet calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplerPlacement {
    /// On the device when the UNet runs on CUDA, on the host otherwise (where "device" memory is host memory and
    /// the extra graph launches would only cost time).
    #[default]
    Auto,
    Host,
    Device,
}

impl std::str::FromStr for SamplerPlacement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "host" => Ok(Self::Host),
            "device" => Ok(Self::Device),
            o => Err(format!("unknown sampler placement '{o}' (expected auto, host or device)")),
        }
    }
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
    fn rows(&self, channels: i64) -> [i64; 5] {
        [4, self.frames as i64, channels, self.h as i64, self.w as i64]
    }
    fn per_frame(&self) -> [i64; 5] {
        [1, self.frames as i64, 1, 1, 1]
    }
}

const OPSET: u32 = 21;

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
    fn new(inputs: &[(&str, &[i64])], output: (&str, &[i64]), frames: usize) -> ort::Result<Self> {
        let mut graph = Graph::new()?;
        graph.set_inputs(inputs.iter().map(|(n, s)| f32_outlet(n, s)))?;
        graph.set_outputs([f32_outlet(output.0, output.1)])?;
        Ok(Self { graph, nodes: 0, frames, has_reverse: false })
    }

    fn op(&mut self, op: &str, inputs: &[&str], output: &str, attributes: Vec<Attribute>) -> ort::Result<()> {
        self.nodes += 1;
        let name = format!("{op}_{}", self.nodes);
        self.graph.add_node(Node::new(op, ONNX_DOMAIN, name, inputs, [output], attributes)?)
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
        self.op("Gather", &[input, "reverse_frames"], output, vec![Attribute::new("axis", 1i64)?])
    }

    fn finish(self) -> ort::Result<Model> {
        let mut model = Model::new([Opset::new(ONNX_DOMAIN, OPSET)?])?;
        model.set_graph(self.graph)?;
        Ok(model)
    }
}

/// sample (4,F,8,h,w) = [z/d, z/d, flip(z/d), flip(z/d)] ‖ cond_rows along channels, as in `fused_prediction`.
pub fn prepare_graph(d: Dims) -> ort::Result<Model> {
    let (lat, rows4, rows8) = (d.latents(), d.rows(4), d.rows(8));
    let mut b = Builder::new(&[("z", &lat), ("divisor", &[1]), ("cond_rows", &rows4)], ("sample", &rows8), d.frames)?;
    b.op("Div", &["z", "divisor"], "zs", vec![])?;
    b.flip("zs", "zr")?;
    b.op("Concat", &["zs", "zs", "zr", "zr"], "zz", vec![Attribute::new("axis", 0i64)?])?;
    b.op("Concat", &["zz", "cond_rows"], "sample", vec![Attribute::new("axis", 2i64)?])?;
    b.finish()
}

/// z_next = Euler(z, fused v): CFG per direction, reverse rows flipped back, weighted fusion, then the
/// v-prediction Euler step with host-computed scalars (c_out, σ²+1, σ, Δσ).
pub fn update_graph(d: Dims) -> ort::Result<Model> {
    let (lat, rows4, pf) = (d.latents(), d.rows(4), d.per_frame());
    let inputs: [(&str, &[i64]); 10] = [
        ("z", &lat),
        ("pred", &rows4),
        ("g_fwd", &pf),
        ("g_rev", &pf),
        ("w_fwd", &pf),
        ("w_rev", &pf),
        ("c_out", &[1]),
        ("s2", &[1]),
        ("sigma", &[1]),
        ("dt", &[1]),
    ];
    let mut b = Builder::new(&inputs, ("z_next", &lat), d.frames)?;
    b.graph.add_node(Node::new(
        "Split",
        ONNX_DOMAIN,
        "split_rows",
        ["pred"],
        ["u1", "c1", "u2r", "c2r"],
        [Attribute::new("axis", 0i64)?, Attribute::new("num_outputs", 4i64)?],
    )?)?;
    b.flip("u2r", "u2")?;
    b.flip("c2r", "c2")?;
    for (u, c, g, v) in [("u1", "c1", "g_fwd", "v1"), ("u2", "c2", "g_rev", "v2")] {
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
    let mut b = Builder::new(&[("z", &lat), ("eps", &lat), ("std", &[1])], ("z_next", &lat), d.frames)?;
    b.op("Mul", &["eps", "std"], "noise", vec![])?;
    b.op("Add", &["z", "noise"], "z_next", vec![])?;
    b.finish()
}

/// The three sampler sessions, opened on the UNet's provider.
pub struct SamplerSessions {
    pub prepare: Session,
    pub update: Session,
    pub inject: Session,
}

fn scalar(v: f32) -> ort::Result<Tensor<f32>> {
    Tensor::from_array(([1usize], vec![v]))
}

fn per_frame(d: Dims, v: &[f32]) -> ort::Result<Tensor<f32>> {
    Tensor::from_array(([1usize, d.frames, 1, 1, 1], v.to_vec()))
}

/// The per-generation state of the on-device loop: buffers on the device, and one binding per session. The
/// latents ping-pong between two buffers so no graph ever reads the buffer it writes.
pub struct DeviceLoop {
    dims: Dims,
    z: [Tensor<f32>; 2],
    current: usize,
    sample: Tensor<f32>,
    pred: Tensor<f32>,
    prepare: ort::session::IoBinding,
    update: ort::session::IoBinding,
    inject: ort::session::IoBinding,
    unet: ort::session::IoBinding,
}

/// Fixed inputs of one generation, uploaded once.
pub struct LoopConstants<'a> {
    /// (4,F,4,h,w): the VAE conditioning latents of each row (zero for the unconditional rows).
    pub cond_rows: Vec<f32>,
    pub encoder_hidden_states: (Vec<usize>, Vec<f32>),
    pub added_time_ids: (Vec<usize>, Vec<f32>),
    pub g_fwd: &'a [f32],
    /// Reverse guidance indexed by output (forward-time) frame: g_rev[F−1−f] of the schedule.
    pub g_rev_by_output_frame: Vec<f32>,
    pub w_fwd: &'a [f32],
    pub w_rev: Vec<f32>,
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
    ) -> ort::Result<Self> {
        let allocator = if *device == AllocationDevice::CPU {
            Allocator::default()
        } else {
            Allocator::new(unet, crate::runtime::cuda_memory()?)?
        };
        let lat = dims.latents();
        let z = [Tensor::<f32>::new(&allocator, lat)?, Tensor::<f32>::new(&allocator, lat)?];
        let mut sample = Tensor::<f32>::new(&allocator, dims.rows(8))?;
        let mut pred = Tensor::<f32>::new(&allocator, dims.rows(4))?;

        // Host-side constants: ORT copies them to the device once, at bind time.
        let mut prepare = sessions.prepare.create_binding()?;
        prepare.bind_input("cond_rows", &Tensor::from_array((dims.rows(4).map(|v| v as usize).to_vec(), consts.cond_rows.clone()))?)?;
        prepare.bind_output("sample", &mut sample)?;

        let mut update = sessions.update.create_binding()?;
        update.bind_input("g_fwd", &per_frame(dims, consts.g_fwd)?)?;
        update.bind_input("g_rev", &per_frame(dims, &consts.g_rev_by_output_frame)?)?;
        update.bind_input("w_fwd", &per_frame(dims, consts.w_fwd)?)?;
        update.bind_input("w_rev", &per_frame(dims, &consts.w_rev)?)?;

        let inject = sessions.inject.create_binding()?;

        let mut unet_binding = unet.create_binding()?;
        let (shape, data) = &consts.encoder_hidden_states;
        unet_binding.bind_input("encoder_hidden_states", &Tensor::from_array((shape.clone(), data.clone()))?)?;
        let (shape, data) = &consts.added_time_ids;
        unet_binding.bind_input("added_time_ids", &Tensor::from_array((shape.clone(), data.clone()))?)?;
        let unet_output = unet.outputs().first().map(|o| o.name().to_string()).unwrap_or_else(|| "noise_pred".into());
        unet_binding.bind_output(unet_output.as_str(), &mut pred)?;

        Ok(Self { dims, z, current: 0, sample, pred, prepare, update, inject, unet: unet_binding })
    }

    fn swap(&mut self) {
        self.current ^= 1;
    }

    /// z ← base + std·eps, where base is the current latents, or zero for the initial latents.
    pub fn inject(&mut self, session: &mut Session, eps: Vec<f32>, std: f32, from_zero: bool, opts: &RunOptions) -> ort::Result<()> {
        let lat = self.dims.latents().map(|v| v as usize);
        if from_zero {
            self.inject.bind_input("z", &Tensor::from_array((lat.to_vec(), vec![0.0f32; eps.len()]))?)?;
        } else {
            self.inject.bind_input("z", &self.z[self.current])?;
        }
        self.inject.bind_input("eps", &Tensor::from_array((lat.to_vec(), eps))?)?;
        self.inject.bind_input("std", &scalar(std)?)?;
        let next = self.current ^ 1;
        self.inject.bind_output("z_next", &mut self.z[next])?;
        session.run_binding_with_options(&self.inject, opts)?;
        self.swap();
        Ok(())
    }

    /// One fused UNet call and Euler step from σ to σ_next, without the latents leaving the device.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        sessions: &mut SamplerSessions,
        unet: &mut Session,
        divisor: f32,
        timestep: f32,
        euler: [f32; 4],
        opts: &RunOptions,
    ) -> ort::Result<()> {
        self.prepare.bind_input("z", &self.z[self.current])?;
        self.prepare.bind_input("divisor", &scalar(divisor)?)?;
        sessions.prepare.run_binding_with_options(&self.prepare, opts)?;

        self.unet.bind_input("sample", &self.sample)?;
        self.unet.bind_input("timestep", &scalar(timestep)?)?;
        unet.run_binding_with_options(&self.unet, opts)?;

        let [c_out, s2, sigma, dt] = euler;
        self.update.bind_input("z", &self.z[self.current])?;
        self.update.bind_input("pred", &self.pred)?;
        for (name, v) in [("c_out", c_out), ("s2", s2), ("sigma", sigma), ("dt", dt)] {
            self.update.bind_input(name, &scalar(v)?)?;
        }
        let next = self.current ^ 1;
        self.update.bind_output("z_next", &mut self.z[next])?;
        sessions.update.run_binding_with_options(&self.update, opts)?;
        self.swap();
        Ok(())
    }

    /// Copies the latents to the host (the one transfer of the loop's state).
    pub fn download(&self) -> ort::Result<Vec<f32>> {
        let z = &self.z[self.current];
        if z.memory_info().allocation_device() == AllocationDevice::CPU {
            return Ok(z.extract_tensor().1.to_vec());
        }
        let host = z.to(AllocationDevice::CPU, 0)?;
        Ok(host.extract_tensor().1.to_vec())
    }

    /// Where the loop's buffers are ("Cpu" or "Cuda"), as ONNX Runtime reports it.
    pub fn buffers_device(&self) -> String {
        self.z[self.current].memory_info().allocation_device().as_str().to_string()
    }
}
