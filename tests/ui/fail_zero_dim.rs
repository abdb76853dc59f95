nct::flow! {
    pub struct F: Symplectic<0> { mix: LinearSymplectic }
}
fn main() {}
