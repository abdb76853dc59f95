nct::hamiltonian! {
    pub struct H<const N: usize> { kappa: f64 = 1.0 }
    potential(q) = kappa * q[0] * q[0] + beta * q[1];
}
fn main() {}
