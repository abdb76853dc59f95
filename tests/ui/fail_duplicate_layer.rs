nct::flow! {
    pub struct F: Symplectic<4> { mix: LinearSymplectic, mix: SymplecticScaling }
}
fn main() {}
