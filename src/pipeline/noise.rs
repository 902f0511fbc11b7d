//! Every random draw of a generation (DESIGN §5 / INTERFACES §4): from one seeded generator in a fixed order,
//! or replayed from `.npy` files, and optionally saved, so any implementation can be compared with ours bit for bit.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::PipelineError;

/// Where a generation's noise comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoiseSource {
    /// Drawn from ChaCha8 seeded with the value (the generation's seed): deterministic on every platform.
    Seeded(u64),
    /// Replayed from a folder written by `--save-noise` (ours or the Python reference's).
    Replay(PathBuf),
}

pub struct NoiseStream {
    rng: Option<ChaCha8Rng>,
    replay: Option<PathBuf>,
    save: Option<PathBuf>,
    count: usize,
}

impl NoiseStream {
    pub fn new(source: &NoiseSource, save: Option<&Path>) -> Result<Self, PipelineError> {
        if let Some(dir) = save {
            std::fs::create_dir_all(dir).map_err(|e| {
                PipelineError::Noise(format!("cannot create noise folder {}: {e}", dir.display()))
            })?;
        }
        let (rng, replay) = match source {
            NoiseSource::Seeded(seed) => (Some(ChaCha8Rng::seed_from_u64(*seed)), None),
            NoiseSource::Replay(dir) => {
                if !dir.is_dir() {
                    return Err(PipelineError::Noise(format!(
                        "noise folder {} does not exist",
                        dir.display()
                    )));
                }
                (None, Some(dir.clone()))
            }
        };
        Ok(Self {
            rng,
            replay,
            save: save.map(Path::to_path_buf),
            count: 0,
        })
    }

    /// The next draw, named as the reference pipeline names it (e.g. `noise_aug`, `inject_step3_iter1`).
    pub fn draw(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, PipelineError> {
        let file = format!("{:03}_{name}.npy", self.count);
        self.count += 1;
        let n: usize = shape.iter().product();
        let data = if let Some(dir) = &self.replay {
            let path = dir.join(&file);
            let (got_shape, data) = read_npy_f32(&path).map_err(|e| {
                PipelineError::Noise(format!(
                    "noise file {}: {e} (expected shape {shape:?})",
                    path.display()
                ))
            })?;
            if got_shape != shape {
                return Err(PipelineError::Noise(format!(
                    "noise file {} has shape {got_shape:?}, expected {shape:?}",
                    path.display()
                )));
            }
            data
        } else {
            let rng = self.rng.as_mut().expect("seeded stream has a generator");
            (0..n).map(|_| StandardNormal.sample(rng)).collect()
        };
        if let Some(dir) = &self.save {
            let path = dir.join(&file);
            write_npy_f32(&path, shape, &data).map_err(|e| {
                PipelineError::Noise(format!("cannot write {}: {e}", path.display()))
            })?;
        }
        Ok(data)
    }
}

/// Writes a little-endian f32, C-order `.npy` (format 1.0).
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // magic(6) + version(2) + len(2) + header + '\n' must be a multiple of 64
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for v in data {
        f.write_all(&v.to_le_bytes())?;
    }
    f.flush()
}

/// Reads a `<f4` C-order `.npy` (format 1.x or 2.x). Anything else is an error, not a silent conversion.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = std::str::from_utf8(bytes.get(start..start + hlen).ok_or("truncated header")?)
        .map_err(|e| e.to_string())?;
    if !header.contains("'descr': '<f4'") {
        return Err(format!(
            "dtype is not little-endian float32: {}",
            header.trim()
        ));
    }
    if header.contains("'fortran_order': True") {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let s = header.find("'shape': (").ok_or("no shape in header")? + "'shape': (".len();
    let e = s + header[s..].find(')').ok_or("bad shape")?;
    let shape: Vec<usize> = header[s..e]
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<usize>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let n: usize = shape.iter().product();
    let body = &bytes[start + hlen..];
    if body.len() != n * 4 {
        return Err(format!(
            "payload has {} bytes, shape {shape:?} needs {}",
            body.len(),
            n * 4
        ));
    }
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_header_alignment() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        write_npy_f32(&p, &[1, 2, 3, 4], &data).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(
            (bytes.len() - 24 * 4) % 64,
            0,
            "header must be 64-byte aligned"
        );
        let (shape, back) = read_npy_f32(&p).unwrap();
        assert_eq!(shape, vec![1, 2, 3, 4]);
        assert_eq!(back, data);
    }

    #[test]
    fn npy_rejects_wrong_dtype_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_npy_f32(&p, &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 1);
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(
            read_npy_f32(&p).unwrap_err(),
            "payload has 15 bytes, shape [4] needs 16"
        );
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes.windows(3).position(|w| w == b"<f4").unwrap();
        bytes[at + 2] = b'8';
        std::fs::write(&p, &bytes).unwrap();
        assert!(
            read_npy_f32(&p)
                .unwrap_err()
                .starts_with("dtype is not little-endian float32")
        );
    }

    #[test]
    fn seeded_stream_is_deterministic_and_replayable() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = NoiseStream::new(&NoiseSource::Seeded(7), Some(dir.path())).unwrap();
        let x1 = a.draw("noise_aug", &[1, 3, 2, 2]).unwrap();
        let x2 = a.draw("init_latents", &[1, 2, 4, 1, 1]).unwrap();
        let mut b = NoiseStream::new(&NoiseSource::Seeded(7), None).unwrap();
        assert_eq!(b.draw("noise_aug", &[1, 3, 2, 2]).unwrap(), x1);
        let mut r = NoiseStream::new(&NoiseSource::Replay(dir.path().to_path_buf()), None).unwrap();
        assert_eq!(r.draw("noise_aug", &[1, 3, 2, 2]).unwrap(), x1);
        assert_eq!(r.draw("init_latents", &[1, 2, 4, 1, 1]).unwrap(), x2);
        let err = r
            .draw("inject_step0_iter0", &[1, 2, 4, 1, 1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("002_inject_step0_iter0.npy"), "{err}");
        // a different seed gives different noise; mean/std are those of a unit normal
        let mut c = NoiseStream::new(&NoiseSource::Seeded(8), None).unwrap();
        assert_ne!(c.draw("noise_aug", &[1, 3, 2, 2]).unwrap(), x1);
        let big = NoiseStream::new(&NoiseSource::Seeded(1), None)
            .unwrap()
            .draw("x", &[100_000])
            .unwrap();
        let mean = big.iter().sum::<f32>() / big.len() as f32;
        let var = big.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / big.len() as f32;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
            "mean {mean} var {var}"
        );
    }

    #[test]
    fn replay_checks_shape() {
        let dir = tempfile::tempdir().unwrap();
        write_npy_f32(
            &dir.path().join("000_noise_aug.npy"),
            &[1, 3, 2, 2],
            &[0.0; 12],
        )
        .unwrap();
        let mut r = NoiseStream::new(&NoiseSource::Replay(dir.path().to_path_buf()), None).unwrap();
        let err = r.draw("noise_aug", &[1, 3, 4, 4]).unwrap_err().to_string();
        assert!(
            err.contains("has shape [1, 3, 2, 2], expected [1, 3, 4, 4]"),
            "{err}"
        );
    }
}
