nct::hamiltonian! {
    pub struct Chain { n: f64 = 8.0 }
    dof = n;
    potential(q) = q[0] * q[0];
}

nct::hamiltonian! {
    pub struct Gas { n: usize = 4 }
    particles = n; dim = 3;
    masses = [2.0];
    potential(q) = q[0] * q[0];
}

fn main() {}
