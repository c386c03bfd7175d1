package dev.kiln.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.ToIntFunction;

/**
 * Checked Java façade over {@link CudaRuntime}: every call checks its {@code cudaError_t} and
 * throws {@link CudaException} on failure. Device pointers, streams and events are plain
 * {@code long} addresses (0 is the default stream); device memory is never host-accessible, so it
 * is never handed out as a sized {@link MemorySegment}.
 *
 * <p>CUDA is available when libcudart loads, the driver is recent enough for it, and at least one
 * device is visible; this is probed once, on first use. When it is not available every call here
 * throws {@link NativeUnavailableException} carrying {@link #unavailableReason()}. All methods are
 * thread-safe; the current device is per thread, as in CUDA.
 */
public final class Cuda {
    /** Bytes in a {@code cudaIpcMemHandle_t} or {@code cudaIpcEventHandle_t}. */
    public static final int IPC_HANDLE_BYTES = 64;

    private Cuda() {
    }

    private static final class Probe {
        static final String FAILURE = probe();
    }

    private static String probe() {
        String failure = CudaRuntime.loadFailure();
        if (failure != null) {
            return failure;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            int driver = CudaRuntime.cudaDriverGetVersion(out) == CudaRuntime.cudaSuccess ? out.get(JAVA_INT, 0) : 0;
            int runtime = CudaRuntime.cudaRuntimeGetVersion(out) == CudaRuntime.cudaSuccess ? out.get(JAVA_INT, 0) : 0;
            String from = " (libcudart " + version(runtime) + " from " + CudaRuntime.source() + ")";
            if (driver == 0) {
                return "no CUDA driver: cudaDriverGetVersion reports 0, so libcuda.so.1 is missing or cannot be loaded"
                        + from + "; install the NVIDIA driver";
            }
            out.set(JAVA_INT, 0, 0);
            int rc = CudaRuntime.cudaGetDeviceCount(out);
            if (rc == CudaRuntime.cudaErrorInsufficientDriver) {
                return "driver too old: cudaDriverGetVersion reports " + version(driver) + ", runtime needs "
                        + version(runtime) + from + "; update the NVIDIA driver or set -D"
                        + CudaRuntime.PATH_PROPERTY + " to an older libcudart";
            }
            if (rc != CudaRuntime.cudaSuccess) {
                return "no CUDA device: cudaGetDeviceCount returned " + errorName(rc) + " (" + rc + "): "
                        + errorString(rc) + from + "; check nvidia-smi and CUDA_VISIBLE_DEVICES";
            }
            if (out.get(JAVA_INT, 0) == 0) {
                return "no CUDA device: cudaGetDeviceCount returned 0" + from
                        + "; check nvidia-smi and CUDA_VISIBLE_DEVICES";
            }
            return null;
        } catch (RuntimeException e) {
            return "CUDA probe failed: " + e;
        }
    }

    private static String version(int cudaVersion) {
        return cudaVersion / 1000 + "." + cudaVersion % 1000 / 10;
    }

    /**
     * Says whether CUDA can be used: libcudart loaded, driver recent enough, a device visible.
     *
     * @return true when the calls of this class can succeed
     */
    public static boolean isAvailable() {
        return Probe.FAILURE == null;
    }

