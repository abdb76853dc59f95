nct::flow! {
    pub struct F: Symplectic<4> { net: Dense, mix: LinearSymplectic }
}
fn main() {}
