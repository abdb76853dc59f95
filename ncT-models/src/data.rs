//! Data loading: NPY arrays (npyz), trajectory block layouts, train/validation splits by
//! contiguous trajectory blocks, and rigid-body (Kabsch) alignment of molecular configurations.

use nalgebra::{Matrix3, Vector3};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A malformed, missing or mismatched data file; the message names the file and the field.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("{file}: cannot read ({source})")]
    Io { file: PathBuf, #[source] source: std::io::Error },
    #[error("{file}: field `{field}` is {found}, expected {expected}")]
    Field { file: PathBuf, field: String, found: String, expected: String },
}

fn field(file: &Path, field: &str, found: impl ToString, expected: impl ToString) -> DataError {
    DataError::Field { file: file.into(), field: field.into(), found: found.to_string(), expected: expected.to_string() }
}

/// A 2-D array read from an NPY file, converted to f64, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Array2 {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Array2 {
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Read a 2-D little-endian `f4` or `f8` C-order NPY array; `cols` (if given) must match.
pub fn read_npy_2d(path: &Path, cols: Option<usize>) -> Result<Array2, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { file: path.into(), source })?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| field(path, "header", format!("unreadable ({e})"), "an NPY header"))?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 {
        return Err(field(path, "shape", format!("{shape:?}"), "a 2-D array [rows, cols]"));
    }
    let (rows, c) = (shape[0] as usize, shape[1] as usize);
    if let Some(want) = cols {
        if c != want {
            return Err(field(path, "shape", format!("{shape:?}"), format!("[rows, {want}]")));
        }
    }
    if npy.order() != npyz::Order::C {
        return Err(field(path, "fortran_order", "True", "False (C order)"));
    }
    let dtype = npy.dtype();
    let ts = match &dtype {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => return Err(field(path, "descr", format!("{other:?}"), "'<f4' or '<f8'")),
    };
    let data: Vec<f64> = match ts.as_str() {
        "<f4" => npy.into_vec::<f32>().map_err(|e| field(path, "data", format!("truncated or unreadable ({e})"), format!("{} f32 values", rows * c)))?.into_iter().map(f64::from).collect(),
        "<f8" => npy.into_vec::<f64>().map_err(|e| field(path, "data", format!("truncated or unreadable ({e})"), format!("{} f64 values", rows * c)))?,
        other => return Err(field(path, "descr", format!("'{other}'"), "'<f4' or '<f8'")),
    };
    if data.len() != rows * c {
        return Err(field(path, "data", format!("{} values", data.len()), format!("{} values", rows * c)));
    }
    if let Some(k) = data.iter().position(|v| !v.is_finite()) {
        return Err(field(path, &format!("data[{}][{}]", k / c, k % c), data[k], "a finite number"));
    }
    Ok(Array2 { rows, cols: c, data })
}

/// One trajectory: a contiguous block of frames.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct TrajectoryBlock {
    pub first_frame: usize,
    pub n_frames: usize,
}

#[derive(Deserialize)]
struct TrajectoryFile {
    n_frames: usize,
    trajectories: Vec<TrajectoryBlock>,
}

/// Read `trajectories.json` (fields `n_frames`, `trajectories[].first_frame`, `.n_frames`); the
/// blocks must tile `0..n_frames`.
pub fn read_trajectories(path: &Path) -> Result<Vec<TrajectoryBlock>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io { file: path.into(), source })?;
    let t: TrajectoryFile = serde_json::from_str(&text).map_err(|e| field(path, "(json)", e.to_string(), "{n_frames, trajectories: [{first_frame, n_frames}]}"))?;
    let mut next = 0;
    for (i, b) in t.trajectories.iter().enumerate() {
        if b.first_frame != next {
            return Err(field(path, &format!("trajectories[{i}].first_frame"), b.first_frame, next));
        }
        next += b.n_frames;
    }
    if next != t.n_frames {
        return Err(field(path, "n_frames", t.n_frames, format!("{next} (sum of the blocks)")));
    }
    Ok(t.trajectories)
}

/// Split frames by contiguous blocks: the last `valid_fraction` of every trajectory is validation,
/// the rest training (no frame of a validation stretch sits between training frames).
pub fn block_split(blocks: &[TrajectoryBlock], valid_fraction: f64) -> (Vec<usize>, Vec<usize>) {
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for b in blocks {
        let nv = ((b.n_frames as f64) * valid_fraction).round() as usize;
        let cut = b.first_frame + b.n_frames - nv;
        train.extend(b.first_frame..cut);
        valid.extend(cut..b.first_frame + b.n_frames);
    }
    (train, valid)
}

