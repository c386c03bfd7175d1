package dev.kiln.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * Checked Java façade over {@link CudaDriverLibrary}, for what the runtime API cannot do: device
 * UUIDs, and loading and launching modules (PTX from {@link Nvrtc}, cubins, fatbins). Every call
 * checks its {@code CUresult} and throws {@link CudaDriverException} on failure. Modules,
 * functions and streams are plain {@code long} handles (stream 0 is the default stream); a stream
 * from {@link Cuda#streamCreate} is a valid {@code CUstream}.
 *
 * <p>The driver is available when libcuda loads and {@code cuInit(0)} succeeds; {@code cuInit} is
 * called once, on first use, under the JVM's class-initialisation lock, so any thread may make the
 * first call. When it is not available every call here throws {@link NativeUnavailableException}
 * carrying {@link #unavailableReason()}.
 *
 * <p>All methods are thread-safe. Modules and launches use the calling thread's current context:
 * with the runtime API, call {@link Cuda#setDevice(int)} on the thread first (since CUDA 12 that
 * makes the device's primary context current, the one runtime allocations and streams belong to).
 * A module belongs to the context it was loaded in.
 */
public final class CudaDriver {
    /** Bytes in a {@code CUuuid}. */
    public static final int UUID_BYTES = 16;

    private CudaDriver() {
    }

    private static final class Probe {
        static final String FAILURE = probe();
    }

    private static String probe() {
        String failure = CudaDriverLibrary.loadFailure();
        if (failure != null) {
            return failure;
        }
        try {
            int rc = CudaDriverLibrary.cuInit(0);
            if (rc != CudaDriverLibrary.CUDA_SUCCESS) {
                return "CUDA driver unusable: cuInit(0) returned " + errorName(rc) + " (" + rc + "): "
                        + errorString(rc) + " (libcuda from " + CudaDriverLibrary.source()
                        + "); check nvidia-smi and CUDA_VISIBLE_DEVICES";
            }
            return null;
        } catch (RuntimeException e) {
            return "CUDA driver probe failed: " + e;
        }
    }

    /**
     * Says whether the driver API can be used: libcuda loaded and {@code cuInit(0)} succeeded.
     *
     * @return true when the calls of this class can succeed
     */
    public static boolean isAvailable() {
        return Probe.FAILURE == null;
    }

    /**
     * Why the driver API cannot be used, with what to do about it: no libcuda (what was looked for,
     * where, which property to set), or the error {@code cuInit(0)} returned.
     *
     * @return the diagnosis, or an empty string when {@link #isAvailable()}
     */
    public static String unavailableReason() {
        return Probe.FAILURE == null ? "" : Probe.FAILURE;
    }

    private static void require() {
        if (Probe.FAILURE != null) {
            throw new NativeUnavailableException(Probe.FAILURE);
        }
    }

    private static void check(int rc, String call) {
        if (rc != CudaDriverLibrary.CUDA_SUCCESS) {
            throw new CudaDriverException(call, rc, errorName(rc), errorString(rc));
        }
    }

    /** For calls that act on the current context: says so when the thread has none. */
    private static void checkInContext(int rc, String call) {
        if (rc == CudaDriverLibrary.CUDA_ERROR_INVALID_CONTEXT && currentContext() == 0) {
            throw new CudaDriverException(call, rc, errorName(rc), errorString(rc)
                    + "; no context is current on this thread: call Cuda.setDevice(device) on it first");
        }
        check(rc, call);
    }

    private static String errorName(int rc) {
        return errorText(rc, true);
    }

    private static String errorString(int rc) {
        return errorText(rc, false);
    }

    private static String errorText(int rc, boolean name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment text = arena.allocate(ADDRESS);
            int result = name ? CudaDriverLibrary.cuGetErrorName(rc, text) : CudaDriverLibrary.cuGetErrorString(rc, text);
            return result == CudaDriverLibrary.CUDA_SUCCESS ? Cuda.cString(text.get(ADDRESS, 0)) : "unknown CUresult";
        }
    }

    private static int device(int ordinal) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment device = arena.allocate(JAVA_INT);
            check(CudaDriverLibrary.cuDeviceGet(device, ordinal), "cuDeviceGet");
            return device.get(JAVA_INT, 0);
        }
    }

    /**
     * A device's UUID as nvidia-smi prints it, for matching devices across processes and tools.
     * For a MIG instance the driver returns the instance's UUID, which nvidia-smi prints with a
     * {@code MIG-} prefix; this method always prints {@code GPU-}.
     *
     * @param ordinal the device ordinal (as {@code CUDA_VISIBLE_DEVICES} renumbers them)
     * @return {@code GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}, lower-case hex
     * @throws NativeUnavailableException when the driver is unavailable
     * @throws CudaDriverException        on a driver error (e.g. {@code CUDA_ERROR_INVALID_DEVICE})
     */
    public static String deviceUuid(int ordinal) {
        require();
        int device = device(ordinal);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment uuid = arena.allocate(CudaDriverLibrary.CUuuid);
            check(CudaDriverLibrary.cuDeviceGetUuid_v2(uuid, device), "cuDeviceGetUuid_v2");
            return uuidString(uuid.toArray(JAVA_BYTE));
        }
    }

    /**
     * Formats 16 UUID bytes the way nvidia-smi does: {@code GPU-} and groups of 8-4-4-4-12 hex digits.
     *
     * @param uuid the {@code CUuuid} bytes, in order
     * @return the formatted UUID, lower-case
     * @throws IllegalArgumentException when {@code uuid} is not {@value #UUID_BYTES} bytes
     */
    static String uuidString(byte[] uuid) {
        if (uuid.length != UUID_BYTES) {
            throw new IllegalArgumentException("a CUuuid has " + UUID_BYTES + " bytes, not " + uuid.length);
        }
        HexFormat hex = HexFormat.of();
        return "GPU-" + hex.formatHex(uuid, 0, 4) + "-" + hex.formatHex(uuid, 4, 6) + "-" + hex.formatHex(uuid, 6, 8)
                + "-" + hex.formatHex(uuid, 8, 10) + "-" + hex.formatHex(uuid, 10, 16);
    }

    /**
     * A device's total memory.
     *
     * @param ordinal the device ordinal
     * @return bytes
     * @throws NativeUnavailableException when the driver is unavailable
     * @throws CudaDriverException        on a driver error
     */
    public static long totalMemory(int ordinal) {
        require();
        int device = device(ordinal);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment bytes = arena.allocate(JAVA_LONG);
            check(CudaDriverLibrary.cuDeviceTotalMem_v2(bytes, device), "cuDeviceTotalMem_v2");
            return bytes.get(JAVA_LONG, 0);
        }
    }

    /**
     * The context bound to the calling thread.
     *
     * @return the {@code CUcontext} handle, 0 when the thread has none
     * @throws NativeUnavailableException when the driver is unavailable
     * @throws CudaDriverException        on a driver error
     */
    public static long currentContext() {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment context = arena.allocate(ADDRESS);
            check(CudaDriverLibrary.cuCtxGetCurrent(context), "cuCtxGetCurrent");
            return context.get(ADDRESS, 0).address();
        }
    }

    /**
     * Binds a context to the calling thread ({@code cuCtxSetCurrent}); 0 unbinds the thread's current context,
     * leaving the thread as a new thread is, without releasing the context.
     *
     * @param context a {@code CUcontext} handle from {@link #currentContext()}, or 0
     * @throws NativeUnavailableException when the driver is unavailable
     * @throws CudaDriverException        on a driver error
     */
    public static void setCurrentContext(long context) {
        require();
        check(CudaDriverLibrary.cuCtxSetCurrent(MemorySegment.ofAddress(context)), "cuCtxSetCurrent");
    }

    /**
     * Loads a module into the calling thread's current context: PTX text (JIT-compiled by the
     * driver for the device), a cubin or a fatbin. The bytes are copied; the array may be reused.
     *
     * @param image the image; PTX is NUL-terminated here when it is not already
     * @return the {@code CUmodule} handle; unload it with {@link #unloadModule}
     * @throws NativeUnavailableException when the driver is unavailable
     * @throws CudaDriverException        on a driver error (e.g. {@code CUDA_ERROR_INVALID_PTX},
     *                                    {@code CUDA_ERROR_UNSUPPORTED_PTX_VERSION} when the driver is
     *                                    older than the compiler, {@code CUDA_ERROR_INVALID_CONTEXT}
     *                                    when the thread has no context)
     */
    public static long loadModule(byte[] image) {
        require();
        byte[] terminated = nulTerminated(image);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(terminated.length);
            MemorySegment.copy(terminated, 0, data, JAVA_BYTE, 0, terminated.length);
            MemorySegment module = arena.allocate(ADDRESS);
            checkInContext(CudaDriverLibrary.cuModuleLoadData(module, data), "cuModuleLoadData");
            return module.get(ADDRESS, 0).address();
        }
    }

    /**
     * The image with a trailing NUL byte: {@code cuModuleLoadData} reads PTX up to the first NUL,
     * and a cubin or fatbin is read by its own headers, so the extra byte is harmless there.
     *
     * @param image the image
     * @return {@code image} itself when its last byte is 0, else a copy one byte longer
     */
    static byte[] nulTerminated(byte[] image) {
        return image.length > 0 && image[image.length - 1] == 0 ? image : Arrays.copyOf(image, image.length + 1);
    }

    /**
     * Finds a kernel in a loaded module.
     *
     * @param module the module from {@link #loadModule}
     * @param name   the kernel's name: as written when declared {@code extern "C"}, else mangled
     * @return the {@code CUfunction} handle, valid until the module is unloaded
     * @throws NativeUnavailableException when the driver is unavailable
     * @throws CudaDriverException        on a driver error ({@code CUDA_ERROR_NOT_FOUND} when there is
     *                                    no such kernel)
     */
    public static long function(long module, String name) {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment function = arena.allocate(ADDRESS);
            checkInContext(CudaDriverLibrary.cuModuleGetFunction(function, MemorySegment.ofAddress(module),
                    arena.allocateFrom(name)), "cuModuleGetFunction");
            return function.get(ADDRESS, 0).address();
        }
    }

    /**
     * Unloads a module; its functions must not be launched afterwards.
     *
     * @param module the module from {@link #loadModule}
     * @throws NativeUnavailableException when the driver is unavailable
     * @throws CudaDriverException        on a driver error
     */
    public static void unloadModule(long module) {
        require();
        checkInContext(CudaDriverLibrary.cuModuleUnload(MemorySegment.ofAddress(module)), "cuModuleUnload");
    }

    /**
     * Enqueues a kernel on a stream of the calling thread's current context; returns without
     * waiting. Errors in the kernel itself surface at a later synchronisation (e.g.
     * {@link Cuda#streamSynchronize}).
     *
     * @param function     the kernel from {@link #function}
     * @param gridX        blocks in x, at least 1
     * @param gridY        blocks in y, at least 1
     * @param gridZ        blocks in z, at least 1
     * @param blockX       threads per block in x, at least 1
     * @param blockY       threads per block in y, at least 1
     * @param blockZ       threads per block in z, at least 1
     * @param sharedBytes  dynamic shared memory per block, bytes
     * @param stream       the stream, 0 for the default stream
     * @param kernelParams a native segment holding one pointer per kernel argument, in order, each
     *                     to a native copy of that argument's value (a device pointer argument is a
     *                     pointer to an 8-byte address); read during this call only. NULL for a kernel
     *                     without arguments
     * @throws NativeUnavailableException when the driver is unavailable
     * @throws CudaDriverException        on a driver error (e.g. {@code CUDA_ERROR_INVALID_VALUE} for a
     *                                    bad launch shape, {@code CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES})
     */
    public static void launch(long function, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ,
                              int sharedBytes, long stream, MemorySegment kernelParams) {
        require();
        checkInContext(CudaDriverLibrary.cuLaunchKernel(MemorySegment.ofAddress(function), gridX, gridY, gridZ, blockX,
                blockY, blockZ, sharedBytes, MemorySegment.ofAddress(stream), kernelParams, MemorySegment.NULL),
                "cuLaunchKernel");
    }
}
