nct::flow! {
    pub struct F: Symplectic<4> { point: PointTransform<RealNvp> { couplings: 2.5, hidden: 64 } }
}
fn main() {}