    /**
     * Why CUDA cannot be used, with what to do about it: no libcudart (what was looked for, where,
     * which property to set), driver too old, or no device.
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
        if (rc != CudaRuntime.cudaSuccess) {
            throw new CudaException(call, rc, errorName(rc), errorString(rc));
        }
    }

    /**
     * The name of a CUDA error code ({@code cudaGetErrorName}).
     *
     * @param code a {@code cudaError_t} value
     * @return e.g. {@code cudaErrorMemoryAllocation}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static String errorName(int code) {
        return cString(CudaRuntime.cudaGetErrorName(code));
    }

    /**
     * The description of a CUDA error code ({@code cudaGetErrorString}).
     *
     * @param code a {@code cudaError_t} value
     * @return e.g. {@code out of memory}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static String errorString(int code) {
        return cString(CudaRuntime.cudaGetErrorString(code));
    }

    @SuppressWarnings("restricted") // the runtime returns static, NUL-terminated strings
    static String cString(MemorySegment pointer) {
        return pointer.equals(MemorySegment.NULL) ? "(null)" : pointer.reinterpret(Long.MAX_VALUE).getString(0);
    }

    private static int intOut(ToIntFunction<MemorySegment> call, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(call.applyAsInt(out), name);
            return out.get(JAVA_INT, 0);
        }
    }

    private static long pointerOut(ToIntFunction<MemorySegment> call, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(call.applyAsInt(out), name);
            return out.get(ADDRESS, 0).address();
        }
    }

    /**
     * The number of visible devices.
     *
     * @return at least 1
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static int deviceCount() {
        require();
        return intOut(CudaRuntime::cudaGetDeviceCount, "cudaGetDeviceCount");
    }

    /**
     * Makes a device current for the calling thread.
     *
     * @param device the device ordinal
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error (e.g. {@code cudaErrorInvalidDevice})
     */
    public static void setDevice(int device) {
        require();
        check(CudaRuntime.cudaSetDevice(device), "cudaSetDevice");
    }

    /**
     * The calling thread's current device.
     *
     * @return the device ordinal
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static int device() {
        require();
        return intOut(CudaRuntime::cudaGetDevice, "cudaGetDevice");
    }

    /**
     * Says whether {@code device} can map memory of {@code peer} directly (peer-to-peer over NVLink
     * or PCIe); access must still be enabled before use. A device is not its own peer: CUDA
     * reports false for {@code device == peer}.
     *
     * @param device the device that would access the memory
     * @param peer   the device that holds the memory
     * @return true when peer access is possible
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error (e.g. {@code cudaErrorInvalidDevice})
     */
    public static boolean canAccessPeer(int device, int peer) {
        require();
        return intOut(out -> CudaRuntime.cudaDeviceCanAccessPeer(out, device, peer), "cudaDeviceCanAccessPeer") != 0;
    }

    /**
     * One attribute of a device.
     *
     * @param attribute the attribute
     * @param device    the device ordinal
     * @return its value
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static int deviceAttribute(DeviceAttribute attribute, int device) {
        require();
        return intOut(out -> CudaRuntime.cudaDeviceGetAttribute(out, attribute.cValue(), device), "cudaDeviceGetAttribute");
    }

    /**
     * The CUDA version the driver supports.
     *
     * @return 1000 * major + 10 * minor, e.g. 13000
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static int driverVersion() {
        require();
        return intOut(CudaRuntime::cudaDriverGetVersion, "cudaDriverGetVersion");
    }

    /**
     * The version of the loaded libcudart.
     *
     * @return 1000 * major + 10 * minor, e.g. 13000
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static int runtimeVersion() {
        require();
        return intOut(CudaRuntime::cudaRuntimeGetVersion, "cudaRuntimeGetVersion");
    }

    /**
     * Free and total memory of the current device.
     *
     * @return the two byte counts
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static MemoryInfo memoryInfo() {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(JAVA_LONG);
            MemorySegment total = arena.allocate(JAVA_LONG);
            check(CudaRuntime.cudaMemGetInfo(free, total), "cudaMemGetInfo");
            return new MemoryInfo(free.get(JAVA_LONG, 0), total.get(JAVA_LONG, 0));
        }
    }

    /**
     * Free and total memory of a device, from {@code cudaMemGetInfo}.
     *
     * @param freeBytes  bytes free
     * @param totalBytes bytes in all
     */
    public record MemoryInfo(long freeBytes, long totalBytes) {
    }

