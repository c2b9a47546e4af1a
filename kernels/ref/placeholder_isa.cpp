// Scalar reference kernels (Isa::Ref) — filled in by the kernels work.
namespace qlm::kernels {
int ref_kernels_present() { return 1; }
}  // namespace qlm::kernels
