//! DeepPot-SE (Zhang, Han, Wang, Saidi, Car & E, "End-to-end symmetry preserving inter-atomic
//! potential energy model for finite and extended systems", NeurIPS 2018) with the hybrid
//! se_e2_a + se_e3 descriptor of the lithium models Li-DP-Hyb2/Hyb3 (dp0/dp4) of Zhang et al.,
//! PRL 134, 246101 (2025), evaluated exactly as the reference JAX code `src/dpjax_lithium.py`.
//!
//! For centre $i$ and every neighbour $(j, m)$ within $r_c$ (periodic image $m\circ L$),
//! $\vec r = R_i - R_j - m\circ L$, the environment row is
//! $e = (s/r,\ s x/r^2,\ s y/r^2,\ s z/r^2)$ with the switch $s(u) = 1 - 10u^3 + 15u^4 - 6u^5$,
//! $u = (r - r_s)/(r_c - r_s)$; rows are sorted nearest first, padded with zeros to `sel` and
//! normalised slot by slot, $\hat e = (e - \mu)/\sigma$ (padding included).
//! * se_e2_a: $G_k = \mathcal N_2(\hat e_{k0}) \in \mathbb R^{M}$,
//!   $T = \frac1S \hat E^\top G \in \mathbb R^{4\times M}$, $D^2_{ab} = \sum_c T_{ca}T_{cb}$, $b < M_2$.
//! * se_e3: $\theta_{jk} = \hat x_j\cdot\hat x_k$ of the vector parts,
//!   $D^3 = \frac1{S_3^2}\sum_{jk}\theta_{jk}\,\mathcal N_3(\theta_{jk})$.
//! * $\varepsilon_i = $ fitting net of $(D^2, D^3)$, $E = \sum_i\varepsilon_i$ (eV).
//!
//! Everything is one code path generic over the [`Scalar`]: `f64` gives energies, the hand-written
//! reverse pass gives $\partial E/\partial\vec r$ for every kept pair, hence the forces and the full
//! virial $W_{ab} = -\sum g_a r_b$; run on dual numbers the same reverse pass gives Hessian columns
//! (forward-over-reverse, [`DeepPot::hessian`]).

mod environment;
mod load;
mod nets;

pub use environment::PeriodicImages;
use environment::{Environment, Pair, image_counts};
use nets::{Dense, EmbeddingNet};
use nct::Scalar;
use num_dual::DualSVec64;

/// A model file that cannot be used, naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum DeepPotError {
    #[error("{path}: cannot read ({why})")]
    Io { path: String, why: String },
    #[error("{path}: {why}")]
    Format { path: String, why: String },
    #[error("{what} = {value}: {allowed}")]
    Input { what: &'static str, value: String, allowed: &'static str },
}

/// Energy (eV), forces $-\partial E/\partial R$ (eV/Å) and the full virial
/// $W_{ab} = -\partial E/\partial\varepsilon_{ab}$ (eV).
#[derive(Clone, Debug)]
pub struct EnergyForcesVirial<D> {
    pub energy: D,
    pub atomic: Vec<D>,
    pub forces: Vec<[D; 3]>,
    pub virial: [[D; 3]; 3],
}

/// The DeepPot-SE model: weights and hyper-parameters.
#[derive(Clone, Debug)]
pub struct DeepPot {
    pub name: String,
    two: Environment,
    three: Environment,
    axis: usize,
    embed2: EmbeddingNet,
    embed3: EmbeddingNet,
    fit: Vec<Dense>,
    fit_final: Dense,
    /// Padding contribution to $T$ for `n` occupied slots: $\frac1S\sum_{k\ge n}\hat e^{pad}_{kc}\,G^{pad}_{ka}$,
    /// `(sel + 1) × 4 × M`.
    t_pad: Vec<f64>,
}