    /**
     * Allocates device memory on the current device.
     *
     * @param bytes the size
     * @return the device address; free it with {@link #free}
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error (e.g. {@code cudaErrorMemoryAllocation})
     */
    public static long malloc(long bytes) {
        require();
        return pointerOut(out -> CudaRuntime.cudaMalloc(out, bytes), "cudaMalloc");
    }

    /**
     * Frees device memory from {@link #malloc}.
     *
     * @param devicePointer the device address
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void free(long devicePointer) {
        require();
        check(CudaRuntime.cudaFree(MemorySegment.ofAddress(devicePointer)), "cudaFree");
    }

    /**
     * Allocates page-locked host memory.
     *
     * @param bytes the size
     * @return a segment of that size, readable and writable from Java; free it with {@link #freeHost}
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    @SuppressWarnings("restricted") // cudaMallocHost returned exactly this many bytes
    public static MemorySegment mallocHost(long bytes) {
        require();
        return MemorySegment.ofAddress(pointerOut(out -> CudaRuntime.cudaMallocHost(out, bytes), "cudaMallocHost"))
                .reinterpret(bytes);
    }

    /**
     * Frees host memory from {@link #mallocHost}. The segment must not be used afterwards.
     *
     * @param hostMemory the segment {@link #mallocHost} returned
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void freeHost(MemorySegment hostMemory) {
        require();
        check(CudaRuntime.cudaFreeHost(hostMemory), "cudaFreeHost");
    }

    /**
     * Pins existing native host memory so that copies to and from it can be asynchronous.
     *
     * @param hostMemory a native segment
     * @param flags      {@link CudaRuntime#cudaHostRegisterDefault} or
     *                   {@link CudaRuntime#cudaHostRegisterPortable}
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void hostRegister(MemorySegment hostMemory, int flags) {
        require();
        check(CudaRuntime.cudaHostRegister(hostMemory, hostMemory.byteSize(), flags), "cudaHostRegister");
    }

    /**
     * Unpins memory pinned by {@link #hostRegister}.
     *
     * @param hostMemory the same segment
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void hostUnregister(MemorySegment hostMemory) {
        require();
        check(CudaRuntime.cudaHostUnregister(hostMemory), "cudaHostUnregister");
    }

    /**
     * Copies bytes and waits for the copy to finish.
     *
     * @param destination the destination address (host or device, as {@code kind} says)
     * @param source      the source address
     * @param bytes       how many bytes
     * @param kind        the direction
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void memcpy(long destination, long source, long bytes, MemcpyKind kind) {
        require();
        check(CudaRuntime.cudaMemcpy(MemorySegment.ofAddress(destination), MemorySegment.ofAddress(source), bytes,
                kind.cValue()), "cudaMemcpy");
    }

    /**
     * Enqueues a copy on a stream. Host memory must be pinned for the copy to be asynchronous.
     *
     * @param destination the destination address
     * @param source      the source address
     * @param bytes       how many bytes
     * @param kind        the direction
     * @param stream      the stream, 0 for the default stream
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void memcpyAsync(long destination, long source, long bytes, MemcpyKind kind, long stream) {
        require();
        check(CudaRuntime.cudaMemcpyAsync(MemorySegment.ofAddress(destination), MemorySegment.ofAddress(source), bytes,
                kind.cValue(), MemorySegment.ofAddress(stream)), "cudaMemcpyAsync");
    }

    /**
     * Sets device memory to a byte value.
     *
     * @param devicePointer the device address
     * @param value         the byte value (low 8 bits)
     * @param bytes         how many bytes
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void memset(long devicePointer, int value, long bytes) {
        require();
        check(CudaRuntime.cudaMemset(MemorySegment.ofAddress(devicePointer), value, bytes), "cudaMemset");
    }

    /**
     * Creates a stream on the current device.
     *
     * @param flags 0 or {@link CudaRuntime#cudaStreamNonBlocking}
     * @return the stream handle; destroy it with {@link #streamDestroy}
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static long streamCreate(int flags) {
        require();
        return pointerOut(out -> CudaRuntime.cudaStreamCreateWithFlags(out, flags), "cudaStreamCreateWithFlags");
    }

    /**
     * Destroys a stream.
     *
     * @param stream the stream handle
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void streamDestroy(long stream) {
        require();
        check(CudaRuntime.cudaStreamDestroy(MemorySegment.ofAddress(stream)), "cudaStreamDestroy");
    }

    /**
     * Waits until a stream has finished all its work.
     *
     * @param stream the stream handle, 0 for the default stream
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error, including one from earlier asynchronous work
     */
    public static void streamSynchronize(long stream) {
        require();
        check(CudaRuntime.cudaStreamSynchronize(MemorySegment.ofAddress(stream)), "cudaStreamSynchronize");
    }

