//! Many-body states of fermions in the d-dimensional trap: sets of occupied orbitals (N↑ of one
//! spin, N↓ of the other; N↓ = 0 is the spin-polarised case), energies in integer units of
//! $\hbar\omega$ above the ground state. [`enumerate_states`] lists every state with excitation
//! at most ΔE, lowest first.

use super::orbitals::HoOrbitals;

/// One many-body state: occupied orbital indices (ascending) of each spin.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManyBodyState {
    /// Excitation above the ground state, in units of $\hbar\omega$.
    pub excitation: usize,
    pub up: Vec<usize>,
    pub down: Vec<usize>,
}

impl ManyBodyState {
    /// Total energy $\sum_{occupied} (n + d/2)$.
    pub fn energy(&self, orbitals: &HoOrbitals) -> f64 {
        self.up.iter().chain(&self.down).map(|&j| orbitals.energy(j)).sum()
    }
}

/// Ground-state shell sum of `n` fermions of one spin (lowest orbitals filled).
fn ground_shells(orbitals: &HoOrbitals, n: usize) -> usize {
    (0..n).map(|j| orbitals.shell(j)).sum()
}

/// All sets of `n` orbitals of `orbitals` whose shell sum is at most `ground + max_exc`.
fn one_spin(orbitals: &HoOrbitals, n: usize, max_exc: usize) -> Vec<(usize, Vec<usize>)> {
    let ground = ground_shells(orbitals, n);
    let shells: Vec<usize> = (0..orbitals.len()).map(|j| orbitals.shell(j)).collect();
    let mut out = Vec::new();
    fn rec(shells: &[usize], n: usize, start: usize, budget: usize, chosen: &mut Vec<usize>, used: usize, out: &mut Vec<(usize, Vec<usize>)>) {
        if chosen.len() == n {
            out.push((used, chosen.clone()));
            return;
        }
        let left = n - chosen.len();
        for j in start..shells.len() {
            if shells.len() - j < left {
                break;
            }
            // Cheapest completion from j: the next `left` orbitals (shells are ascending).
            let cheapest: usize = shells[j..j + left].iter().sum();
            if used + cheapest > budget {
                break;
            }
            chosen.push(j);
            rec(shells, n, j + 1, budget, chosen, used + shells[j], out);
            chosen.pop();
        }
    }
    rec(&shells, n, 0, ground + max_exc, &mut Vec::new(), 0, &mut out);
    out.into_iter().map(|(s, set)| (s - ground, set)).collect()
}

/// The orbitals needed for every state of `n_up + n_down` fermions in `dim` dimensions within
/// `delta_e` of the ground state, and those states, sorted by excitation (then by occupation).
pub fn enumerate_states(dim: usize, n_up: usize, n_down: usize, delta_e: usize) -> (HoOrbitals, Vec<ManyBodyState>) {
    // Shells up to the highest one a ground-state particle occupies, plus delta_e.
    let n = n_up.max(n_down);
    let mut top = 0;
    while (0..=top).map(|s| super::orbitals::shell_degeneracy(s, dim)).sum::<usize>() < n.max(1) {
        top += 1;
    }
    let orbitals = HoOrbitals::shells(dim, top + delta_e);
    let ups = one_spin(&orbitals, n_up, delta_e);
    let downs = one_spin(&orbitals, n_down, delta_e);
    let mut states: Vec<ManyBodyState> = ups
        .iter()
        .flat_map(|(eu, u)| downs.iter().filter(move |(ed, _)| eu + ed <= delta_e).map(move |(ed, dn)| ManyBodyState { excitation: eu + ed, up: u.clone(), down: dn.clone() }))
        .collect();
    states.sort();
    (orbitals, states)
}