/// Optimal rotation (Kabsch, Acta Cryst. A32, 922 (1976)) of the centred `x` onto the centred
/// `reference` (both `[atoms][3]`); returns `x` centred and rotated.
pub fn kabsch_align(x: &[Vector3<f64>], reference: &[Vector3<f64>]) -> Vec<Vector3<f64>> {
    let n = x.len() as f64;
    let cx = x.iter().fold(Vector3::zeros(), |a, v| a + v) / n;
    let cr = reference.iter().fold(Vector3::zeros(), |a, v| a + v) / n;
    let mut h = Matrix3::zeros();
    for (a, b) in x.iter().zip(reference) {
        h += (a - cx) * (b - cr).transpose();
    }
    let svd = h.svd(true, true);
    let (u, vt) = (svd.u.expect("u"), svd.v_t.expect("v_t"));
    let d = (vt.transpose() * u.transpose()).determinant().signum();
    let r = vt.transpose() * Matrix3::from_diagonal(&Vector3::new(1.0, 1.0, d)) * u.transpose();
    x.iter().map(|v| r * (v - cx)).collect()
}

/// Align every frame to a common reference: first to frame 0, then `iterations` times to the
/// mean of the aligned frames.
pub fn align_frames(frames: &[Vec<Vector3<f64>>], iterations: usize) -> Vec<Vec<Vector3<f64>>> {
    let mut reference = kabsch_align(&frames[0], &frames[0]);
    let mut out: Vec<Vec<Vector3<f64>>> = frames.iter().map(|f| kabsch_align(f, &reference)).collect();
    for _ in 0..iterations {
        let n = out.len() as f64;
        reference = (0..reference.len()).map(|a| out.iter().fold(Vector3::zeros(), |s, f| s + f[a]) / n).collect();
        out = frames.iter().map(|f| kabsch_align(f, &reference)).collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Rotation3;

    #[test]
    fn kabsch_undoes_a_rigid_motion() {
        let reference: Vec<Vector3<f64>> = (0..6).map(|i| Vector3::new((i as f64).sin(), (2.0 * i as f64).cos(), 0.3 * i as f64)).collect();
        let rot = Rotation3::from_euler_angles(0.7, -1.1, 2.3);
        let moved: Vec<Vector3<f64>> = reference.iter().map(|v| rot * v + Vector3::new(1.0, -2.0, 0.5)).collect();
        let aligned = kabsch_align(&moved, &reference);
        let c = reference.iter().fold(Vector3::zeros(), |a, v| a + v) / 6.0;
        for (a, r) in aligned.iter().zip(&reference) {
            assert!((a - (r - c)).norm() < 1e-12);
        }
    }

    fn write_npy(path: &Path, header: &str, payload: &[u8]) {
        let mut h = header.to_string();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h.as_bytes());
        bytes.extend(payload);
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn npy_reader_checks_shape_dtype_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.npy");
        let vals: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        write_npy(&ok, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", &vals);
        let a = read_npy_2d(&ok, Some(3)).unwrap();
        assert_eq!((a.rows, a.cols), (2, 3));
        assert_eq!(a.row(1), &[4.0, 5.0, 6.0]);
        let e = read_npy_2d(&ok, Some(30)).unwrap_err().to_string();
        assert!(e.contains("ok.npy") && e.contains("shape") && e.contains("[rows, 30]"), "{e}");
        let bad = dir.path().join("int.npy");
        write_npy(&bad, "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1), }", &7i64.to_le_bytes());
        let e = read_npy_2d(&bad, None).unwrap_err().to_string();
        assert!(e.contains("int.npy") && e.contains("descr") && e.contains("<i8"), "{e}");
        let short = dir.path().join("short.npy");
        write_npy(&short, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", &vals[..10]);
        let e = read_npy_2d(&short, None).unwrap_err().to_string();
        assert!(e.contains("short.npy") && e.contains("data"), "{e}");
        let e = read_npy_2d(&dir.path().join("missing.npy"), None).unwrap_err().to_string();
        assert!(e.contains("missing.npy"), "{e}");
    }

    #[test]
    fn block_split_keeps_trajectories_contiguous() {
        let blocks = vec![TrajectoryBlock { first_frame: 0, n_frames: 10 }, TrajectoryBlock { first_frame: 10, n_frames: 20 }];
        let (t, v) = block_split(&blocks, 0.2);
        assert_eq!(v, vec![8, 9, 26, 27, 28, 29]);
        assert_eq!(t.len() + v.len(), 30);
    }

    #[test]
    fn shared_alanine_data_loads_when_present() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/alanine-dipeptide");
        if !dir.exists() {
            eprintln!("skipping: {} not present", dir.display());
            return;
        }
        let blocks = read_trajectories(&dir.join("trajectories.json")).unwrap();
        assert_eq!(blocks.len(), 3);
        let d = read_npy_2d(&dir.join("dihedrals.npy"), Some(2)).unwrap();
        assert_eq!(d.rows, 120000);
        assert!(d.data.iter().all(|a| a.abs() <= std::f64::consts::PI + 1e-6));
    }
}
