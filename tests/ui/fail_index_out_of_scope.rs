nct::hamiltonian! {
    pub struct H<const N: usize> { kappa: f64 = 1.0 }
    potential(q) = {
        let s = sum(i in 0..N) q[i] * q[i];
        s * kappa + q[i]
    };
}
fn main() {}
