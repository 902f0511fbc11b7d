//! The whole action lifecycle through the real `.ofx`, with the frame-blend (preview baseline) mode checked
//! numerically against an independent computation, in every depth and component layout.

use ofx_test_host::*;

const W: i32 = 37; // odd sizes catch stride mistakes
const H: i32 = 21;

/// A deterministic test pattern for frame `t` (values in [0,1]).
fn pattern(x: i32, y: i32, c: usize, t: i64) -> f32 {
    (((x * 7 + y * 13 + c as i32 * 29 + t as i32 * 31) % 97) as f32) / 96.0
}

fn source(depth: Depth, comps: usize, top_down: bool, t: i64) -> HostImage {
    let mut img = HostImage::new([0, 0, W, H], depth, comps, top_down);
    for y in 0..H {
        for x in 0..W {
            for c in 0..comps {
                img.put(x, y, c, pattern(x, y, c, t));
            }
        }
    }
    img
}

fn quantize(v: f32, d: Depth) -> f32 {
    match d {
        Depth::Float => v,
        _ => (v.clamp(0.0, 1.0) * d.max()).round() / d.max(),
    }
}

fn blend_instance(depth: Depth, comps: usize, top_down: bool) -> Instance {
    let inst = plugin().instance("OfxImageEffectContextGeneral", W, H, 40.0);
    inst.set_int("mode", 1); // Frame blend (preview baseline)
    inst.set_int("keyframeA", 10);
    inst.set_int("keyframeB", 20);
    inst.set_output_format(depth, comps, top_down);
    for t in 0..=30 {
        inst.add_frame("Source", t, source(depth, comps, top_down, t));
    }
    inst
}

#[test]
fn plugin_exports_and_identity() {
    let p = plugin();
    assert_eq!(p.id(), "org.svdinbetween.SvdInbetween");
    // SAFETY: plugin table read-only fields.
    let api = unsafe { std::ffi::CStr::from_ptr((*p.plugin).pluginApi) };
    assert_eq!(api.to_str().unwrap(), "OfxImageEffectPluginAPI");
    assert_eq!(unsafe { (*p.plugin).apiVersion }, 1);
}

