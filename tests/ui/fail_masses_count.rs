nct::hamiltonian! {
    pub struct H { k: f64 = 1.0 }
    dof = 2;
    masses = [1.0, 2.0, 3.0];
    potential(q) = k * q[0] * q[1];
}
fn main() {}
