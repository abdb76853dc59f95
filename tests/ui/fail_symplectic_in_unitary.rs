nct::flow! {
    pub struct F: Unitary<4> { nvp: RealNvp, mix: LinearSymplectic }
}
fn main() {}
