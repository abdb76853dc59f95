use nct::*;

nct::hamiltonian! {
    /// Double well in one dimension.
    pub struct DoubleWell { a: f64 = 1.0, b: f64 = 4.0 }
    dof = 1;
    potential(q) = b * (q[0] * q[0] - a).powi(2);
}

nct::flow! {
    pub struct Flow: Symplectic<2> { point: PointTransform<RealNvp> { couplings: 2, hidden: [8] }, mix: LinearSymplectic }
}

nct::flow! {
    /// Quantum point transformation: linear (LU) map, then couplings.
    pub struct Vib: Unitary<3> { lu: LinearBijector, nvp: RealNvp { couplings: 2, hidden: [8] } }
}

fn main() {
    let states = QuantumNct::new(Vib::new(1), Vector::from([1.0, 1.5, 2.0]), Vector::from([1.0; 3]), 4);
    let _ = states.n_params();
    let h = DoubleWell::new();
    let flow = Flow::new(0);
    let model = ClassicalNct::new(flow, LatentOscillators::new(Const::<2>, 1.0).unwrap());
    let _ = (h, model);
}
