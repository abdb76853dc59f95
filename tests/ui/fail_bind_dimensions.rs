use nct::*;

nct::flow! {
    pub struct Flow8: Symplectic<8> { mix: LinearSymplectic }
}

fn main() {
    let model = ClassicalNct::new(Flow8::new(0), LatentOscillators::new(Const::<4>, 1.0).unwrap());
    let _ = model;
}
