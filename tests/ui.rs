//! Compile-time checks of the DSL: each `fail_*.rs` must fail with the message in its `.stderr`;
//! the pass cases are built in the same `TestCases` so post-monomorphisation errors are caught.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_*.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}