    /**
     * Says, without blocking, whether a stream has finished all its work.
     *
     * @param stream the stream handle, 0 for the default stream
     * @return true when it has ({@code cudaSuccess}), false while work is pending
     *         ({@code cudaErrorNotReady})
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on any other CUDA error, including one from earlier asynchronous work
     */
    public static boolean streamQuery(long stream) {
        require();
        return completed(CudaRuntime.cudaStreamQuery(MemorySegment.ofAddress(stream)), "cudaStreamQuery");
    }

    private static boolean completed(int rc, String call) {
        if (rc == CudaRuntime.cudaErrorNotReady) {
            return false;
        }
        check(rc, call);
        return true;
    }

    /**
     * Makes later work on a stream wait for an event.
     *
     * @param stream the waiting stream, 0 for the default stream
     * @param event  the event
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void streamWaitEvent(long stream, long event) {
        require();
        check(CudaRuntime.cudaStreamWaitEvent(MemorySegment.ofAddress(stream), MemorySegment.ofAddress(event), 0),
                "cudaStreamWaitEvent");
    }

    /**
     * Creates an event on the current device.
     *
     * @param flags {@code cudaEvent*} flags from {@link CudaRuntime}
     * @return the event handle; destroy it with {@link #eventDestroy}
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static long eventCreate(int flags) {
        require();
        return pointerOut(out -> CudaRuntime.cudaEventCreateWithFlags(out, flags), "cudaEventCreateWithFlags");
    }

    /**
     * Records an event at the current end of a stream.
     *
     * @param event  the event
     * @param stream the stream, 0 for the default stream
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void eventRecord(long event, long stream) {
        require();
        check(CudaRuntime.cudaEventRecord(MemorySegment.ofAddress(event), MemorySegment.ofAddress(stream)),
                "cudaEventRecord");
    }

    /**
     * Waits until an event has completed.
     *
     * @param event the event
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void eventSynchronize(long event) {
        require();
        check(CudaRuntime.cudaEventSynchronize(MemorySegment.ofAddress(event)), "cudaEventSynchronize");
    }

    /**
     * Says, without blocking, whether the work an event captured has completed. An event never
     * recorded counts as completed.
     *
     * @param event the event
     * @return true when it has ({@code cudaSuccess}), false while work is pending
     *         ({@code cudaErrorNotReady})
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on any other CUDA error
     */
    public static boolean eventQuery(long event) {
        require();
        return completed(CudaRuntime.cudaEventQuery(MemorySegment.ofAddress(event)), "cudaEventQuery");
    }

