//! The MPI process group (feature `mpi`), through rsmpi (the `mpi` crate).

use super::{Collective, rank_prefix};
use mpi::Threading;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::sync::Mutex;
use std::thread::ThreadId;

struct MpiWorld {
    comm: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// The thread that initialised MPI: the only one that communicates.
    thread: ThreadId,
}

// SAFETY: MPI is initialised with MPI_THREAD_FUNNELED and `comm` is used only from `thread`
// (`callable_here` is checked by every caller before a collective call); `abort` may come from
// any thread, which MPI_Abort permits in practice and which ends the process anyway.
unsafe impl Send for MpiWorld {}
unsafe impl Sync for MpiWorld {}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn callable_here(&self) -> bool {
        std::thread::current().id() == self.thread
    }
    fn all_gather(&self, mine: &[u8]) -> Vec<Vec<u8>> {
        assert!(self.callable_here(), "MPI collective called off the thread that initialised MPI");
        let Ok(n) = i32::try_from(mine.len()) else {
            eprintln!("error: {}a batch share of {} bytes exceeds what one MPI message can carry (2^31 - 1 bytes): use more ranks or a smaller batch", rank_prefix(), mine.len());
            self.abort(3)
        };
        let mut counts = vec![0i32; self.size];
        self.comm.all_gather_into(&n, &mut counts[..]);
        let total: i64 = counts.iter().map(|&c| c as i64).sum();
        if total > i32::MAX as i64 {
            eprintln!("error: {}the gathered batch ({total} bytes) exceeds what one MPI message can carry (2^31 - 1 bytes): use a smaller batch", rank_prefix());
            self.abort(3)
        }
        // Every partial sum is at most `total`, which fits.
        let displs: Vec<i32> = counts.iter().scan(0i32, |acc, &c| {
            let d = *acc;
            *acc += c;
            Some(d)
        }).collect();
        let mut buf = vec![0u8; total as usize];
        {
            let mut part = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
            self.comm.all_gather_varcount_into(mine, &mut part);
        }
        counts.iter().zip(&displs).map(|(&c, &d)| buf[d as usize..(d + c) as usize].to_vec()).collect()
    }
    fn abort(&self, code: i32) -> ! {
        self.comm.abort(code)
    }
}

/// The MPI environment, finalised by [`finish`].
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

pub(super) fn start() {
    let mut u = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner());
    if u.is_some() || super::WORLD.get().is_some() {
        return;
    }
    let Some((universe, _level)) = mpi::initialize_with_threading(Threading::Funneled) else { return };
    let comm = universe.world();
    let (rank, size) = (comm.rank() as usize, comm.size() as usize);
    super::install(Box::new(MpiWorld { comm, rank, size, thread: std::thread::current().id() }));
    *u = Some(universe);
    if size > 1 {
        if rank == 0 {
            eprintln!("ncT: {size} MPI ranks; each evaluates its share of every batch (results gathered, bitwise those of one process)");
        } else {
            silence_stdout();
        }
        // A panicking rank must not wait in MPI_Finalize while the others wait in a collective:
        // it aborts the process, which the launcher reports with the rank and ends the job.
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            eprintln!("{}panicked; ending the job", rank_prefix());
            default(info);
            std::process::abort();
        }));
    }
}

pub(super) fn finish(code: i32) {
    if let Some(w) = super::world() {
        if code != 0 {
            w.abort(code)
        }
        if w.rank() == 0 {
            let c = super::comm_stats();
            eprintln!("ncT: rank 0 spent {:.3} s in {} all-gathers ({:.2} MiB received; the time includes waiting for the slowest rank)", c.seconds, c.gathers, c.bytes as f64 / 1048576.0);
        }
    }
    drop(UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()).take());
}

/// Results are printed once, by rank 0: the other ranks write standard output to /dev/null.
fn silence_stdout() {
    use std::os::fd::AsRawFd;
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto the standard-output descriptor; both descriptors are valid.
        unsafe {
            libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO);
        }
    }
}