impl DeepPot {
    /// The image set of a box of lengths `lengths` (fixed for later evaluations, as in the
    /// reference, where images are chosen at model construction).
    pub fn images(&self, lengths: [f64; 3]) -> Result<PeriodicImages, DeepPotError> {
        if lengths.iter().any(|l| !(l.is_finite() && *l > 0.0)) {
            return Err(DeepPotError::Input { what: "box lengths", value: format!("{lengths:?}"), allowed: "finite and positive (Å)" });
        }
        let (n2, n3) = (image_counts(self.two.rcut, lengths), image_counts(self.three.rcut, lengths));
        let n: [i32; 3] = std::array::from_fn(|k| n2[k].max(n3[k]));
        let count: i64 = n.iter().map(|&v| 2 * v as i64 + 1).product();
        if count > 100_000 {
            return Err(DeepPotError::Input { what: "box lengths", value: format!("{lengths:?}"), allowed: "a box whose image set is below 100000 triples (the cutoff is far larger than the box)" });
        }
        let mut triples = Vec::new();
        for x in -n[0]..=n[0] {
            for y in -n[1]..=n[1] {
                for z in -n[2]..=n[2] {
                    triples.push([x, y, z]);
                }
            }
        }
        let norm = |m: &[i32; 3]| m.iter().map(|&v| (v * v) as i64).sum::<i64>();
        triples.sort_by_key(norm);
        let within = |m: &[i32; 3], c: [i32; 3]| (0..3).all(|k| m[k].abs() <= c[k]);
        let in_two = triples.iter().map(|m| within(m, n2)).collect();
        let in_three = triples.iter().map(|m| within(m, n3)).collect();
        Ok(PeriodicImages { triples, in_two, in_three })
    }

    /// Neighbour pairs of every centre for both descriptors, nearest first, at most `sel` each.
    #[allow(clippy::type_complexity)]
    fn pairs<D: Scalar>(&self, images: &PeriodicImages, pos: &[[D; 3]], lengths: [D; 3]) -> (Vec<Vec<Pair<D>>>, Vec<Vec<Pair<D>>>) {
        let n = pos.len();
        let lre: [f64; 3] = std::array::from_fn(|k| lengths[k].re());
        // Wrap into the box; the derivative of the wrap is 1 (and -floor with respect to L).
        let w: Vec<[D; 3]> = pos.iter().map(|r| std::array::from_fn(|k| r[k] - lengths[k] * (r[k].re() / lre[k]).floor())).collect();
        let wre: Vec<[f64; 3]> = w.iter().map(|r| std::array::from_fn(|k| r[k].re())).collect();
        let offs: Vec<[f64; 3]> = images.triples.iter().map(|m| std::array::from_fn(|k| m[k] as f64 * lre[k])).collect();
        let cut = self.two.rcut.max(self.three.rcut);
        let mut two = Vec::with_capacity(n);
        let mut three = Vec::with_capacity(n);
        for i in 0..n {
            // (distance, image, j) of every candidate within the larger cutoff.
            let mut cand: Vec<(f64, usize, usize)> = Vec::new();
            for (im, off) in offs.iter().enumerate() {
                for j in 0..n {
                    if j == i && im == 0 {
                        continue;
                    }
                    let d2: f64 = (0..3).map(|k| (wre[i][k] - wre[j][k] - off[k]).powi(2)).sum();
                    if d2 < cut * cut {
                        cand.push((d2.sqrt(), im, j));
                    }
                }
            }
            cand.sort_by(|a, b| a.0.total_cmp(&b.0));
            let make = |env: &Environment, &(_, im, j): &(f64, usize, usize)| {
                let m = images.triples[im];
                let v: [D; 3] = std::array::from_fn(|k| w[i][k] - w[j][k] - lengths[k] * m[k] as f64);
                let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                let (s, ds) = env.switch(r);
                Pair { j, v, r, s, ds }
            };
            two.push(cand.iter().filter(|c| c.0 < self.two.rcut && images.in_two[c.1]).take(self.two.sel).map(|c| make(&self.two, c)).collect());
            three.push(cand.iter().filter(|c| c.0 < self.three.rcut && images.in_three[c.1]).take(self.three.sel).map(|c| make(&self.three, c)).collect());
        }
        (two, three)
    }

    /// Energy in eV.
    pub fn energy<D: Scalar>(&self, images: &PeriodicImages, pos: &[[D; 3]], lengths: [D; 3]) -> D {
        self.evaluate(images, pos, lengths, false).energy
    }

    /// Energy, atomic energies, forces and the full virial, all in eV (and Å).
    pub fn energy_forces_virial<D: Scalar>(&self, images: &PeriodicImages, pos: &[[D; 3]], lengths: [D; 3]) -> EnergyForcesVirial<D> {
        self.evaluate(images, pos, lengths, true)
    }

