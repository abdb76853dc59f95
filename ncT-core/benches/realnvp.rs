//! RealNVP of 8 couplings with 2x128 tanh MLPs on n = 32: forward, forward + VJP per sample, and a
//! batch of 200 on one thread, per scalar type. Throughput is reported in FLOP/s ("elem/s" is
//! FLOP/s: the element count of each benchmark is its floating-point operation count).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nct_core::*;
use num_dual::Dual64;
use rand::SeedableRng;
use std::hint::black_box;

const N: usize = 32;
type S = Const<N>;
type SVector<T> = Vector<T, S>;

fn setup() -> (RealNvp<S>, Vec<f64>, Vec<SVector<f64>>) {
    let mut rng = NctRng::seed_from_u64(1);
    let flow = real_nvp(Const::<N>, 8, &[128, 128], Activation::Tanh, MaskScheme::AlternatingHalves, &mut rng).unwrap();
    let mut theta = flow.new_params(&mut rng);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.01 * ((k as f64) * 0.618).sin();
    }
    let xs = (0..200).map(|s| SVector::from_fn(Const, |i| ((i * 31 + s * 17) as f64 * 0.37).sin())).collect();
    (flow, theta, xs)
}

/// FLOPs of one forward pass: 2 per multiply-add in the dense layers (activations not counted).
fn forward_flops(flow: &RealNvp<S>) -> u64 {
    flow.layers().iter().map(|c| 2 * c.net().macs() as u64).sum()
}

fn bench(c: &mut Criterion) {
    let (flow, theta, xs) = setup();
    let f1 = forward_flops(&flow);
    eprintln!("RealNVP n={N}, 8 couplings, 2x128 tanh: {} parameters, {:.3} MFLOP per forward sample, {:.1} MFLOP forward at batch 200", flow.n_params(), f1 as f64 / 1e6, 200.0 * f1 as f64 / 1e6);
    let mut g = c.benchmark_group("realnvp_n32");
    g.throughput(Throughput::Elements(f1));
    g.bench_function(BenchmarkId::new("forward", "f64"), |b| b.iter(|| Bijector::forward(&flow, black_box(&theta), black_box(&xs[0])).0));
    let xd: SVector<Dual64> = xs[0].map(|v| Dual64::new(v, 1.0));
    g.bench_function(BenchmarkId::new("forward", "Dual64"), |b| b.iter(|| Bijector::forward(&flow, black_box(&theta), black_box(&xd)).0));
    // Forward + VJP: the VJP costs about two forward passes (xbar and the weight gradient).
    g.throughput(Throughput::Elements(3 * f1));
    let ybar = SVector::<f64>::from_element(Const, 0.1);
    let mut grad = vec![0.0; flow.n_params()];
    g.bench_function(BenchmarkId::new("forward_vjp", "f64"), |b| {
        b.iter(|| {
            let (_, _, cache) = Bijector::forward(&flow, &theta, black_box(&xs[0]));
            flow.vjp(&theta, &cache, &ybar, 1.0, &mut grad)
        })
    });
    let ybd = ybar.map(Dual64::from);
    let mut gd = vec![Dual64::from(0.0); flow.n_params()];
    g.bench_function(BenchmarkId::new("forward_vjp", "Dual64"), |b| {
        b.iter(|| {
            let (_, _, cache) = Bijector::forward(&flow, &theta, black_box(&xd));
            flow.vjp(&theta, &cache, &ybd, Dual64::from(1.0), &mut gd)
        })
    });
    g.throughput(Throughput::Elements(200 * 3 * f1));
    g.sample_size(20);
    g.bench_function(BenchmarkId::new("batch200_forward_vjp_1thread", "f64"), |b| {
        b.iter(|| {
            for x in &xs {
                let (_, _, cache) = Bijector::forward(&flow, &theta, x);
                flow.vjp(&theta, &cache, &ybar, 1.0, &mut grad);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