    /**
     * The time between two completed events (both created without {@code cudaEventDisableTiming}).
     *
     * @param start the earlier event
     * @param end   the later event
     * @return milliseconds, with about 0.5 us resolution
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error (e.g. {@code cudaErrorNotReady})
     */
    public static float eventElapsedMillis(long start, long end) {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ms = arena.allocate(JAVA_FLOAT);
            check(CudaRuntime.cudaEventElapsedTime(ms, MemorySegment.ofAddress(start), MemorySegment.ofAddress(end)),
                    "cudaEventElapsedTime");
            return ms.get(JAVA_FLOAT, 0);
        }
    }

    /**
     * Destroys an event.
     *
     * @param event the event
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void eventDestroy(long event) {
        require();
        check(CudaRuntime.cudaEventDestroy(MemorySegment.ofAddress(event)), "cudaEventDestroy");
    }

    /**
     * Exports device memory for another process on this host.
     *
     * @param devicePointer the base address of a {@link #malloc} allocation
     * @return the {@value #IPC_HANDLE_BYTES}-byte handle, to send to the other process
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static byte[] ipcGetMemHandle(long devicePointer) {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment handle = arena.allocate(CudaRuntime.cudaIpcMemHandle_t);
            check(CudaRuntime.cudaIpcGetMemHandle(handle, MemorySegment.ofAddress(devicePointer)), "cudaIpcGetMemHandle");
            return handle.toArray(JAVA_BYTE);
        }
    }

    /**
     * Maps device memory exported by another process (with lazy peer access enabled). CUDA refuses
     * a handle in the process that exported it.
     *
     * @param handle the {@value #IPC_HANDLE_BYTES}-byte handle from {@link #ipcGetMemHandle}
     * @return the address of the memory in this process; unmap it with {@link #ipcCloseMemHandle}
     * @throws IllegalArgumentException   when the handle is not {@value #IPC_HANDLE_BYTES} bytes
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static long ipcOpenMemHandle(byte[] handle) {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment byValue = handleSegment(arena, handle);
            return pointerOut(out -> CudaRuntime.cudaIpcOpenMemHandle(out, byValue,
                    CudaRuntime.cudaIpcMemLazyEnablePeerAccess), "cudaIpcOpenMemHandle");
        }
    }

    /**
     * Unmaps memory mapped by {@link #ipcOpenMemHandle}.
     *
     * @param devicePointer the address it returned
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static void ipcCloseMemHandle(long devicePointer) {
        require();
        check(CudaRuntime.cudaIpcCloseMemHandle(MemorySegment.ofAddress(devicePointer)), "cudaIpcCloseMemHandle");
    }

    /**
     * Exports an event for another process on this host. The event must have been created with
     * {@code cudaEventInterprocess | cudaEventDisableTiming}.
     *
     * @param event the event
     * @return the {@value #IPC_HANDLE_BYTES}-byte handle
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static byte[] ipcGetEventHandle(long event) {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment handle = arena.allocate(CudaRuntime.cudaIpcEventHandle_t);
            check(CudaRuntime.cudaIpcGetEventHandle(handle, MemorySegment.ofAddress(event)), "cudaIpcGetEventHandle");
            return handle.toArray(JAVA_BYTE);
        }
    }

    /**
     * Opens an event exported by {@link #ipcGetEventHandle}.
     *
     * @param handle the {@value #IPC_HANDLE_BYTES}-byte handle
     * @return the event in this process; destroy it with {@link #eventDestroy}
     * @throws IllegalArgumentException   when the handle is not {@value #IPC_HANDLE_BYTES} bytes
     * @throws NativeUnavailableException when CUDA is unavailable
     * @throws CudaException              on a CUDA error
     */
    public static long ipcOpenEventHandle(byte[] handle) {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment byValue = handleSegment(arena, handle);
            return pointerOut(out -> CudaRuntime.cudaIpcOpenEventHandle(out, byValue), "cudaIpcOpenEventHandle");
        }
    }

    private static MemorySegment handleSegment(Arena arena, byte[] handle) {
        if (handle.length != IPC_HANDLE_BYTES) {
            throw new IllegalArgumentException("a CUDA IPC handle has " + IPC_HANDLE_BYTES + " bytes, not " + handle.length);
        }
        MemorySegment segment = arena.allocate(CudaRuntime.cudaIpcMemHandle_t);
        MemorySegment.copy(handle, 0, segment, JAVA_BYTE, 0, handle.length);
        return segment;
    }
}
