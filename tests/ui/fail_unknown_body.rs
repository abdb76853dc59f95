nct::hamiltonian! {
    pub struct H<const N: usize> { k: f64 = 1.0 }
    potentail(q) = k * q[0];
}
fn main() {}
