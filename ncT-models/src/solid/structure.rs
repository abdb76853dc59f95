//! Crystal structures: POSCAR unit cells (orthorhombic, `Direct` coordinates) and supercells built
//! as the reference `create_supercell` builds them.

use std::path::Path;

/// A structure file or supercell request that cannot be used, naming the file, line or value.
#[derive(Debug, thiserror::Error)]
pub enum StructureError {
    #[error("{path}: cannot read ({why})")]
    Io { path: String, why: String },
    #[error("{path}, line {line}: {why}")]
    Format { path: String, line: usize, why: String },
    #[error("{what} = {value}: {allowed}")]
    Input { what: &'static str, value: String, allowed: &'static str },
}

/// An orthorhombic unit cell: lattice lengths and fractional coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitCell {
    pub lengths: [f64; 3],
    pub fractional: Vec<[f64; 3]>,
}

impl UnitCell {
    /// Reads a POSCAR file (VASP 5: comment, scale, three lattice rows, species, counts, `Direct`,
    /// coordinates). Only orthorhombic lattices are accepted (the reference uses the diagonal).
    pub fn read_poscar(path: impl AsRef<Path>) -> Result<Self, StructureError> {
        let p = path.as_ref();
        let ps = p.display().to_string();
        let text = std::fs::read_to_string(p).map_err(|e| StructureError::Io { path: ps.clone(), why: e.to_string() })?;
        Self::parse_poscar(&text, &ps)
    }

    /// [`UnitCell::read_poscar`] from text; `path` names it in errors.
    pub fn parse_poscar(text: &str, path: &str) -> Result<Self, StructureError> {
        let lines: Vec<&str> = text.lines().collect();
        let err = |line: usize, why: String| StructureError::Format { path: path.into(), line: line + 1, why };
        let nums = |k: usize| -> Result<Vec<f64>, StructureError> {
            let l = lines.get(k).ok_or_else(|| err(k, "the file ends early".into()))?;
            l.split_whitespace().map(|t| t.parse::<f64>().map_err(|_| err(k, format!("`{t}` is not a number")))).collect()
        };
        let scale = nums(1)?;
        if scale.len() != 1 || !(scale[0] > 0.0 && scale[0].is_finite()) {
            return Err(err(1, "the scale line must hold one positive number".into()));
        }
        let mut lengths = [0.0; 3];
        for a in 0..3 {
            let row = nums(2 + a)?;
            if row.len() != 3 {
                return Err(err(2 + a, format!("a lattice row has 3 numbers, found {}", row.len())));
            }
            for (b, v) in row.iter().enumerate() {
                if a != b && *v != 0.0 {
                    return Err(err(2 + a, "the lattice is not orthorhombic (off-diagonal entry); only orthorhombic cells are supported".into()));
                }
            }
            if !(row[a] > 0.0) {
                return Err(err(2 + a, format!("lattice length {} is not positive", row[a])));
            }
            lengths[a] = row[a] * scale[0];
        }
        let counts: Vec<usize> = lines.get(6).ok_or_else(|| err(6, "the file ends early".into()))?.split_whitespace().map(|t| t.parse::<usize>().map_err(|_| err(6, format!("`{t}` is not an atom count (line 6 holds the species names, line 7 the counts)")))).collect::<Result<_, _>>()?;
        let total: usize = counts.iter().sum();
        if counts.len() != 1 || total == 0 {
            return Err(err(6, format!("expected the atom count of one species, found {counts:?}")));
        }
        let mode = lines.get(7).map(|l| l.trim()).unwrap_or("");
        if !mode.eq_ignore_ascii_case("direct") {
            return Err(err(7, format!("`{mode}`: only `Direct` (fractional) coordinates are supported")));
        }
        let mut fractional = Vec::with_capacity(total);
        for k in 8..8 + total {
            let v = nums(k)?;
            if v.len() < 3 {
                return Err(err(k, format!("a coordinate line has 3 numbers, found {}", v.len())));
            }
            fractional.push([v[0], v[1], v[2]]);
        }
        Ok(UnitCell { lengths, fractional })
    }
}

