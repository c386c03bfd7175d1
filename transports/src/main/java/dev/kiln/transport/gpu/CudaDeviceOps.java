package dev.kiln.transport.gpu;

import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.CudaDriver;
import dev.kiln.cuda.CudaRuntime;
import dev.kiln.cuda.DeviceAttribute;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.cuda.Nvrtc;
import dev.kiln.tensor.DeviceTensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongSupplier;

/**
 * {@link DeviceOps} over CUDA ({@code dev.kiln.cuda}): the runtime for memory, streams (non-blocking), events
 * (without timing, {@code cudaEventInterprocess} when asked), pinning and IPC (opened with lazy peer access);
 * the driver API for device UUIDs, total memory and kernel launches; NVRTC to compile kernels; NCCL for
 * communicators ({@link NcclCommunicator}). Errors are {@code NativeCallException}s: {@code CudaException},
 * {@code CudaDriverException}, {@code NvrtcException} or {@code NcclException} after the library that failed.
 *
 * <p>Calls that CUDA resolves on the current device (allocations, creations, IPC opens, anything on stream 0)
 * make the named device current for the call and then restore the thread's device; a thread that had no CUDA
 * context before the call is left without one ({@code cuCtxSetCurrent(NULL)}), as restoring device 0 would bind
 * device 0's context to a thread that never asked for one. Work on a
 * non-default stream runs in the stream's context whatever the current device. Kernels are compiled once per
 * device and kernel (NVRTC, {@code --gpu-architecture=compute_XY}), loaded into the device's primary context.
 *
 * <p><b>Not yet verified on a GPU</b>: it compiles against the bindings; its tests are skipped without a
 * device (see {@code docs/gpu.md}). Thread-safe, as CUDA is.
 */
public final class CudaDeviceOps implements DeviceOps {

    private final long pid = ProcessHandle.current().pid();
    private final Map<KernelKey, Long> functions = new ConcurrentHashMap<>();
    private final Map<Long, Integer> modules = new ConcurrentHashMap<>();

    /** A kernel compiled for one device. */
    private record KernelKey(int device, String name, String source) {
    }

    /**
     * @throws IllegalStateException when CUDA is unavailable, with {@code Cuda.unavailableReason()}
     */
    public CudaDeviceOps() {
        if (!Cuda.isAvailable()) {
            throw new IllegalStateException("GPU channels need CUDA: " + Cuda.unavailableReason());
        }
    }

    @Override
    public long processId() {
        return pid;
    }

    @Override
    public int deviceCount() {
        return Cuda.deviceCount();
    }

    @Override
    public String deviceUuid(int device) {
        return CudaDriver.deviceUuid(device);
    }

    @Override
    public long totalBytes(int device) {
        return CudaDriver.totalMemory(device);
    }

    @Override
    public long freeBytes(int device) {
        return onDevice(device, () -> Cuda.memoryInfo().freeBytes());
    }

    @Override
    public boolean canAccessPeer(int device, int peer) {
        return device != peer && Cuda.canAccessPeer(device, peer);
    }

    @Override
    public int currentDevice() {
        return Cuda.device();
    }

    @Override
    public void setCurrentDevice(int device) {
        Cuda.setDevice(device);
    }

    @Override
    public long allocate(int device, long bytes) {
        return onDevice(device, () -> Cuda.malloc(bytes));
    }

    @Override
    public void free(long pointer) {
        Cuda.free(pointer);
    }

    @Override
    public long createStream(int device) {
        return onDevice(device, () -> Cuda.streamCreate(CudaRuntime.cudaStreamNonBlocking));
    }

    @Override
    public void destroyStream(long stream) {
        Cuda.streamDestroy(stream);
    }

    @Override
    public long createEvent(int device, boolean interprocess) {
        int flags = CudaRuntime.cudaEventDisableTiming | (interprocess ? CudaRuntime.cudaEventInterprocess : 0);
        return onDevice(device, () -> Cuda.eventCreate(flags));
    }

    @Override
    public void destroyEvent(long event) {
        Cuda.eventDestroy(event);
    }

    @Override
    public void recordEvent(int device, long event, long stream) {
        onStream(device, stream, () -> Cuda.eventRecord(event, stream));
    }

    @Override
    public void waitEvent(int device, long stream, long event) {
        onStream(device, stream, () -> Cuda.streamWaitEvent(stream, event));
    }

    @Override
    public void synchronizeEvent(long event) {
        Cuda.eventSynchronize(event);
    }

    @Override
    public void synchronizeStream(int device, long stream) {
        onStream(device, stream, () -> Cuda.streamSynchronize(stream));
    }

    @Override
    public boolean queryStream(int device, long stream) {
        return onDevice(device, stream, () -> Cuda.streamQuery(stream) ? 1 : 0) == 1;
    }

    @Override
    public void copyAsync(int device, long destination, long source, long bytes, MemcpyKind kind, long stream) {
        onStream(device, stream, () -> Cuda.memcpyAsync(destination, source, bytes, kind, stream));
    }

