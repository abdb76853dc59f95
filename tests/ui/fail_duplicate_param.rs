nct::hamiltonian! {
    pub struct H<const N: usize> { kappa: f64 = 1.0, kappa: f64 = 2.0 }
    potential(q) = kappa * q[0] * q[0];
}
fn main() {}
