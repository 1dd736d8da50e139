//! What every fuzz target binary shares: the target lookup, and the allocator that
//! makes huge allocations crashes (`fuzz_targets::alloc_limit`; the targets build with
//! `-s none`, see README.md).

use fuzz_targets::alloc_limit::LimitedAllocator;

#[global_allocator]
static ALLOCATOR: LimitedAllocator = LimitedAllocator;

/// The target `name` of `fuzz_targets::TARGETS`.
pub fn target(name: &str) -> fuzz_targets::Target {
    fuzz_targets::target(name).unwrap_or_else(|| panic!("{name} is not a listed target"))
}
