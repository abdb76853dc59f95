nct::flow! {
    pub struct F: Symplectic<4> { point: PointTransform<RealNvp> { couplings: 2, depth: 3 } }
}
fn main() {}
