//! `ofx-demo`: renders in-between frames through the plugin `.ofx` in the in-repo host, like an editor would:
//! a clip whose frame 0 is keyframe A and frame N is keyframe B, the effect applied in the General context.
//!
//!   ofx-demo --from A.png --to B.png --length N --out DIR [--mode generative|blend] [--models DIR]
//!            [--cache DIR] [--frames a..b[,c..d]...] [--param name=value]... [--ofx PATH] [--sheet FILE]
//!   ofx-demo --clip PATTERN_OR_DIR --out DIR ...   (a whole clip: a numbered PNG sequence, each frame at its
//!            number, the clip's frame range its first to last; choose keyframes with --param keyframeSource=…)
//!
//! Writes DIR/frame_NNNN.png for every rendered frame (keyframes included, passed through), and
//! DIR/generations.txt with the number of generations this process ran (0 when served from the cache).

use std::path::PathBuf;
use std::process::ExitCode;

use ofx_test_host::*;
use svd_inbetween::image::ImageF32;

struct Args {
    from: PathBuf,
    to: PathBuf,
    length: i64,
    out: PathBuf,
    mode: i32,
    models: Option<String>,
    cache: Option<String>,
    /// Frame ranges to render, in order (a render-farm chunk may be several).
    frames: Option<Vec<(i64, i64)>>,
    clip: Option<PathBuf>,
    params: Vec<(String, String)>,
    sheet: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        from: PathBuf::new(),
        to: PathBuf::new(),
        length: 12,
        out: PathBuf::from("out/demo"),
        mode: 0,
        models: None,
        cache: None,
        frames: None,
        clip: None,
        params: vec![],
        sheet: None,
    };
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--from" => a.from = v()?.into(),
            "--to" => a.to = v()?.into(),
            "--length" => a.length = v()?.parse().map_err(|_| "--length needs a number")?,
            "--out" => a.out = v()?.into(),
            "--mode" => {
                a.mode = match v()?.as_str() {
                    "generative" => 0,
                    "blend" => 1,
                    m => return Err(format!("unknown mode {m} (generative or blend)")),
                }
            }
            "--models" => a.models = Some(v()?),
            "--cache" => a.cache = Some(v()?),
            "--frames" => a.frames = Some(parse_ranges(&v()?)?),
            "--clip" => a.clip = Some(v()?.into()),
            "--param" => {
                let s = v()?;
                let (n, val) = s.split_once('=').ok_or("--param wants name=value")?;
                a.params.push((n.into(), val.into()));
            }
            "--ofx" => unsafe { std::env::set_var("SVD_INBETWEEN_OFX", v()?) },
            "--sheet" => a.sheet = Some(v()?.into()),
            "-h" | "--help" => return Err("usage: ofx-demo (--from A.png --to B.png --length N | --clip PATTERN_OR_DIR) --out DIR [--mode generative|blend] [--models DIR] [--cache DIR] [--frames a..b[,c..d]] [--param name=value] [--ofx PATH] [--sheet FILE]".into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.clip.is_none() && a.length < 2 {
        return Err("--length must be at least 2".into());
    }
    Ok(a)
}

/// `a..b[,c..d]...` (inclusive ranges).
fn parse_ranges(s: &str) -> Result<Vec<(i64, i64)>, String> {
    s.split(',')
        .map(|r| {
            let (x, y) = r.split_once("..").ok_or("--frames wants a..b[,c..d]")?;
            Ok((
                x.trim().parse().map_err(|_| "bad --frames")?,
                y.trim().parse().map_err(|_| "bad --frames")?,
            ))
        })
        .collect()
}

