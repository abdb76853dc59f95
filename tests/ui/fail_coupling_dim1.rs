nct::flow! {
    pub struct F: Symplectic<1> { point: PointTransform<RealNvp> { couplings: 2 } }
}
fn main() {}