#[test]
fn describe_declares_contexts_depths_and_behaviour() {
    let (d, s1, s2) = plugin().describe("OfxImageEffectContextGeneral");
    assert_eq!((s1, s2), (0, 0));
    let props = &d.props;
    assert_eq!(
        props.get_str("OfxPropLabel", 0).as_deref(),
        Some("SVD Inbetween")
    );
    assert_eq!(
        props.get_strs("OfxImageEffectPropSupportedContexts"),
        [
            "OfxImageEffectContextGeneral",
            "OfxImageEffectContextFilter",
            "OfxImageEffectContextTransition"
        ]
    );
    assert_eq!(
        props.get_strs("OfxImageEffectPropSupportedPixelDepths"),
        ["OfxBitDepthByte", "OfxBitDepthShort", "OfxBitDepthFloat"]
    );
    assert_eq!(
        props.get_int("OfxImageEffectPropTemporalClipAccess", 0),
        Some(1)
    );
    assert_eq!(props.get_int("OfxImageEffectPropSupportsTiles", 0), Some(0));
    assert_eq!(
        props.get_int("OfxImageEffectPluginPropHostFrameThreading", 0),
        Some(0)
    );
    assert_eq!(
        props
            .get_str("OfxImageEffectPluginRenderThreadSafety", 0)
            .as_deref(),
        Some("OfxImageEffectRenderFullySafe")
    );
    let clips: Vec<String> = d
        .clips
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(clips, ["Source", "Output"]);
    let src = d.clip("Source").unwrap();
    let src = unsafe { &*src };
    assert_eq!(
        src.props.get_strs("OfxImageEffectPropSupportedComponents"),
        ["OfxImageComponentRGBA", "OfxImageComponentRGB"]
    );
    assert_eq!(
        src.props.get_int("OfxImageEffectPropTemporalClipAccess", 0),
        Some(1)
    );
    // every documented parameter exists, with ranges and a hint
    for (name, kind) in [
        ("mode", "OfxParamTypeChoice"),
        ("keyframeA", "OfxParamTypeInteger"),
        ("keyframeB", "OfxParamTypeInteger"),
        ("steps", "OfxParamTypeInteger"),
        ("seed", "OfxParamTypeInteger"),
        ("noiseInjectionSteps", "OfxParamTypeInteger"),
        ("noiseInjectionRatio", "OfxParamTypeDouble"),
        ("motionBucket", "OfxParamTypeInteger"),
        ("fps", "OfxParamTypeInteger"),
        ("noiseAug", "OfxParamTypeDouble"),
        ("guidanceMin", "OfxParamTypeDouble"),
        ("guidanceMax", "OfxParamTypeDouble"),
        ("fusion", "OfxParamTypeChoice"),
        ("frameSampling", "OfxParamTypeChoice"),
        ("inputTransfer", "OfxParamTypeChoice"),
        ("aspectFit", "OfxParamTypeChoice"),
        ("modelsFolder", "OfxParamTypeString"),
        ("device", "OfxParamTypeChoice"),
        ("unetMemory", "OfxParamTypeChoice"),
        ("cacheFolder", "OfxParamTypeString"),
    ] {
        let p = unsafe {
            &*d.param(name)
                .unwrap_or_else(|| panic!("param {name} missing"))
        };
        assert_eq!(p.kind, kind, "{name}");
        assert!(
            !p.props.get_strs("OfxParamPropHint").is_empty(),
            "{name} has no hint"
        );
        assert!(
            p.props.get("OfxParamPropDefault").is_some(),
            "{name} has no default"
        );
        if kind == "OfxParamTypeInteger" || kind == "OfxParamTypeDouble" {
            for r in [
                "OfxParamPropMin",
                "OfxParamPropMax",
                "OfxParamPropDisplayMin",
                "OfxParamPropDisplayMax",
            ] {
                assert!(p.props.get(r).is_some(), "{name} lacks {r}");
            }
        }
    }
    let mode = unsafe { &*d.param("mode").unwrap() };
    assert_eq!(
        mode.props.get_strs("OfxParamPropChoiceOption"),
        [
            "Generative (Stable Video Diffusion)",
            "Frame blend (preview baseline)"
        ]
    );
    let steps = unsafe { &*d.param("steps").unwrap() };
    assert_eq!(steps.props.get_int("OfxParamPropDefault", 0), Some(50));
    // the transition context swaps clips and drops keyframe params
    let (t, _, s2) = plugin().describe("OfxImageEffectContextTransition");
    assert_eq!(s2, 0);
    let clips: Vec<String> = t
        .clips
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(clips, ["SourceFrom", "SourceTo", "Output"]);
    assert!(t.param("Transition").is_some() && t.param("keyframeA").is_none());
    let (_, _, s3) = plugin().describe("OfxImageEffectContextPaint");
    assert_eq!(s3, 1, "unsupported context is refused");
}

#[test]
fn instance_actions_answer_correctly() {
    let inst = blend_instance(Depth::Float, 4, false);
    assert_eq!(
        inst.clip_preferences(),
        14,
        "ReplyDefault: we keep the host's preferences"
    );
    let (st, rod) = inst.region_of_definition(15.0);
    assert_eq!((st, rod), (0, vec![0.0, 0.0, W as f64, H as f64]));
    let (st, needed) = inst.frames_needed(15.0);
    assert_eq!(st, 0);
    assert_eq!(
        needed["OfxImageClipPropFrameRange_Source"],
        vec![10.0, 10.0, 20.0, 20.0]
    );
    let (_, needed) = inst.frames_needed(25.0);
    assert_eq!(
        needed["OfxImageClipPropFrameRange_Source"],
        vec![25.0, 25.0]
    );
    for (t, identity) in [
        (5.0, true),
        (10.0, true),
        (11.0, false),
        (19.0, false),
        (20.0, true),
        (30.0, true),
    ] {
        let (st, id) = inst.is_identity(t);
        if identity {
            assert_eq!((st, id), (0, Some(("Source".to_string(), t))), "t={t}");
        } else {
            assert_eq!((st, id), (14, None), "t={t}");
        }
    }
    // reversed keyframes: no interval, everything passes through
    inst.set_int("keyframeA", 20);
    inst.set_int("keyframeB", 10);
    assert_eq!(inst.is_identity(15.0).1, Some(("Source".to_string(), 15.0)));
}