/// Number of states [`enumerate_states`] would list, counted without listing them (a
/// dynamic programme over shells: $\binom{g_k}{c_k}$ ways to put $c_k$ particles of one spin in
/// shell $k$ of degeneracy $g_k$), so that a window too large to enumerate is refused up front.
/// As a float: counts beyond $2^{53}$ are approximate.
pub fn count_states(dim: usize, n_up: usize, n_down: usize, delta_e: usize) -> f64 {
    let deg = |k: usize| super::orbitals::shell_degeneracy(k, dim);
    // Per spin: the number of sets of n orbitals by excitation 0..=delta_e.
    let one = |n: usize| -> Vec<f64> {
        let (mut ground, mut left, mut k) = (0, n, 0);
        while left > 0 {
            let m = left.min(deg(k));
            ground += m * k;
            left -= m;
            k += 1;
        }
        let top = k + delta_e;
        let budget = ground + delta_e;
        // f[c][s]: ways to place c particles with shell sum s in the shells seen so far.
        let mut f = vec![vec![0.0f64; budget + 1]; n + 1];
        f[0][0] = 1.0;
        for shell in 0..=top {
            let g = deg(shell);
            let mut next = f.clone();
            for c in 0..=n {
                for sum in 0..=budget {
                    if f[c][sum] == 0.0 {
                        continue;
                    }
                    let mut ways = 1.0;
                    for m in 1..=g.min(n - c) {
                        ways *= (g - m + 1) as f64 / m as f64;
                        let s2 = sum + m * shell;
                        if s2 > budget {
                            break;
                        }
                        next[c + m][s2] += f[c][sum] * ways;
                    }
                }
            }
            f = next;
        }
        (0..=delta_e).map(|e| f[n][ground + e]).collect()
    };
    let (up, down) = (one(n_up), one(n_down));
    (0..=delta_e).map(|eu| (0..=delta_e - eu).map(|ed| up[eu] * down[ed]).sum::<f64>()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_counts_of_the_two_dimensional_dot() {
        // Spin-polarised 2D counts (FermiFlow's tables).
        for (n, de, count) in [(6, 2, 54), (6, 3, 186), (6, 4, 524), (3, 2, 21), (10, 2, 120)] {
            let (_, s) = enumerate_states(2, n, 0, de);
            assert_eq!(s.len(), count, "N = {n}, dE = {de}");
            assert_eq!(count_states(2, n, 0, de), count as f64);
            assert_eq!(s[0].excitation, 0);
            assert!(s.iter().all(|x| x.excitation <= de && x.up.len() == n));
        }
    }

    #[test]
    fn states_are_distinct_and_their_energies_agree_with_the_excitation() {
        let (o, s) = enumerate_states(2, 3, 2, 2);
        let e0 = s[0].energy(&o);
        let mut seen = std::collections::HashSet::new();
        for st in &s {
            assert!(seen.insert(st.clone()));
            assert!((st.energy(&o) - e0 - st.excitation as f64).abs() < 1e-12);
            assert!(st.up.windows(2).all(|w| w[0] < w[1]));
        }
        // Brute force over all subsets of the needed orbitals: the same number of states.
        let subsets = |k: usize| -> Vec<Vec<usize>> { (0u32..(1 << o.len())).filter(|m| m.count_ones() as usize == k).map(|m| (0..o.len()).filter(|&j| m >> j & 1 == 1).collect()).collect() };
        let shells = |v: &Vec<usize>| v.iter().map(|&j| o.shell(j)).sum::<usize>();
        let (ups, downs) = (subsets(3), subsets(2));
        let g = shells(&s[0].up) + shells(&s[0].down);
        let brute = ups.iter().flat_map(|u| downs.iter().map(move |d| shells(u) + shells(d))).filter(|&e| e <= g + 2).count();
        assert_eq!(brute, s.len());
        // The count without enumeration, spinful and in 3D.
        for (d, nu, nd, de) in [(2, 3, 2, 2), (3, 4, 2, 3), (3, 1, 0, 4), (2, 0, 0, 3)] {
            assert_eq!(count_states(d, nu, nd, de), enumerate_states(d, nu, nd, de).1.len() as f64, "d {d} up {nu} down {nd} dE {de}");
        }
    }
}
