nct::flow! {
    pub struct F: Symplectic<4> { lu: LinearBijector, mix: LinearSymplectic }
}
fn main() {}
