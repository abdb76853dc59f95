nct::hamiltonian! {
    pub struct H { k: f64 = 1.0 }
    dof = 5; particles = 2; dim = 3;
    potential(q) = k * q[0] * q[0];
}
fn main() {}
