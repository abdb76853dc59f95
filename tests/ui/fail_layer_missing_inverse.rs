use nct::*;

#[derive(Default)]
pub struct Shift;

#[nct::layer(symplectic, dim = 1, params = 1)]
impl Shift {
    fn forward<D: Scalar>(&self, theta: &[D], x: &PhasePoint<D, Const<1>>) -> PhasePoint<D, Const<1>> {
        let mut y = *x;
        y.p[0] += theta[0];
        y
    }
}

fn main() {}
