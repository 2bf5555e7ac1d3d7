//! The process's allocator: mimalloc, committing its memory on demand.
//!
//! On Linux mimalloc commits each arena it reserves (1 GiB of address space) at once ("eager
//! commit", its default where the kernel overcommits). Committed on demand instead, the process
//! holds less memory: measured with `benches/side_by_side.sh`'s setup (`docs/performance.md`,
//! "Fifth pass"), 19 MB against 30 at rest and 71–72 MB against 94–99 after 1000 connections,
//! with throughput inside the machine's noise.
//!
//! mimalloc reserves its first arena at the process's first allocation, which Rust's runtime
//! makes before `main` (the main thread's name): so the option is set by a constructor
//! (`.init_array`), which the dynamic loader runs before that and after mimalloc's own (which
//! reads the `MIMALLOC_*` environment). `MIMALLOC_ARENA_EAGER_COMMIT=1` keeps eager commit.

pub use mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in mimalloc 3's `mi_option_e` (`mimalloc.h`), which the
/// bindings of `libmimalloc-sys` 0.1 do not name.
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// mimalloc's own default for that option: eager where the kernel overcommits.
const MIMALLOC_DEFAULT: std::ffi::c_long = 2;

/// Commit arena memory on demand, unless the environment asked for eager commit.
pub extern "C" fn commit_on_demand() {
    // SAFETY: both calls read or store a value in mimalloc's static option table (reading it
    // first initializes it from the environment); the index is a valid option. No allocation.
    unsafe {
        if libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT) == MIMALLOC_DEFAULT {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        }
    }
}

/// Declares the process's allocator in a binary (the gateway, the benchmarks' minimal proxy):
/// mimalloc as the global allocator, and `commit_on_demand` run before `main`.
#[macro_export]
macro_rules! process_allocator {
    () => {
        #[global_allocator]
        static GLOBAL: $crate::allocator::MiMalloc = $crate::allocator::MiMalloc;

        #[cfg(target_os = "linux")]
        #[used]
        #[link_section = ".init_array"]
        static COMMIT_ON_DEMAND: extern "C" fn() = $crate::allocator::commit_on_demand;
    };
}

#[cfg(test)]
mod tests {
    use libmimalloc_sys::mi_option_get;

    /// That index 4 is `mi_option_arena_eager_commit` was checked outside the tests: gdb shows
    /// `mi_option_set (option=mi_option_arena_eager_commit, value=0)` in the gateway, and its RSS
    /// at rest falls as with `MIMALLOC_ARENA_EAGER_COMMIT=0`.
    #[test]
    fn commit_on_demand_sets_the_option_unless_the_environment_keeps_eager() {
        let asked = std::env::var("MIMALLOC_ARENA_EAGER_COMMIT").ok();
        super::commit_on_demand();
        // SAFETY: reads mimalloc's option table.
        let value = unsafe { mi_option_get(super::ARENA_EAGER_COMMIT) };
        match asked.as_deref() {
            Some("1") => assert_eq!(value, 1),
            _ => assert_eq!(value, 0),
        }
    }
}
