nct::flow! {
    pub struct F: Symplectic<8> { mix: LinearSymplectic<4> }
}
fn main() {}