fn check_blend(depth: Depth, comps: usize, top_down: bool, window: [i32; 4]) {
    let inst = blend_instance(depth, comps, top_down);
    assert_eq!(inst.sequence(true, [11.0, 19.0]), 0);
    for t in [11i64, 13, 17, 19] {
        assert_eq!(inst.render(t as f64, window), 0, "render t={t}");
        assert_eq!(
            inst.outstanding_images(),
            0,
            "every fetched image is released before render returns"
        );
        let out = inst.output(t).expect("output written");
        let u = (t as f32 - 10.0) / 10.0;
        let mut max_err = 0.0f32;
        for y in 0..H {
            for x in 0..W {
                let inside = x >= window[0] && x < window[2] && y >= window[1] && y < window[3];
                for c in 0..comps {
                    let got = out.get(x, y, c);
                    let want = if inside {
                        let a = quantize(pattern(x, y, c, 10), depth);
                        let b = quantize(pattern(x, y, c, 20), depth);
                        quantize((1.0 - u) * a + u * b, depth)
                    } else {
                        0.0 // outside the render window the host's buffer is untouched
                    };
                    max_err = max_err.max((got - want).abs());
                }
            }
        }
        // float: exact arithmetic order differs by at most an ulp; byte/short: the same rounding on both sides
        let tol = if depth == Depth::Float {
            1e-6
        } else {
            0.5 / depth.max() + 1e-6
        };
        assert!(
            max_err <= tol,
            "{depth:?} comps {comps} top_down {top_down} t={t}: max err {max_err}"
        );
    }
    assert_eq!(inst.sequence(false, [11.0, 19.0]), 0);
}

#[test]
fn frame_blend_all_depths_and_layouts() {
    for depth in [Depth::Byte, Depth::Short, Depth::Float] {
        for comps in [4, 3] {
            check_blend(depth, comps, false, [0, 0, W, H]);
        }
    }
}

#[test]
fn negative_row_bytes_and_partial_render_window() {
    check_blend(Depth::Float, 4, true, [0, 0, W, H]);
    check_blend(Depth::Byte, 3, true, [5, 3, 30, 17]);
    check_blend(Depth::Short, 4, false, [1, 2, 36, 20]);
}

#[test]
fn four_threads_render_at_once() {
    let inst = std::sync::Arc::new(blend_instance(Depth::Float, 4, false));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let inst = std::sync::Arc::clone(&inst);
            std::thread::spawn(move || {
                for t in [11 + i, 15 + i] {
                    assert_eq!(inst.render(t as f64, [0, 0, W, H]), 0);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for t in [11i64, 12, 13, 14, 15, 16, 17, 18] {
        let out = inst.output(t).unwrap();
        let u = (t as f32 - 10.0) / 10.0;
        let want = (1.0 - u) * pattern(3, 4, 1, 10) + u * pattern(3, 4, 1, 20);
        assert!((out.get(3, 4, 1) - want).abs() < 1e-6, "t={t}");
    }
}

#[test]
fn missing_keyframe_is_a_clear_error() {
    let inst = blend_instance(Depth::Float, 4, false);
    inst.clip("Source").frames.lock().unwrap().remove(&20);
    assert_eq!(inst.render(15.0, [0, 0, W, H]), 1);
    assert_eq!(
        inst.outstanding_images(),
        0,
        "the fetched keyframe A was released on the error path"
    );
    let msgs = inst.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0, "OfxMessageError");
    assert_eq!(
        msgs[0].1,
        "the host returned no image for clip 'Source' at frame 20. Check that the keyframes lie inside the clip."
    );
}

#[test]
fn transition_context_blends_from_and_to() {
    let inst = plugin().instance("OfxImageEffectContextTransition", W, H, 10.0);
    inst.set_int("mode", 1);
    for t in 0..=10 {
        inst.add_frame("SourceFrom", t, source(Depth::Float, 4, false, t));
        inst.add_frame("SourceTo", t, source(Depth::Float, 4, false, t + 50));
    }
    inst.set_double("Transition", 0.25);
    assert_eq!(inst.is_identity(4.0).0, 14);
    assert_eq!(inst.render(4.0, [0, 0, W, H]), 0);
    let out = inst.output(4).unwrap();
    let want = 0.75 * pattern(2, 2, 0, 4) + 0.25 * pattern(2, 2, 0, 54);
    assert!((out.get(2, 2, 0) - want).abs() < 1e-6);
    inst.set_double("Transition", 0.0);
    assert_eq!(inst.is_identity(4.0).1, Some(("SourceFrom".into(), 4.0)));
    inst.set_double("Transition", 1.0);
    assert_eq!(inst.is_identity(4.0).1, Some(("SourceTo".into(), 4.0)));
}