    fn evaluate<D: Scalar>(&self, images: &PeriodicImages, pos: &[[D; 3]], lengths: [D; 3], reverse: bool) -> EnergyForcesVirial<D> {
        let n = pos.len();
        let (m, m2, s) = (self.embed2.width(), self.axis, self.two.sel);
        let ng = self.embed3.width();
        let s3 = self.three.sel;
        let (two, three) = self.pairs(images, pos, lengths);

        // se_e2_a: rows and embeddings of all kept pairs at once.
        let rows: Vec<Vec<[D; 4]>> = two.iter().map(|ps| ps.iter().enumerate().map(|(k, p)| self.two.row(k, p)).collect()).collect();
        let first: Vec<D> = rows.iter().flatten().map(|e| e[0]).collect();
        let (g, dg) = if reverse { self.embed2.eval(&first) } else { (self.embed2.value(&first), Vec::new()) };
        let mut start = Vec::with_capacity(n);
        let mut acc = 0;
        for r in &rows {
            start.push(acc);
            acc += r.len();
        }
        let mut t_all: Vec<Vec<D>> = Vec::with_capacity(n);
        let mut x0 = vec![D::zero(); n * (m * m2 + ng)];
        let width = m * m2 + ng;
        for i in 0..n {
            let occ = rows[i].len();
            let mut t: Vec<D> = self.t_pad[occ * 4 * m..(occ + 1) * 4 * m].iter().map(|&v| D::from(v)).collect();
            for (k, e) in rows[i].iter().enumerate() {
                let gk = &g[(start[i] + k) * m..(start[i] + k + 1) * m];
                for c in 0..4 {
                    let ec = e[c] / s as f64;
                    for a in 0..m {
                        t[c * m + a] += ec * gk[a];
                    }
                }
            }
            for a in 0..m {
                for b in 0..m2 {
                    x0[i * width + a * m2 + b] = (0..4).fold(D::zero(), |acc, c| acc + t[c * m + a] * t[c * m + b]);
                }
            }
            t_all.push(t);
        }

        // se_e3: the vector parts of the kept rows and the angle embeddings of all slot pairs j <= k.
        let xhat: Vec<Vec<[D; 3]>> = three.iter().map(|ps| ps.iter().enumerate().map(|(k, p)| {
            let e = self.three.row(k, p);
            [e[1], e[2], e[3]]
        }).collect()).collect();
        let mut theta = Vec::new();
        for x in &xhat {
            for j in 0..x.len() {
                for k in j..x.len() {
                    theta.push(x[j][0] * x[k][0] + x[j][1] * x[k][1] + x[j][2] * x[k][2]);
                }
            }
        }
        let (h3, dh3) = if reverse { self.embed3.eval(&theta) } else { (self.embed3.value(&theta), Vec::new()) };
        let norm3 = 1.0 / (s3 * s3) as f64;
        let mut q = 0;
        for (i, x) in xhat.iter().enumerate() {
            for j in 0..x.len() {
                for k in j..x.len() {
                    let mult = if j == k { norm3 } else { 2.0 * norm3 };
                    for mm in 0..ng {
                        x0[i * width + m * m2 + mm] += theta[q] * h3[q * ng + mm] * mult;
                    }
                    q += 1;
                }
            }
        }

        // Fitting net over all atoms.
        let mut h = x0;
        // The reverse pass needs only each layer's tanh activations.
        let mut acts = Vec::with_capacity(self.fit.len());
        for l in &self.fit {
            let (y, a) = l.forward(&h, n);
            acts.push(a);
            h = y;
        }
        let atomic = self.fit_final.affine(&h, n);
        let energy = atomic.iter().fold(D::zero(), |a, &e| a + e);
        let mut out = EnergyForcesVirial { energy, atomic, forces: vec![[D::zero(); 3]; n], virial: [[D::zero(); 3]; 3] };
        if !reverse {
            return out;
        }

        // Reverse pass: d E / d x0 for every atom.
        let wf = &self.fit_final.w;
        let mut hbar: Vec<D> = (0..n * self.fit_final.din).map(|k| D::from(wf[k % self.fit_final.din])).collect();
        for (l, a) in self.fit.iter().zip(&acts).rev() {
            hbar = l.backward(a, &hbar, n);
        }
        let x0bar = hbar;

        // Accumulates one pair's d E / d r into the forces and the virial.
        let add = |i: usize, p: &Pair<D>, gvec: [D; 3], out: &mut EnergyForcesVirial<D>| {
            for a in 0..3 {
                out.forces[i][a] -= gvec[a];
                out.forces[p.j][a] += gvec[a];
                for b in 0..3 {
                    out.virial[a][b] -= gvec[a] * p.v[b];
                }
            }
        };

        // se_e3 cotangents.
        let mut q = 0;
        for (i, x) in xhat.iter().enumerate() {
            let d3bar = &x0bar[i * width + m * m2..(i + 1) * width];
            let mut xbar = vec![[D::zero(); 3]; x.len()];
            for j in 0..x.len() {
                for k in j..x.len() {
                    let mult = if j == k { norm3 } else { 2.0 * norm3 };
                    let th = theta[q];
                    let tbar = (0..ng).fold(D::zero(), |acc, mm| acc + d3bar[mm] * (h3[q * ng + mm] + th * dh3[q * ng + mm])) * mult;
                    for c in 0..3 {
                        let (xj, xk) = (x[j][c], x[k][c]);
                        xbar[j][c] += tbar * xk;
                        xbar[k][c] += tbar * xj;
                    }
                    q += 1;
                }
            }
            for (k, p) in three[i].iter().enumerate() {
                let eb = [D::zero(), xbar[k][0] / self.three.std[4 * k + 1], xbar[k][1] / self.three.std[4 * k + 2], xbar[k][2] / self.three.std[4 * k + 3]];
                add(i, p, p.pull_back(eb), &mut out);
            }
        }

        // se_e2_a cotangents: T-bar, then every kept row.
        for i in 0..n {
            let d2bar = &x0bar[i * width..i * width + m * m2];
            let t = &t_all[i];
            let mut tbar = vec![D::zero(); 4 * m];
            for c in 0..4 {
                for a in 0..m {
                    let mut acc = D::zero();
                    for b in 0..m2 {
                        acc += d2bar[a * m2 + b] * t[c * m + b];
                    }
                    if a < m2 {
                        for a2 in 0..m {
                            acc += d2bar[a2 * m2 + a] * t[c * m + a2];
                        }
                    }
                    tbar[c * m + a] = acc;
                }
            }
            for (k, p) in two[i].iter().enumerate() {
                let e = rows[i][k];
                let gk = &g[(start[i] + k) * m..(start[i] + k + 1) * m];
                let dgk = &dg[(start[i] + k) * m..(start[i] + k + 1) * m];
                let mut ehat_bar = [D::zero(); 4];
                let mut first_bar = D::zero();
                for a in 0..m {
                    let mut gbar = D::zero();
                    for c in 0..4 {
                        ehat_bar[c] += tbar[c * m + a] * gk[a];
                        gbar += tbar[c * m + a] * e[c];
                    }
                    first_bar += gbar * dgk[a];
                }
                ehat_bar[0] += first_bar;
                let eb: [D; 4] = std::array::from_fn(|c| ehat_bar[c] / (s as f64 * self.two.std[4 * k + c]));
                add(i, p, p.pull_back(eb), &mut out);
            }
        }
        out
    }