    @Override
    public void pinHost(MemorySegment host) {
        Cuda.hostRegister(host, CudaRuntime.cudaHostRegisterDefault);
    }

    @Override
    public void unpinHost(MemorySegment host) {
        Cuda.hostUnregister(host);
    }

    @Override
    public byte[] exportMemory(long pointer) {
        return Cuda.ipcGetMemHandle(pointer);
    }

    @Override
    public long openMemory(int device, byte[] handle) {
        return onDevice(device, () -> Cuda.ipcOpenMemHandle(handle));
    }

    @Override
    public void closeMemory(long pointer) {
        Cuda.ipcCloseMemHandle(pointer);
    }

    @Override
    public byte[] exportEvent(long event) {
        return Cuda.ipcGetEventHandle(event);
    }

    @Override
    public long openEvent(int device, byte[] handle) {
        return onDevice(device, () -> Cuda.ipcOpenEventHandle(handle));
    }

    @Override
    public void launch(int device, long stream, GpuKernel kernel, GpuKernel.Shape shape, Object... args) {
        long function = functions.computeIfAbsent(new KernelKey(device, kernel.name(), kernel.source()), this::compile);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment params = arena.allocate(ValueLayout.ADDRESS, Math.max(1, args.length));
            for (int i = 0; i < args.length; i++) {
                MemorySegment value = switch (args[i]) {
                    case DeviceTensor t -> {
                        if (t.device() != device) {
                            throw new IllegalArgumentException("kernel " + kernel.name() + ": argument " + i + " is on gpu"
                                    + t.device() + ", the launch is on gpu" + device);
                        }
                        yield arena.allocateFrom(ValueLayout.JAVA_LONG, t.pointer());
                    }
                    case Integer x -> arena.allocateFrom(ValueLayout.JAVA_INT, x);
                    case Long x -> arena.allocateFrom(ValueLayout.JAVA_LONG, x);
                    case Float x -> arena.allocateFrom(ValueLayout.JAVA_FLOAT, x);
                    case Double x -> arena.allocateFrom(ValueLayout.JAVA_DOUBLE, x);
                    case null, default -> throw new IllegalArgumentException("kernel " + kernel.name() + ": argument " + i
                            + " is " + (args[i] == null ? "null" : "a " + args[i].getClass().getName()) + "; pass"
                            + " DeviceTensor, Integer, Long, Float or Double");
                };
                params.setAtIndex(ValueLayout.ADDRESS, i, value);
            }
            onDevice(device, () -> {
                CudaDriver.launch(function, shape.gridX(), shape.gridY(), shape.gridZ(), shape.blockX(), shape.blockY(),
                        shape.blockZ(), shape.sharedBytes(), stream, params);
                return 0;
            });
        }
    }

    /** Compiles a kernel for a device's architecture and loads it into the device's primary context. */
    private long compile(KernelKey key) {
        int major = Cuda.deviceAttribute(DeviceAttribute.COMPUTE_CAPABILITY_MAJOR, key.device());
        int minor = Cuda.deviceAttribute(DeviceAttribute.COMPUTE_CAPABILITY_MINOR, key.device());
        byte[] ptx = Nvrtc.compileToPtx(key.source(), key.name() + ".cu",
                List.of("--gpu-architecture=compute_" + major + minor));
        return onDevice(key.device(), () -> {
            long module = CudaDriver.loadModule(ptx);
            modules.put(module, key.device());
            return CudaDriver.function(module, key.name());
        });
    }

    @Override
    public byte[] newCommunicatorId() {
        return NcclCommunicator.uniqueId();
    }

    @Override
    public Communicator joinCommunicator(int size, byte[] id, int rank, int device, long stream) {
        return NcclCommunicator.join(size, id, rank, device, stream);
    }

    /** Unloads the kernels' modules. */
    @Override
    public void close() {
        for (Map.Entry<Long, Integer> m : modules.entrySet()) {
            onDevice(m.getValue(), () -> {
                CudaDriver.unloadModule(m.getKey());
                return 0;
            });
        }
        modules.clear();
        functions.clear();
    }

    private static void onStream(int device, long stream, Runnable call) {
        onDevice(device, stream, () -> {
            call.run();
            return 0;
        });
    }

    /** Stream 0 is resolved on the current device, so it needs the named one; other streams carry their context. */
    private static long onDevice(int device, long stream, LongSupplier call) {
        return stream == 0 ? onDevice(device, call) : call.getAsLong();
    }

    private static long onDevice(int device, LongSupplier call) {
        int previous = Cuda.device();
        if (previous == device) {
            return call.getAsLong();
        }
        boolean hadContext = CudaDriver.currentContext() != 0;
        Cuda.setDevice(device);
        try {
            return call.getAsLong();
        } finally {
            if (hadContext) {
                Cuda.setDevice(previous);
            } else {
                CudaDriver.setCurrentContext(0);
            }
        }
    }

    @Override
    public String toString() {
        return "CudaDeviceOps(pid " + pid + ")";
    }
}
