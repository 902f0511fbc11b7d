//! A panic inside render must become kOfxStatFailed and a host message, never unwind into the host.
//! (Own test binary: the trigger is a process-wide environment variable.)

use ofx_test_host::*;

#[test]
fn panic_in_render_is_caught_and_reported() {
    let inst = plugin().instance("OfxImageEffectContextFilter", 8, 8, 10.0);
    inst.set_int("mode", 1);
    inst.set_int("keyframeA", 0);
    inst.set_int("keyframeB", 4);
    // SAFETY: single-threaded at this point of this test binary.
    unsafe { std::env::set_var("SVD_INBETWEEN_TEST_PANIC", "render") };
    let st = inst.render(2.0, [0, 0, 8, 8]);
    unsafe { std::env::remove_var("SVD_INBETWEEN_TEST_PANIC") };
    assert_eq!(st, 1, "kOfxStatFailed");
    let msgs = inst.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0, "OfxMessageError");
    assert!(msgs[0].1.starts_with("svd-inbetween hit an internal error in OfxImageEffectActionRender: test panic requested"), "{}", msgs[0].1);
    // the plugin is still usable afterwards
    assert_eq!(inst.is_identity(6.0).0, 0);
    drop(inst); // DestroyInstance
    assert_eq!(
        plugin().action("OfxActionUnload", std::ptr::null(), None, None),
        0,
        "Unload"
    );
}