/// A clip from a numbered PNG sequence: the Source clip holds each frame at its number.
fn clip_instance(
    p: &'static Plugin,
    input: &std::path::Path,
) -> Result<(Instance, i32, i32, (i64, i64)), String> {
    let seq = svd_inbetween::image_sequence::ImageSequence::open(input)?;
    let (first, last) = (seq.first(), seq.last());
    let mut inst = None;
    let mut size = (0, 0);
    for (&n, path) in &seq.frames {
        let img = ImageF32::read_png(path)
            .map_err(|e| e.to_string())?
            .to_channels(4)
            .map_err(|e| e.to_string())?;
        let inst = inst.get_or_insert_with(|| {
            size = (img.width as i32, img.height as i32);
            p.instance("OfxImageEffectContextGeneral", size.0, size.1, last as f64)
        });
        if (img.width as i32, img.height as i32) != size {
            return Err(format!(
                "{}: the clip's frames must have one size",
                path.display()
            ));
        }
        inst.add_frame(
            "Source",
            n,
            host_image_from_rgba(&img, Depth::Float, 4, false),
        );
    }
    let inst = inst.expect("a sequence has frames");
    inst.set_frame_range("Source", first as f64, last as f64);
    Ok((inst, size.0, size.1, (first, last)))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ofx-demo: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let a = parse()?;
    let p = plugin();
    eprintln!("loaded {} from {}", p.id(), p.path.display());
    let (inst, w, h, (first, last)) = match &a.clip {
        Some(clip) => clip_instance(p, clip)?,
        None => {
            let (inst, w, h) = pair_instance(p, &a)?;
            (inst, w, h, (0, a.length))
        }
    };
    inst.set_int("mode", a.mode);
    if let Some(m) = &a.models {
        inst.set_string("modelsFolder", m);
    }
    if let Some(c) = &a.cache {
        inst.set_string("cacheFolder", c);
    }
    for (n, v) in &a.params {
        if inst.param_kind(n).as_deref() == Some("OfxParamTypeString") {
            inst.set_string(n, v);
        } else if let Ok(i) = v.parse::<i32>() {
            inst.set_int(n, i);
        } else if let Ok(d) = v.parse::<f64>() {
            inst.set_double(n, d);
        } else {
            inst.set_string(n, v);
        }
    }
    std::fs::create_dir_all(&a.out).map_err(|e| e.to_string())?;
    let ranges = a.frames.clone().unwrap_or(vec![(first, last)]);
    let mut rendered = Vec::new();
    for t in ranges.into_iter().flat_map(|(f0, f1)| f0..=f1) {
        let (_, identity) = inst.is_identity(t as f64);
        let img = if let Some((clip, time)) = &identity {
            host_image_to_rgba(&inst.clip(clip).frames.lock().unwrap()[&(*time as i64)])
        } else {
            let st = inst.render(t as f64, [0, 0, w, h]);
            if st != 0 {
                let msgs: Vec<String> = inst
                    .messages()
                    .into_iter()
                    .map(|(k, m)| format!("{k}: {m}"))
                    .collect();
                return Err(format!(
                    "render of frame {t} failed (status {st}): {}",
                    msgs.join("; ")
                ));
            }
            host_image_to_rgba(&inst.output(t).ok_or("no output")?)
        };
        let path = a.out.join(format!("frame_{t:04}.png"));
        img.write_png(&path).map_err(|e| e.to_string())?;
        eprintln!(
            "frame {t}{}",
            if identity.is_some() {
                " (keyframe, passed through)"
            } else {
                ""
            }
        );
        rendered.push(img);
    }
    for (k, m) in inst.messages() {
        eprintln!("host message {k}: {m}");
    }
    let gens = generation_count(p);
    std::fs::write(a.out.join("generations.txt"), format!("{gens}\n"))
        .map_err(|e| e.to_string())?;
    if let Some(sheet) = &a.sheet {
        contact_sheet(&rendered, w as usize, h as usize)
            .write_png(sheet)
            .map_err(|e| e.to_string())?;
        eprintln!("contact sheet: {}", sheet.display());
    }
    eprintln!(
        "{} frames written to {} ({gens} generation(s) in this process)",
        rendered.len(),
        a.out.display()
    );
    Ok(())
}

/// The classic demo clip: frame 0 is keyframe A, frames 1..N−1 copies of it, frame N keyframe B, A/B set.
fn pair_instance(p: &'static Plugin, a: &Args) -> Result<(Instance, i32, i32), String> {
    let ka = ImageF32::read_png(&a.from)
        .map_err(|e| e.to_string())?
        .to_channels(4)
        .map_err(|e| e.to_string())?;
    let kb = ImageF32::read_png(&a.to)
        .map_err(|e| e.to_string())?
        .to_channels(4)
        .map_err(|e| e.to_string())?;
    if (ka.width, ka.height) != (kb.width, kb.height) {
        return Err("keyframes must have the same size".into());
    }
    let (w, h) = (ka.width as i32, ka.height as i32);
    let inst = p.instance("OfxImageEffectContextGeneral", w, h, a.length as f64);
    let img_a = host_image_from_rgba(&ka, Depth::Float, 4, false);
    let img_b = host_image_from_rgba(&kb, Depth::Float, 4, false);
    for t in 0..=a.length {
        inst.add_frame(
            "Source",
            t,
            if t < a.length {
                img_a.clone()
            } else {
                img_b.clone()
            },
        );
    }
    inst.set_int("keyframeA", 0);
    inst.set_int("keyframeB", a.length as i32);
    Ok((inst, w, h))
}

/// All frames side by side in rows of up to 7, with a 2-pixel gap.
fn contact_sheet(frames: &[ImageF32], w: usize, h: usize) -> ImageF32 {
    let cols = frames.len().clamp(1, 7);
    let rows = frames.len().div_ceil(cols);
    let mut out = ImageF32::new(cols * (w + 2), rows * (h + 2), 4);
    out.data
        .chunks_exact_mut(4)
        .for_each(|p| p.copy_from_slice(&[1.0, 1.0, 1.0, 1.0]));
    for (i, f) in frames.iter().enumerate() {
        let (ox, oy) = ((i % cols) * (w + 2), (i / cols) * (h + 2));
        for y in 0..h {
            for x in 0..w {
                let src = f.pixel(x, y).to_vec();
                out.pixel_mut(ox + x, oy + y).copy_from_slice(&src);
            }
        }
    }
    out
}