/// A supercell: box lengths (Å) and lattice positions $R_0$ (Å, wrapped into $[0, L)$), atom
/// index = cell × basis + b with the cell index $(i_x, i_y, i_z)$, $i_z$ fastest.
#[derive(Clone, Debug, PartialEq)]
pub struct Supercell {
    pub lengths: [f64; 3],
    pub positions: Vec<[f64; 3]>,
    pub cells: [usize; 3],
    pub basis: usize,
}

impl Supercell {
    /// `cells` copies of `unit` rescaled to `volume_per_atom` (Å³). `cubic`: replace the box lengths
    /// by their mean (the reference does so for bcc, fcc and cI16).
    pub fn new(unit: &UnitCell, cells: [usize; 3], volume_per_atom: f64, cubic: bool) -> Result<Self, StructureError> {
        if !(volume_per_atom > 0.0 && volume_per_atom.is_finite()) {
            return Err(StructureError::Input { what: "volume per atom", value: volume_per_atom.to_string(), allowed: "a positive number of Å³" });
        }
        if cells.contains(&0) {
            return Err(StructureError::Input { what: "supercell", value: format!("{cells:?}"), allowed: "at least one cell along each axis" });
        }
        let basis = unit.fractional.len();
        let l0 = unit.lengths;
        let r_unit: Vec<[f64; 3]> = unit.fractional.iter().map(|f| std::array::from_fn(|k| l0[k] * f[k])).collect();
        let zoom = ((basis as f64 * volume_per_atom) / (l0[0] * l0[1] * l0[2])).powf(1.0 / 3.0);
        let mut lengths: [f64; 3] = std::array::from_fn(|k| l0[k] * cells[k] as f64 * zoom);
        let mut positions = Vec::with_capacity(basis * cells.iter().product::<usize>());
        for ix in 0..cells[0] {
            for iy in 0..cells[1] {
                for iz in 0..cells[2] {
                    let shift = [ix as f64, iy as f64, iz as f64];
                    for r in &r_unit {
                        let p: [f64; 3] = std::array::from_fn(|k| (r[k] + shift[k] * l0[k]) * zoom);
                        positions.push(std::array::from_fn(|k| p[k] - lengths[k] * (p[k] / lengths[k]).floor()));
                    }
                }
            }
        }
        if cubic {
            let old = lengths;
            let mean = (lengths[0] + lengths[1] + lengths[2]) / 3.0;
            lengths = [mean; 3];
            for p in positions.iter_mut() {
                for k in 0..3 {
                    p[k] = p[k] / old[k] * lengths[k];
                }
            }
        }
        Ok(Supercell { lengths, positions, cells, basis })
    }

    pub fn num_atoms(&self) -> usize {
        self.positions.len()
    }
    pub fn volume(&self) -> f64 {
        self.lengths.iter().product()
    }
    /// The same lattice scaled to box `lengths` (positions scaled componentwise).
    pub fn scaled_to(&self, lengths: [f64; 3]) -> Self {
        let positions = self.positions.iter().map(|p| std::array::from_fn(|k| p[k] / self.lengths[k] * lengths[k])).collect();
        Supercell { lengths, positions, ..self.clone() }
    }
}

/// The reference's fit of the volume per atom (Å³) of lithium at pressure `p` (GPa), used as the
/// starting volume of a constant-pressure run (`estimated_volume_from_pressure`).
pub fn estimated_volume_from_pressure(p: f64) -> f64 {
    let (a, b, c0, c1, c2, c3) = (1.42968085e+02, 1.10012398e+01, 7.16513098e+00, -2.68480269e-02, 8.52741727e-06, 4.45521304e-07);
    c0 + a / (p + b) + c1 * p + c2 * p * p + c3 * p * p * p
}
