/**
 * FFM bindings to CUDA (runtime, driver, NVRTC) and NCCL, loaded lazily and optional; JCuda interop when JCuda is
 * on the path. Depends on Kiln's graph compiler for {@code KilnException} only; see docs/native-bindings.md.
 */
// JCuda is an automatic module named after its jar.
@SuppressWarnings("requires-automatic")
module dev.kiln.nativebindings {
    exports dev.kiln.cuda;
    exports dev.kiln.nccl;
    // KilnException, the root of every exception Kiln throws.
    requires transitive dev.kiln.graphcompiler;
    // JCudaPointers only; an application that calls JCuda brings it (and requires it).
    requires static jcuda;
}
