nct::flow! {
    pub struct F: Symplectic<4> { nvp: RealNvp { couplings: 2 }, mix: LinearSymplectic }
}
fn main() {}