    /// Energy (eV), gradient $\partial E/\partial R$ (eV/Å, flat index $3i + a$) and the Hessian
    /// $\partial^2 E/\partial R\,\partial R$ (eV/Å², $3N\times3N$, on the heap) at `pos`:
    /// forward-over-reverse, the reverse pass run on dual numbers seeded with 8 directions at a
    /// time. Symmetric to rounding; symmetrised here.
    pub fn hessian(&self, images: &PeriodicImages, pos: &[[f64; 3]], lengths: [f64; 3]) -> (f64, Vec<f64>, nalgebra::DMatrix<f64>) {
        const B: usize = 8;
        let dim = 3 * pos.len();
        let mut h = nalgebra::DMatrix::zeros(dim, dim);
        let base = self.energy_forces_virial(images, pos, lengths);
        let grad: Vec<f64> = base.forces.iter().flat_map(|f| f.iter().map(|v| -v)).collect();
        let lens: [DualSVec64<B>; 3] = std::array::from_fn(|k| DualSVec64::<B>::from_re(lengths[k]));
        for start in (0..dim).step_by(B) {
            let seeded: Vec<[DualSVec64<B>; 3]> = pos
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    std::array::from_fn(|a| {
                        let d = DualSVec64::<B>::from_re(r[a]);
                        let k = 3 * i + a;
                        if k >= start && k < start + B { d.derivative(k - start) } else { d }
                    })
                })
                .collect();
            let out = self.energy_forces_virial(images, &seeded, lens);
            for (i, f) in out.forces.iter().enumerate() {
                for a in 0..3 {
                    let eps = f[a].eps.unwrap_generic(nalgebra::Const::<B>, nalgebra::U1);
                    for c in 0..B.min(dim - start) {
                        h[(3 * i + a, start + c)] = -eps[c];
                    }
                }
            }
        }
        let sym = (&h + h.transpose()) * 0.5;
        (base.energy, grad, sym)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::nets::Skip;
    use num_dual::Dual64;

    fn model() -> DeepPot {
        DeepPot::load(crate::solid::data_dir().join("dp4.safetensors")).unwrap()
    }

    /// A compressed random cell (both descriptors active, images beyond the nearest).
    fn config() -> (Vec<[f64; 3]>, [f64; 3]) {
        let l = [5.1, 4.9, 5.3];
        let pos = (0..12).map(|i| std::array::from_fn(|a| ((i * 7 + a * 3) % 12) as f64 / 12.0 * l[a] + 0.21 * ((i * 5 + a) as f64).sin())).collect();
        (pos, l)
    }

    #[test]
    fn reverse_pass_forces_equal_forward_mode_derivatives() {
        let dp = model();
        let (pos, l) = config();
        let images = dp.images(l).unwrap();
        let out = dp.energy_forces_virial(&images, &pos, l);
        for (i, a) in [(0, 0), (3, 1), (7, 2), (11, 0)] {
            let seeded: Vec<[Dual64; 3]> = pos.iter().enumerate().map(|(j, r)| std::array::from_fn(|b| Dual64::new(r[b], if (j, b) == (i, a) { 1.0 } else { 0.0 }))).collect();
            let e = dp.energy(&images, &seeded, l.map(Dual64::from_re));
            assert!((e.re - out.energy).abs() < 1e-12 * out.energy.abs(), "{} vs {}", e.re, out.energy);
            assert!((-e.eps - out.forces[i][a]).abs() < 1e-11, "F[{i}][{a}] = {} vs {}", out.forces[i][a], -e.eps);
        }
        // The diagonal virial is minus the derivative under a uniaxial strain of positions and box.
        for a in 0..3 {
            let s = |r: f64, k: usize| if k == a { Dual64::new(r, r) } else { Dual64::from_re(r) };
            let seeded: Vec<[Dual64; 3]> = pos.iter().map(|r| std::array::from_fn(|k| s(r[k], k))).collect();
            let e = dp.energy(&images, &seeded, std::array::from_fn(|k| s(l[k], k)));
            assert!((-e.eps - out.virial[a][a]).abs() < 1e-10, "W[{a}][{a}] = {} vs {}", out.virial[a][a], -e.eps);
        }
        // Momentum conservation and a symmetric virial.
        for a in 0..3 {
            assert!(out.forces.iter().map(|f| f[a]).sum::<f64>().abs() < 1e-12);
            for b in 0..3 {
                assert!((out.virial[a][b] - out.virial[b][a]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn switch_and_layer_rules() {
        let dp = model();
        let env = &dp.two;
        for r in [0.5, 2.0, 4.5, 5.99] {
            let (s, ds) = env.switch(Dual64::new(r, 1.0));
            let (_, d): (f64, f64) = env.switch(r);
            assert!((s.eps - d).abs() < 1e-14 && (ds.re - d).abs() < 1e-14);
        }
        // s = 1 at 0, 0 at the cutoff with zero slope.
        let (s0, _) = env.switch(1e-12f64);
        let (sc, dc): (f64, f64) = env.switch(env.rcut - 1e-12);
        assert!((s0 - 1.0).abs() < 1e-12 && sc.abs() < 1e-12 && dc.abs() < 1e-10);
        let skips: Vec<Skip> = dp.embed2.layers.iter().map(|l| l.skip).collect();
        assert_eq!(skips, [Skip::None, Skip::Concat, Skip::Concat]);
        let fit: Vec<Skip> = dp.fit.iter().map(|l| l.skip).collect();
        assert_eq!(fit, [Skip::None, Skip::Identity, Skip::Identity]);
        assert!(dp.fit[0].idt.is_none() && dp.fit[1].idt.is_some() && dp.fit[2].idt.is_some());
        assert_eq!(dp.fit_final.skip, Skip::None);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let e = DeepPot::from_bytes(b"not a model", "x.safetensors").unwrap_err().to_string();
        assert!(e.contains("x.safetensors") && e.contains("safetensors"), "{e}");
        let e = DeepPot::load("/nonexistent/dp.safetensors").unwrap_err().to_string();
        assert!(e.contains("/nonexistent/dp.safetensors"), "{e}");
        let e = model().images([0.0, 1.0, 1.0]).unwrap_err().to_string();
        assert!(e.contains("box lengths"), "{e}");
    }
}
